"""A tiny writer of run folders in the format of ``docs/run-format.md``.

The tests build their run folders with it, so that the monitor is tested
against files as the trainer would write them, without the trainer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# Every fixture run starts at this Unix time; tests pass a clock near it.
T0 = 1_764_786_600.0


def write_json(path: Path, value: dict[str, Any]) -> None:
    """Replace ``path`` atomically, as the format asks."""
    tmp = path.with_name(f"{path.name}.tmp-1")
    tmp.write_text(json.dumps({"format": 1, **value}))
    tmp.replace(path)


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append whole lines."""
    with open(path, "a") as handle:
        for record in records:
            handle.write(json.dumps({"format": 1, **record}) + "\n")


def metrics_line(epoch: int, speed: float = 1.0, noise: float = 0.0) -> dict:
    """A plausible metrics record: losses fall and scores rise with the epoch."""
    wiggle = noise * math.sin(epoch * 1.7)
    val_loss = 0.3 + 0.4 * math.exp(-speed * epoch / 10) + wiggle
    return {
        "epoch": epoch,
        "train_loss": 0.25 + 0.45 * math.exp(-speed * epoch / 8),
        "val_loss": val_loss,
        "val_accuracy": 1.0 - val_loss / 2,
        "val_f1": 1.0 - val_loss / 2.2,
        "val_roc_auc": 1.0 - val_loss / 3,
        "lr": 0.003,
        "seconds": 0.2,
        "time": T0 + epoch,
    }


def write_run(
    root: Path,
    name: str,
    *,
    state: str = "finished",
    epoch: int = 10,
    epochs: int = 10,
    hidden: tuple[int, ...] = (64, 32),
    lr: float = 0.003,
    speed: float = 1.0,
    sweep: str | None = None,
    trial: int | None = None,
    updated: float | None = None,
    reason: str | None = None,
    summary: bool | None = None,
    monitor: str = "val_loss",
) -> Path:
    """Write a run folder with ``epoch`` epochs of metrics.

    Args:
        root: The folder to create the run in (a runs or sweep folder).
        name: The run folder's name.
        state: The state in ``status.json``.
        epoch: Epochs done (lines in ``metrics.jsonl``).
        epochs: Epochs planned.
        hidden: Hidden layer sizes.
        lr: Learning rate.
        speed: How fast the losses fall; tells fixture runs apart.
        sweep: The sweep's name for a trial.
        trial: The trial's index.
        updated: ``updated`` of the status; defaults to one second per epoch.
        reason: Why the run ended, for the states that need one.
        summary: Write ``summary.json``; defaults to whether the run ended.
        monitor: The metric that picks the best epoch (a loss is minimised,
            anything else maximised).

    Returns:
        The run folder.
    """
    run = root / name
    run.mkdir(parents=True)
    write_json(
        run / "config.json",
        {
            "name": name,
            "created": T0,
            "task": "binary",
            "model": {"hidden": list(hidden), "activation": "relu"},
            "training": {"epochs": epochs, "lr": lr, "monitor": monitor},
            "backend": {"name": "numpy", "device": "cpu", "dtype": "float32"},
            "sweep": sweep,
            "trial": trial,
        },
    )
    records = [metrics_line(e, speed) for e in range(1, epoch + 1)]
    append_jsonl(run / "metrics.jsonl", records)
    append_jsonl(
        run / "events.jsonl",
        [{"time": T0, "level": "info", "message": f"started {name}"}],
    )
    write_json(
        run / "status.json",
        {
            "state": state,
            "epoch": epoch,
            "epochs": epochs,
            "host": "fixture",
            "pid": 1,
            "started": T0,
            "updated": T0 + epoch if updated is None else updated,
            "reason": reason,
            "device": {"name": "cpu", "memory_used": None, "memory_total": None},
        },
    )
    if summary is None:
        summary = state != "running"
    if summary and records:
        sign = 1 if monitor.endswith("loss") else -1
        best = min(records, key=lambda r: sign * r[monitor])
        write_json(
            run / "summary.json",
            {
                "state": state,
                "epochs_run": epoch,
                "best_epoch": best["epoch"],
                "seconds": float(epoch),
                "monitor": monitor,
                "best_value": best[monitor],
                "test": {"accuracy": best["val_accuracy"] - 0.01},
                "reason": reason,
            },
        )
    return run


def write_sweep(
    root: Path, name: str, trials: list[dict[str, Any]], planned: int | None = None
) -> Path:
    """Write a sweep folder with one trial folder per item of ``trials``.

    Args:
        root: The runs folder.
        name: The sweep's name.
        trials: Keyword arguments of :func:`write_run` per trial.
        planned: Trials in ``sweep.json``; defaults to ``len(trials)``.

    Returns:
        The sweep folder.
    """
    sweep = root / name
    sweep.mkdir(parents=True)
    planned = len(trials) if planned is None else planned
    write_json(
        sweep / "sweep.json",
        {"name": name, "trials": [{"index": i} for i in range(planned)]},
    )
    for index, kwargs in enumerate(trials):
        write_run(sweep, f"trial-{index:03d}", sweep=name, trial=index, **kwargs)
    return sweep


def standard_runs(root: Path) -> Path:
    """The fixed runs folder that the screen tests and snapshots use.

    Two single runs (one running, one diverged), one stale run and a sweep of
    six trials over hidden sizes and learning rates.
    """
    root.mkdir(parents=True, exist_ok=True)
    write_run(root, "alpha", state="finished", epoch=30, epochs=30, speed=1.0)
    write_run(root, "bravo", state="running", epoch=12, epochs=40, speed=0.6)
    write_run(
        root, "charlie", state="diverged", epoch=4, epochs=40, reason="step", speed=2
    )
    write_run(root, "delta", state="running", epoch=5, epochs=20, updated=T0 - 500)
    trials = []
    for i, (hidden, lr) in enumerate(
        [((32,), 0.01), ((32,), 0.001), ((64,), 0.01), ((64,), 0.001)]
        + [((128,), 0.01), ((128,), 0.001)]
    ):
        state = "finished" if i < 4 else ("running" if i == 4 else "failed")
        trials.append(
            {
                "state": state,
                "epoch": 20 if i < 4 else (7 if i == 4 else 1),
                "epochs": 20,
                "hidden": hidden,
                "lr": lr,
                "speed": 0.5 + 0.2 * i,
                "reason": "bad activation" if state == "failed" else None,
            }
        )
    write_sweep(root, "sweep-hl", trials, planned=8)
    return root
