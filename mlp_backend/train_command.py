"""What ``train``, ``evaluate`` and ``predict`` do, apart from parsing options.

Kept out of ``cli`` so that the command line stays a thin face and so that
these steps can be called and tested without click.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.backend import Backend, get_backend
from mlp_backend.checkpoint import NAME as CHECKPOINT
from mlp_backend.checkpoint import load_checkpoint
from mlp_backend.data import (
    Features,
    carries_label,
    load_table,
    scoring_label,
)
from mlp_backend.errors import (
    DataError,
    DivergenceWarning,
    MLPBackendError,
    RunError,
    UsageError,
)
from mlp_backend.estimator import MLPClassifier, MLPRegressor
from mlp_backend.job import (
    RESUMABLE,
    TRAINING_KEYS,
    Dataset,
    Recorder,
    StopFlag,
    catch_interrupts,
    check_same_data,
    device_status,
    evaluate,
    finish_run,
    load_dataset,
    note_full_batch,
    read_table,
    resume_folder,
    run_config,
    run_settings,
)
from mlp_backend.options import int_list, label_value
from mlp_backend.persist import load_model
from mlp_backend.runs import (
    RUN_LOCK,
    FolderLock,
    RunFolder,
    check_name,
    create_folder,
    read_json,
)
from mlp_backend.train import MemberState, check_memory, check_metric, epochs_text

logger = logging.getLogger(__name__)


def build_estimator(options: dict[str, Any], hidden: tuple[int, ...], task: str):
    """The estimator the training options describe."""
    common = dict(
        hidden=hidden,
        activation=options["activation"],
        optimizer=options["optimizer"],
        lr=float(options["lr"]),
        momentum=float(options["momentum"]),
        weight_decay=float(options["weight_decay"]),
        batch_size=int(options["batch_size"]),
        epochs=int(options["epochs"]),
        patience=int(options["patience"]),
        monitor=options["metric"],
        schedule=options["schedule"],
        seed=int(options["seed"]),
        backend=options["backend"],
        dtype=options["dtype"],
    )
    if task == "regression":
        return MLPRegressor(**common)
    return MLPClassifier(**common)


def resumable(path: Path) -> tuple[dict[str, Any], MemberState | None]:
    """The configuration and last checkpoint of a run to go on with.

    A run that ended before its first checkpoint (in its first epoch) goes
    on from the start (``None``), in its own folder with its own settings.

    Raises:
        UsageError: ``path`` is not a single run that can go on.
        RunError: Its files cannot be read.
    """
    if not (path / "config.json").is_file():
        raise UsageError(f"--resume: {path} is not a run folder (no config.json)")
    config = read_json(path / "config.json")
    if config.get("sweep") is not None:
        raise UsageError(
            f"--resume: {path} is a trial of sweep {config['sweep']!r}; continue "
            "the sweep with mlp-backend sweep --resume"
        )
    if (path / "summary.json").is_file():
        state = read_json(path / "summary.json").get("state")
        if state not in RESUMABLE:
            raise UsageError(
                f"--resume: {path} ended {state}; there is nothing to go on with"
            )
    checkpointed = (path / CHECKPOINT).is_file()
    metrics = path / "metrics.jsonl"
    if not checkpointed and metrics.is_file() and metrics.stat().st_size:
        raise UsageError(
            f"--resume: {path} has epoch records but no {CHECKPOINT} (the file "
            "was removed, or a kill came between the first epoch's record and "
            "its checkpoint); train it again"
        )
    try:
        model = config["model"]
        sizes = (
            int(config["data"]["features"]),
            *(int(w) for w in model["hidden"]),
            int(model["outputs"]),
        )
        optimizer = str(config["training"]["optimizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path / 'config.json'}: incomplete ({exc})") from None
    if not checkpointed:
        return config, None
    return config, load_checkpoint(path / CHECKPOINT, sizes, optimizer)


def options_of(config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with every setting of the run ``config.json`` describes.

    Only ``--backend`` may differ from the run's own (its dtype may not).
    """
    data, model, training = config["data"], config["model"], config["training"]
    return {
        **options,
        "data": data["path"],
        "test_data": data.get("test_path"),
        "task": "regression" if config["task"] == "regression" else "classification",
        "label": str(data.get("label", -1)),
        "positive": data.get("positive"),
        "split_seed": int(data["split_seed"]),
        "hidden": ",".join(str(w) for w in model["hidden"]),
        "activation": model["activation"],
        **{key: training[key] for key in TRAINING_KEYS},
        "metric": training["monitor"],
        "dtype": config["backend"]["dtype"],
        "backend": options.get("backend") or config["backend"]["name"],
    }


def run_train(options: dict[str, Any], display: str = "none") -> str:
    """Trains one network into a new run folder; returns the final state.

    ``display`` is what a person sees of the epochs: ``bar`` (a progress bar),
    ``lines`` (a line per epoch on standard error) or ``none``. With
    ``options["resume"]`` (a run folder) the run goes on from its last
    checkpoint with its own settings, in its own folder.

    Every option is checked, the backend resolved and the data read before
    the run folder is created, so bad input leaves nothing behind.
    """
    resume = options.get("resume")
    state, recorded = None, None
    if resume is not None:
        recorded, state = resumable(Path(resume))
        options = options_of(recorded, options)
    hidden = int_list(options["hidden"], "--hidden")
    if options["name"] is not None:
        check_name(options["name"])
    estimator = build_estimator(options, hidden, options["task"])
    estimator.train_config().check()
    from mlp_backend.train import check_member

    check_member(estimator.member())
    backend = get_backend(options["backend"], options["dtype"])
    estimator.set_params(backend=backend.name)
    dataset = load_dataset(
        options["data"],
        test_data=options["test_data"],
        task=options["task"],
        label=label_value(options["label"]),
        positive=options["positive"],
        split_seed=int(options["split_seed"]),
    )
    if recorded is not None:
        check_same_data(recorded["data"], dataset)
    check_metric(options["metric"], dataset.task)
    note_full_batch(int(options["batch_size"]), dataset)
    n_train, n_val = (int(dataset.parts[k][0].shape[0]) for k in ("train", "val"))
    outputs = dataset.n_classes if dataset.task == "multiclass" else 1
    check_memory(
        backend,
        (int(dataset.parts["train"][0].shape[1]), *hidden, outputs),
        1,
        min(int(options["batch_size"]), n_train),
        n_train,
        n_val,
    )

    if resume is None:
        path = create_folder(Path(options["runs_dir"]), options["name"])
    else:
        path = Path(resume)
    # One process trains a run: a second resume, or a resume of a run that
    # is still training, is refused here (a kill -9 leaves a stale lock,
    # which is taken over).
    with FolderLock(path / RUN_LOCK, "run"):
        return _train_run(
            options, display, estimator, backend, dataset, path, state, recorded
        )


def _train_run(
    options: dict[str, Any],
    display: str,
    estimator: MLPClassifier | MLPRegressor,
    backend: Backend,
    dataset: Dataset,
    path: Path,
    state: MemberState | None,
    recorded: dict[str, Any] | None,
) -> str:
    """Trains into the run folder ``path``: new, resumed from ``state``, or
    (``recorded`` without ``state``) from the start again."""
    if recorded is None:
        folder = RunFolder(path)
        model, training = run_settings(dataset, estimator.hidden, options)
        config = run_config(path.name, dataset, backend, model, training)
        folder.write_config(config)
        folder.set_status(
            "running",
            epoch=0,
            epochs=int(options["epochs"]),
            device=device_status(backend),
        )
    else:
        config = recorded
        epoch = 0 if state is None else state.epoch
        folder = resume_folder(path, epoch)
        logger.info("run %s: going on after epoch %d", path, epoch)
    folder.event(f"training on {backend.device_name} ({backend.dtype_name})")
    logger.info(
        "run %s: training on %s (%s)", path, backend.device_name, backend.dtype_name
    )

    recorder = Recorder({0: folder}, int(options["epochs"]), backend)
    callbacks: list[Any] = [recorder]
    bar = None
    if display == "bar":
        from mlp_backend.progress import ProgressDisplay

        bar = ProgressDisplay(int(options["epochs"]), options["metric"])
        callbacks.append(bar)
    elif display == "lines":
        from mlp_backend.progress import PlainLines

        callbacks.append(PlainLines(int(options["epochs"])))

    stop = StopFlag([folder])
    start = time.perf_counter()
    X, y = dataset.parts["train"]
    labels = _labels(dataset, y)
    try:
        with catch_interrupts():
            if bar is not None:
                bar.start()
            fit_args = dict(
                eval_set=(
                    dataset.parts["val"][0],
                    _labels(dataset, dataset.parts["val"][1]),
                ),
                callbacks=callbacks,
                should_stop=stop,
                feature_names=dataset.feature_names,
                checkpoint=recorder.checkpoint,
                resume=state,
            )
            if dataset.task != "regression":
                fit_args["classes"] = dataset.classes
            estimator.set_params(standardize=False)
            with warnings.catch_warnings():
                # The run reports a divergence itself: its status, its
                # summary and exit code 3.
                warnings.simplefilter("ignore", DivergenceWarning)
                estimator.fit(X, labels, **fit_args)
    except MLPBackendError:
        folder.set_status("failed", reason="invalid input")
        raise
    except Exception as exc:
        folder.set_status("failed", reason=f"{type(exc).__name__}: {exc}")
        folder.event(f"failed: {type(exc).__name__}: {exc}", "error")
        raise
    finally:
        if bar is not None:
            bar.stop()
    # The training time of the processes that trained the run before, too.
    seconds = time.perf_counter() - start + (state.seconds if state else 0.0)

    # Test metrics on the weights the run keeps, then the files.
    X_test, y_test = dataset.parts["test"]
    output = _raw_output(estimator, X_test)
    test = evaluate(
        backend, dataset.task, y_test, output, _binary_logits(estimator, X_test)
    )
    saved = estimator.to_saved(config)
    saved.standardizer = dataset.standardizer
    summary = finish_run(
        folder, estimator.result_, saved, test, seconds, options["metric"]
    )
    _report(path, summary)
    return summary["state"]


def _labels(dataset, y: np.ndarray) -> np.ndarray:
    if dataset.task == "regression":
        return y
    return np.asarray(dataset.classes)[y]


def _raw_output(estimator, X: np.ndarray) -> np.ndarray:
    """Probabilities or values of already-standardised rows."""
    if isinstance(estimator, MLPRegressor):
        return estimator._output(X)[:, 0]
    return estimator.predict_proba(X)


def _binary_logits(estimator, X: np.ndarray) -> np.ndarray | None:
    """What the ROC metrics rank for a two-class model, None for other tasks."""
    if isinstance(estimator, MLPRegressor) or len(estimator.classes_) != 2:
        return None
    return estimator.decision_function(X)


def _report(path: Path, summary: dict[str, Any]) -> None:
    from mlp_backend.cli import print_metrics

    if summary["state"] == "diverged":
        # Its epochs_run counts the epoch it diverged in, which did not end.
        line = f"run diverged in epoch {summary['epochs_run']}"
    else:
        line = f"run {summary['state']} after {epochs_text(summary['epochs_run'])}"
    if summary["best_epoch"]:
        line += f" (best epoch {summary['best_epoch']})"
    line += f" in {summary['seconds']:.1f}s"
    if summary.get("reason"):
        line += f": {summary['reason']}"
    logger.info("%s", line)
    print_metrics(summary["test"])
    logger.info("saved to %s", path)


def _load(run: Path, backend_name: str | None):
    if not (run / "model.npz").is_file():
        raise UsageError(f"RUN: {run} holds no model.npz (is it a run folder?)")
    saved = load_model(run / "model.npz")
    backend = get_backend(
        backend_name, saved.config.get("backend", {}).get("dtype", "float32")
    )
    cls = MLPRegressor if saved.config["task"] == "regression" else MLPClassifier
    return saved, cls.from_saved(saved, backend), backend


def run_evaluate(
    run: Path, data: str | None, backend_name: str | None
) -> dict[str, Any]:
    """Scores a saved model on the run's own test part or on a labelled file."""
    saved, estimator, backend = _load(run, backend_name)
    config = saved.config
    task = config["task"]
    # The label column the run was trained with (runs before it was recorded
    # used the default, the last column).
    label = config["data"].get("label", -1)
    if data is None:
        info = config["data"]
        if not Path(info["path"]).is_file():
            raise DataError(
                f"{info['path']}: the run's data file is gone; score a labelled file "
                "with --data FILE"
            )
        dataset = load_dataset(
            info["path"],
            test_data=info.get("test_path"),
            task="regression" if task == "regression" else "classification",
            label=label,
            positive=info.get("positive"),
            split=info["split"],
            split_seed=info["split_seed"],
        )
        # Another file would split into another test part, with rows the
        # model trained on.
        check_same_data(
            info,
            dataset,
            "the run's test part can only be drawn from the same data: put the "
            "file back, or score a labelled file with --data FILE",
        )
        X, y = dataset.parts["test"]
        X = X * dataset.standardizer.scale + dataset.standardizer.mean
    else:
        kind = "regression" if task == "regression" else "classification"
        info = config["data"]
        at = scoring_label(
            Path(data), info.get("label_name"), info.get("label_index"), label
        )
        table = read_table(
            Path(data),
            task=kind,
            label=at,
            classes=saved.classes or None,
            features=Features(info["feature_names"], info.get("named", False)),
        )
        X = table.X
        if task == "regression":
            y = table.labels.astype(np.float64)
        else:
            lookup = {c: i for i, c in enumerate(saved.classes)}
            y = np.array([lookup[str(v)] for v in table.labels], dtype=np.int64)
    if task == "regression":
        output = estimator.predict(X)
    else:
        output = estimator.predict_proba(X)
    return evaluate(backend, task, y, output, _binary_logits(estimator, X))


def run_predict(run: Path, file: Path, backend_name: str | None):
    """Class and probability (or value) per row of ``file``, as CSV rows."""
    saved, estimator, _ = _load(run, backend_name)
    info = saved.config["data"]
    names = info["feature_names"]
    # A file may carry the label column where the run's data had it, or
    # features only; its first line says which, so that its errors are
    # those of its own layout (not its label column read as a feature).
    at = scoring_label(
        file, info.get("label_name"), info.get("label_index"), info.get("label", -1)
    )
    table = load_table(
        file,
        label=at if carries_label(file, at, len(names)) else None,
        features=Features(names, info.get("named", False)),
    )
    if saved.config["task"] == "regression":
        return ["value"], [[f"{v:.6g}"] for v in estimator.predict(table.X)]
    proba = estimator.predict_proba(table.X)
    labels = (
        estimator.classes_[np.argmax(proba, axis=1)]
        if proba.shape[1] > 2
        else estimator.classes_[(proba[:, 1] > 0.5).astype(np.int64)]
    )
    header = ["class", *[f"p_{c}" for c in estimator.classes_]]
    rows = zip(labels, proba, strict=True)
    return header, [[lab, *(f"{p:.6f}" for p in row)] for lab, row in rows]
