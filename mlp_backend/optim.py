"""Optimizers and learning-rate schedules for stacked parameters.

Every hyperparameter that may differ between the members of a stack
(learning rate, momentum, weight decay) is held as a device array of shape
``(m, 1, 1)``, so one update serves all members. Values enter as Python
floats: a NumPy float64 scalar would otherwise promote float32 parameters to
float64.

L2 weight decay adds ``weight_decay * W`` to the gradient of each weight
matrix (not of the biases), before momentum or Adam's moments see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlp_backend.backend import Backend
from mlp_backend.errors import UsageError
from mlp_backend.model import take_members

Array = Any

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
#: State arrays per parameter that each optimizer keeps (velocity, moments).
SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}
SCHEDULES = ("none", "step", "cosine")
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


class Optimizer:
    """One optimizer over the ``[W0, b0, W1, b1, ...]`` list of a stack.

    Args:
        backend: Where the state lives.
        kind: One of ``sgd``, ``momentum``, ``nesterov``, ``adam``.
        lr: Learning rate per member.
        momentum: Momentum coefficient per member (momentum and nesterov).
        weight_decay: L2 coefficient per member.
    """

    def __init__(
        self,
        backend: Backend,
        kind: str,
        lr: Sequence[float],
        momentum: Sequence[float],
        weight_decay: Sequence[float],
    ) -> None:
        if kind not in OPTIMIZERS:
            raise UsageError(
                f"--optimizer: unknown optimizer {kind!r}; "
                f"expected one of {', '.join(OPTIMIZERS)}"
            )
        self.backend = backend
        self.kind = kind
        self.lr = self._vector(lr)
        self.momentum = self._vector(momentum)
        self.weight_decay = self._vector(weight_decay)
        self.decays = any(float(w) != 0.0 for w in weight_decay)
        self.t = 0
        self.state: list[list[Array]] = []

    def _vector(self, values: Sequence[float]) -> Array:
        host = np.array([float(v) for v in values]).reshape(-1, 1, 1)
        return self.backend.asarray(host)

    def step(
        self, params: list[Array], grads: list[Array], factor: float
    ) -> list[Array]:
        """Returns the updated parameters.

        Args:
            params: ``[W0, b0, ...]`` with a leading member axis.
            grads: Their gradients, same shapes.
            factor: The schedule's multiplier of the learning rate this epoch.
        """
        xp = self.backend.xp
        if not self.state:
            count = 2 if self.kind == "adam" else 1
            self.state = [[xp.zeros_like(p) for p in params] for _ in range(count)]
        self.t += 1
        lr = self.lr * float(factor)
        out = []
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            if self.decays and k % 2 == 0:
                g = g + self.weight_decay * p
            out.append(p - self._direction(k, g, lr))
        return out

    def _direction(self, k: int, g: Array, lr: Array) -> Array:
        xp = self.backend.xp
        if self.kind == "sgd":
            return lr * g
        if self.kind in ("momentum", "nesterov"):
            v = self.momentum * self.state[0][k] + g
            self.state[0][k] = v
            if self.kind == "nesterov":
                return lr * (g + self.momentum * v)
            return lr * v

        # Adam: moment estimates, bias-corrected for the first steps.
        m1 = ADAM_BETA1 * self.state[0][k] + (1.0 - ADAM_BETA1) * g
        m2 = ADAM_BETA2 * self.state[1][k] + (1.0 - ADAM_BETA2) * (g * g)
        self.state[0][k], self.state[1][k] = m1, m2
        c1 = 1.0 - ADAM_BETA1**self.t
        c2 = 1.0 - ADAM_BETA2**self.t
        return (lr / c1) * m1 / (xp.sqrt(m2 / c2) + ADAM_EPS)

    def select(self, keep: Sequence[int]) -> None:
        """Keeps only the members ``keep`` (after a member stops training)."""
        vectors = take_members(
            self.backend, [self.lr, self.momentum, self.weight_decay], keep
        )
        self.lr, self.momentum, self.weight_decay = vectors
        self.state = [take_members(self.backend, group, keep) for group in self.state]


def schedule_factor(
    schedule: str, epoch: int, epochs: int, step_size: int = 10, gamma: float = 0.5
) -> float:
    """The learning-rate multiplier for a 0-based ``epoch``.

    ``step`` multiplies by ``gamma`` every ``step_size`` epochs; ``cosine``
    anneals from 1 towards 0 over ``epochs``.
    """
    if schedule == "none":
        return 1.0
    if schedule == "step":
        return gamma ** (epoch // step_size)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise UsageError(
        f"--schedule: unknown schedule {schedule!r}; "
        f"expected one of {', '.join(SCHEDULES)}"
    )
