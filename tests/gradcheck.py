"""Central finite differences of a stack's loss, the oracle for backprop tests."""

from __future__ import annotations

import numpy as np

from mlp_backend.backend import Backend
from mlp_backend.model import Shape, Stack


def max_relative_error(
    backend: Backend,
    shape: Shape,
    members: list[list[np.ndarray]],
    X: np.ndarray,
    Y: np.ndarray,
    step: float = 1e-6,
) -> float:
    """Largest relative error of backprop against central differences.

    The error of one parameter array (a member's weight matrix or bias vector)
    is ||analytic - numeric|| / (||analytic|| + ||numeric||): element-wise
    ratios are meaningless for entries near zero, where the differences' own
    rounding (about 1e-10 at step 1e-6) dominates.

    Args:
        members: Host parameters ``[W0, b0, ...]`` per member (float64).
        X: ``(m, batch, features)``; Y: ``(m, batch, outputs)``.
    """
    stack = Stack.from_host(backend, shape, members)
    _, grads = stack.loss_and_grads(backend.asarray(X), backend.asarray(Y))
    worst = 0.0
    for k, g in enumerate(grads):
        analytic = backend.to_host(g)
        for j, member in enumerate(members):
            p = member[k]
            numeric = np.zeros(p.shape)
            for idx in np.ndindex(p.shape):
                numeric[idx] = _central_difference(
                    backend, shape, members, X, Y, j, k, idx, step
                )
            a = (
                analytic[j, 0, : p.shape[0]]
                if k % 2
                else analytic[j][: p.shape[0], : p.shape[1]]
            )
            scale = max(np.linalg.norm(a) + np.linalg.norm(numeric), 1e-12)
            worst = max(worst, float(np.linalg.norm(a - numeric) / scale))
    return worst


def _central_difference(backend, shape, members, X, Y, j, k, idx, step):
    values = []
    for sign in (1.0, -1.0):
        trial = [[p.copy() for p in m] for m in members]
        trial[j][k][idx] += sign * step
        stack = Stack.from_host(backend, shape, trial)
        z, _ = stack.forward(backend.asarray(X))
        # The loss alone, as evaluation computes it: the check then also
        # pins value() to the gradient that value_and_delta() gives.
        loss = stack.loss.value(backend.xp, z, backend.asarray(Y))
        values.append(backend.to_host(loss)[j])
    return (values[0] - values[1]) / (2.0 * step)
