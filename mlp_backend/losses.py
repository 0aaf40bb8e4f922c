"""Output layers and their losses, each value beside its gradient.

Every loss here is computed from the output pre-activation ``z`` (the logits)
rather than from probabilities, which is what keeps it finite: log(0) never
happens. Shapes: ``z`` and the targets ``y`` are ``(m, batch, k)`` with a
leading member axis ``m``; each loss returns the per-member mean over the
batch, shape ``(m,)``, and ``delta`` = dL/dz of that mean, shape like ``z``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mlp_backend.activations import sigmoid
from mlp_backend.errors import UsageError

Array = Any


def log_sigmoid(xp: ModuleType, z: Array) -> Array:
    """log(sigmoid(z)) = -log(1 + exp(-z)), stable for any finite ``z``."""
    return xp.minimum(z, 0.0) - xp.log1p(xp.exp(-xp.abs(z)))


def binary_cross_entropy_value(xp: ModuleType, z: Array, y: Array) -> Array:
    """Mean binary cross-entropy of one logit per row against 0/1 targets.

    L = -[y log s(z) + (1 - y) log(1 - s(z))]
      = max(z, 0) - z y + log(1 + exp(-|z|))     (the log-sum-exp form)
    """
    batch = z.shape[1]
    per_row = xp.maximum(z, 0.0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))
    # Dividing before summing keeps the sum finite when every row's loss is huge.
    return xp.sum(per_row / batch, axis=(1, 2))


def binary_cross_entropy(xp: ModuleType, z: Array, y: Array) -> tuple[Array, Array]:
    """The mean binary cross-entropy and dL/dz = (s(z) - y) / batch."""
    delta = (sigmoid(xp, z) - y) / z.shape[1]
    return binary_cross_entropy_value(xp, z, y), delta


def log_softmax(xp: ModuleType, z: Array) -> Array:
    """log softmax over the last axis; shifting by the max keeps exp <= 1.

    Logits are first clipped to half the dtype's range so that ``z - max``
    cannot overflow; no finite logit short of that bound changes.
    """
    half = float(xp.finfo(z.dtype).max) / 2.0
    z = xp.minimum(xp.maximum(z, -half), half)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def softmax(xp: ModuleType, z: Array) -> Array:
    return xp.exp(log_softmax(xp, z))


def _cross_entropy(xp: ModuleType, log_p: Array, y: Array) -> Array:
    return -xp.sum((y * log_p) / log_p.shape[1], axis=(1, 2))


def softmax_cross_entropy_value(xp: ModuleType, z: Array, y: Array) -> Array:
    """Mean categorical cross-entropy of ``k`` logits against one-hot targets.

    L = -sum_k y_k log softmax(z)_k.
    """
    return _cross_entropy(xp, log_softmax(xp, z), y)


def softmax_cross_entropy(xp: ModuleType, z: Array, y: Array) -> tuple[Array, Array]:
    """The mean categorical cross-entropy and dL/dz = (softmax(z) - y) / batch."""
    log_p = log_softmax(xp, z)
    delta = (xp.exp(log_p) - y) / z.shape[1]
    return _cross_entropy(xp, log_p, y), delta


def _mean_square(xp: ModuleType, diff: Array) -> Array:
    return xp.sum(diff * diff, axis=(1, 2)) / (diff.shape[1] * diff.shape[2])


def mean_squared_error_value(xp: ModuleType, z: Array, y: Array) -> Array:
    """Mean over rows and outputs of (z - y)^2."""
    return _mean_square(xp, z - y)


def mean_squared_error(xp: ModuleType, z: Array, y: Array) -> tuple[Array, Array]:
    """The mean squared error and dL/dz = 2 (z - y) / (batch k)."""
    diff = z - y
    delta = (2.0 / (z.shape[1] * z.shape[2])) * diff
    return _mean_square(xp, diff), delta


def identity(xp: ModuleType, z: Array) -> Array:
    return z


@dataclass(frozen=True)
class Loss:
    """An output layer: its loss with gradient, the loss alone (for
    evaluation, where the gradient would be wasted work), and its output
    function."""

    name: str
    value_and_delta: Callable[[ModuleType, Array, Array], tuple[Array, Array]]
    value: Callable[[ModuleType, Array, Array], Array]
    output: Callable[[ModuleType, Array], Array]


LOSSES: dict[str, Loss] = {
    "binary_cross_entropy": Loss(
        "binary_cross_entropy",
        binary_cross_entropy,
        binary_cross_entropy_value,
        sigmoid,
    ),
    "softmax_cross_entropy": Loss(
        "softmax_cross_entropy",
        softmax_cross_entropy,
        softmax_cross_entropy_value,
        softmax,
    ),
    "mean_squared_error": Loss(
        "mean_squared_error", mean_squared_error, mean_squared_error_value, identity
    ),
}

TASK_LOSS = {
    "binary": "binary_cross_entropy",
    "multiclass": "softmax_cross_entropy",
    "regression": "mean_squared_error",
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise UsageError(
            f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}"
        ) from None
