"""Grouping trials into fused stacks.

Trials can share one :class:`~mlp_backend.train.Trainer` run when everything
in :class:`~mlp_backend.train.TrainConfig` agrees (activation, optimizer type,
batch size, epochs, schedule, patience, monitored metric) and they have the
same number of hidden layers; the data and loss are the sweep's own.

Widths are padded to the widest member, so a padded member costs as much as
the widest one. Whether that pays depends on what a step costs, so the rule
depends on the backend (:func:`_joins`):

- CuPy: a small network's step is a string of kernel launches whose cost
  hardly grows with width, so members share a stack while, in every hidden
  layer, ``widest / narrowest <= 2``: at most half of a member's units are
  padding. (Chosen from the launch-bound argument; not yet measured on a GPU.)
- NumPy: a trial joins a stack where the padded stack is estimated to cost
  no more than the two apart (:func:`group_cost`: a fixed cost per step, plus
  members x rows x padded units). At batch 1 the fixed cost is most of a
  step, so any padding pays: the reference preset's widths 5 to 100 took
  0.41 s an epoch as one stack of 16 against 0.68 s as three stacks of
  widths within a factor 2, and 0.92 s as four of one width each. At batch
  256 the arithmetic dominates and only equal widths share a stack:
  padding 16 and 32 into one stack of 8 took 0.98 s against 0.85 s apart
  (``benchmarks/RESULTS.md``); the cores are filled with processes instead.

Groups are then cut into chunks of at most ``max_group`` members, at most
``max_bytes`` of estimated working memory and, on NumPy, activation arrays of
at most :data:`STACK_CACHE_BYTES`; they are returned costliest first so that
a pool of workers ends at about the same time (longest job first), and
:func:`balance` halves a group where that lets the workers end sooner. On
CuPy the worker cuts its group further to fit the device's free memory
(:func:`device_chunks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlp_backend.sweep.spec import Trial

#: On CuPy, the largest ``widest / narrowest`` per layer in one stack.
PADDED_RATIO = 2.0
#: A NumPy step's fixed cost in row-units (rows x hidden units), measured.
STEP_OVERHEAD = 4096
#: What a member costs per row besides its hidden units, in units: its output
#: layer, loss and validation metrics. Fitted to stack epochs on NumPy at batch
#: 256 (m members of width w took about 3 + m (3 + 0.048 w) ms on MAGIC), so a
#: member is charged as if it had 64 more hidden units.
MEMBER_UNITS = 64
#: On NumPy, the most bytes of one activation array of a stack (members x
#: batch rows x widest layer) before it is cut into chunks: past it a step's
#: arrays fall out of the cache. Measured per member-epoch at batch 256 on this
#: 2-core EPYC: width 128 took 6.0 ms at 32 members (4 MiB) and 15.0 ms at 64
#: (8 MiB); width 64, 4.8 ms at 64 members (4 MiB) and 12 to 16 ms at 128 and
#: 256 (``benchmarks/RESULTS.md``).
STACK_CACHE_BYTES = 4 * 2**20
#: On CuPy, the share of the device's free memory, when a group starts, that
#: its stacks may be estimated to use: the rest is headroom for CuPy's memory
#: pool, the estimate's slack and other processes on the device.
DEVICE_SHARE = 0.5
SHARED_KEYS = (
    "activation",
    "optimizer",
    "batch_size",
    "epochs",
    "schedule",
    "patience",
    "metric",
)


@dataclass(frozen=True)
class Group:
    """Trials trained as one stack: indices into the sweep's trial list.

    Attributes:
        trials: The members in stack order.
        fixed: The stack is one the sweep planned at its start or one its
            checkpoints recorded, taken up again on a resume: it is neither
            split nor joined to others.
    """

    trials: tuple[int, ...]
    fixed: bool = False


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
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    batch = min(int(trial["batch_size"]), n_rows)
    activations = 3 * batch * sum(sizes)
    return itemsize * (n_rows * (n_features + 1) + 4 * params + activations)


def group_cost(trials: Sequence[Trial], group: Group) -> float:
    """Relative time of a group per training row, in "row-units".

    A step costs a fixed overhead plus ``members x batch x (padded units +
    MEMBER_UNITS)``; on NumPy the overhead (about 150 us, the arithmetic of
    some 4,000 row-units) is what batch-1 steps are made of, so there a
    5-wide group takes as long as a 100-wide one.
    """
    first = trials[group.trials[0]]
    widest = [
        max(col)
        for col in zip(*(trials[i]["hidden"] for i in group.trials), strict=True)
    ]
    batch = int(first["batch_size"])
    units = sum(widest) + MEMBER_UNITS
    per_step = STEP_OVERHEAD + len(group.trials) * batch * units
    return int(first["epochs"]) / batch * per_step


def _width_bands(
    trials: Sequence[Trial], order: list[int], backend: str
) -> list[list[int]]:
    """Splits trials sorted by width wherever :func:`_joins` says so."""
    bands: list[list[int]] = []
    for i in order:
        if bands and _joins(trials, bands[-1], i, backend):
            bands[-1].append(i)
        else:
            bands.append([i])
    return bands


def _joins(trials: Sequence[Trial], band: list[int], i: int, backend: str) -> bool:
    """Whether trial ``i``, no narrower than ``band``'s, joins its stack."""
    if backend == "cupy":
        first = trials[band[0]]["hidden"]
        widths = trials[i]["hidden"]
        return all(w <= PADDED_RATIO * f for w, f in zip(widths, first, strict=True))
    joined = group_cost(trials, Group((*band, i)))
    apart = group_cost(trials, Group(tuple(band))) + group_cost(trials, Group((i,)))
    return joined <= apart


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
    backend: str = "numpy",
    started: Mapping[int, int] | None = None,
    stacks: Mapping[int, tuple[int, ...]] | None = None,
    planned: Sequence[Sequence[int]] | None = None,
) -> list[Group]:
    """Groups the trials ``indices`` into stacks, costliest first.

    Args:
        trials: Every trial of the sweep.
        indices: The ones to run now (the rest finished before a resume).
        fuse: False gives one group per trial (``--no-fuse``).
        max_group: Most members per stack (``--max-group``).
        max_bytes: Most estimated bytes per stack (``--max-bytes``), or None.
        n_rows, n_features, itemsize: The training data, for the estimate.
        backend: ``numpy`` or ``cupy``: decides how much padding pays.
        started: Epochs a trial already trained (its checkpoint, on a
            resume); a stack's members go through their epochs together, so
            only trials at the same epoch share one.
        stacks: The stack a started trial's checkpoint was written in, as
            trial indices in stack order: where all its members are to run
            and at that one epoch, the stack is rebuilt as it was (see
            :attr:`MemberState.stack <mlp_backend.train.MemberState.stack>`).
        planned: The stacks the sweep planned at its start (``sweep.json``):
            trials that never trained go in them again, so that a resumed
            sweep trains them as the uninterrupted one would have.
    """
    assert max_group >= 1, "max_group must be positive"
    started = started or {}
    groups = _resumed_stacks(indices, started, stacks or {})
    rebuilt = {i for group in groups for i in group.trials}
    fresh = {i for i in indices if i not in rebuilt and not started.get(i)}
    for stack in planned or []:
        members = tuple(i for i in stack if i in fresh)
        if members:
            groups.append(Group(members, fixed=True))
            rebuilt.update(members)
    indices = [i for i in indices if i not in rebuilt]
    if not fuse:
        groups += [Group((i,)) for i in indices]
        return sorted(groups, key=lambda g: -group_cost(trials, g))
    by_key: dict[tuple, list[int]] = {}
    for i in indices:
        key = (*shared_key(trials[i]), started.get(i, 0))
        by_key.setdefault(key, []).append(i)
    for members in by_key.values():
        order = sorted(members, key=lambda i: (tuple(trials[i]["hidden"]), i))
        cache = STACK_CACHE_BYTES if backend == "numpy" else None
        for band in _width_bands(trials, order, backend):
            groups += _chunks(
                trials, band, max_group, max_bytes, cache, n_rows, n_features, itemsize
            )
    return sorted(groups, key=lambda g: -group_cost(trials, g))


def _resumed_stacks(
    indices: Sequence[int],
    started: Mapping[int, int],
    stacks: Mapping[int, tuple[int, ...]],
) -> list[Group]:
    """The recorded stacks whose members all go on from one epoch."""
    todo = set(indices)
    groups: list[Group] = []
    seen: set[tuple[int, ...]] = set()
    for i in indices:
        stack = stacks.get(i)
        if not stack or stack in seen or not started.get(i):
            continue
        whole = all(
            j in todo and stacks.get(j) == stack and started.get(j) == started[i]
            for j in stack
        )
        if whole and len(set(stack)) == len(stack):
            seen.add(stack)
            groups.append(Group(stack, fixed=True))
    return groups


def _chunks(
    trials: Sequence[Trial],
    band: list[int],
    max_group: int,
    max_bytes: int | None,
    cache_bytes: int | None,
    n_rows: int,
    n_features: int,
    itemsize: int,
) -> list[Group]:
    chunks: list[Group] = []
    current: list[int] = []
    for i in band:
        # Padding makes every member as costly as the band's widest so far.
        widest = dict(
            trials[i],
            hidden=tuple(
                max(col)
                for col in zip(
                    *(trials[j]["hidden"] for j in [*current, i]), strict=True
                )
            ),
        )
        members = len(current) + 1
        cost = member_bytes(widest, n_rows, n_features, itemsize) * members
        too_big = max_bytes is not None and cost > max_bytes
        if cache_bytes is not None:
            batch = int(widest["batch_size"])
            rows = min(batch, n_rows) if n_rows else batch
            layer = members * rows * max(widest["hidden"]) * itemsize
            too_big = too_big or layer > cache_bytes
        if current and (len(current) >= max_group or too_big):
            chunks.append(Group(tuple(sorted(current))))
            current = []
        current.append(i)
    if current:
        chunks.append(Group(tuple(sorted(current))))
    return chunks


def device_chunks(
    trials: Sequence[Trial],
    budget: int,
    n_rows: int,
    n_features: int,
    itemsize: int,
) -> list[list[int]]:
    """One group's trials cut into stacks whose estimated memory fits ``budget``.

    The worker's own cut on CuPy, where the budget is what its device has
    free (see :data:`DEVICE_SHARE`): the planner does not know the device a
    group will run on. A trial too big on its own is a stack by itself.

    Returns:
        Positions in ``trials``, one list per stack, in order.
    """
    band = list(range(len(trials)))
    chunks = _chunks(
        trials, band, len(band), budget, None, n_rows, n_features, itemsize
    )
    return [list(chunk.trials) for chunk in chunks]


def balance(
    trials: Sequence[Trial], groups: Sequence[Group], workers: int
) -> list[Group]:
    """Halves groups costlier than a worker's fair share, costliest first,
    where that lets the workers end sooner.

    A sweep ends when its busiest worker does, so a group above ``total /
    workers`` keeps one worker busy after the others finished. Halving it
    lets two workers share it, but each half pays the fixed cost of a step
    again: where that cost is most of a step (batch 1) the halves of a
    halved group are no cheaper than the group was, so a group is halved
    only where the estimated end of the workers, taking the groups longest
    first (:func:`finish_time`), comes sooner. The halves are the group's
    narrower and wider members, so each pads as little as it can. A fixed
    stack stays whole.
    """
    out = sorted(groups, key=lambda g: -group_cost(trials, g))
    if workers <= 1:
        return out
    share = sum(group_cost(trials, g) for g in out) / workers
    for group in out:
        if group.fixed or len(group.trials) < 2:
            continue
        if group_cost(trials, group) <= share:
            break
        by_width = sorted(group.trials, key=lambda i: (tuple(trials[i]["hidden"]), i))
        half = len(by_width) // 2
        halves = [
            Group(tuple(sorted(part))) for part in (by_width[:half], by_width[half:])
        ]
        split = [g for g in out if g is not group] + halves
        if finish_time(trials, split, workers) < finish_time(trials, out, workers):
            return balance(trials, split, workers)
    return out


def finish_time(
    trials: Sequence[Trial], groups: Sequence[Group], workers: int
) -> float:
    """When the last of ``workers`` ends, each taking the costliest group left
    as it frees up (as a pool does with groups submitted costliest first)."""
    ends = [0.0] * workers
    for group in sorted(groups, key=lambda g: -group_cost(trials, g)):
        ends[ends.index(min(ends))] += group_cost(trials, group)
    return max(ends)
