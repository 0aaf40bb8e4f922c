"""What ``mlp-backend sweep`` does once its options are parsed.

:func:`run_sweep` does everything apart from parsing, so it can be called and
tested without click. Every option is checked, the backend resolved and the
data read before the sweep folder is created, so bad input leaves nothing
behind.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mlp_backend.backend import resolve_name
from mlp_backend.errors import UsageError
from mlp_backend.job import catch_interrupts, check_same_data, note_full_batch
from mlp_backend.options import label_value, option_name
from mlp_backend.runs import STOP_REQUEST, SWEEP_LOCK, FolderLock
from mlp_backend.sweep import spec as specs
from mlp_backend.sweep.execute import (
    Settings,
    check_dask,
    check_scheduler,
    default_workers,
    open_executor,
    run_groups,
)
from mlp_backend.sweep.folder import SweepFolder, result_record, trial_name
from mlp_backend.sweep.plan import Group, balance, plan_groups
from mlp_backend.sweep.worker import (
    DataSpec,
    adopt_dataset,
    checkpoint_start,
    dataset_for,
)
from mlp_backend.train import check_metric

logger = logging.getLogger(__name__)

PRUNERS = ("halving",)
#: The options that say where trials run: one at a time.
PLACES = ("workers", "scheduler", "dask_local")
#: The options that cut the sweep's groups, recorded in ``sweep.json`` for a
#: resume: with ``--prune halving`` they decide which trials are ranked together.
GROUPING = ("max_group", "max_bytes")


def build_trials(options: dict[str, Any]) -> tuple[list[specs.Trial], dict[str, Any]]:
    """The trials the options ask for, and the spec recorded in ``sweep.json``."""
    lists = {key: options.get(key) for key in specs.KEYS}
    repeats = int(options["repeats"]) if options.get("repeats") is not None else 1
    if options.get("preset") and options.get("spec"):
        raise UsageError("--preset and --spec: choose one")
    if options.get("trials") is not None and not options.get("spec"):
        raise UsageError("--trials: only for random search in a --spec file")
    if options.get("spec"):
        given = [option_name(k) for k, v in lists.items() if v is not None]
        if options.get("repeats") is not None:
            given.append("--repeats")
        if given:
            raise UsageError(
                f"--spec: the file sets the trials; put {', '.join(given)} in it "
                "(as keys) instead of on the command line"
            )
        path = Path(options["spec"])
        table = specs.load_toml(path)
        trials = specs.from_spec(table, str(path), options.get("trials"))
        recorded: dict[str, Any] = {"spec_file": str(path), "spec": table}
    elif options.get("preset"):
        trials = specs.from_preset(options["preset"], lists, repeats)
        recorded = {"preset": options["preset"], "options": lists, "repeats": repeats}
    else:
        trials = specs.from_options(lists, repeats)
        recorded = {"options": lists, "repeats": repeats}
    return trials, recorded


def _check_execution(options: dict[str, Any]) -> None:
    for key in ("workers", "dask_local", "max_group", "max_bytes"):
        value = options.get(key)
        if value is not None and value < 1:
            raise UsageError(f"{option_name(key)}: must be at least 1, got {value}")
    places = [option_name(key) for key in PLACES if options.get(key) is not None]
    if len(places) > 1:
        raise UsageError(
            f"{', '.join(places[:-1])} and {places[-1]}: choose one "
            "(each says where the trials run)"
        )
    if options.get("scheduler") is not None:
        check_scheduler(options["scheduler"])
    if options.get("scheduler") is not None or options.get("dask_local") is not None:
        check_dask()
    if options.get("prune") and options.get("no_fuse"):
        raise UsageError(
            "--prune: successive halving compares the members of a fused stack; "
            "with --no-fuse nothing would be pruned, so leave one out"
        )
    if options.get("prune") not in (None, *PRUNERS):
        raise UsageError(
            f"--prune: expected one of {', '.join(PRUNERS)}, got {options['prune']!r}"
        )


def run_sweep(options: dict[str, Any]) -> tuple[Path, list[dict[str, Any]]]:
    """Plans, runs and records a sweep (or resumes one).

    Args:
        options: The ``sweep`` command's options by parameter name. With
            ``resume`` the sweep folder's own settings stand; the command
            refuses options beside it that would change them.

    Returns:
        The sweep folder and the results records of every trial.
    """
    _check_execution(options)
    if options.get("resume"):
        folder = SweepFolder(Path(options["resume"]))
        info = folder.read()
        trials = SweepFolder.trials_of(info)
        recorded = info["spec"]
        data = DataSpec(**recorded["data"])
        settings = Settings(
            data, recorded["backend"], recorded["dtype"], recorded["prune"]
        )
        fuse = recorded["fuse"]
        # How the sweep cut its groups stands, unless the resume says otherwise
        # (a smaller memory budget on another machine, say): then the trials
        # not begun are planned afresh instead of in the stacks planned first.
        recut = any(options.get(key) is not None for key in GROUPING)
        planned = None if recut else recorded.get("groups")
        options = {
            **options,
            **{key: recorded.get(key) for key in GROUPING if options.get(key) is None},
        }
    else:
        trials, recorded = build_trials(options)
        data = DataSpec(
            _absolute(options.get("data")),
            _absolute(options.get("test_data")),
            options.get("task") or "classification",
            label_value(str(options.get("label", "-1"))),
            options.get("positive"),
            int(options.get("split_seed") or 0),
        )
        settings = Settings(
            data,
            options.get("backend"),
            options.get("dtype") or "float32",
            options.get("prune"),
        )
        fuse = not options.get("no_fuse")
    if settings.prune and all(int(t["epochs"]) < 2 for t in trials):
        raise UsageError(
            "--prune: successive halving stops members between epochs, and one "
            "epoch leaves no rung before the last, so nothing would be pruned; "
            "train more epochs or leave it out"
        )
    if settings.prune and options.get("max_group") == 1:
        raise UsageError(
            "--prune: successive halving compares the members of a stack, and "
            "--max-group 1 leaves one in each, so nothing would be pruned; "
            "leave one out"
        )
    # The name only: this process plans, and its workers import the arrays.
    backend_name = resolve_name(settings.backend, settings.dtype)
    dataset = dataset_for(data)
    if data.data is None:
        # Found by $MLP_BACKEND_DATA or data/: recorded by the absolute path
        # found, so that a resume reads the same file from any directory.
        data = replace(data, data=dataset.info["path"])
        adopt_dataset(data, dataset)
    for metric in sorted({t["metric"] for t in trials}):
        spec = options.get("spec") if not options.get("resume") else None
        check_metric(metric, dataset.task, f"{spec}: metric" if spec else "--metric")
    if not options.get("resume"):
        for batch_size in sorted({int(t["batch_size"]) for t in trials}):
            note_full_batch(batch_size, dataset)
    checksums = {k: dataset.info[k] for k in ("checksum", "test_checksum")}
    if options.get("resume"):
        check_same_data(recorded.get("checksums", {}), dataset)

    if not options.get("resume"):
        recorded = {
            **recorded,
            "data": asdict(data),
            "checksums": checksums,
            "backend": backend_name,
            "dtype": settings.dtype,
            "prune": settings.prune,
            "fuse": fuse,
            **{key: options.get(key) for key in GROUPING},
        }
        settings = Settings(data, backend_name, settings.dtype, settings.prune)
        # The stacks are recorded, so that a resume trains the trials that
        # had not begun in the same stacks: a stack of other members rounds
        # otherwise in float32, whatever the resume's workers.
        groups, _ = _plan(
            trials, range(len(trials)), {}, {}, None, settings, fuse, options
        )
        recorded["groups"] = [list(group.trials) for group in groups]
        planned = recorded["groups"]
        folder = SweepFolder.create(
            Path(options.get("runs_dir") or "runs"),
            options.get("name"),
            recorded,
            trials,
        )
    with FolderLock(folder.path / SWEEP_LOCK), catch_interrupts():
        return folder.path, _run_locked(
            folder, trials, settings, fuse, options, planned
        )


def _run_locked(
    folder: SweepFolder,
    trials: list[specs.Trial],
    settings: Settings,
    fuse: bool,
    options: dict[str, Any],
    planned: list[list[int]] | None,
) -> list[dict[str, Any]]:
    # A resume keeps trials that ended and records any a kill left unrecorded;
    # a kill after an interrupt may also have left the sweep's stop request.
    (folder.path / STOP_REQUEST).unlink(missing_ok=True)
    folder.drop_torn_line()
    kept = folder.finished(len(trials))
    recorded = folder.results(trials)
    folder.add_results(
        [
            result_record(i, trials[i], summary["state"], summary)
            for i, summary in kept.items()
            if recorded.get(i, {}).get("state") != summary["state"]
        ]
    )
    todo = [i for i in range(len(trials)) if i not in kept]
    dataset = dataset_for(settings.data)
    # Trials that were in flight go on from their last checkpoint, in the
    # stack they were in.
    starts = {
        i: checkpoint_start(folder.trial_path(i), trials[i], dataset) for i in todo
    }
    started = {i: epoch for i, (epoch, _) in starts.items()}
    index = {trial_name(i): i for i in range(len(trials))}
    stacks = {
        i: tuple(index.get(name, -1) for name in names)
        for i, (_, names) in starts.items()
        if names
    }
    groups, workers = _plan(
        trials, todo, started, stacks, planned, settings, fuse, options
    )
    if not groups:
        logger.info("sweep %s: every trial has ended; nothing to train", folder.path)
    else:
        logger.info(
            "sweep %s: %s (%d kept, %d resumed) in %s on %s",
            folder.path,
            _count(len(trials), "trial"),
            len(kept),
            sum(1 for epoch in started.values() if epoch),
            _count(len(groups), "group"),
            options.get("scheduler")
            or (
                f"a Dask LocalCluster of {options['dask_local']}"
                if options.get("dask_local")
                else _count(workers, "worker")
            ),
        )

    def tell(record: dict[str, Any]) -> None:
        # A failure is a warning, so that it shows also under --quiet.
        level = logging.WARNING if record["state"] == "failed" else logging.INFO
        detail = record.get("error") or record.get("reason")
        if detail:
            logger.log(
                level, "trial %d %s: %s", record["trial"], record["state"], detail
            )
        else:
            logger.log(level, "trial %d %s", record["trial"], record["state"])

    if groups:
        with open_executor(
            workers,
            options.get("scheduler"),
            options.get("dask_local"),
            loaded=(settings.data, dataset),
            backend=settings.backend,
        ) as executor:
            run_groups(folder, trials, groups, settings, executor, tell)
    results = folder.results(trials)
    return [results[i] for i in sorted(results)]


def _plan(
    trials: list[specs.Trial],
    todo: Sequence[int],
    started: dict[int, int],
    stacks: dict[int, tuple[int, ...]],
    planned: list[list[int]] | None,
    settings: Settings,
    fuse: bool,
    options: dict[str, Any],
) -> tuple[list[Group], int]:
    """The groups to train ``todo`` in, and how many local workers to use.

    Args:
        started: Epochs each trial trained before (a resume's checkpoints).
        stacks: The stack each started trial's checkpoint was written in.
        planned: The stacks the sweep planned at its start, which trials that
            never trained go in again; None to plan them afresh.
    """
    X = dataset_for(settings.data).parts["train"][0]
    groups = plan_groups(
        trials,
        todo,
        fuse=fuse,
        max_group=options.get("max_group") or 64,
        max_bytes=options.get("max_bytes"),
        n_rows=int(X.shape[0]),
        n_features=int(X.shape[1]),
        itemsize=4 if settings.dtype == "float32" else 8,
        # Resolved by run_sweep (and recorded in sweep.json).
        backend=settings.backend,
        started=started,
        stacks=stacks,
        planned=planned,
    )
    max_group = options.get("max_group") or 64
    oversized = [g for g in groups if g.fixed and len(g.trials) > max_group]
    if oversized:
        logger.info(
            "%s in flight go on as %s, above --max-group %d: their checkpoints "
            "belong to them",
            _count(len(oversized), "stack"),
            "it was" if len(oversized) == 1 else "they were",
            max_group,
        )
    # One per core unless asked: balance may halve groups for them, and the
    # count is then cut to the groups there are.
    workers = options.get("workers") or default_workers(len(todo))
    if options.get("dask_local"):
        workers = options["dask_local"]
    # Pruning compares the members of one stack, so pruned stacks stay whole.
    if fuse and not options.get("scheduler") and not settings.prune:
        groups = balance(trials, groups, workers)
    if not options.get("dask_local"):
        # A local worker beyond one per group would have nothing to do.
        workers = max(1, min(workers, len(groups)))
    return groups, workers


def _absolute(path: str | None) -> str | None:
    """A data path as the sweep records it: a resume or a worker may run in
    another directory."""
    return None if path is None else str(Path(path).absolute())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
