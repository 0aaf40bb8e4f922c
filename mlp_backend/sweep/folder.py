"""The sweep folder: ``sweep.json``, ``results.jsonl``, ``results.csv``
(and ``configurations.csv`` where configurations have several seeds).

Layout and guarantees are in ``docs/run-format.md``: ``sweep.json`` is written
once, atomically, before any trial starts; ``results.jsonl`` only grows, by
whole lines, one each time a trial ends, fails or is interrupted (a trial
resumed later adds another, and its last line is its result);
``results.csv`` is the last line of each trial as a table, and
``configurations.csv`` the mean and spread over seeds of each configuration
(see :mod:`mlp_backend.sweep.repeats`), both replaced atomically once per
group. Only the client (never a worker) writes these files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlp_backend.errors import OutputError, RunError
from mlp_backend.runs import (
    STATES,
    append_jsonl,
    create_folder,
    finite_number,
    read_json,
    replace_bytes,
    whole_lines,
    write_json,
    writing,
)
from mlp_backend.sweep.repeats import configurations, repeated
from mlp_backend.sweep.spec import KEYS, NUMBERS, Trial
from mlp_backend.widths import widths_text

logger = logging.getLogger(__name__)

SWEEP_VERSION = 1
#: Trial states that a resume keeps; any other trial is trained again.
FINAL_STATES = ("finished", "diverged", "pruned")
#: The states a results line can record: a trial's state once it has ended.
RESULT_STATES = tuple(s for s in STATES if s not in ("queued", "running"))
#: Trial keys that the planner divides by or counts with: whole and positive.
COUNTS = ("batch_size", "epochs")
#: Results fields that hold a number or nothing, besides the val_ and test_
#: metrics.
NUMERIC = ("epochs_run", "best_epoch", "best_value", "seconds", "members")


def trial_name(index: int) -> str:
    return f"trial-{index:04d}"


def hyperparameters(trial: Trial) -> dict[str, Any]:
    """A trial's keys as flat values (hidden widths as ``"64x32"``)."""
    return {k: widths_text(trial[k]) if k == "hidden" else trial[k] for k in KEYS}


def result_record(
    index: int,
    trial: Trial,
    state: str,
    summary: dict[str, Any] | None,
    error: str | None = None,
    members: int | None = None,
) -> dict[str, Any]:
    """One results line: trial, hyperparameters, outcome and scalar metrics."""
    record: dict[str, Any] = {
        "trial": index,
        "name": trial_name(index),
        "state": state,
        **hyperparameters(trial),
    }
    summary = summary or {}
    record["error"] = error
    record["reason"] = summary.get("reason")
    record["members"] = members
    for key in ("epochs_run", "best_epoch", "best_value", "monitor", "seconds"):
        record[key] = summary.get(key)
    for part in ("val", "test"):
        for key, value in (summary.get(part) or {}).items():
            if value is None or isinstance(value, (int, float)):
                record[f"{part}_{key}"] = value
    return record


class SweepFolder:
    """Reads and writes one sweep's own files.

    Args:
        path: The sweep folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Damage already told, so that a sweep that reads its files again
        # (a resume does) warns of each place once.
        self._told: set[str] = set()

    def _tell(self, message: str) -> None:
        if message not in self._told:
            self._told.add(message)
            logger.warning("%s", message)

    @classmethod
    def create(
        cls, root: Path, name: str | None, spec: dict[str, Any], trials: list[Trial]
    ) -> SweepFolder:
        """A new sweep folder with its ``sweep.json``."""
        folder = cls(create_folder(root, name, prefix="sweep-"))
        write_json(
            folder.path / "sweep.json",
            {
                "version": SWEEP_VERSION,
                "name": folder.path.name,
                "created": time.time(),
                "spec": spec,
                "trials": [
                    {"index": i, "name": trial_name(i), "hyperparameters": t}
                    for i, t in enumerate(trials)
                ],
            },
        )
        return folder

    def read(self) -> dict[str, Any]:
        """``sweep.json``, checked enough to resume from."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such sweep folder")
        if not (self.path / "sweep.json").is_file():
            raise RunError(f"{self.path} holds no sweep.json (is it a sweep folder?)")
        path = self.path / "sweep.json"
        info = read_json(path)
        if not isinstance(info, dict):
            raise RunError(f"{path}: expected a JSON object, as a sweep writes it")
        if info.get("version") != SWEEP_VERSION:
            raise RunError(
                f"{path}: version {info.get('version')!r}, "
                f"this program reads {SWEEP_VERSION}"
            )
        _check_layout(path, info)
        return info

    @staticmethod
    def trials_of(info: dict[str, Any]) -> list[Trial]:
        trials = []
        for entry in info["trials"]:
            trial = dict(entry["hyperparameters"])
            trial["hidden"] = tuple(trial["hidden"])
            trials.append(trial)
        return trials

    def trial_path(self, index: int) -> Path:
        return self.path / trial_name(index)

    def finished(self, count: int) -> dict[int, dict[str, Any]]:
        """Summaries of the trials that ended in a final state, by index."""
        done = {}
        for i in range(count):
            path = self.trial_path(i) / "summary.json"
            if not path.is_file():
                continue
            # A summary that cannot be read or is not one a run writes: a
            # resume trains the trial again, a report lists it as not ended.
            try:
                summary = read_json(path)
            except RunError as exc:
                self._tell(f"{exc}; the trial counts as not ended")
                continue
            if not _is_summary(summary):
                self._tell(
                    f"{path}: not a run's summary; the trial counts as not ended"
                )
                continue
            if summary["state"] in FINAL_STATES:
                done[i] = summary
        return done

    def results(
        self, trials: Sequence[Trial] | None = None
    ) -> dict[int, dict[str, Any]]:
        """The last results line of each of ``trials`` (the sweep's own, read
        from ``sweep.json`` when None).

        A torn last line is ignored, and a line that is not a results record
        of one of ``trials`` (see :func:`_result_line`) is skipped with a
        warning. A record's hyperparameters are taken from ``trials``, which
        ``sweep.json`` holds, whatever the line says.
        """
        path = self.path / "results.jsonl"
        if not path.is_file():
            return {}
        if trials is None:
            trials = self.trials_of(self.read())
        records = {}
        for number, line in enumerate(whole_lines(path.read_bytes()), start=1):
            record = _result_line(line, len(trials))
            if record is None:
                self._tell(f"{path}, line {number}: not a results record; skipped")
                continue
            index = record["trial"]
            records[index] = {**record, **hyperparameters(trials[index])}
        return records

    def drop_torn_line(self) -> None:
        """Cuts a last results line that a killed writer left without its newline.

        Only the lock holder calls this, before appending: a later line would
        otherwise be glued to the torn one.
        """
        path = self.path / "results.jsonl"
        if not path.is_file():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def add_results(self, records: Sequence[dict[str, Any]]) -> None:
        """Appends a line per record to ``results.jsonl``; rewrites ``results.csv``.

        A group's records come together, so the table is rewritten once per
        group rather than once per trial.
        """
        for record in records:
            append_jsonl(self.path / "results.jsonl", record)
        if not records:
            return
        trials = self.trials_of(self.read())
        try:
            self.write_csv(self.results(trials), trials)
        except OutputError as exc:
            # The tables are views of results.jsonl, which holds every result:
            # the sweep goes on, and `report` writes them again.
            self._tell(f"{exc}; results.jsonl keeps every result")

    def write_csv(
        self, records: dict[int, dict[str, Any]], trials: Sequence[Trial]
    ) -> list[dict[str, Any]] | None:
        """Rewrites ``results.csv`` from ``records`` (by trial index) of the
        sweep's ``trials`` and, where a configuration has several seeds,
        ``configurations.csv``.

        Returns:
            The rows of ``configurations.csv`` (see
            :func:`repeats.configurations`), or None where it has none.
        """
        # The columns every record has, so that a sweep with no result yet
        # still gets a header; its metrics follow as the records have them.
        empty = result_record(0, trials[0], "", None) if trials else {}
        _write_table(
            self.path / "results.csv",
            [k for k in empty if k != "format"],
            [records[index] for index in sorted(records)],
        )
        flat = [hyperparameters(t) for t in trials]
        if not repeated(flat):
            return None
        rows = configurations(flat, records)
        _write_table(self.path / "configurations.csv", [*rows[0]], rows)
        return rows


def _write_table(
    path: Path, columns: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Replaces ``path`` with ``rows`` as CSV: ``columns`` first, then any
    other key the rows have (but ``format``), empty where a row has none."""
    columns = list(columns)
    for row in rows:
        columns += [k for k in row if k not in columns and k != "format"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    with writing(path):
        replace_bytes(path, buffer.getvalue().encode())


def _check_layout(path: Path, info: dict[str, Any]) -> None:
    """Refuses a ``sweep.json`` that is JSON but not laid out as a sweep's,
    naming what is wrong, rather than failing later on a missing key."""

    def wrong(what: str) -> RunError:
        return RunError(f"{path}: {what}; the file is not as a sweep writes it")

    if not isinstance(info.get("spec"), dict):
        raise wrong("'spec' is not an object")
    entries = info.get("trials")
    if not isinstance(entries, list):
        raise wrong("'trials' is not a list")
    for n, entry in enumerate(entries):
        values = entry.get("hyperparameters") if isinstance(entry, dict) else None
        if not isinstance(values, dict):
            raise wrong(f"trial {n} has no 'hyperparameters' object")
        missing = [k for k in KEYS if k not in values]
        if missing:
            raise wrong(f"trial {n} lacks {', '.join(missing)}")
        hidden = values["hidden"]
        if not (
            isinstance(hidden, list)
            and hidden
            and all(type(w) is int and w > 0 for w in hidden)
        ):
            raise wrong(f"trial {n}: hidden is {hidden!r}, not a list of widths")
        # Types only: a trial the sweep cannot train (an unknown activation,
        # say) is recorded as failed when it runs, and the others go on.
        for key in KEYS:
            value = values[key]
            if key in COUNTS and not (type(value) is int and value >= 1):
                raise wrong(f"trial {n}: {key} is {value!r}, not a positive count")
            if key in NUMBERS and not finite_number(value):
                raise wrong(f"trial {n}: {key} is {value!r}, not a number")
            if key not in NUMBERS and key != "hidden" and not isinstance(value, str):
                raise wrong(f"trial {n}: {key} is {value!r}, not a name")
    groups = info["spec"].get("groups")
    if groups is not None:
        members = [i for g in groups for i in g] if _lists(groups) else None
        if (
            members is None
            or not all(type(i) is int and 0 <= i < len(entries) for i in members)
            or len(set(members)) != len(members)
        ):
            raise wrong("spec.groups is not a list of stacks of distinct trials")


def _lists(groups: Any) -> bool:
    return isinstance(groups, list) and all(isinstance(g, list) and g for g in groups)


def _is_summary(summary: Any) -> bool:
    """Whether ``summary`` is laid out as a run's ``summary.json`` (see
    :func:`job.finish_run`), as far as a results record reads it."""
    if not isinstance(summary, dict) or summary.get("state") not in RESULT_STATES:
        return False
    for key in NUMERIC:
        value = summary.get(key)
        if value is not None and not finite_number(value):
            return False
    for part in ("val", "test"):
        figures = summary.get(part)
        if figures is None:
            continue
        if not isinstance(figures, dict):
            return False
        for value in figures.values():
            # Tables (the confusion matrix, TPR at each FPR) are not in records.
            if value is None or isinstance(value, (list, dict)):
                continue
            if not finite_number(value):
                return False
    return True


def _result_line(line: bytes, count: int) -> dict[str, Any] | None:
    """The record on one line of ``results.jsonl``, or None where the line
    is not one that :func:`result_record` writes for one of ``count`` trials:
    a damaged line must not pass for a trial's result, nor hide one."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    index = record.get("trial")
    if type(index) is not int or not 0 <= index < count:
        return None
    if record.get("name") != trial_name(index):
        return None
    if record.get("state") not in RESULT_STATES:
        return None
    for key, value in record.items():
        if key in NUMERIC or key.startswith(("val_", "test_")):
            if value is not None and not finite_number(value):
                return None
    return record
