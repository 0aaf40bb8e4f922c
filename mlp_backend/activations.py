"""Hidden-layer activations, each forward beside its derivative.

Notation (used across the package): pre-activation ``z``, activation
``a = f(z)``. Each derivative ``df(z, a)`` returns da/dz element-wise and may
use whichever of ``z`` and ``a`` is cheaper, since the forward pass keeps both.
All functions take and return arrays of any shape in the namespace ``xp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mlp_backend.errors import UsageError

Array = Any

LEAKY_SLOPE = 0.01


def sigmoid(xp: ModuleType, z: Array) -> Array:
    """Logistic function without overflow for any finite ``z``.

    exp is only ever taken of -|z| <= 0, so it lies in (0, 1]: no overflow,
    and both branches of ``where`` are finite.
    """
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def d_sigmoid(xp: ModuleType, z: Array, a: Array) -> Array:
    return a * (1.0 - a)


def tanh(xp: ModuleType, z: Array) -> Array:
    return xp.tanh(z)


def d_tanh(xp: ModuleType, z: Array, a: Array) -> Array:
    return 1.0 - a * a


def relu(xp: ModuleType, z: Array) -> Array:
    return xp.maximum(z, 0.0)


def d_relu(xp: ModuleType, z: Array, a: Array) -> Array:
    # The kink at 0 takes slope 0, as in PyTorch and scikit-learn.
    return xp.astype(z > 0, z.dtype)


def leaky_relu(xp: ModuleType, z: Array) -> Array:
    return xp.where(z > 0, z, LEAKY_SLOPE * z)


def d_leaky_relu(xp: ModuleType, z: Array, a: Array) -> Array:
    return LEAKY_SLOPE + (1.0 - LEAKY_SLOPE) * xp.astype(z > 0, z.dtype)


def elu(xp: ModuleType, z: Array) -> Array:
    # expm1 of min(z, 0) so the unused branch never overflows for large z.
    return xp.where(z > 0, z, xp.expm1(xp.minimum(z, 0.0)))


def d_elu(xp: ModuleType, z: Array, a: Array) -> Array:
    # For z <= 0, a = exp(z) - 1, so da/dz = exp(z) = a + 1.
    return xp.where(z > 0, 1.0, a + 1.0)


@dataclass(frozen=True)
class Activation:
    """A named activation: forward, derivative and matching initialisation."""

    name: str
    f: Callable[[ModuleType, Array], Array]
    df: Callable[[ModuleType, Array, Array], Array]
    init: str  # "he" for the relu family, "glorot" for the saturating ones


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", sigmoid, d_sigmoid, "glorot"),
    "tanh": Activation("tanh", tanh, d_tanh, "glorot"),
    "relu": Activation("relu", relu, d_relu, "he"),
    "leaky_relu": Activation("leaky_relu", leaky_relu, d_leaky_relu, "he"),
    "elu": Activation("elu", elu, d_elu, "he"),
}


def get_activation(name: str) -> Activation:
    """Looks an activation up by name.

    Raises:
        UsageError: The name is unknown; the message lists the known ones.
    """
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise UsageError(
            f"--activation: unknown activation {name!r}; "
            f"expected one of {', '.join(ACTIVATIONS)}"
        ) from None
