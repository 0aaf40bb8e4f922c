"""What runs on a worker: one fused group of trials, start to summaries.

:func:`run_group` is the unit an executor runs (in this process, in a local
process pool or on a Dask worker). It writes each trial's run folder in the
core format through :class:`~mlp_backend.job.Recorder` and
:func:`~mlp_backend.job.finish_run`, so the monitor follows trials exactly
like single runs, and returns plain records the client writes to the sweep's
results. Nothing it returns holds arrays, so results pickle cheaply.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.backend import Backend, get_backend
from mlp_backend.checkpoint import NAME as CHECKPOINT
from mlp_backend.checkpoint import load_checkpoint
from mlp_backend.errors import RunError
from mlp_backend.job import (
    Dataset,
    Recorder,
    StopFlag,
    device_status,
    evaluate,
    finish_run,
    interrupted,
    load_dataset,
    resume_folder,
    run_config,
    run_settings,
)
from mlp_backend.losses import TASK_LOSS
from mlp_backend.model import Shape, Stack
from mlp_backend.persist import SavedModel
from mlp_backend.runs import STOP_REQUEST, RunFolder, read_json, replace_bytes
from mlp_backend.sweep.folder import trial_name
from mlp_backend.sweep.plan import DEVICE_SHARE, device_chunks
from mlp_backend.sweep.spec import Trial, member, train_config
from mlp_backend.train import (
    CHECKPOINT_SHARE,
    MONITORS,
    DeviceData,
    MemberResult,
    MemberState,
    Trainer,
    to_device,
)

logger = logging.getLogger(__name__)

#: Successive halving looks at the members after these fractions of the epochs.
RUNGS = (1 / 8, 1 / 4, 1 / 2)


@dataclass(frozen=True)
class DataSpec:
    """Where a sweep's data comes from; every worker loads and splits it alike."""

    data: str | None
    test_data: str | None = None
    task: str = "classification"
    label: str | int = -1
    positive: str | None = None
    split_seed: int = 0


@dataclass(frozen=True)
class GroupJob:
    """One fused group: what a worker needs, all picklable.

    Attributes:
        folder: The sweep folder (shared with the workers).
        trials: ``(index, trial)`` pairs trained as one stack.
        prune: ``"halving"`` or None.
    """

    folder: str
    data: DataSpec
    backend: str | None
    dtype: str
    trials: tuple[tuple[int, Trial], ...]
    prune: str | None = None


_datasets: dict[DataSpec, Dataset] = {}


def dataset_for(spec: DataSpec) -> Dataset:
    """The data set, loaded once per process and split by its fixed seed."""
    if spec not in _datasets:
        _datasets[spec] = load_dataset(
            spec.data,
            test_data=spec.test_data,
            task=spec.task,
            label=spec.label,
            positive=spec.positive,
            split_seed=spec.split_seed,
        )
    return _datasets[spec]


def adopt_dataset(spec: DataSpec, dataset: Dataset) -> None:
    """Takes the data set of ``spec`` as the sweep process loaded it.

    A local worker process receives it at start instead of parsing the file
    again: for MAGIC that is a sixth of a second saved on every worker, at
    the start, when all of them would be parsing at once.
    """
    _datasets[spec] = dataset


@functools.lru_cache(maxsize=4)
def _device_data(spec: DataSpec, backend_name: str | None, dtype: str) -> DeviceData:
    dataset = dataset_for(spec)
    backend = get_backend(backend_name, dtype)
    return to_device(
        backend,
        dataset.task,
        dataset.n_classes,
        dataset.parts["train"],
        dataset.parts["val"],
    )


class SuccessiveHalving:
    """A Trainer pruner: at each rung, stops the worse half of the members.

    Members are ranked by the monitored validation value (a value that is not
    finite ranks last); ``ceil(n / 2)`` survive each rung.

    Args:
        epochs: The planned epochs; rungs are at 1/8, 1/4 and 1/2 of them.
        monitor: The monitored metric, which says whether lower is better.
    """

    def __init__(self, epochs: int, monitor: str) -> None:
        self.rungs = sorted({max(1, round(epochs * f)) for f in RUNGS} - {epochs})
        self.sign = 1.0 if MONITORS[monitor] == "min" else -1.0

    def __call__(self, epoch: int, monitored: dict[int, float]) -> list[int]:
        if epoch not in self.rungs or len(monitored) < 2:
            return []

        def badness(j: int) -> float:
            value = monitored[j]
            return self.sign * value if math.isfinite(value) else math.inf

        ranked = sorted(monitored, key=lambda j: (badness(j), j))
        return ranked[math.ceil(len(ranked) / 2) :]


def run_group(job: GroupJob) -> list[dict[str, Any]]:
    """Trains a group; returns one record per trial, in the job's order.

    The group is one stack, or several one after another where the device's
    free memory calls for it (:func:`_fitting`). A stack that raises is tried
    again one trial at a time, so that a bad trial fails alone; a trial that
    raises on its own is recorded as ``failed`` with its error.
    """
    records: list[dict[str, Any]] = []
    for stack in _fitting(job):
        if interrupted() or (Path(job.folder) / STOP_REQUEST).exists():
            # The sweep was interrupted before this stack began (this
            # process's own signal may come before the sweep's stop request):
            # it is left, untouched, to a resume.
            break
        records += _train_or_split(job, stack)
    return records


def _fitting(job: GroupJob) -> list[tuple[tuple[int, Trial], ...]]:
    """The group's trials in stacks that fit the device's free memory.

    Only a device that reports its memory (CuPy) cuts a group; on the host
    the planner's ``--max-bytes`` and cache limits have already applied.
    """
    backend = get_backend(job.backend, job.dtype)
    memory = backend.memory()
    if memory["memory_total"] is None or memory["memory_used"] is None:
        return [job.trials]
    free = memory["memory_total"] - memory["memory_used"]
    X = dataset_for(job.data).parts["train"][0]
    cuts = device_chunks(
        [trial for _, trial in job.trials],
        int(DEVICE_SHARE * free),
        int(X.shape[0]),
        int(X.shape[1]),
        4 if job.dtype == "float32" else 8,
    )
    if len(cuts) > 1:
        logger.info(
            "group of %d trials trained as %d stacks to fit %.0f MiB of free "
            "device memory",
            len(job.trials),
            len(cuts),
            free / 2**20,
        )
    return [tuple(job.trials[k] for k in cut) for cut in cuts]


def _train_or_split(
    job: GroupJob, pairs: tuple[tuple[int, Trial], ...]
) -> list[dict[str, Any]]:
    """Trains one stack; if it raises, its trials one at a time."""
    try:
        return _train(job, pairs)
    except Exception as exc:
        if len(pairs) == 1:
            return [_failed(job, *pairs[0], exc)]
        logger.warning(
            "group of %d failed (%s); trying its trials one by one", len(pairs), exc
        )
    records = []
    for pair in pairs:
        try:
            records += _train(job, (pair,))
        except Exception as exc:
            records.append(_failed(job, *pair, exc))
    return records


def checkpoint_start(
    path: Path, trial: Trial, dataset: Dataset
) -> tuple[int, tuple[str, ...]]:
    """The epoch trial folder ``path`` can resume from (0 to start afresh),
    and the names of the trials in its stack then (see MemberState.stack)."""
    state = _usable_checkpoint(path, trial, dataset)
    return (state.epoch, state.stack) if state is not None else (0, ())


def resume_states(
    job: GroupJob, pairs: Sequence[tuple[int, Trial]], dataset: Dataset
) -> list[MemberState] | None:
    """The group's states to go on from, or None to start it afresh.

    A group resumes only when every trial has a usable checkpoint of one
    epoch (the planner groups trials by that epoch); anything else trains the
    whole group again from the start.
    """
    # The planner (checkpoint_start) has already warned about a bad one.
    states = [
        _usable_checkpoint(
            Path(job.folder) / trial_name(i), trial, dataset, logging.DEBUG
        )
        for i, trial in pairs
    ]
    if any(s is None for s in states) or len({s.epoch for s in states}) != 1:
        return None
    return states


def _usable_checkpoint(
    path: Path, trial: Trial, dataset: Dataset, level: int = logging.WARNING
) -> MemberState | None:
    """The trial's checkpoint when it is readable and fits the trial's network.

    Args:
        level: The log level of the line that says why it is not.
    """
    file = path / CHECKPOINT
    if not file.is_file() or not (path / "config.json").is_file():
        return None
    outputs = dataset.n_classes if dataset.task == "multiclass" else 1
    sizes = (dataset.parts["train"][0].shape[1], *trial["hidden"], outputs)
    try:
        return load_checkpoint(file, sizes, trial["optimizer"])
    except RunError as exc:
        logger.log(level, "%s; the trial starts again", exc)
        return None


def _fresh_folder(path: Path) -> RunFolder:
    """A trial folder to train in from the start: what an earlier, unfinished
    attempt left is removed but for its ``events.jsonl``, which goes on."""
    events = path / "events.jsonl"
    earlier = events.read_bytes() if events.is_file() else b""
    # A line torn by a kill would run into the next event.
    earlier = earlier[: earlier.rfind(b"\n") + 1]
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    folder = RunFolder(path, sync=False)
    if earlier:
        replace_bytes(events, earlier, sync=False)
        folder.event("started again: the earlier attempt ended before a checkpoint")
    return folder


def _failed(
    job: GroupJob, index: int, trial: Trial, exc: BaseException
) -> dict[str, Any]:
    message = f"{type(exc).__name__}: {exc}"
    # The sweep's process tells a person (a Dask worker's log stays on its
    # machine); here the traceback, for whoever reads this process's log.
    logger.debug("trial %d failed: %s", index, message)
    logger.debug("%s", "".join(traceback.format_exception(exc)))
    folder = RunFolder(Path(job.folder) / trial_name(index), sync=False)
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.event(f"failed: {message}", "error")
    folder.set_status("failed", reason=message)
    return {"trial": index, "state": "failed", "error": message, "summary": None}


def _train(job: GroupJob, pairs: Sequence[tuple[int, Trial]]) -> list[dict[str, Any]]:
    dataset = dataset_for(job.data)
    backend = get_backend(job.backend, job.dtype)
    config = train_config(pairs[0][1])
    folders: dict[int, RunFolder] = {}
    configs = []
    resume = resume_states(job, pairs, dataset)
    for k, (index, trial) in enumerate(pairs):
        path = Path(job.folder) / trial_name(index)
        if resume is not None:
            folder = resume_folder(path, resume[k].epoch, sync=False)
            folders[k] = folder
            configs.append(read_json(path / "config.json"))
            continue
        folder = _fresh_folder(path)
        model, training = run_settings(dataset, trial["hidden"], trial)
        cfg = run_config(
            folder.path.name,
            dataset,
            backend,
            model,
            training,
            sweep=Path(job.folder).name,
            trial=index,
        )
        folder.write_config(cfg)
        folder.set_status(
            "running", epoch=0, epochs=config.epochs, device=device_status(backend)
        )
        folder.event(f"training on {backend.device_name} ({backend.dtype_name})")
        folders[k] = folder
        configs.append(cfg)

    pruner = SuccessiveHalving(config.epochs, config.monitor) if job.prune else None
    recorder = Recorder(folders, config.epochs, backend)
    before = [0.0] * len(pairs) if resume is None else [s.seconds for s in resume]
    ends = _Ends(dataset, backend, pairs, folders, configs, config.monitor, before)
    trainer = Trainer(
        backend,
        config,
        [member(t) for _, t in pairs],
        _device_data(job.data, job.backend, job.dtype),
        [recorder, ends],
        StopFlag(list(folders.values()), also=[Path(job.folder) / STOP_REQUEST]),
        pruner,
        checkpoint=recorder.checkpoint,
        resume=resume,
        checkpoint_share=CHECKPOINT_SHARE,
        names=[trial_name(index) for index, _ in pairs],
    )
    results = trainer.run()
    if interrupted() or (Path(job.folder) / STOP_REQUEST).exists():
        # Stopped by the sweep's interrupt, not by a person's stop request:
        # the trial was in flight, and a resume goes on with it.
        for result in results:
            if result.state == "stopped":
                result.state = "interrupted"
                result.reason = f"the sweep was interrupted; {result.reason}"
    for k, result in enumerate(results):
        if k not in ends.records:
            ends.finish(k, result)
    return [ends.records[k] for k in range(len(pairs))]


class _Ends:
    """Writes each trial's final files: at once for a member that ends while
    its stack trains on (finished early, pruned, diverged), so that a kill
    of the sweep later does not lose it; after the run for the rest.

    Args:
        pairs: The stack's ``(index, trial)`` pairs, by member index.
        folders: Their run folders, by member index.
        configs: Their ``config.json`` contents, by member index.
        before: Their training time in earlier processes (a resume), by
            member index.
    """

    def __init__(
        self,
        dataset: Dataset,
        backend: Backend,
        pairs: Sequence[tuple[int, Trial]],
        folders: dict[int, RunFolder],
        configs: list[dict[str, Any]],
        monitor: str,
        before: Sequence[float],
    ) -> None:
        self.dataset = dataset
        self.backend = backend
        self.pairs = pairs
        self.folders = folders
        self.configs = configs
        self.monitor = monitor
        self.before = list(before)
        self.records: dict[int, dict[str, Any]] = {}
        self.start = time.perf_counter()

    def on_epoch(self, member: int, record: dict[str, Any]) -> None:
        pass

    def on_member_end(self, member: int, result: MemberResult) -> None:
        # A stop is "stopped" or "interrupted" only once the run has ended.
        if result.state != "stopped":
            self.finish(member, result)

    def finish(self, k: int, result: MemberResult) -> None:
        """Test metrics and files of member ``k``, on the weights it keeps."""
        index, trial = self.pairs[k]
        X_test, y_test = self.dataset.parts["test"]
        output, logits = _test_output(self.backend, self.dataset, trial, result, X_test)
        test = evaluate(self.backend, self.dataset.task, y_test, output, logits)
        saved = SavedModel(
            result.params,
            self.dataset.standardizer,
            self.dataset.classes,
            self.configs[k],
        )
        seconds = self.before[k] + time.perf_counter() - self.start
        summary = finish_run(
            self.folders[k], result, saved, test, seconds, self.monitor
        )
        self.records[k] = {
            "trial": index,
            "state": result.state,
            "error": None,
            "summary": summary,
            "members": len(self.pairs),
        }


def _test_output(
    backend: Backend,
    dataset: Dataset,
    trial: Trial,
    result: MemberResult,
    X: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities ``(rows, classes)`` (values ``(rows,)`` for regression),
    and for a binary task the logits ``(rows,)`` that ROC metrics rank."""
    n_outputs = int(result.params[-1].shape[0])
    shape = Shape(
        int(X.shape[1]),
        tuple(trial["hidden"]),
        n_outputs,
        trial["activation"],
        TASK_LOSS[dataset.task],
    )
    stack = Stack.from_host(backend, shape, [result.params])
    z, _ = stack.forward(backend.asarray(X[None]))
    out = backend.to_host(stack.loss.output(backend.xp, z)[0])
    if dataset.task == "binary":
        logits = backend.to_host(z[0, :, 0])
        return np.stack([1.0 - out[:, 0], out[:, 0]], axis=1), logits
    if dataset.task == "regression":
        return out[:, 0], None
    return out, None
