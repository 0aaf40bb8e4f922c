"""A stack of multilayer perceptrons of one shape, trained as one network.

A single network is the one-member case: every array carries a leading
member axis ``m``. Layer ``l`` maps activations ``a[l]`` of shape
``(m, batch, fan_in)`` to ``a[l+1]``::

    z[l+1] = a[l] @ W[l] + b[l]        W[l]: (m, fan_in, fan_out), b[l]: (m, 1, fan_out)
    a[l+1] = f(z[l+1])                 hidden layers; the output keeps z (the logits)

and the backward pass, with ``delta[l] = dL/dz[l]``::

    dW[l] = a[l]^T @ delta[l+1]        summed over the batch by the matmul
    db[l] = sum over the batch of delta[l+1]
    delta[l] = (delta[l+1] @ W[l]^T) * f'(z[l])

Members may differ in hidden width: arrays are padded to the widest member
and a 0/1 mask of shape ``(m, 1, width)`` multiplies the padded units'
activations and deltas, so every padded weight, activation and gradient is
exactly zero and each member computes what it would compute alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlp_backend.activations import get_activation
from mlp_backend.backend import Backend
from mlp_backend.losses import get_loss

Array = Any


@dataclass(frozen=True)
class Shape:
    """What every member of a stack shares.

    Attributes:
        n_features: Input width.
        hidden: The widest member's hidden widths, e.g. ``(64, 32)``.
        n_outputs: 1 for binary and regression tasks, else the class count.
        activation: Name of the hidden activation.
        loss: Name of the loss (and so of the output function).
    """

    n_features: int
    hidden: tuple[int, ...]
    n_outputs: int
    activation: str
    loss: str

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_features, *self.hidden, self.n_outputs)


def init_weights(
    rng: np.random.Generator, sizes: Sequence[int], init: str
) -> list[np.ndarray]:
    """Draws one network's parameters on the host: ``[W0, b0, W1, b1, ...]``.

    Hidden layers use He normal initialisation (std sqrt(2 / fan_in)) for the
    relu family and Glorot uniform (limit sqrt(6 / (fan_in + fan_out))) for
    the saturating activations; the output layer is always Glorot, matching
    its sigmoid, softmax or identity output. Biases start at zero.
    """
    params = []
    last = len(sizes) - 2
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if init == "he" and l < last:
            W = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        params += [W, np.zeros(fan_out)]
    return params


def take_members(
    backend: Backend, arrays: list[Array], keep: Sequence[int]
) -> list[Array]:
    """Rows ``keep`` of the member axis of each array, in that order."""
    index = backend.asarray(np.asarray(keep, dtype=np.int64))
    return [backend.xp.take(a, index, axis=0) for a in arrays]


class Stack:
    """``m`` networks of one :class:`Shape` whose parameters live on a backend.

    Attributes:
        backend: Where the arrays live.
        shape: The shared shape (hidden widths are the padded maxima).
        widths: Host array ``(m, hidden layers)`` of each member's true widths.
        params: ``[W0, b0, W1, b1, ...]`` with the member axis first.
        masks: Per hidden layer, ``(m, 1, width)`` 0/1 array, or None where no
            member is padded in that layer.
    """

    def __init__(
        self,
        backend: Backend,
        shape: Shape,
        widths: np.ndarray,
        params: list[Array],
    ) -> None:
        self.backend = backend
        self.shape = shape
        self.widths = np.asarray(widths, dtype=np.int64).reshape(len(widths), -1)
        self.params = params
        self.activation = get_activation(shape.activation)
        self.loss = get_loss(shape.loss)
        self.masks = self._masks()

    @classmethod
    def from_host(
        cls,
        backend: Backend,
        shape: Shape,
        members: Sequence[Sequence[np.ndarray]],
    ) -> Stack:
        """Pads and stacks host parameter lists (one per member) onto the device."""
        widths = np.array(
            [[p.shape[1] for p in member[0:-2:2]] for member in members], dtype=np.int64
        ).reshape(len(members), len(shape.hidden))
        sizes = shape.sizes
        params = []
        for k in range(2 * (len(sizes) - 1)):
            l = k // 2
            full = (sizes[l + 1],) if k % 2 else (sizes[l], sizes[l + 1])
            host = np.zeros((len(members), *full))
            for j, member in enumerate(members):
                p = member[k]
                host[(j, *tuple(slice(0, n) for n in p.shape))] = p
            if k % 2:
                host = host[:, None, :]
            params.append(backend.asarray(host))
        return cls(backend, shape, widths, params)

    @classmethod
    def initialise(
        cls,
        backend: Backend,
        shape: Shape,
        member_hidden: Sequence[Sequence[int]],
        seeds: Sequence[np.random.Generator],
    ) -> Stack:
        """Initialises each member with its own generator at its own widths."""
        init = get_activation(shape.activation).init
        members = [
            init_weights(rng, (shape.n_features, *hidden, shape.n_outputs), init)
            for hidden, rng in zip(member_hidden, seeds, strict=True)
        ]
        return cls.from_host(backend, shape, members)

    @property
    def members(self) -> int:
        return int(self.params[0].shape[0])

    def _masks(self) -> list[Array | None]:
        masks: list[Array | None] = []
        for l, width in enumerate(self.shape.hidden):
            if bool(np.all(self.widths[:, l] == width)):
                masks.append(None)
                continue
            host = (np.arange(width)[None, :] < self.widths[:, l : l + 1]).astype(float)
            masks.append(self.backend.asarray(host[:, None, :]))
        return masks

    def forward(self, X: Array) -> tuple[Array, list[tuple[Array, Array]]]:
        """Runs the stack on a batch.

        Args:
            X: ``(m, batch, n_features)``, or ``(1, batch, n_features)`` to feed
                the same rows to every member.

        Returns:
            The output logits ``(m, batch, n_outputs)`` and the cache of
            ``(z, a)`` per layer that :meth:`backward` needs.
        """
        xp = self.backend.xp
        f = self.activation.f
        layers = len(self.params) // 2
        cache = [(X, X)]
        a = X
        for l in range(layers):
            z = a @ self.params[2 * l] + self.params[2 * l + 1]
            if l == layers - 1:
                return z, cache
            a = f(xp, z)
            if self.masks[l] is not None:
                a = a * self.masks[l]
            cache.append((z, a))
        raise AssertionError("a network has at least one layer")

    def backward(self, cache: list[tuple[Array, Array]], delta: Array) -> list[Array]:
        """Backpropagates the output delta; returns ``[dW0, db0, dW1, db1, ...]``.

        Args:
            cache: From :meth:`forward` on the same batch.
            delta: dL/dz of the output layer, ``(m, batch, n_outputs)``.
        """
        xp = self.backend.xp
        df = self.activation.df
        layers = len(self.params) // 2
        grads: list[Array] = [None] * len(self.params)
        for l in range(layers - 1, -1, -1):
            z, a = cache[l]
            grads[2 * l] = xp.matrix_transpose(a) @ delta
            grads[2 * l + 1] = xp.sum(delta, axis=1, keepdims=True)
            if l == 0:
                break

            # Hidden layer: back through W, then through the activation.
            delta = (delta @ xp.matrix_transpose(self.params[2 * l])) * df(xp, z, a)
            if self.masks[l - 1] is not None:
                delta = delta * self.masks[l - 1]
        return grads

    def loss_and_grads(self, X: Array, Y: Array) -> tuple[Array, list[Array]]:
        """Per-member mean loss ``(m,)`` and its gradients on one batch."""
        z, cache = self.forward(X)
        loss, delta = self.loss.value_and_delta(self.backend.xp, z, Y)
        return loss, self.backward(cache, delta)

    def predict_output(self, X: Array) -> Array:
        """Probabilities (or values, for regression), ``(m, rows, n_outputs)``."""
        z, _ = self.forward(X)
        return self.loss.output(self.backend.xp, z)

    def select(self, keep: Sequence[int]) -> Stack:
        """A stack of only the members ``keep``, in that order."""
        params = take_members(self.backend, self.params, keep)
        return Stack(self.backend, self.shape, self.widths[list(keep)], params)

    def member_to_host(self, j: int) -> list[np.ndarray]:
        """Member ``j``'s parameters at its true widths: ``[W0, b0, ...]``."""
        sizes = (self.shape.n_features, *self.widths[j], self.shape.n_outputs)
        host = []
        for l in range(len(sizes) - 1):
            W = self.backend.to_host(self.params[2 * l][j, ...])
            b = self.backend.to_host(self.params[2 * l + 1][j, ...])
            host += [W[: sizes[l], : sizes[l + 1]], b[0, : sizes[l + 1]]]
        return host
