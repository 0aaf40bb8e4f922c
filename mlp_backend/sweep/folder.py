"""The sweep folder: ``sweep.json``, ``results.jsonl``, ``results.csv``.

Layout and guarantees are in ``docs/run-format.md``: ``sweep.json`` is written
once, atomically, before any trial starts; ``results.jsonl`` only grows, by
whole lines, one each time a trial ends, fails or is interrupted (a trial
resumed later adds another, and its last line is its result);
``results.csv`` is the last line of each trial as a table, replaced
atomically once per group. Only the client (never a worker) writes these
three files.
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

from mlp_backend.errors import RunError
from mlp_backend.runs import (
    append_jsonl,
    create_folder,
    read_json,
    replace_bytes,
    write_json,
)
from mlp_backend.sweep.spec import KEYS, Trial
from mlp_backend.widths import widths_text

logger = logging.getLogger(__name__)

SWEEP_VERSION = 1
#: Trial states that a resume keeps; any other trial is trained again.
FINAL_STATES = ("finished", "diverged", "pruned")


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
        info = read_json(self.path / "sweep.json")
        if info.get("version") != SWEEP_VERSION:
            raise RunError(
                f"{self.path / 'sweep.json'}: version {info.get('version')!r}, "
                f"this program reads {SWEEP_VERSION}"
            )
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
            try:
                summary = read_json(path)
            except RunError:
                continue
            if summary.get("state") in FINAL_STATES:
                done[i] = summary
        return done

    def results(self) -> dict[int, dict[str, Any]]:
        """The last results line of each trial; a torn last line is ignored."""
        path = self.path / "results.jsonl"
        if not path.is_file():
            return {}
        records = {}
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            if not line.endswith("\n"):
                break
            try:
                record = json.loads(line)
                records[int(record["trial"])] = record
            except (ValueError, KeyError, TypeError):
                logger.warning(
                    "%s, line %d: not a results record; skipped", path, number
                )
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
        if records:
            self.write_csv(self.results())

    def write_csv(self, records: dict[int, dict[str, Any]]) -> None:
        # The columns every record has, so that a sweep with no result yet
        # still gets a header; its metrics follow as the records have them.
        trials = self.trials_of(self.read())
        empty = result_record(0, trials[0], "", None) if trials else {}
        columns: list[str] = [k for k in empty if k != "format"]
        for record in records.values():
            columns += [k for k in record if k not in columns and k != "format"]
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, columns, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for index in sorted(records):
            writer.writerow(
                {k: "" if v is None else v for k, v in records[index].items()}
            )
        replace_bytes(self.path / "results.csv", buffer.getvalue().encode())
