"""Backprop against central finite differences in float64 (relative error < 1e-6).

Inputs, weights and targets are drawn fresh for every test; the seed is in the
failure message so a failure can be replayed.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from mlp_backend.activations import ACTIVATIONS
from mlp_backend.losses import LOSSES
from mlp_backend.model import Shape, init_weights
from tests.conftest import case_file
from tests.gradcheck import max_relative_error

TOLERANCE = 1e-6
OUTPUTS = {
    "binary_cross_entropy": 1,
    "softmax_cross_entropy": 3,
    "mean_squared_error": 2,
}


def _targets(
    rng: np.random.Generator, loss: str, shape: tuple[int, int, int]
) -> np.ndarray:
    m, batch, k = shape
    if loss == "binary_cross_entropy":
        return rng.integers(0, 2, size=shape).astype(float)
    if loss == "softmax_cross_entropy":
        return np.eye(k)[rng.integers(0, k, size=(m, batch))]
    return rng.normal(size=shape)


def _random_members(rng, sizes_per_member, activation):
    init = ACTIVATIONS[activation].init
    members = []
    for sizes in sizes_per_member:
        params = init_weights(rng, sizes, init)
        # Non-zero biases, so their gradients are tested away from the start.
        members.append(
            [p + 0.1 * rng.normal(size=p.shape) if p.ndim == 1 else p for p in params]
        )
    return members


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_gradients_match_finite_differences(backend, activation, loss):
    seed = secrets.randbits(32)
    rng = np.random.default_rng(seed)
    k = OUTPUTS[loss]
    shape = Shape(4, (5, 3), k, activation, loss)
    members = _random_members(rng, [shape.sizes], activation)
    X = rng.normal(size=(1, 6, 4))
    Y = _targets(rng, loss, (1, 6, k))
    error = max_relative_error(backend, shape, members, X, Y)
    assert error < TOLERANCE, f"relative error {error:.2e} (seed {seed})"


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_padded_stack_gradients_match_and_padding_stays_zero(backend, activation):
    seed = secrets.randbits(32)
    rng = np.random.default_rng(seed)
    loss = "binary_cross_entropy"
    shape = Shape(3, (5, 4), 1, activation, loss)
    member_sizes = [(3, 5, 4, 1), (3, 2, 4, 1), (3, 5, 1, 1)]
    members = _random_members(rng, member_sizes, activation)
    X = rng.normal(size=(3, 7, 3))
    Y = _targets(rng, loss, (3, 7, 1))
    error = max_relative_error(backend, shape, members, X, Y)
    assert error < TOLERANCE, f"relative error {error:.2e} (seed {seed})"

    from mlp_backend.model import Stack

    stack = Stack.from_host(backend, shape, members)
    _, grads = stack.loss_and_grads(backend.asarray(X), backend.asarray(Y))
    dW0 = backend.to_host(grads[0])
    assert np.all(dW0[1, :, 2:] == 0.0), f"padded gradient not zero (seed {seed})"
    dW1 = backend.to_host(grads[2])
    assert np.all(dW1[2, :, 1:] == 0.0) and np.all(dW1[1, 2:, :] == 0.0)


@pytest.mark.parametrize(
    "sizes, activation", [((10, 5, 1), "sigmoid"), ((10, 5, 3, 1), "tanh")]
)
def test_case_b06_gradcheck_on_eight_rows(backend, sizes, activation):
    """B06: the 8-row file, standardised, every weight and bias within 1e-6."""
    from mlp_backend.data import Standardizer, load_table

    table = load_table(case_file("B06_gradcheck_8rows.csv"))
    X = Standardizer.fit(table.X, table.feature_names).transform(table.X)
    y = (np.char.strip(table.labels.astype(str)) == "g").astype(float)
    seed = secrets.randbits(32)
    rng = np.random.default_rng(seed)
    shape = Shape(10, sizes[1:-1], 1, activation, "binary_cross_entropy")
    members = _random_members(rng, [sizes], activation)
    error = max_relative_error(backend, shape, members, X[None], y[None, :, None])
    assert error < TOLERANCE, f"relative error {error:.2e} (seed {seed})"
