"""A training job on disk: data in, run folder out.

The pieces shared by ``mlp-backend train``, ``evaluate`` and the sweep's
trials: loading and splitting a data set, recording epochs into run folders,
scoring the result on the test part and writing the model and summary.
"""

from __future__ import annotations

import logging
import math
import platform
import signal
import socket
import threading
import time
import zlib
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend import __version__, interrupts, metrics
from mlp_backend.backend import Backend
from mlp_backend.checkpoint import NAME as CHECKPOINT
from mlp_backend.checkpoint import CheckpointLog
from mlp_backend.data import (
    MAGIC_CLASSES,
    Features,
    Standardizer,
    encode_labels,
    load_magic,
    load_table,
    locate_magic,
    scoring_label,
    stratified_split,
)
from mlp_backend.errors import DataError, MLPBackendError, UsageError
from mlp_backend.losses import TASK_LOSS
from mlp_backend.persist import SavedModel, save_model
from mlp_backend.runs import STOP_REQUEST, RunFolder, replace_bytes, whole_lines
from mlp_backend.train import MemberResult, MemberState

logger = logging.getLogger(__name__)

MAGIC_NAME = "magic04.data"
#: States a run may end in and still be resumed: its checkpoint is kept.
RESUMABLE = ("stopped", "interrupted")


@dataclass
class Dataset:
    """A data set split into train, validation and test parts, standardised.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        parts: ``{"train" | "val" | "test": (X, y)}`` with standardised ``X``
            (rows, features) and ``y`` class indices (or targets) (rows,).
        classes: Label strings in class-index order (empty for regression).
        standardizer: Fitted on the training rows.
        info: What ``config.json`` records about the data.
    """

    task: str
    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    classes: list[str]
    standardizer: Standardizer
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def checksum(path: Path) -> str:
    """The CRC-32 of a data file's bytes, to tell a resume it is the same file.

    CRC-32 rather than a cryptographic hash: it guards against a file
    replaced or edited by mistake, not by design, and ``zlib`` costs no import
    time where ``hashlib`` costs 17 ms of every command.
    """
    return f"crc32:{zlib.crc32(path.read_bytes()):08x}"


def note_full_batch(batch_size: int, dataset: Dataset) -> None:
    """Says when ``--batch-size`` is more than the training rows: each epoch
    is then one step on all of them, which a user may not have meant."""
    rows = int(dataset.parts["train"][0].shape[0])
    if batch_size > rows:
        logger.warning(
            "--batch-size %d is more than the %d training rows: each epoch is "
            "one full batch",
            batch_size,
            rows,
        )


#: What a resume does about a changed data file.
RESUME_NEEDS = "a resume needs the same data: put the file back, or start a new run"


def check_same_data(
    recorded: dict[str, Any], dataset: Dataset, needs: str = RESUME_NEEDS
) -> None:
    """Refuses data files other than the ones a job began with.

    ``recorded`` is the ``data`` record of the job's ``config.json`` (or
    ``sweep.json``); records from before checksums were kept are taken on
    trust. The files are read again, since a process keeps the data sets it
    loaded (see :func:`mlp_backend.sweep.worker.dataset_for`). ``needs``
    ends the message: who needs the same data, and what to do.
    """
    for key, path_key in (("checksum", "path"), ("test_checksum", "test_path")):
        before = recorded.get(key)
        if before is None:
            continue
        path = Path(dataset.info[path_key])
        now = checksum(path)
        if now != before:
            raise DataError(
                f"{path}: not the file this job began with (checksum {before}, "
                f"now {now}); {needs}"
            )


def _warn_missing_classes(
    paths: dict[str, Path],
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
) -> None:
    """Warns of a validation or test part that lacks a class.

    A class of fewer than three rows cannot reach every part of the split;
    the part's metrics are then computed without it (ROC AUC and F1 may be
    undefined), which looked like a result unless said.
    """
    for name in ("val", "test"):
        # A set of the codes, not np.unique: that imports numpy.ma (7 ms of
        # every command's start, see data/split.py).
        present = set(parts[name][1].tolist())
        missing = [c for k, c in enumerate(classes) if k not in present]
        if missing:
            rows = int(parts[name][1].shape[0])
            logger.warning(
                "%s: the %s part (%d %s) has no row of class %s; its metrics "
                "leave %s out",
                paths[name],
                "validation" if name == "val" else "test",
                rows,
                "row" if rows == 1 else "rows",
                ", ".join(repr(c) for c in missing),
                "it" if len(missing) == 1 else "them",
            )


def _too_few_rows(
    path: Path,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    classes: list[str],
) -> str:
    """Why a part of the split is empty: too few rows, or (the split being
    stratified) classes too small to have a row in every part."""
    sizes = ", ".join(f"{k} {v[0].shape[0]}" for k, v in parts.items())
    message = (
        f"{path}: {y.shape[0]} rows are too few to split into train, "
        f"validation and test parts ({sizes} rows)"
    )
    if not classes:
        return f"{message}; give more rows"
    counts = np.bincount(y, minlength=len(classes))
    small = [f"{c!r} ({n})" for c, n in zip(classes, counts, strict=True) if n < 3]
    message += (
        f"; the split is stratified, and {len(small)} of {len(classes)} classes "
        f"have fewer than 3 rows: {', '.join(small[:5])}"
        + (", ..." if len(small) > 5 else "")
    )
    if len(classes) > 10 and _numbers(classes):
        return (
            f"{message}; the label column holds {len(classes)} distinct numbers: "
            "for a numeric target, give --task regression"
        )
    return f"{message}; give more rows of those classes"


def _refuse_fractions(path: Path, classes: list[str]) -> None:
    """Refuses class labels that are numbers and not all whole ones: a numeric
    target, each value of which would otherwise become a class (as the
    estimator refuses them)."""
    try:
        values = np.asarray(classes, dtype=np.float64)
    except ValueError:
        return
    fractions = values[values != np.round(values)]
    if fractions.size:
        raise DataError(
            f"{path}: labels such as {fractions[0]:g} are not whole numbers, so "
            "not classes: for a numeric target, give --task regression"
        )


def _numbers(labels: list[str]) -> bool:
    """Whether every label reads as a number."""
    try:
        np.asarray(labels, dtype=np.float64)
    except ValueError:
        return False
    return True


def read_table(
    path: Path,
    *,
    task: str,
    label: str | int,
    classes: Sequence[str] | None = None,
    features: Features | None = None,
):
    """Reads MAGIC by its layout, anything else as a general table; a file a
    model scores is checked for its ``features`` before its rows are read."""
    if path.name == MAGIC_NAME:
        return load_magic(path, features=features)
    kind = "regression" if task == "regression" else "classification"
    return load_table(
        path, label=label, task=kind, allowed_labels=classes, features=features
    )


def load_dataset(
    data: str | None,
    *,
    test_data: str | None = None,
    task: str = "classification",
    label: str | int = -1,
    positive: str | None = None,
    split: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
) -> Dataset:
    """Finds, reads, encodes, splits and standardises a data set.

    Without ``data`` the MAGIC file is located by the project's rules
    (``--data``, ``$MLP_BACKEND_DATA``, ``data/magic04.data``, download).
    For MAGIC, ``g`` (gamma) is the positive class. With ``test_data`` the
    test part is that file and the rest is split into train and validation.
    """
    path = (
        locate_magic(data)
        if data is None or Path(data).name == MAGIC_NAME
        else Path(data)
    ).resolve()
    magic = path.name == MAGIC_NAME
    if magic and str(label) not in ("-1", "10", "class"):
        raise UsageError(
            f"--label: {path} is MAGIC, whose label is its last column (class); "
            f"got {label!r}"
        )
    if magic and positive not in (None, MAGIC_CLASSES[1]):
        raise UsageError(
            f"--positive {positive!r}: {path} is MAGIC, whose positive class is "
            f"fixed to {MAGIC_CLASSES[1]!r} (gamma); leave out --positive"
        )
    if task == "regression" and positive is not None:
        raise UsageError(
            f"--positive {positive!r}: only for classification; a regression "
            "target has no classes"
        )
    if magic and task == "regression":
        raise UsageError(
            f"--task regression: {path} is MAGIC, a classification task (g or h)"
        )
    table = read_table(path, task=task, label=label)
    fixed = list(MAGIC_CLASSES) if magic else None
    if task == "regression":
        y = table.labels.astype(np.float64)
        classes: list[str] = []
        kind = "regression"
    else:
        try:
            y, encoding = encode_labels(table.labels, positive=positive, classes=fixed)
        except MLPBackendError as exc:
            raise type(exc)(f"{path}: {exc}") from None
        classes = list(encoding.classes)
        _refuse_fractions(path, classes)
        kind = "binary" if len(classes) == 2 else "multiclass"
    X = table.X

    if test_data is None:
        rows = stratified_split(y, tuple(split), split_seed)
        raw = {"train": rows.train, "val": rows.val, "test": rows.test}
        parts = {k: (X[r], y[r]) for k, r in raw.items()}
    else:
        at = scoring_label(Path(test_data), table.label_name, table.label_col, label)
        test_table = read_table(
            Path(test_data),
            task=task,
            label=at,
            classes=classes or None,
            features=Features(table.feature_names, table.named),
        )
        train_share = split[0] / (split[0] + split[1])
        rest = 1.0 - train_share
        rows = stratified_split(y, (train_share, rest / 2, rest / 2), split_seed)
        val_rows = np.sort(np.concatenate([rows.val, rows.test]))
        if task == "regression":
            y_test = test_table.labels.astype(np.float64)
        else:
            y_test, _ = encode_labels(test_table.labels, classes=classes)
        parts = {
            "train": (X[rows.train], y[rows.train]),
            "val": (X[val_rows], y[val_rows]),
            "test": (test_table.X, y_test),
        }

    if any(Xp.shape[0] == 0 for Xp, _ in parts.values()):
        raise DataError(_too_few_rows(path, parts, y, classes))
    _warn_missing_classes(
        {"val": path, "test": Path(test_data or path)}, parts, classes
    )
    standardizer = Standardizer.fit(parts["train"][0], table.feature_names)
    parts = {k: (standardizer.transform(Xp), yp) for k, (Xp, yp) in parts.items()}
    info = {
        "path": str(path),
        "test_path": str(Path(test_data).resolve()) if test_data else None,
        "label": label,
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]),
        "feature_names": list(table.feature_names),
        # Names from a header (or MAGIC's own), not col1, col2, ...: files
        # scored later must then name their columns alike.
        "named": table.named,
        # Where files scored later find the label (see data.scoring_label).
        "label_name": table.label_name,
        "label_index": table.label_col,
        "classes": classes,
        "positive": classes[1] if kind == "binary" else None,
        "split": [float(s) for s in split],
        "split_seed": split_seed,
        "sizes": {k: int(v[0].shape[0]) for k, v in parts.items()},
        "checksum": checksum(path),
        "test_checksum": checksum(Path(test_data)) if test_data else None,
    }
    return Dataset(kind, parts, classes, standardizer, list(table.feature_names), info)


TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "weight_decay",
    "schedule",
    "patience",
    "seed",
)


def run_settings(
    dataset: Dataset, hidden: Sequence[int], values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``model`` and ``training`` sections of ``config.json``.

    Args:
        hidden: The run's hidden widths.
        values: Training settings by option name (``metric`` for the monitor).
    """
    model = {
        "hidden": list(hidden),
        "activation": values["activation"],
        "loss": TASK_LOSS[dataset.task],
        "outputs": dataset.n_classes if dataset.task == "multiclass" else 1,
    }
    training = {key: values[key] for key in TRAINING_KEYS}
    training["monitor"] = values["metric"]
    return model, training


def versions() -> dict[str, str]:
    """Library versions recorded with every run."""
    return {
        "mlp_backend": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def run_config(
    name: str,
    dataset: Dataset,
    backend: Backend,
    model: dict[str, Any],
    training: dict[str, Any],
    sweep: str | None = None,
    trial: int | None = None,
) -> dict[str, Any]:
    """Everything ``config.json`` holds to repeat a run."""
    return {
        "name": name,
        "created": time.time(),
        "task": dataset.task,
        "data": dataset.info,
        "model": model,
        "training": training,
        "backend": backend.describe(),
        "versions": versions(),
        "host": socket.gethostname(),
        "sweep": sweep,
        "trial": trial,
    }


def device_status(backend: Backend) -> dict[str, Any]:
    """The ``device`` of ``status.json``: its name and memory, where known."""
    return {"name": backend.device_name, **backend.memory()}


class Recorder:
    """A training callback that writes each member's epochs to its run folder.

    Every epoch's record is appended to ``metrics.jsonl``; ``status.json``, the
    heartbeat that tells a running run from a dead one, is replaced at most
    every ``status_interval`` seconds while the run goes on (replacing a file
    costs about 0.3 ms, more than the rest of a small member's epoch record).

    Args:
        folders: Run folder of each member index.
        epochs: The planned number of epochs, for status.json.
        backend: Reports the device memory in the status.
        status_interval: Least seconds between two running status updates.
    """

    def __init__(
        self,
        folders: dict[int, RunFolder],
        epochs: int,
        backend: Backend,
        status_interval: float = 1.0,
    ) -> None:
        self.folders = folders
        self.epochs = epochs
        self.backend = backend
        self.status_interval = status_interval
        self._written: dict[int, float] = {}
        self._logs: dict[int, CheckpointLog] = {}

    def on_epoch(self, member: int, record: dict[str, Any]) -> None:
        folder = self.folders[member]
        folder.append_metrics(record)
        now = time.monotonic()
        if now - self._written.get(member, -math.inf) < self.status_interval:
            return
        self._written[member] = now
        folder.set_status(
            "running",
            sync=False,
            epoch=record["epoch"],
            epochs=self.epochs,
            device=device_status(self.backend),
        )

    def checkpoint(self, member: int, state: MemberState) -> None:
        """Adds to the member's ``checkpoint.log``, the state a resume goes on from."""
        log = self._logs.get(member)
        if log is None:
            log = self._logs[member] = CheckpointLog(
                self.folders[member].path / CHECKPOINT
            )
        log.write(state)

    def on_member_end(self, member: int, result: MemberResult) -> None:
        if result.reason:
            level = "warning" if result.state == "diverged" else "info"
            self.folders[member].event(result.reason, level)


def evaluate(
    backend: Backend,
    task: str,
    y: np.ndarray,
    output: np.ndarray,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """All test metrics of one model's output on host rows, as plain values.

    Args:
        y: Class indices (or targets) ``(rows,)``.
        output: Probabilities ``(rows, classes)`` (classification) or values
            ``(rows,)`` (regression).
        scores: For a binary task, the logits ``(rows,)``, which the ROC
            metrics rank (see :func:`metrics.binary_rows`); None ranks the
            probabilities.
    """
    if task == "regression":
        return metrics.regression_report(
            backend, backend.asarray(y), backend.asarray(np.asarray(output).reshape(-1))
        )
    y_dev = backend.asarray(y, dtype=backend.xp.int64)
    if task == "binary":
        ranked = None if scores is None else backend.asarray(scores)
        return metrics.binary_report(
            backend, y_dev, backend.asarray(output[:, 1]), scores=ranked
        )
    return metrics.multiclass_report(backend, y_dev, backend.asarray(output))


def resume_folder(path: Path, epoch: int, *, sync: bool = True) -> RunFolder:
    """A run folder going on after ``epoch``: later epoch records are cut.

    Records of the epoch that was in flight when the run was killed may have
    been written after its last checkpoint; ``metrics.jsonl`` is replaced by
    its first ``epoch`` records, and the stop request of a run that was
    stopped is withdrawn. ``sync`` as in :class:`RunFolder`.
    """
    folder = RunFolder(path, sync=sync)
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        kept = whole_lines(metrics.read_bytes())[:epoch]
        replace_bytes(metrics, b"".join(line + b"\n" for line in kept), sync=sync)
    (path / STOP_REQUEST).unlink(missing_ok=True)
    folder.event(f"resumed after epoch {epoch}")
    # The interrupted or stopped run's reason no longer holds.
    folder.set_status("running", epoch=epoch, reason=None)
    return folder


def finish_run(
    folder: RunFolder,
    result: MemberResult,
    saved: SavedModel,
    test: dict[str, Any],
    seconds: float,
    monitor: str,
) -> dict[str, Any]:
    """Writes model.npz, summary.json and the final status of one run."""
    save_model(folder.path / "model.npz", saved, sync=folder.sync)
    best = result.history[result.best_epoch - 1] if result.best_epoch else {}
    val = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
    summary = {
        "state": result.state,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "seconds": seconds,
        "monitor": monitor,
        "best_value": result.best_value,
        "val": val,
        "test": test,
        "reason": result.reason,
        "step": result.step,
    }
    folder.write_summary(summary)
    folder.set_status(
        result.state, epoch=result.epochs_run, reason=result.reason, step=result.step
    )
    if result.state not in RESUMABLE:
        (folder.path / CHECKPOINT).unlink(missing_ok=True)
    return summary


# Set by SIGINT or SIGTERM while catch_interrupts() is active in this process.
_INTERRUPT = threading.Event()


def interrupted() -> bool:
    """Whether this process was asked to stop by SIGINT or SIGTERM."""
    return _INTERRUPT.is_set()


def _on_signal(signum: int, frame: object) -> None:
    _INTERRUPT.set()


@contextmanager
def catch_interrupts() -> Iterator[None]:
    """Turns SIGINT and SIGTERM into a stop request while the block runs.

    Training polls the request after every batch, so the batch in flight
    finishes and the run is saved. A signal that is ignored stays ignored
    (see :func:`ignored_signals`). Outside the main thread signal handlers
    cannot be set, and the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _INTERRUPT.clear()
    if interrupts.take():
        # A signal came before, whose KeyboardInterrupt Python swallowed.
        _INTERRUPT.set()
    ignored = ignored_signals()
    previous = {
        s: signal.signal(s, _on_signal)
        for s in (signal.SIGINT, signal.SIGTERM)
        if s not in ignored
    }
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignored_signals() -> frozenset[int]:
    """Of SIGINT and SIGTERM, those this process ignores now.

    A process started with a signal ignored, as a shell script's job in the
    background is with Ctrl-C, was meant not to take it, so the commands
    leave it ignored, as Python itself does (see ``mlp_backend.__main__``).
    """
    return frozenset(
        s
        for s in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(s) == signal.SIG_IGN
    )


def stop_gracefully_on_signals(ignored: Collection[int] = ()) -> None:
    """Worker-process initializer: SIGINT and SIGTERM become a stop request.

    Ctrl-C reaches the whole process group; a worker must then finish its
    batch and save rather than die in the middle of writing a run folder.

    Args:
        ignored: The signals the sweep process ignores (its
            :func:`ignored_signals`), which its workers ignore too.
    """
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN if s in ignored else _on_signal)
    # A local worker starts with SIGINT blocked (see sweep.processes); a
    # Ctrl-C that came since then is taken now, by the handler above.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class StopFlag:
    """Whether training should stop: a signal, or a ``stop.request`` file.

    Polled after every batch, so the common case is one attribute read; the
    stop files (in ``folders``, and the paths ``also``) are looked at no more
    than twice a second.
    """

    def __init__(
        self, folders: Sequence[RunFolder] = (), also: Sequence[Path] = ()
    ) -> None:
        self.folders = list(folders)
        self.also = list(also)
        self._next_look = 0.0

    def __call__(self) -> bool:
        if _INTERRUPT.is_set():
            return True
        now = time.monotonic()
        if (self.folders or self.also) and now >= self._next_look:
            self._next_look = now + 0.5
            return any(f.stop_requested for f in self.folders) or any(
                path.exists() for path in self.also
            )
        return False
