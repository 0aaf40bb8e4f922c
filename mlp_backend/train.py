"""The training loop: mini-batch epochs over a stack of members.

One loop serves a single run (a stack of one) and a fused sweep group. Each
member keeps its own seed streams, so a member trained in a stack sees the
same initial weights and the same batch order as when trained alone.

Per epoch there is one host-to-device copy (the members' batch orders) and
one device-to-host copy of the epoch's figures; inside the batch loop nothing
crosses and nothing waits for the device. Divergence is therefore detected
once per epoch: a member whose loss or weights stopped being finite is put
back to its weights at the start of that epoch (its last finite ones), and the
first bad step is found from the per-step losses recorded on the device.

The steps themselves run through :func:`mlp_backend.fast.make_step`: in place
over one flat parameter buffer on NumPy and CuPy, functionally through the
array API elsewhere. The in-place step changes the parameters under the
arrays' feet, so the epoch-start weights (for the rollback) and the best
weights are copies, taken once per epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mlp_backend import metrics
from mlp_backend.backend import Backend
from mlp_backend.errors import UsageError
from mlp_backend.fast import make_step
from mlp_backend.model import Shape, Stack, take_members
from mlp_backend.optim import Optimizer, schedule_factor
from mlp_backend.widths import widths_text

logger = logging.getLogger(__name__)

Array = Any

MONITORS = {
    "val_loss": "min",
    "val_accuracy": "max",
    "val_f1": "max",
    "val_roc_auc": "max",
    "val_mse": "min",
    "val_r2": "max",
}


@dataclass(frozen=True)
class Member:
    """What may differ between the members of one stack."""

    hidden: tuple[int, ...]
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """What every member of one stack shares."""

    activation: str = "relu"
    optimizer: str = "adam"
    batch_size: int = 256
    epochs: int = 60
    schedule: str = "none"
    step_size: int = 10
    gamma: float = 0.5
    patience: int = 10
    monitor: str = "val_loss"

    def check(self) -> None:
        """Rejects values that cannot train, naming the option.

        Raises:
            UsageError: The first invalid value found.
        """
        if self.batch_size < 1:
            raise UsageError(f"--batch-size: must be at least 1, got {self.batch_size}")
        if self.epochs < 1:
            raise UsageError(f"--epochs: must be at least 1, got {self.epochs}")
        if self.patience < 0:
            raise UsageError(
                f"--patience: must be 0 (off) or more, got {self.patience}"
            )
        if self.step_size < 1:
            raise UsageError(f"--step-size: must be at least 1, got {self.step_size}")
        if self.monitor not in MONITORS:
            raise UsageError(
                f"--metric: expected one of {', '.join(MONITORS)}, got {self.monitor!r}"
            )


def check_metric(metric: str, task: str, name: str = "--metric") -> None:
    """Rejects a validation metric that the task does not have.

    Raises:
        UsageError: Naming ``name`` (the option, or a spec file's key) and
            the task.
    """
    regression = metric in ("val_mse", "val_r2")
    if regression and task != "regression":
        raise UsageError(f"{name}: {metric} is for regression tasks")
    if metric not in ("val_loss", "val_mse", "val_r2") and task == "regression":
        raise UsageError(f"{name}: {metric} is for classification tasks")
    if task == "multiclass" and metric == "val_roc_auc":
        raise UsageError(f"{name}: val_roc_auc is defined for binary tasks only")


def check_member(member: Member) -> None:
    """Rejects member hyperparameters that cannot train, naming the option."""
    if not member.hidden or any(w < 1 for w in member.hidden):
        shown = widths_text(member.hidden)
        raise UsageError(f"--hidden: widths must be positive integers, got {shown!r}")
    if not math.isfinite(member.lr) or member.lr <= 0:
        raise UsageError(f"--lr: must be a positive number, got {member.lr}")
    if not 0.0 <= member.momentum < 1.0:
        raise UsageError(f"--momentum: must be in [0, 1), got {member.momentum}")
    if member.seed < 0:
        raise UsageError(f"--seed: must be 0 or more, got {member.seed}")
    if not math.isfinite(member.weight_decay) or member.weight_decay < 0:
        raise UsageError(
            f"--weight-decay: must be 0 or more, got {member.weight_decay}"
        )


def memory_needed(
    sizes: Sequence[int],
    members: int,
    batch: int,
    n_train: int,
    n_val: int,
    itemsize: int,
) -> int:
    """A rough upper bound of the bytes a stack's training holds.

    Each parameter has up to eight copies (the weights, their gradient, two
    optimizer moments, the best and the epoch's first weights, two work
    buffers); each unit five arrays of a batch's rows in the forward and
    backward passes, and three of a validation block's (at most 1024 rows);
    and the data: the epoch's rows in batch order, twice, and the validation
    rows with their logits.
    """
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    units = sum(sizes[1:])
    per_member = (
        8 * params
        + units * (5 * batch + 3 * min(n_val, 1024))
        + (n_train + n_val) * sizes[-1]
    )
    data = 2 * n_train * (sizes[0] + 1) + n_val * (sizes[0] + 1)
    return itemsize * (members * per_member + data)


def check_memory(
    backend: Backend,
    sizes: Sequence[int],
    members: int,
    batch: int,
    n_train: int,
    n_val: int,
) -> None:
    """Refuses a stack that needs more memory than is free, before allocating
    any of it: past that the system swaps or kills the process (a width of
    10^8 took a 24 GiB machine's memory for two minutes).

    Raises:
        UsageError: Saying how much is needed and how much is free.
    """
    free = backend.free_memory()
    itemsize = 8 if backend.dtype_name == "float64" else 4
    needed = memory_needed(sizes, members, batch, n_train, n_val, itemsize)
    if free is not None and needed > free:
        layers = ", ".join(str(w) for w in sizes[1:-1])
        who = "a network" if members == 1 else f"{members} networks"
        raise UsageError(
            f"not enough memory: training {who} of hidden layers ({layers}) at "
            f"batch {batch} needs about {needed / 2**30:.1f} GiB, and "
            f"{free / 2**30:.1f} GiB are free; use fewer or narrower layers, or "
            "a smaller batch"
        )


def seed_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent host generators for a member's initial weights and batch order."""
    init, shuffle = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(shuffle)


@dataclass
class DeviceData:
    """Training and validation data on the device, copied there once.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        X_train: ``(n, features)``; T_train: targets ``(n, outputs)``.
        X_val: ``(1, n_val, features)``; T_val: ``(1, n_val, outputs)``.
        y_val: Validation class indices ``(n_val,)`` (targets for regression).
    """

    task: str
    X_train: Array
    T_train: Array
    X_val: Array
    T_val: Array
    y_val: Array

    @property
    def n_outputs(self) -> int:
        return int(self.T_train.shape[1])


def targets(y: np.ndarray, task: str, n_classes: int) -> np.ndarray:
    """Loss targets from class indices (or values): ``(n, outputs)`` floats."""
    if task == "binary":
        return y.astype(np.float64).reshape(-1, 1)
    if task == "multiclass":
        return np.eye(n_classes)[y]
    return y.astype(np.float64).reshape(-1, 1)


def to_device(
    backend: Backend,
    task: str,
    n_classes: int,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
) -> DeviceData:
    """Moves host ``(X, y)`` pairs to the device: the run's one data transfer."""
    (X, y), (Xv, yv) = train, val
    index_dtype = backend.xp.int64 if task != "regression" else None
    return DeviceData(
        task=task,
        X_train=backend.asarray(X),
        T_train=backend.asarray(targets(y, task, n_classes)),
        X_val=backend.asarray(Xv[None]),
        T_val=backend.asarray(targets(yv, task, n_classes)[None]),
        y_val=backend.asarray(yv, dtype=index_dtype),
    )


def validation_metrics(
    backend: Backend,
    task: str,
    y: Array,
    outputs: Array,
    rows: Sequence[int],
    logits: Array | None = None,
) -> list[dict[str, float]]:
    """The per-epoch validation figures of some members, as Python floats.

    All figures of all members come to the host in one copy: on CuPy, a copy
    per figure and member would wait for the device each time.

    Args:
        y: Class indices (or targets, for regression) ``(n,)``.
        outputs: The stack's probabilities or values ``(m, n, outputs)``.
        rows: The members (rows of ``outputs``) to score.
        logits: The stack's logits ``(m, n, outputs)``, which the binary ROC
            ranks (see :func:`metrics.binary_rows`); None ranks ``outputs``.

    Returns:
        One dict of figures per entry of ``rows``.
    """
    xp = backend.xp
    if not rows:
        return []
    if task == "binary":
        # All members at once: one sort for every ROC rather than one each.
        index = backend.asarray(np.asarray(rows, dtype=np.int64))
        scores = None if logits is None else xp.take(logits[..., 0], index, axis=0)
        stacked = metrics.binary_rows(
            y, xp.take(outputs[..., 0], index, axis=0), scores=scores
        )
        names = [f"val_{name}" for name in stacked]
        flat = xp.stack([xp.astype(v, xp.float64) for v in stacked.values()], axis=1)
    else:
        figures = [_figures(xp, task, y, outputs[i, ...]) for i in rows]
        names = list(figures[0])
        flat = xp.stack([xp.astype(f[k], xp.float64) for f in figures for k in names])
    host = backend.to_host(flat).reshape(len(rows), len(names))
    return [dict(zip(names, (float(v) for v in row), strict=True)) for row in host]


def _figures(xp: Any, task: str, y: Array, output: Array) -> dict[str, Array]:
    """One member's multiclass or regression figures as 0-d arrays.

    ``output`` is ``(n, outputs)``; binary figures come from
    :func:`metrics.binary_rows` for all members at once.
    """
    if task == "multiclass":
        pred = xp.argmax(output, axis=1)
        return {
            "val_accuracy": metrics.accuracy(y, pred),
            "val_f1": metrics.macro_f1(y, pred, int(output.shape[1])),
        }
    return {
        "val_mse": metrics.mse(y, output[:, 0]),
        "val_r2": metrics.r2(y, output[:, 0]),
    }


@dataclass
class MemberResult:
    """How one member ended and the weights it keeps (on the host)."""

    state: str
    epochs_run: int
    best_epoch: int
    best_value: float | None
    params: list[np.ndarray]
    reason: str | None = None
    step: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class MemberState:
    """Where one member's training stands after an epoch: enough to go on.

    A member resumed from its state continues exactly as if it had not
    stopped: same weights, optimizer moments and step count, the batch-order
    stream where it was, and the early-stopping record. Arrays are on the
    host at the member's true widths.

    Attributes:
        epoch: Epochs completed.
        steps: The optimizer's step count (Adam's bias correction needs it).
        params: ``[W0, b0, ...]`` now.
        best: ``[W0, b0, ...]`` at the best epoch so far (``params`` if none).
        moments: The optimizer's state, one parameter list per slot.
        shuffle: The batch-order generator's ``bit_generator.state``.
        best_value: The best monitored value so far, signed so lower is
            better (infinite before the first finite one).
        best_epoch: Its epoch, 0 for none.
        waited: Epochs since the last improvement.
        history: The epoch records so far.
        stack: The names of the members trained in one stack with it at
            this epoch, itself included, in the stack's order (empty when
            unknown). A resume trains the same stack again: a member's
            float numbers can depend on its stack (vectorised and scalar
            loops round transcendental functions differently).
        seconds: Training time up to this state, over every process that
            trained the member (a resumed run's summary counts them all).
    """

    epoch: int
    steps: int
    params: list[np.ndarray]
    best: list[np.ndarray]
    moments: list[list[np.ndarray]]
    shuffle: dict[str, Any]
    best_value: float
    best_epoch: int
    waited: int
    history: list[dict[str, Any]]
    stack: tuple[str, ...] = ()
    seconds: float = 0.0


Checkpoint = Callable[[int, MemberState], None]


class Callback(Protocol):
    def on_epoch(self, member: int, record: dict[str, Any]) -> None: ...

    def on_member_end(self, member: int, result: MemberResult) -> None: ...


Pruner = Callable[[int, dict[int, float]], Iterable[int]]


@dataclass
class _Tracker:
    """Host-side early-stopping state of one member."""

    sign: float
    best: float = math.inf
    best_epoch: int = 0
    waited: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


#: The share of a sweep's time that checkpoints may take. A checkpoint of 4
#: members costs about 1.1 ms and a sweep's small stacks train an epoch in
#: 10 to 30 ms, so one every epoch took 5% of the 16-configuration grid's
#: training time (measured); epochs longer than 50 checkpoints get one each.
CHECKPOINT_SHARE = 0.02


class Trainer:
    """Trains members of one shape together on one data set.

    Args:
        backend: Where to train.
        config: What the members share.
        members: Per-member hyperparameters; hidden layer counts must agree.
        data: From :func:`to_device`.
        callbacks: Told of every epoch record and every member's end.
        should_stop: Polled after every batch; True ends all members as
            ``stopped`` after the batch in flight.
        pruner: Called after each epoch with the monitored value of each
            running member; returns the members to stop as ``pruned``.
        checkpoint: Called after each epoch with the state of each member
            that trains on, so that a killed run can be resumed from it.
        resume: Per member, the state to go on from (all at one epoch), or
            None to start afresh.
        checkpoint_share: When given, checkpoints are skipped after epochs
            so short that writing one every epoch would take more than this
            share of the time (see :data:`CHECKPOINT_SHARE`); a resume then
            goes on from the last one written. An epoch after which members
            leave the stack always gets one, so that the stack a resume
            rebuilds is the one that trained on.
        names: A name per member for :attr:`MemberState.stack`; the member
            indices when None.
    """

    def __init__(
        self,
        backend: Backend,
        config: TrainConfig,
        members: Sequence[Member],
        data: DeviceData,
        callbacks: Sequence[Callback] = (),
        should_stop: Callable[[], bool] = lambda: False,
        pruner: Pruner | None = None,
        checkpoint: Checkpoint | None = None,
        resume: Sequence[MemberState] | None = None,
        checkpoint_share: float | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        config.check()
        for m in members:
            check_member(m)
        if len({len(m.hidden) for m in members}) != 1:
            raise UsageError("members of one stack must have the same number of layers")
        if resume is not None and (
            len(resume) != len(members) or len({s.epoch for s in resume}) != 1
        ):
            raise ValueError("resume needs one state per member, all at one epoch")
        self.checkpoint = checkpoint
        self.checkpoint_share = checkpoint_share
        self.names = (
            [str(j) for j in range(len(members))] if names is None else list(names)
        )
        # How the log calls a member that ends: by its name (a sweep's trial),
        # else by its index in the stack.
        self._who = (
            [f"member {j}" for j in range(len(members))]
            if names is None
            else self.names
        )
        if len(self.names) != len(members):
            raise ValueError("names needs one name per member")
        self.resume = list(resume) if resume is not None else None
        # When this process's training began (set by run), for
        # MemberState.seconds.
        self._began = 0.0
        self.backend = backend
        self.config = config
        self.members = list(members)
        self.data = data
        self.callbacks = list(callbacks)
        self.should_stop = should_stop
        self.pruner = pruner
        self.loss_name = {
            "binary": "binary_cross_entropy",
            "multiclass": "softmax_cross_entropy",
            "regression": "mean_squared_error",
        }[data.task]

    def _shape(self) -> Shape:
        widest = tuple(
            max(col) for col in zip(*(m.hidden for m in self.members), strict=True)
        )
        n_features = int(self.data.X_train.shape[1])
        return Shape(
            n_features,
            widest,
            self.data.n_outputs,
            self.config.activation,
            self.loss_name,
        )

    def run(self) -> list[MemberResult]:
        """Trains until every member has finished, stopped or diverged.

        Raises:
            UsageError: The stack would not fit in the memory that is free.
        """
        shape = self._shape()
        rows = self._batch_rows()
        check_memory(
            self.backend,
            shape.sizes,
            len(self.members),
            rows,
            int(self.data.X_train.shape[0]),
            int(self.data.X_val.shape[1]),
        )
        widest = max(
            a * b for a, b in zip(shape.sizes[:-1], shape.sizes[1:], strict=True)
        )
        with self.backend.training_scope(len(self.members) * rows * widest):
            return self._run()

    def _batch_rows(self) -> int:
        """Rows per batch: a batch size past the training rows is one batch of
        them all (and sizes no buffer by the number asked for)."""
        return min(self.config.batch_size, int(self.data.X_train.shape[0]))

    def _run(self) -> list[MemberResult]:
        xp = self.backend.xp
        cfg = self.config
        # Members with one seed share one batch order: one shuffle stream per
        # seed, and an epoch whose members all share it gathers the rows once.
        inits = []
        shuffles: dict[int, np.random.Generator] = {}
        for m in self.members:
            init, shuffle = seed_streams(m.seed)
            inits.append(init)
            shuffles.setdefault(m.seed, shuffle)
        optimizer = Optimizer(
            self.backend,
            cfg.optimizer,
            [m.lr for m in self.members],
            [m.momentum for m in self.members],
            [m.weight_decay for m in self.members],
        )
        sign = 1.0 if MONITORS[cfg.monitor] == "min" else -1.0
        trackers = [_Tracker(sign) for _ in self.members]
        shape = self._shape()
        if self.resume is None:
            first = 1
            stack = Stack.initialise(
                self.backend, shape, [m.hidden for m in self.members], inits
            )
        else:
            first = self.resume[0].epoch + 1
            stack = Stack.from_host(
                self.backend, shape, [s.params for s in self.resume]
            )
            self._restore(optimizer, trackers, shuffles, shape)
        results: dict[int, MemberResult] = {}
        active = list(range(len(self.members)))
        self._began = time.perf_counter()
        stepper = make_step(stack, optimizer)
        if self.resume is None:
            best = stepper.snapshot()
        else:
            best = Stack.from_host(
                self.backend, shape, [s.best for s in self.resume]
            ).params
        n = int(self.data.X_train.shape[0])
        batch = self._batch_rows()
        starts = list(range(0, n, batch))
        sizes = self.backend.asarray(
            np.array([min(batch, n - s) for s in starts], dtype=np.float64)
        )

        # When the next checkpoint is due: at once, and with a share, after
        # training for 1 / share times as long as the last one took.
        due = time.perf_counter()
        for epoch in range(first, cfg.epochs + 1):
            tick = time.perf_counter()
            factor = schedule_factor(
                cfg.schedule, epoch - 1, cfg.epochs, cfg.step_size, cfg.gamma
            )
            start_params = stepper.snapshot()

            # Each seed's batch order, drawn on the host, sent in one copy; X
            # and T have a member axis of 1 when every member shares the order.
            seeds = list(dict.fromkeys(self.members[j].seed for j in active))
            orders = {seed: shuffles[seed].permutation(n) for seed in seeds}
            if len(seeds) == 1:
                order = orders[seeds[0]][None, :]
            else:
                order = np.stack([orders[self.members[j].seed] for j in active])
            index = self.backend.asarray(order.reshape(-1))
            m = len(active)
            X = xp.reshape(
                xp.take(self.data.X_train, index, axis=0), (len(order), n, -1)
            )
            T = xp.reshape(
                xp.take(self.data.T_train, index, axis=0), (len(order), n, -1)
            )

            done = 0
            stopped = False
            for s in starts:
                # The standard leaves slices past the end unspecified: stop at n.
                e = min(s + batch, n)
                stepper.step(X, T, s, e, factor)
                done += 1
                if self.should_stop():
                    stopped = True
                    break

            # Epoch figures: one copy back to the host.
            losses = stepper.epoch_losses(T, batch, done)
            weights = sizes[:done]
            train_loss = xp.sum(losses * weights[:, None], axis=0) / xp.sum(weights)
            finite = xp.isfinite(train_loss)
            for p in stack.params:
                finite = finite & xp.all(xp.isfinite(p), axis=(1, 2))
            train_loss_host = self.backend.to_host(train_loss)
            finite_host = self.backend.to_host(finite)
            seconds = time.perf_counter() - tick

            ended: dict[int, MemberResult] = {}
            if not bool(np.all(finite_host)):
                step_host = self.backend.to_host(losses)
                for i in np.flatnonzero(~finite_host):
                    j = active[i]
                    bad = np.flatnonzero(~np.isfinite(step_host[:, i]))
                    step = int(bad[0]) + 1 if bad.size else done
                    params = Stack(
                        self.backend, stack.shape, stack.widths, start_params
                    )
                    ended[i] = self._ended(
                        j,
                        "diverged",
                        epoch,
                        trackers[j],
                        params.member_to_host(i),
                        f"loss or weights stopped being finite at epoch {epoch}, "
                        f"step {step}",
                        step,
                    )

            # An epoch that a stop request cut short is not recorded: its
            # figures would pass for a whole epoch's, and a resume goes on
            # from the checkpoint of the last whole one anyway.
            cut_short = stopped and done < len(starts)
            monitored: dict[int, float] = {}
            if not cut_short:
                outputs_z = stepper.logits(self.data.X_val)
                val_loss = stack.loss.value(xp, outputs_z, self.data.T_val)
                val_loss_host = self.backend.to_host(val_loss)
                outputs = stack.loss.output(xp, outputs_z)
                scored = [i for i in range(m) if i not in ended]
                figures = dict(
                    zip(
                        scored,
                        validation_metrics(
                            self.backend,
                            self.data.task,
                            self.data.y_val,
                            outputs,
                            scored,
                            outputs_z,
                        ),
                        strict=True,
                    )
                )
                improved = np.zeros(m, dtype=bool)
                for i, j in enumerate(active):
                    if i in ended:
                        continue
                    record = {
                        "epoch": epoch,
                        "train_loss": float(train_loss_host[i]),
                        "val_loss": float(val_loss_host[i]),
                        **figures[i],
                        "lr": float(self.members[j].lr) * factor,
                        "seconds": seconds,
                    }
                    tracker = trackers[j]
                    tracker.history.append(record)
                    value = record[cfg.monitor]
                    monitored[j] = value
                    if math.isfinite(value) and sign * value < tracker.best:
                        tracker.best, tracker.best_epoch, tracker.waited = (
                            sign * value,
                            epoch,
                            0,
                        )
                        improved[i] = True
                    else:
                        tracker.waited += 1
                    for cb in self.callbacks:
                        cb.on_epoch(j, record)

                if bool(np.any(improved)):
                    mask = self.backend.asarray(improved)[:, None, None]
                    best = [
                        xp.where(mask, p, b)
                        for p, b in zip(stack.params, best, strict=True)
                    ]

            # Who stops now: stop request, patience, pruning, the last epoch.
            pruned = set(self.pruner(epoch, monitored)) if self.pruner else set()
            for i, j in enumerate(active):
                if i in ended:
                    continue
                tracker = trackers[j]
                if cut_short:
                    state, reason = (
                        "stopped",
                        (
                            f"stop requested during epoch {epoch} (after {done} of "
                            f"{len(starts)} steps; that epoch is not recorded)"
                        ),
                    )
                elif stopped:
                    state, reason = "stopped", f"stop requested during epoch {epoch}"
                elif j in pruned:
                    state, reason = "pruned", f"pruned after epoch {epoch}"
                elif epoch == cfg.epochs:
                    # The last epoch ends the run even where patience ran
                    # out with it: that is no early stop.
                    state, reason = "finished", None
                elif cfg.patience and tracker.waited >= cfg.patience:
                    state, reason = (
                        "finished",
                        (
                            f"early stop at epoch {epoch}: no better {cfg.monitor} "
                            f"for {epochs_text(cfg.patience)}"
                        ),
                    )
                else:
                    continue
                # The weights of the best whole epoch; of none yet, those the
                # last whole epoch left (for a stop in epoch 1, the first ones).
                if tracker.best_epoch:
                    source = best
                else:
                    source = start_params if cut_short else stack.params
                kept = Stack(self.backend, stack.shape, stack.widths, source)
                ended[i] = self._ended(
                    j,
                    state,
                    epoch - 1 if cut_short else epoch,
                    tracker,
                    kept.member_to_host(i),
                    reason,
                )

            for i, result in ended.items():
                results[active[i]] = result
            if ended:
                keep = [i for i in range(m) if i not in ended]
                if not keep:
                    break
                stack = stack.select(keep)
                best = take_members(self.backend, best, keep)
                optimizer.select(keep)
                stepper = make_step(stack, optimizer)
                active = [active[i] for i in keep]
            if self.checkpoint is not None and (ended or time.perf_counter() >= due):
                began = time.perf_counter()
                together = tuple(self.names[k] for k in active)
                for i, j in enumerate(active):
                    state = self._state(
                        i, j, epoch, stack, best, optimizer, trackers, shuffles
                    )
                    state.stack = together
                    self.checkpoint(j, state)
                if self.checkpoint_share is not None:
                    now = time.perf_counter()
                    due = now + (now - began) / self.checkpoint_share
        return [results[j] for j in range(len(self.members))]

    def _restore(
        self,
        optimizer: Optimizer,
        trackers: list[_Tracker],
        shuffles: dict[int, np.random.Generator],
        shape: Shape,
    ) -> None:
        """Puts the optimizer, trackers and streams where the states left them."""
        assert self.resume is not None
        first = self.resume[0]
        optimizer.t = first.steps
        optimizer.state = [
            Stack.from_host(
                self.backend, shape, [s.moments[g] for s in self.resume]
            ).params
            for g in range(len(first.moments))
        ]
        for member, state, tracker in zip(
            self.members, self.resume, trackers, strict=True
        ):
            shuffles[member.seed].bit_generator.state = state.shuffle
            tracker.best, tracker.best_epoch = state.best_value, state.best_epoch
            tracker.waited = state.waited
            tracker.history = list(state.history)

    def _state(
        self,
        i: int,
        j: int,
        epoch: int,
        stack: Stack,
        best: list[Array],
        optimizer: Optimizer,
        trackers: list[_Tracker],
        shuffles: dict[int, np.random.Generator],
    ) -> MemberState:
        """Member ``j`` (row ``i`` of the stack) as :class:`MemberState`."""

        def host(arrays: list[Array]) -> list[np.ndarray]:
            return Stack(
                self.backend, stack.shape, stack.widths, arrays
            ).member_to_host(i)

        tracker = trackers[j]
        before = self.resume[j].seconds if self.resume is not None else 0.0
        return MemberState(
            epoch=epoch,
            steps=optimizer.t,
            params=host(stack.params),
            best=host(best),
            moments=[host(slot) for slot in optimizer.state],
            shuffle=shuffles[self.members[j].seed].bit_generator.state,
            best_value=tracker.best,
            best_epoch=tracker.best_epoch,
            waited=tracker.waited,
            history=list(tracker.history),
            seconds=before + time.perf_counter() - self._began,
        )

    def _ended(
        self,
        j: int,
        state: str,
        epoch: int,
        tracker: _Tracker,
        params: list[np.ndarray],
        reason: str | None,
        step: int | None = None,
    ) -> MemberResult:
        best_value = tracker.sign * tracker.best if tracker.best_epoch else None
        result = MemberResult(
            state,
            epoch,
            tracker.best_epoch,
            best_value,
            params,
            reason,
            step,
            tracker.history,
        )
        if reason:
            # A member's end is its caller's to report (the train command's
            # last lines, a sweep's line per trial); at INFO it came out twice.
            logger.debug("%s: %s", self._who[j], reason)
        for cb in self.callbacks:
            cb.on_member_end(j, result)
        return result


def epochs_text(count: int) -> str:
    """``1 epoch``, ``2 epochs``: for messages."""
    return "1 epoch" if count == 1 else f"{count} epochs"
