"""Seeded train / validation / test splits of row indices.

Each part's share of a class is rounded by largest remainders, and every class with
at least three rows gets at least one row in each part, so a validation or test
metric never misses a class the training saw. Train is filled first, so even a
five-row data set trains on something.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlp_backend.errors import DataError, UsageError


@dataclass(frozen=True)
class Split:
    """Row indices of the three parts, each sorted, int64, disjoint.

    Attributes:
        train: Indices of the training rows, (n_train,).
        val: Indices of the validation rows, (n_val,).
        test: Indices of the test rows, (n_test,).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def stratified_split(
    y: np.ndarray,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    stratify: bool | None = None,
) -> Split:
    """Split rows into train, validation and test parts.

    Args:
        y: Class indices (integers) or regression targets (floats), shape (rows,).
        fractions: Shares of train, validation and test; positive, summing to 1.
        seed: Seed of ``np.random.default_rng``; the same seed gives the same split.
        stratify: Split each class separately; None means yes for integer ``y`` and
            no (one seeded shuffle of all rows) for float ``y``.

    Returns:
        The split.

    Raises:
        UsageError: ``fractions`` are not three positive numbers summing to 1.
        DataError: ``y`` holds no rows.
    """
    shares = _check_fractions(fractions)
    if seed < 0:
        raise UsageError(f"--split-seed: must be 0 or more, got {seed}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise UsageError(f"y must be one-dimensional, (rows,); got shape {y.shape}")
    if y.size == 0:
        raise DataError("no rows to split")
    if stratify is None:
        stratify = y.dtype.kind in "iub"
    rng = np.random.default_rng(seed)
    if stratify:
        # With return_inverse NumPy sorts; its hashing unique (plain
        # np.unique) imports numpy.ma, 20 ms of every command's start.
        classes, inverse = np.unique(y, return_inverse=True)
        groups = [np.flatnonzero(inverse == k) for k in range(classes.size)]
    else:
        groups = [np.arange(y.size)]

    parts: list[list[np.ndarray]] = [[], [], []]
    for rows in groups:
        rows = rng.permutation(rows)
        bounds = np.cumsum(_allocate(rows.size, shares))[:-1]
        for part, chunk in zip(parts, np.split(rows, bounds), strict=True):
            part.append(chunk)
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return Split(train=train, val=val, test=test)


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    try:
        shares = [float(f) for f in fractions]
    except (TypeError, ValueError):
        raise UsageError(
            f"fractions must be three numbers; got {fractions!r}"
        ) from None
    if (
        len(shares) != 3
        or not all(math.isfinite(f) and f > 0 for f in shares)
        or not math.isclose(sum(shares), 1.0, abs_tol=1e-9)
    ):
        raise UsageError(
            "fractions must be three positive numbers (train, validation, test) "
            f"summing to 1; got {fractions!r}"
        )
    return shares


def _allocate(n: int, shares: list[float]) -> list[int]:
    """Rows per part for a group of ``n`` rows: largest remainders, then minimums."""
    exact = [f * n for f in shares]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda k: counts[k] - exact[k])
    for k in by_remainder[: n - sum(counts)]:
        counts[k] += 1

    # With three rows or more every part gets one, taken from the largest part;
    # with fewer, train comes first.
    minimum = [1, 1, 1] if n >= 3 else [min(n, 1), 0, 0]
    for k in range(3):
        while counts[k] < minimum[k]:
            donor = max(range(3), key=lambda d: counts[d] - minimum[d])
            counts[donor] -= 1
            counts[k] += 1
    assert sum(counts) == n, f"allocated {counts} rows for {n}"
    return counts
