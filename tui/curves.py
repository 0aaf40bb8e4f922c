"""Series for the plots: pick a metric, smooth it, thin it to the plot width.

Pure Python on purpose: the monitor runs where NumPy may be missing, and a
history of a few thousand epochs is small.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

Series = tuple[list[float], list[float]]

LOSS_METRICS = ("train_loss", "val_loss")
CLASSIFICATION_METRICS = ("val_accuracy", "val_f1", "val_roc_auc")
REGRESSION_METRICS = ("val_mse", "val_r2")


def series(history: Iterable[dict[str, Any]], metric: str) -> Series:
    """Epochs and values of one metric, leaving out epochs where it is missing.

    Args:
        history: Metrics records in epoch order.
        metric: The key to read.

    Returns:
        ``(epochs, values)`` of equal length; values are finite.
    """
    epochs: list[float] = []
    values: list[float] = []
    for record in history:
        value = record.get(metric)
        epoch = record.get("epoch")
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and isinstance(epoch, int)
        ):
            epochs.append(float(epoch))
            values.append(float(value))
    return epochs, values


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (1 leaves them alone).

    The first points average over what exists so far, so that the curve keeps
    its length and its start.
    """
    if window <= 1:
        return list(values)
    out = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], points: int) -> Series:
    """Thin a series to at most ``points`` points by averaging buckets.

    Bucket means keep the shape of a noisy curve better than taking every
    n-th point. The last point is kept as it is, so the newest value shows.
    """
    n = len(xs)
    if points <= 0 or n <= points:
        return list(xs), list(ys)
    out_x: list[float] = []
    out_y: list[float] = []
    buckets = points - 1
    for b in range(buckets):
        start = b * (n - 1) // buckets
        stop = max((b + 1) * (n - 1) // buckets, start + 1)
        out_x.append(sum(xs[start:stop]) / (stop - start))
        out_y.append(sum(ys[start:stop]) / (stop - start))
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def log10_series(xs: Sequence[float], ys: Sequence[float]) -> Series:
    """The base-10 logarithm of the positive values (others cannot be drawn)."""
    kept = [(x, math.log10(y)) for x, y in zip(xs, ys, strict=True) if y > 0]
    return [x for x, _ in kept], [y for _, y in kept]


def prepare(
    history: Sequence[dict[str, Any]],
    metric: str,
    window: int = 1,
    points: int = 200,
    log: bool = False,
) -> Series:
    """A metric ready to plot: smoothed over all epochs, then thinned.

    Smoothing comes first so that it sees every epoch, whatever the width.

    Args:
        history: Metrics records in epoch order.
        metric: The key to plot.
        window: Moving-average window in epochs.
        points: The most points to return (about the plot's width in dots).
        log: Return log10 of the values.

    Returns:
        ``(epochs, values)``.
    """
    xs, ys = series(history, metric)
    ys = smooth(ys, window)
    if log:
        xs, ys = log10_series(xs, ys)
    return downsample(xs, ys, points)


def validation_metrics(history: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The validation metrics other than the loss that the history has."""
    keys: set[str] = set()
    for record in history[-1:]:
        keys.update(record)
    names = CLASSIFICATION_METRICS + REGRESSION_METRICS
    return tuple(name for name in names if name in keys)
