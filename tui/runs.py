"""What the monitor knows about a runs folder, read from files only.

:class:`RunsFolder` walks a runs folder (``docs/run-format.md``) and keeps one
tracker per run and per sweep. Each :meth:`RunsFolder.poll` looks at every
known file with :func:`os.stat` and reads only what changed, then returns a
:class:`Snapshot` of plain, immutable rows that the user interface shows.

The table needs little per run: ``config.json``, ``status.json`` and
``summary.json``. ``metrics.jsonl`` is read only while a run has no summary
(to know its best value so far), and then without keeping its history. The
full history is read only for the runs a screen asks for with
:meth:`RunsFolder.watch`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.follow import (
    BadLine,
    JsonFile,
    JsonlFollower,
    file_identity,
    parse_lines,
    read_range,
)

logger = logging.getLogger(__name__)

ENDED_STATES = frozenset(
    {"finished", "diverged", "stopped", "interrupted", "failed", "pruned"}
)
# The states that are a trial's result, as ``sweep --resume`` counts them
# (mlp_backend.sweep.folder.FINAL_STATES): a resume trains any other again.
FINAL_STATES = frozenset({"finished", "diverged", "pruned"})
# A sweep whose trials have ended, not all with a result, is named after the
# gravest of these among them: a failure, then an interrupt, then a stop.
UNDONE_STATES = ("failed", "interrupted", "stopped")
# The state of a run whose status (and summary) cannot be read or parsed.
UNREADABLE = "unreadable"
STOP_FILE = "stop.request"
DEFAULT_MONITOR = "val_loss"
# The test metric shown in the table: the first of these the summary has.
TEST_METRICS = ("accuracy", "r2", "mse")
EVENTS_KEPT = 50
# A metrics file larger than this is read from its end first (MetricsTail).
EAGER_BYTES = 32 * 1024
TAIL_BYTES = 16 * 1024
# Older metrics lines are read a chunk at a time, for at most so many seconds
# per look, so that a look stays short while a large folder is taken in.
CATCH_UP_CHUNK = 256 * 1024
CATCH_UP_SECONDS = 0.05


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better (losses and errors)."""
    return metric.endswith(("loss", "mse", "mae"))


def is_better(metric: str, value: float, than: float | None) -> bool:
    """Whether ``value`` beats ``than`` (None is beaten by anything)."""
    if than is None:
        return True
    return value < than if lower_is_better(metric) else value > than


def better_first(metric: str, value: float | None) -> float:
    """A sort key for values of ``metric``: the better, the smaller.

    Only values of one metric compare; a missing value sorts last.
    """
    if value is None:
        return math.inf
    return value if lower_is_better(metric) else -value


def _number(value: Any) -> float | None:
    # Booleans are ints to Python but never metrics. NaN and infinities are
    # malformed (the trainer writes null): a NaN would stay "best" for good,
    # since nothing compares better than it.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return None


def _problems(*readers: JsonFile | JsonlFollower) -> tuple[str, ...]:
    return tuple(reader.notice for reader in readers if reader.notice)


def _tell(problems: tuple[str, ...], told: tuple[str, ...], notices: list[str]) -> None:
    # A problem is told once while it lasts, not at every look at the files.
    notices.extend(problem for problem in problems if problem not in told)


def _section(mapping: dict[str, Any] | None, name: str) -> dict[str, Any]:
    value = (mapping or {}).get(name)
    return value if isinstance(value, dict) else {}


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def hyperparameters(config: dict[str, Any] | None) -> dict[str, Any]:
    """The settings of a run that sweeps vary, flattened to dotted names.

    Args:
        config: The parsed ``config.json``, or None.

    Returns:
        ``{"model.hidden": (64, 32), "training.lr": 0.003, ...}`` with lists
        turned into tuples so that the values can be compared and grouped.
    """
    params: dict[str, Any] = {}
    for section in ("model", "training", "backend"):
        for name, value in _section(config, section).items():
            params[f"{section}.{name}"] = _hashable(value)
    return params


@dataclass(frozen=True)
class SweepProgress:
    """How far a sweep's trials are.

    Attributes:
        total: Trials planned (from ``sweep.json``, else the folders seen).
        done: Trials that finished.
        running: Trials running now.
        queued: Trials not started yet.
        failed: Trials that failed.
        diverged: Trials that diverged.
        pruned: Trials that successive halving stopped.
        other: Trials stopped, interrupted or stale.
    """

    total: int = 0
    done: int = 0
    running: int = 0
    queued: int = 0
    failed: int = 0
    diverged: int = 0
    pruned: int = 0
    other: int = 0

    @property
    def ended(self) -> int:
        """Trials that this sweep process will not run again."""
        return self.results + self.failed + self.other

    @property
    def results(self) -> int:
        """Trials with a final result; ``sweep --resume`` trains the rest."""
        return self.done + self.diverged + self.pruned


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table: a run, a trial or a sweep.

    Attributes:
        key: The folder relative to the runs folder (``sweep/trial`` for a
            trial); unique and stable.
        name: The folder's name.
        sweep: The sweep a trial belongs to, else None.
        kind: ``"run"`` or ``"sweep"``.
        state: The state from ``status.json``, ``"stale"`` for a running
            run whose status has not been updated for a while, or
            ``"unreadable"`` when neither the status nor the summary can be
            read. A sweep's is made from its trials' states.
        epoch: Epochs done (trials done for a sweep).
        epochs: Epochs planned (trials planned for a sweep).
        monitor: The metric that decides the best epoch.
        best: The best value of ``monitor`` so far.
        best_partial: True while older metrics lines are still to be read,
            so that ``best`` may not be the best yet.
        test_name: The test metric shown.
        test: Its value from ``summary.json``.
        backend: ``backend/device``.
        started: When the run started, in Unix seconds.
        elapsed: Seconds since the start (to the end, for an ended run).
        eta: Seconds left, estimated.
        reason: Why the run ended other than finishing.
        params: The hyperparameters (see :func:`hyperparameters`).
        progress: For a sweep, the counts of its trials.
        problems: Why files of the run (or ``sweep.json``) cannot be used.
    """

    key: str
    name: str
    sweep: str | None
    kind: str
    state: str
    epoch: int | None = None
    epochs: int | None = None
    monitor: str = DEFAULT_MONITOR
    best: float | None = None
    best_partial: bool = False
    test_name: str = ""
    test: float | None = None
    backend: str = ""
    started: float | None = None
    elapsed: float | None = None
    eta: float | None = None
    reason: str | None = None
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    progress: SweepProgress | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class DetailSnapshot:
    """Everything about one run that its screen shows.

    Attributes:
        key: The run's key.
        history: One metrics record per epoch, in epoch order.
        events: The last events, oldest first.
        config: The parsed ``config.json``, or None.
        status: The parsed ``status.json``, or None.
        summary: The parsed ``summary.json``, or None.
        bad_lines: Lines of ``metrics.jsonl`` and ``events.jsonl`` skipped.
        bad_count: How many lines were skipped in all.
        problems: Why files of the run cannot be read or used now.
    """

    key: str
    history: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...]
    config: dict[str, Any] | None
    status: dict[str, Any] | None
    summary: dict[str, Any] | None
    bad_lines: tuple[BadLine, ...] = ()
    bad_count: int = 0
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """The result of one look at a runs folder.

    Attributes:
        rows: Every run, trial and sweep by key, sweeps before their trials.
        notices: Things a person should hear about, new since the last look.
        details: The watched runs whose details changed since the last look.
    """

    rows: dict[str, RunRow]
    notices: tuple[str, ...] = ()
    details: dict[str, DetailSnapshot] = field(default_factory=dict)


class MetricsTail:
    """The last epoch and the best value in ``metrics.jsonl``, not the history.

    A long file is not parsed at the first look: the last lines are read at
    once, so that the table shows the epoch straight away, and the older lines
    later, a bounded number of bytes per look (:meth:`catch_up`). Until then
    ``best`` is the best of the lines read so far and ``catching_up`` is True.

    Args:
        path: The metrics file.
        monitor: The metric whose best value is kept.
    """

    def __init__(self, path: Path, monitor: str) -> None:
        self.path = path
        self.follower = JsonlFollower(path)
        self.monitor = monitor
        self.last_epoch: int | None = None
        self.best: float | None = None
        self._started = False
        self._backlog_at = 0
        self._backlog_end = 0

    @property
    def catching_up(self) -> bool:
        """Whether older lines are still to be read."""
        return self._backlog_at < self._backlog_end

    def poll(self) -> bool:
        """Take in appended lines; return True when something changed."""
        changed = False
        if not self._started:
            changed = self._start()
        chunk = self.follower.poll()
        if chunk.reset:
            self.last_epoch = None
            self.best = None
            self._backlog_at = self._backlog_end = 0
        return self._take(chunk.records) or chunk.reset or changed

    def catch_up(self, budget: int) -> int:
        """Read up to ``budget`` bytes of older lines; return the bytes used."""
        if not self.catching_up:
            return 0
        stop = min(self._backlog_at + budget, self._backlog_end)
        data = read_range(self.path, self._backlog_at, stop)
        if not data:
            self._backlog_at = self._backlog_end
            return 0
        # Only whole lines; the rest waits for the next call.
        cut = len(data) if stop == self._backlog_end else data.rfind(b"\n") + 1
        if cut <= 0:
            cut = len(data)
        self._take(parse_lines(data[:cut]))
        self._backlog_at += cut
        return cut

    def _start(self) -> bool:
        self._started = True
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        if st.st_size <= EAGER_BYTES:
            return False
        tail_at = st.st_size - TAIL_BYTES
        tail = read_range(self.path, tail_at, st.st_size)
        last_newline = tail.rfind(b"\n")
        line_start = tail.rfind(b"\n", 0, max(last_newline, 0)) + 1
        if last_newline < 0 or line_start == 0:
            return False
        # The last whole line now; a torn line after it is the follower's.
        self._take(parse_lines(tail[line_start:last_newline]))
        self.follower.resume_at(tail_at + last_newline + 1, file_identity(st))
        self._backlog_end = tail_at + line_start
        return True

    def _take(self, records: list[dict[str, Any]]) -> bool:
        changed = False
        for record in records:
            epoch = record.get("epoch")
            if isinstance(epoch, int) and (
                self.last_epoch is None or epoch > self.last_epoch
            ):
                self.last_epoch = epoch
                changed = True
            # Keyed by value, not by line: an epoch seen twice changes nothing.
            value = _number(record.get(self.monitor))
            if value is not None and is_better(self.monitor, value, self.best):
                self.best = value
                changed = True
        return changed


class RunTracker:
    """The files of one run folder that the runs table needs.

    Args:
        path: The run folder.
        key: Its key (see :class:`RunRow`).
        sweep: The sweep it belongs to, or None.
    """

    def __init__(self, path: Path, key: str, sweep: str | None) -> None:
        self.path = path
        self.key = key
        self.sweep = sweep
        self.config = JsonFile(path / "config.json")
        self.status = JsonFile(path / "status.json")
        self.summary = JsonFile(path / "summary.json")
        self.tail: MetricsTail | None = None
        self._params: dict[str, Any] = {}

    @property
    def monitor(self) -> str:
        """The metric that decides the best epoch."""
        summary_monitor = (self.summary.value or {}).get("monitor")
        if isinstance(summary_monitor, str):
            return summary_monitor
        monitor = _section(self.config.value, "training").get("monitor")
        return monitor if isinstance(monitor, str) else DEFAULT_MONITOR

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the run's JSON files cannot be used, as found at the last look."""
        return _problems(self.config, self.status, self.summary)

    def poll(self, notices: list[str]) -> bool:
        """Look at the run's files; return True when something changed.

        Problems found with them that were not there before go to ``notices``.
        """
        told = self.problems
        changed = False
        # config.json is written once: after it was read, it is left alone.
        if self.config.value is None and self.config.poll():
            self._params = hyperparameters(self.config.value)
            changed = True
        changed |= self.status.poll()
        changed |= self.summary.poll()
        if _number((self.summary.value or {}).get("best_value")) is None:
            if self.tail is None or self.tail.monitor != self.monitor:
                self.tail = MetricsTail(self.path / "metrics.jsonl", self.monitor)
            changed |= self.tail.poll()
        elif self.tail is not None:
            # The summary has the final word; the tail's memory can go.
            self.tail = None
        _tell(self.problems, told, notices)
        return changed or self.problems != told

    def row(self, now: float, stale_after: float) -> RunRow:
        """The run's line of the table at time ``now``."""
        status = self.status.value or {}
        summary = self.summary.value or {}
        config = self.config.value or {}
        state = self._state(status, summary)
        updated = _number(status.get("updated"))
        if state == "running" and updated is not None and now - updated > stale_after:
            state = "stale"

        epoch = status.get("epoch") if isinstance(status.get("epoch"), int) else None
        tail_epoch = self.tail.last_epoch if self.tail else None
        if tail_epoch is not None and (epoch is None or tail_epoch > epoch):
            epoch = tail_epoch
        if isinstance(summary.get("epochs_run"), int):
            epoch = summary["epochs_run"]
        epochs = status.get("epochs")
        if not isinstance(epochs, int):
            epochs = _section(config, "training").get("epochs")
            epochs = epochs if isinstance(epochs, int) else None

        best = _number(summary.get("best_value"))
        partial = False
        if best is None and self.tail is not None:
            best = self.tail.best
            partial = self.tail.catching_up
        test_name, test = "", None
        test_section = _section(summary, "test")
        for name in TEST_METRICS:
            if _number(test_section.get(name)) is not None:
                test_name, test = name, _number(test_section[name])
                break

        elapsed, eta = self._times(state, status, summary, now, epoch, epochs)
        reason = status.get("reason") or summary.get("reason")
        return RunRow(
            key=self.key,
            name=self.path.name,
            sweep=self.sweep,
            kind="run",
            state=state,
            epoch=epoch,
            epochs=epochs,
            monitor=self.monitor,
            best=best,
            best_partial=partial,
            test_name=test_name,
            test=test,
            backend=self._backend(config, status),
            started=_number(status.get("started")),
            elapsed=elapsed,
            eta=eta,
            reason=reason if isinstance(reason, str) else None,
            params=self._params,
            problems=self.problems,
        )

    def _state(self, status: dict[str, Any], summary: dict[str, Any]) -> str:
        # A file that cannot be parsed now says nothing, whatever it said before.
        for source, value in ((self.status, status), (self.summary, summary)):
            state = value.get("state")
            if source.notice is None and isinstance(state, str) and state:
                return state
        if self.status.notice or self.summary.notice:
            return UNREADABLE
        return "queued"

    @staticmethod
    def _backend(config: dict[str, Any], status: dict[str, Any]) -> str:
        backend = _section(config, "backend")
        name = backend.get("name") or ""
        device = _section(status, "device").get("name") or backend.get("device")
        return f"{name}/{device}" if name and device else str(name or device or "")

    @staticmethod
    def _times(
        state: str,
        status: dict[str, Any],
        summary: dict[str, Any],
        now: float,
        epoch: int | None,
        epochs: int | None,
    ) -> tuple[float | None, float | None]:
        started = _number(status.get("started"))
        updated = _number(status.get("updated"))
        seconds = _number(summary.get("seconds"))
        if seconds is not None:
            return seconds, None
        if started is None:
            return None, None
        if state != "running":
            return (updated - started if updated is not None else None), None
        elapsed = now - started
        eta = None
        if epoch and epochs and updated is not None and updated > started:
            # The pace up to the last status update, so that a pause between
            # updates does not slow the estimate down.
            eta = (updated - started) / epoch * max(epochs - epoch, 0)
        return elapsed, eta


def _looks_like_run(path: Path) -> bool:
    return (path / "status.json").exists() or (path / "config.json").exists()


def sweep_monitor(trials: Sequence[RunRow]) -> str:
    """The metric that a sweep's trials are compared by.

    Trials may monitor different metrics (``sweep --metric
    val_loss,val_accuracy``), and a loss does not compare with an accuracy:
    a sweep is judged by the metric most of its trials monitor, on a tie by
    that of its first trial.
    """
    counts = Counter(row.monitor for row in sorted(trials, key=lambda r: r.key))
    return counts.most_common(1)[0][0] if counts else DEFAULT_MONITOR


class SweepTracker:
    """A sweep folder and the trial folders inside it.

    Args:
        path: The sweep folder.
        key: Its key (its name).
    """

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        self.spec = JsonFile(path / "sweep.json")
        self.trials: dict[str, RunTracker] = {}

    def poll(self, notices: list[str]) -> set[str]:
        """Look at the sweep; return the keys of trials that changed."""
        changed: set[str] = set()
        told = _problems(self.spec)
        if self.spec.poll():
            changed.add(self.key)
        _tell(_problems(self.spec), told, notices)
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self.path)
                if entry.is_dir(follow_symlinks=False)
            )
        except OSError as exc:
            notices.append(f"cannot list sweep {self.key}: {exc.strerror}")
            names = []
        seen = set()
        for name in names:
            key = f"{self.key}/{name}"
            seen.add(key)
            if key not in self.trials:
                if not _looks_like_run(self.path / name):
                    continue
                self.trials[key] = RunTracker(self.path / name, key, self.key)
            if self.trials[key].poll(notices):
                changed.add(key)
        for key in set(self.trials) - seen:
            del self.trials[key]
            notices.append(f"trial {key} is gone")
            changed.add(key)
        return changed

    def row(self, trial_rows: list[RunRow], now: float) -> RunRow:
        """The sweep's own line, summarising ``trial_rows``."""
        spec = self.spec.value or {}
        planned = spec.get("trials")
        total = len(planned) if isinstance(planned, list) else planned
        if not isinstance(total, int) or total < len(trial_rows):
            total = len(trial_rows)
        counts = {
            "finished": 0,
            "running": 0,
            "failed": 0,
            "diverged": 0,
            "pruned": 0,
        }
        other = queued_seen = 0
        for row in trial_rows:
            if row.state in counts:
                counts[row.state] += 1
            elif row.state == "queued":
                queued_seen += 1
            else:
                other += 1
        progress = SweepProgress(
            total=total,
            done=counts["finished"],
            running=counts["running"],
            queued=total - len(trial_rows) + queued_seen,
            failed=counts["failed"],
            diverged=counts["diverged"],
            pruned=counts["pruned"],
            other=other,
        )
        monitor = sweep_monitor(trial_rows)
        best_row = self._best(trial_rows, monitor)
        starts = [row.started for row in trial_rows if row.started is not None]
        return RunRow(
            key=self.key,
            name=self.path.name,
            sweep=None,
            kind="sweep",
            state=self._state(progress, trial_rows),
            # The bar counts results: a killed sweep's stale trials, or an
            # interrupted one's, are still to train.
            epoch=progress.results,
            epochs=total,
            monitor=monitor,
            best=best_row.best if best_row else None,
            test_name=best_row.test_name if best_row else "",
            test=best_row.test if best_row else None,
            backend=trial_rows[0].backend if trial_rows else "",
            started=min(starts) if starts else None,
            elapsed=self._elapsed(trial_rows, starts, now),
            eta=self._eta(trial_rows, progress),
            progress=progress,
            problems=_problems(self.spec),
        )

    @staticmethod
    def _best(trial_rows: list[RunRow], monitor: str) -> RunRow | None:
        scored = [
            row for row in trial_rows if row.best is not None and row.monitor == monitor
        ]
        return min(
            scored,
            key=lambda row: (better_first(monitor, row.best), row.key),
            default=None,
        )

    def _state(self, progress: SweepProgress, trial_rows: list[RunRow]) -> str:
        states = [row.state for row in trial_rows]
        if progress.running:
            return "running"
        if "stale" in states:
            return "stale"
        if self.spec.notice:
            # The trials planned are unknown, so whether all have ended is too.
            return UNREADABLE
        if not progress.total or progress.ended < progress.total:
            # An interrupted sweep leaves the trials not begun to a resume.
            return "interrupted" if "interrupted" in states else "queued"
        undone = [state for state in states if state not in FINAL_STATES]
        if undone:
            return next((s for s in UNDONE_STATES if s in undone), undone[0])
        # Diverged trials are results, as the command's exit status says.
        return "diverged" if set(states) == {"diverged"} else "finished"

    @staticmethod
    def _elapsed(
        trial_rows: list[RunRow], starts: list[float], now: float
    ) -> float | None:
        # Wall time from the first start to the last end (or now), since
        # trials may run side by side.
        if not starts:
            return None
        if any(row.state == "running" for row in trial_rows):
            return now - min(starts)
        ends = [
            row.started + row.elapsed
            for row in trial_rows
            if row.started is not None and row.elapsed is not None
        ]
        return max(ends) - min(starts) if ends else None

    @staticmethod
    def _eta(trial_rows: list[RunRow], progress: SweepProgress) -> float | None:
        """What the running trials have left, plus the queued ones at the mean
        trial's length, shared among the trials running.

        The mean trial is that of the ended ones, or before any has ended, the
        running ones' elapsed time plus their own estimate.
        """
        ended = [
            row.elapsed
            for row in trial_rows
            if row.state in ENDED_STATES and row.elapsed is not None
        ]
        running = [
            row
            for row in trial_rows
            if row.state == "running"
            and row.eta is not None
            and row.elapsed is not None
        ]
        lengths = ended or [row.elapsed + row.eta for row in running]
        if not lengths or not progress.total - progress.ended:
            return None
        mean = sum(lengths) / len(lengths)
        queued = progress.total - progress.ended - len(running)
        work = sum(row.eta for row in running) + max(queued, 0) * mean
        return work / max(progress.running, 1)


class RunDetail:
    """The full history and events of one run, for its screen.

    Args:
        path: The run folder.
        key: Its key.
    """

    def __init__(self, path: Path, key: str) -> None:
        self.key = key
        self.metrics = JsonlFollower(path / "metrics.jsonl")
        self.events_file = JsonlFollower(path / "events.jsonl")
        self.config = JsonFile(path / "config.json")
        self.status = JsonFile(path / "status.json")
        self.summary = JsonFile(path / "summary.json")
        self.history: dict[int, dict[str, Any]] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the run's files cannot be read or used, as found at the last look."""
        return _problems(
            self.config, self.status, self.summary, self.metrics, self.events_file
        )

    def poll(self) -> bool:
        """Take in what changed; return True when something did."""
        told = self.problems
        changed = self.config.poll() | self.status.poll() | self.summary.poll()
        chunk = self.metrics.poll()
        if chunk.reset:
            self.history.clear()
        for record in chunk.records:
            epoch = record.get("epoch")
            if isinstance(epoch, int):
                # Keyed by epoch, so that reading a file again never doubles it.
                self.history[epoch] = record
        events = self.events_file.poll()
        if events.reset:
            self.events.clear()
        self.events.extend(events.records)
        changed |= self.problems != told
        return changed or bool(chunk.records or chunk.reset or events.records)

    def snapshot(self) -> DetailSnapshot:
        """An immutable copy of what is known now."""
        return DetailSnapshot(
            key=self.key,
            history=tuple(self.history[e] for e in sorted(self.history)),
            events=tuple(self.events),
            config=self.config.value,
            status=self.status.value,
            summary=self.summary.value,
            bad_lines=tuple(self.metrics.bad_lines + self.events_file.bad_lines),
            bad_count=self.metrics.bad_count + self.events_file.bad_count,
            problems=self.problems,
        )


class RunsFolder:
    """Everything the monitor reads from one runs folder.

    :meth:`poll` runs in a worker thread; :meth:`watch` may be called from the
    user interface's thread at any time.

    Args:
        root: The runs folder.
        now: The clock, in Unix seconds; tests pass a fixed one.
        stale_after: Seconds without a status update after which a running
            run is called stale.
    """

    def __init__(
        self,
        root: Path,
        now: Callable[[], float] = time.time,
        stale_after: float = 60.0,
    ) -> None:
        self.root = root
        self.now = now
        self.stale_after = stale_after
        self.runs: dict[str, RunTracker] = {}
        self.sweeps: dict[str, SweepTracker] = {}
        self._rows: dict[str, RunRow] = {}
        self._details: dict[str, RunDetail] = {}
        self._watched: frozenset[str] = frozenset()
        self._watch_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._root_notice: str | None = None
        self._polls = 0

    def watch(self, keys: Iterable[str]) -> None:
        """Ask for the full details of these runs from the next poll on."""
        with self._watch_lock:
            self._watched = frozenset(keys)

    def tracker(self, key: str) -> RunTracker | None:
        """The tracker of a run or trial, or None."""
        if key in self.runs:
            return self.runs[key]
        sweep = self.sweeps.get(key.split("/", 1)[0])
        return sweep.trials.get(key) if sweep else None

    def poll(self) -> Snapshot:
        """Look at the folder and return what is known now."""
        with self._poll_lock:
            notices: list[str] = []
            now = self.now()
            self._scan(notices)
            changed = self._poll_trackers(notices)
            if self._polls:
                # The first look is for the first screen: older lines wait.
                changed |= self._catch_up()
            self._polls += 1
            rows = self._rows_now(changed, now)
            details = self._poll_details()
            return Snapshot(rows, tuple(notices), details)

    def _scan(self, notices: list[str]) -> None:
        try:
            entries = sorted(
                entry.name
                for entry in os.scandir(self.root)
                if entry.is_dir(follow_symlinks=False)
            )
        except OSError as exc:
            notice = f"cannot list {self.root}: {exc.strerror}"
            if notice != self._root_notice:
                notices.append(notice)
                self._root_notice = notice
            entries = []
        else:
            self._root_notice = None
        seen = set(entries)
        for name in entries:
            if name in self.runs or name in self.sweeps:
                continue
            path = self.root / name
            if (path / "sweep.json").exists():
                self.sweeps[name] = SweepTracker(path, name)
            elif _looks_like_run(path):
                self.runs[name] = RunTracker(path, name, None)
        for name in [n for n in [*self.runs, *self.sweeps] if n not in seen]:
            kind = "sweep" if self.sweeps.pop(name, None) else "run"
            self.runs.pop(name, None)
            notices.append(f"{kind} {name} is gone")

    def _poll_trackers(self, notices: list[str]) -> set[str]:
        changed: set[str] = set()
        for key, tracker in list(self.runs.items()):
            if not os.access(tracker.path, os.R_OK | os.X_OK):
                del self.runs[key]
                notices.append(f"run {key} cannot be read any more")
                continue
            if tracker.poll(notices):
                changed.add(key)
        for key, sweep in list(self.sweeps.items()):
            if not os.access(sweep.path, os.R_OK | os.X_OK):
                del self.sweeps[key]
                notices.append(f"sweep {key} cannot be read any more")
                continue
            changed |= sweep.poll(notices)
        return changed

    def _catch_up(self) -> set[str]:
        deadline = time.perf_counter() + CATCH_UP_SECONDS
        changed = set()
        trackers = [*self.runs.values()]
        for sweep in self.sweeps.values():
            trackers.extend(sweep.trials.values())
        for tracker in trackers:
            while tracker.tail is not None and tracker.tail.catching_up:
                if time.perf_counter() > deadline:
                    return changed
                tracker.tail.catch_up(CATCH_UP_CHUNK)
                changed.add(tracker.key)
        return changed

    def _rows_now(self, changed: set[str], now: float) -> dict[str, RunRow]:
        rows: dict[str, RunRow] = {}
        for key, tracker in self.runs.items():
            rows[key] = self._row(tracker, changed, now)
        for key, sweep in self.sweeps.items():
            trial_rows = [
                self._row(trial, changed, now) for trial in sweep.trials.values()
            ]
            rows[key] = sweep.row(trial_rows, now)
            rows.update((row.key, row) for row in trial_rows)
        self._rows = rows
        return dict(rows)

    def _row(self, tracker: RunTracker, changed: set[str], now: float) -> RunRow:
        old = self._rows.get(tracker.key)
        # An ended run's line depends on its files only; a running one's on
        # the clock too.
        if old is not None and tracker.key not in changed and old.state in ENDED_STATES:
            return old
        return tracker.row(now, self.stale_after)

    def _poll_details(self) -> dict[str, DetailSnapshot]:
        with self._watch_lock:
            watched = self._watched
        for key in set(self._details) - watched:
            del self._details[key]
        details = {}
        for key in watched:
            detail = self._details.get(key)
            fresh = detail is None
            if detail is None:
                detail = self._details[key] = RunDetail(self.root / key, key)
            if detail.poll() or fresh:
                details[key] = detail.snapshot()
        return details


def request_stop(run_dir: Path) -> Path:
    """Ask a run to stop by creating ``stop.request`` in its folder.

    Args:
        run_dir: The run (or trial) folder.

    Returns:
        The file written.

    Raises:
        OSError: The file could not be written; the caller tells the user.
    """
    path = run_dir / STOP_FILE
    path.write_text(f"requested by the monitor at {time.time():.0f}\n")
    logger.info("wrote %s", path)
    return path
