"""What a person sees while ``train`` runs: a progress bar or plain lines.

Both are training callbacks and part of the command-line face; the library
itself only logs.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from mlp_backend.train import MemberResult


class ProgressDisplay:
    """A rich progress bar: epoch, training loss, the monitored metric, ETA."""

    def __init__(self, epochs: int, metric: str) -> None:
        self.metric = metric
        self.progress = Progress(
            TextColumn("epoch {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs, figures="")

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def on_epoch(self, member: int, record: dict[str, Any]) -> None:
        figures = (
            f"loss {_shown(record['train_loss'])}  "
            f"{self.metric} {_shown(record[self.metric])}"
        )
        self.progress.update(self.task, completed=record["epoch"], figures=figures)

    def on_member_end(self, member: int, result: MemberResult) -> None:
        self.progress.update(
            self.task, total=result.epochs_run, completed=result.epochs_run
        )


class PlainLines:
    """One line per epoch on standard error, for logs and pipes."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.start = time.perf_counter()

    def on_epoch(self, member: int, record: dict[str, Any]) -> None:
        figures = "  ".join(
            f"{k} {_shown(v)}"
            for k, v in record.items()
            if k.startswith(("train_", "val_")) and isinstance(v, float)
        )
        spent = time.perf_counter() - self.start
        eta = spent / record["epoch"] * (self.epochs - record["epoch"])
        print(
            f"epoch {record['epoch']}/{self.epochs}  {figures}  eta {eta:.0f}s",
            file=sys.stderr,
            flush=True,
        )

    def on_member_end(self, member: int, result: MemberResult) -> None:
        pass


def _shown(value: float) -> str:
    """A figure as the line shows it; one that is not finite (the ROC area of
    a validation part of one class) is undefined, as the files' null says."""
    return f"{value:.4f}" if math.isfinite(value) else "n/a"
