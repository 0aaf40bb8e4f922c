"""Numerical safety of activations and losses for any finite input.

Cases B01 (sigmoid at |z| = 1000) and B02 (saturated binary cross-entropy) are
read from the shared folder; hypothesis then checks the same properties over
extreme finite logits in float32 and float64. Every check runs on NumPy and on
array-api-strict through the ``backend`` fixtures.

Floating-point errors are raised, not warned: ``np.errstate`` turns overflow,
divide-by-zero and invalid operations into exceptions (array-api-strict wraps
NumPy, so it obeys the same state), and pytest turns any warning into an
error. Underflow is left alone on purpose: exp(-|z|) rounding to 0 for large
|z| is exactly what the stable forms rely on, and it loses nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlp_backend.activations import ACTIVATIONS, sigmoid
from mlp_backend.backend import get_backend
from mlp_backend.losses import (
    binary_cross_entropy,
    log_sigmoid,
    log_softmax,
    mean_squared_error,
    softmax,
    softmax_cross_entropy,
)
from tests.conftest import BACKENDS, case_file

RAISE = dict(over="raise", divide="raise", invalid="raise", under="ignore")
EXAMPLES = 150

# Every example drawn by the property tests, per test, to report the count.
DRAWN: dict[str, int] = {}


def host(backend, array) -> np.ndarray:
    return backend.to_host(array)


def device(backend, values, dtype=None):
    """Host values onto the device in the backend's dtype (or ``dtype``)."""
    return backend.asarray(np.asarray(values, dtype=np.float64), dtype=dtype)


# B01: sigmoid at float64 logits up to |z| = 1000.


def test_case_b01_sigmoid_extreme_logits(backend):
    spec = json.loads(case_file("B01_extreme_logits.json").read_text())
    z = np.array(spec["logits"], dtype=np.float64)
    xp = backend.xp
    with np.errstate(**RAISE):
        s = host(backend, sigmoid(xp, device(backend, z)))
        s_neg = host(backend, sigmoid(xp, device(backend, -z)))
    lo, hi = spec["expect"]["range"]
    assert s.dtype == np.float64
    assert np.all((s >= lo) & (s <= hi))
    assert s[z == 0.0][0] == spec["expect"]["sigmoid_at_0"]
    assert np.max(np.abs(s_neg - (1.0 - s))) <= spec["expect"]["symmetry_tol"]
    # Monotone and saturated at the ends.
    assert np.all(np.diff(s) >= 0)
    assert s[0] == 0.0 or s[0] < 1e-300
    assert s[-1] == 1.0
    # Against the plain formula where it cannot overflow.
    safe = np.abs(z) <= 40
    np.testing.assert_allclose(s[safe], 1.0 / (1.0 + np.exp(-z[safe])), rtol=1e-15)


# B02: binary cross-entropy of saturated logits.


def test_case_b02_saturated_binary_cross_entropy(backend):
    spec = json.loads(case_file("B02_saturated_bce.json").read_text())
    expect = spec["expect"]
    z = np.array(spec["logits"], dtype=np.float64)
    y = np.array(spec["labels"], dtype=np.float64)
    xp = backend.xp
    n = z.size
    with np.errstate(**RAISE):
        loss, delta = binary_cross_entropy(
            xp, device(backend, z.reshape(1, n, 1)), device(backend, y.reshape(1, n, 1))
        )
        per_row = [
            host(
                backend,
                binary_cross_entropy(
                    xp,
                    device(backend, z[i : i + 1].reshape(1, 1, 1)),
                    device(backend, y[i : i + 1].reshape(1, 1, 1)),
                )[0],
            )[0]
            for i in range(n)
        ]
    per_row = np.array(per_row)
    assert np.all(np.isfinite(per_row))
    right = (z > 0) == (y == 1)
    assert np.all(per_row[right] < expect["correct_saturated_loss_max"])
    assert np.all(per_row[~right] >= expect["wrong_saturated_loss_min"])
    np.testing.assert_allclose(per_row[~right], 800.0, rtol=1e-12)
    loss = host(backend, loss)
    assert loss.shape == (1,)
    np.testing.assert_allclose(loss[0], per_row.mean(), rtol=1e-12)
    # Our delta is dL/dz of the batch mean: (p - y) / batch.
    per_sample = host(backend, delta).reshape(-1) * n
    np.testing.assert_allclose(
        per_sample, expect["dloss_dlogit_per_sample"], atol=1e-12
    )


# Property tests over extreme finite logits in both dtypes.

BACKEND_DTYPES = [(b, d) for b in BACKENDS for d in ("float32", "float64")]


def finite_logits(dtype: str, min_size: int = 1, max_size: int = 8):
    """Lists of finite floats representable in ``dtype``, extremes included."""
    width = 32 if dtype == "float32" else 64
    extreme = st.sampled_from(
        [
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1000.0,
            -1000.0,
            89.0,
            -89.0,
            710.0,
            -710.0,
            1e30,
            -1e30,
        ]
    )
    big = float(np.finfo(dtype).max)
    bounded = st.floats(-big, big, width=width, allow_nan=False, allow_infinity=False)
    return st.lists(st.one_of(bounded, extreme), min_size=min_size, max_size=max_size)


def count(name: str) -> None:
    DRAWN[name] = DRAWN.get(name, 0) + 1


def property_settings():
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@pytest.mark.parametrize(("name", "dtype"), BACKEND_DTYPES)
@property_settings()
@given(data=st.data())
def test_sigmoid_and_log_sigmoid_any_finite_logit(name, dtype, data):
    count(f"sigmoid/{name}/{dtype}")
    z = np.array(data.draw(finite_logits(dtype)), dtype=dtype)
    backend = get_backend(name, dtype)
    xp = backend.xp
    with np.errstate(**RAISE):
        s = host(backend, sigmoid(xp, device(backend, z)))
        s_neg = host(backend, sigmoid(xp, device(backend, -z)))
        ls = host(backend, log_sigmoid(xp, device(backend, z)))
    assert s.dtype == np.dtype(dtype) and ls.dtype == np.dtype(dtype)
    assert np.all((s >= 0.0) & (s <= 1.0))
    eps = float(np.finfo(dtype).eps)
    assert np.all(np.abs(s_neg - (1.0 - s)) <= 2 * eps)
    assert np.all(ls <= 0.0)
    assert not np.any(np.isnan(ls))
    # log sigmoid(z) ~ z for very negative z: finite wherever z is.
    assert np.all(np.isfinite(ls))
    moderate = np.abs(z.astype(np.float64)) < 30
    ref = -np.log1p(np.exp(-z[moderate].astype(np.float64)))
    np.testing.assert_allclose(ls[moderate], ref, rtol=100 * eps, atol=10 * eps)


@pytest.mark.parametrize(("name", "dtype"), BACKEND_DTYPES)
@property_settings()
@given(data=st.data())
def test_softmax_any_finite_logits(name, dtype, data):
    count(f"softmax/{name}/{dtype}")
    rows = data.draw(st.integers(1, 3))
    k = data.draw(st.integers(2, 5))
    flat = data.draw(finite_logits(dtype, rows * k, rows * k))
    z = np.array(flat, dtype=dtype).reshape(rows, k)
    backend = get_backend(name, dtype)
    xp = backend.xp
    with np.errstate(**RAISE):
        p = host(backend, softmax(xp, device(backend, z)))
        log_p = host(backend, log_softmax(xp, device(backend, z)))
    assert p.dtype == np.dtype(dtype)
    assert np.all((p >= 0.0) & (p <= 1.0))
    np.testing.assert_allclose(
        p.sum(axis=-1), 1.0, atol=10 * float(np.finfo(dtype).eps) * k
    )
    assert not np.any(np.isnan(log_p))
    assert np.all(log_p <= 0.0)
    # The largest logit of each row gets the largest probability.
    assert np.all(p[np.arange(rows), np.argmax(z, axis=1)] == p.max(axis=1))


@pytest.mark.parametrize(("name", "dtype"), BACKEND_DTYPES)
@property_settings()
@given(data=st.data())
def test_cross_entropies_any_finite_logits(name, dtype, data):
    count(f"losses/{name}/{dtype}")
    n = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(2, 4))
    z1 = np.array(data.draw(finite_logits(dtype, n, n)), dtype=dtype).reshape(1, n, 1)
    y1 = np.array(
        data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    ).reshape(1, n, 1)
    zk = np.array(data.draw(finite_logits(dtype, n * k, n * k)), dtype=dtype)
    zk = zk.reshape(1, n, k)
    yk = np.eye(k)[data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))]
    backend = get_backend(name, dtype)
    xp = backend.xp
    with np.errstate(**RAISE):
        bce, d_bce = binary_cross_entropy(xp, device(backend, z1), device(backend, y1))
        sce, d_sce = softmax_cross_entropy(
            xp, device(backend, zk), device(backend, yk[None])
        )
    for loss, delta in ((bce, d_bce), (sce, d_sce)):
        loss, delta = host(backend, loss), host(backend, delta)
        assert loss.dtype == np.dtype(dtype) and delta.dtype == np.dtype(dtype)
        assert not np.any(np.isnan(loss)) and np.all(loss >= 0.0)
        assert np.all(np.isfinite(delta))
        # delta = (p - y) / batch, p in [0, 1], so |delta| <= 1 / batch.
        assert np.all(np.abs(delta) <= 1.0 / n + 1e-6)
    # Softmax deltas of one row sum to zero (probabilities sum to one).
    np.testing.assert_allclose(host(backend, d_sce).sum(axis=-1), 0.0, atol=1e-5)


@pytest.mark.parametrize(("name", "dtype"), BACKEND_DTYPES)
@property_settings()
@given(data=st.data())
def test_mean_squared_error_finite_where_the_square_is(name, dtype, data):
    count(f"mse/{name}/{dtype}")
    # (z - y)^2 summed over the rows must be representable in the dtype.
    limit = 2.0**60 if dtype == "float32" else 2.0**500
    values = st.floats(
        -limit, limit, allow_nan=False, width=32 if dtype == "float32" else 64
    )
    n = data.draw(st.integers(1, 6))
    z = np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)
    y = np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)
    backend = get_backend(name, dtype)
    with np.errstate(**RAISE):
        loss, delta = mean_squared_error(
            backend.xp,
            device(backend, z.reshape(1, n, 1)),
            device(backend, y.reshape(1, n, 1)),
        )
    loss, delta = host(backend, loss), host(backend, delta)
    assert np.all(np.isfinite(loss)) and loss[0] >= 0.0
    ref = np.mean((z.astype(np.float64) - y.astype(np.float64)) ** 2)
    # Squares of tiny differences underflow to 0 in the dtype: an absolute floor.
    tiny = float(np.finfo(dtype).tiny)
    rtol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(loss[0], ref, rtol=rtol, atol=tiny)
    np.testing.assert_allclose(
        delta.reshape(-1), 2 * (z.astype(np.float64) - y) / n, rtol=1e-4, atol=1e-30
    )


def test_property_examples_were_run():
    """The property tests really drew their examples (reported in the summary)."""
    if not DRAWN:
        pytest.skip("property tests not selected in this run")
    print("hypothesis examples:", DRAWN, "total", sum(DRAWN.values()))
    assert all(v >= 10 for v in DRAWN.values())


# Activations and their derivatives at the extremes.


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_derivatives_at_extremes(backend32, activation):
    act = ACTIVATIONS[activation]
    xp = backend32.xp
    big = float(np.finfo(np.float32).max)
    values = np.array(
        [-big, -1e30, -1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0, 1e30, big]
    )
    z = device(backend32, values)
    with np.errstate(**RAISE):
        a = act.f(xp, z)
        da = host(backend32, act.df(xp, z, a))
        a = host(backend32, a)
    assert a.dtype == np.float32 and da.dtype == np.float32
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(da))
    assert np.all(da >= 0.0), "every activation here is non-decreasing"
    right, left = da[-1], da[0]
    expected = {
        "sigmoid": (0.0, 0.0, 0.25),
        "tanh": (0.0, 0.0, 1.0),
        "relu": (0.0, 1.0, 0.0),
        "leaky_relu": (0.01, 1.0, 0.01),
        "elu": (0.0, 1.0, 1.0),
    }[activation]
    np.testing.assert_allclose([left, right, da[5]], expected, rtol=1e-6)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_derivative_matches_central_difference(backend, activation):
    """Away from kinks, df equals a float64 central difference of f."""
    act = ACTIVATIONS[activation]
    xp = backend.xp
    z = np.array([-30.0, -3.0, -0.7, -0.1, 0.1, 0.7, 3.0, 30.0])
    h = 1e-6
    with np.errstate(**RAISE):
        zd = device(backend, z)
        da = host(backend, act.df(xp, zd, act.f(xp, zd)))
        fd = (
            host(backend, act.f(xp, device(backend, z + h)))
            - host(backend, act.f(xp, device(backend, z - h)))
        ) / (2 * h)
    np.testing.assert_allclose(da, fd, rtol=1e-6, atol=1e-9)
