"""Grouping trials into fused stacks.

Trials can share one :class:`~mlp_backend.train.Trainer` run when everything
in :class:`~mlp_backend.train.TrainConfig` agrees (activation, optimizer type,
batch size, epochs, schedule, patience, monitored metric) and they have the
same number of hidden layers; the data and loss are the sweep's own.

Widths are padded to the widest member, so a padded member costs as much as
the widest one. The rule: members share a stack only while, in every hidden
layer, ``widest / narrowest <= MAX_WIDTH_RATIO`` (2). Within that band at most
half of a member's units are padding, which the saving of one launch sequence
per step instead of one per member outweighs on NumPy for the small networks
sweeps train (measured with ``benchmarks/sweep.py``: batched matmuls of 8 to 64
members cost little more than one at widths up to 128); widths 5 and 100 would
make the 5-wide member pay 20 times its own work, so they are split instead.
Groups are then cut into chunks of at most ``max_group`` members and at most
``max_bytes`` of estimated working memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlp_backend.sweep.spec import Trial

MAX_WIDTH_RATIO = 2.0
SHARED_KEYS = (
    "activation", "optimizer", "batch_size", "epochs", "schedule", "patience", "metric"
)


@dataclass(frozen=True)
class Group:
    """Trials trained as one stack: indices into the sweep's trial list."""

    trials: tuple[int, ...]


def shared_key(trial: Trial) -> tuple:
    """What must agree for two trials to share a stack."""
    return (len(trial["hidden"]), *(trial[k] for k in SHARED_KEYS))


def member_bytes(trial: Trial, n_rows: int, n_features: int, itemsize: int) -> int:
    """A rough upper bound of one member's working memory in a stack.

    Counts the epoch's gathered copy of the training rows ``(n, features)``,
    parameters with their gradient and two optimizer states, and forward and
    backward activations of one batch.
    """
    sizes = (n_features, *trial["hidden"], 1)
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    batch = min(int(trial["batch_size"]), n_rows)
    activations = 3 * batch * sum(sizes)
    return itemsize * (n_rows * (n_features + 1) + 4 * params + activations)


def _width_bands(trials: Sequence[Trial], order: list[int]) -> list[list[int]]:
    """Splits trials sorted by width wherever the ratio rule would break."""
    bands: list[list[int]] = []
    for i in order:
        widths = trials[i]["hidden"]
        if bands:
            first = trials[bands[-1][0]]["hidden"]
            if all(w <= MAX_WIDTH_RATIO * f for w, f in zip(widths, first)):
                bands[-1].append(i)
                continue
        bands.append([i])
    return bands


def plan_groups(
    trials: Sequence[Trial],
    indices: Sequence[int],
    *,
    fuse: bool = True,
    max_group: int = 64,
    max_bytes: int | None = None,
    n_rows: int = 0,
    n_features: int = 0,
    itemsize: int = 4,
) -> list[Group]:
    """Groups the trials ``indices`` into stacks, in a deterministic order.

    Args:
        trials: Every trial of the sweep.
        indices: The ones to run now (the rest finished before a resume).
        fuse: False gives one group per trial (``--no-fuse``).
        max_group: Most members per stack (``--max-group``).
        max_bytes: Most estimated bytes per stack (``--max-bytes``), or None.
        n_rows, n_features, itemsize: The training data, for the estimate.
    """
    assert max_group >= 1, "max_group must be positive"
    if not fuse:
        return [Group((i,)) for i in indices]
    by_key: dict[tuple, list[int]] = {}
    for i in indices:
        by_key.setdefault(shared_key(trials[i]), []).append(i)
    groups = []
    for members in by_key.values():
        order = sorted(members, key=lambda i: (tuple(trials[i]["hidden"]), i))
        for band in _width_bands(trials, order):
            groups += _chunks(trials, band, max_group, max_bytes, n_rows, n_features, itemsize)
    return groups


def _chunks(
    trials: Sequence[Trial],
    band: list[int],
    max_group: int,
    max_bytes: int | None,
    n_rows: int,
    n_features: int,
    itemsize: int,
) -> list[Group]:
    chunks: list[Group] = []
    current: list[int] = []
    for i in band:
        # Padding makes every member as costly as the band's widest so far.
        widest = dict(trials[i], hidden=tuple(
            max(col) for col in zip(*(trials[j]["hidden"] for j in [*current, i]))
        ))
        cost = member_bytes(widest, n_rows, n_features, itemsize) * (len(current) + 1)
        too_big = max_bytes is not None and cost > max_bytes
        if current and (len(current) >= max_group or too_big):
            chunks.append(Group(tuple(sorted(current))))
            current = []
        current.append(i)
    if current:
        chunks.append(Group(tuple(sorted(current))))
    return chunks
