"""Fused training equals training alone: the sweep's oracle.

Each member of a stack with mixed widths and learning rates must see the same
per-epoch figures and end with the same weights as the same configuration
trained as a stack of one, with the same seed.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlp_backend.backend import Backend
from mlp_backend.train import (
    DeviceData,
    Member,
    MemberResult,
    TrainConfig,
    Trainer,
    to_device,
)

MEMBERS = [
    Member(hidden=(6, 4), lr=0.05, momentum=0.9, weight_decay=0.0, seed=3),
    Member(hidden=(9, 7), lr=0.2, momentum=0.5, weight_decay=0.01, seed=4),
    Member(hidden=(5, 8), lr=0.01, momentum=0.8, weight_decay=0.0, seed=5),
]
VARYING = ("seconds",)


def synthetic(backend: Backend) -> DeviceData:
    # 60 training rows: the last batch of 16 is a partial one.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5))
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=90) > 0).astype(np.int64)
    return to_device(backend, "binary", 2, (X[:60], y[:60]), (X[60:], y[60:]))


def train(
    backend: Backend, optimizer: str, members: list[Member]
) -> list[MemberResult]:
    config = TrainConfig(
        activation="tanh", optimizer=optimizer, batch_size=16, epochs=4, patience=0
    )
    return Trainer(backend, config, members, synthetic(backend)).run()


def compare(alone, fused, rtol: float, atol: float) -> None:
    assert alone.state == fused.state
    assert len(alone.history) == len(fused.history)
    for a, f in zip(alone.history, fused.history, strict=True):
        for key in a:
            if key not in VARYING:
                np.testing.assert_allclose(
                    f[key], a[key], rtol=rtol, atol=atol, err_msg=key
                )
    for a, f in zip(alone.params, fused.params, strict=True):
        assert a.shape == f.shape
        np.testing.assert_allclose(f, a, rtol=rtol, atol=atol)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_fused_members_equal_alone_float64(backend: Backend, optimizer: str) -> None:
    fused = train(backend, optimizer, MEMBERS)
    for member, result in zip(MEMBERS, fused, strict=True):
        alone = train(backend, optimizer, [member])[0]
        compare(alone, result, rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_fused_members_equal_alone_float32(backend32: Backend, optimizer: str) -> None:
    fused = train(backend32, optimizer, MEMBERS)
    for member, result in zip(MEMBERS, fused, strict=True):
        alone = train(backend32, optimizer, [member])[0]
        compare(alone, result, rtol=1e-4, atol=1e-6)


# A grid sweep's members share the training seed, so they share one batch
# order: the trainer then gathers the epoch's rows once for all of them.
SHARED_SEED = [
    Member(hidden=(6, 4), lr=0.05, momentum=0.9, weight_decay=0.0, seed=7),
    Member(hidden=(9, 7), lr=0.2, momentum=0.5, weight_decay=0.01, seed=7),
    Member(hidden=(5, 8), lr=0.01, momentum=0.8, weight_decay=0.0, seed=8),
]


@pytest.mark.parametrize("count", [2, 3], ids=["one order", "two orders"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_members_sharing_a_seed_equal_alone(
    backend: Backend, optimizer: str, count: int
) -> None:
    members = SHARED_SEED[:count]
    fused = train(backend, optimizer, members)
    for member, result in zip(members, fused, strict=True):
        alone = train(backend, optimizer, [member])[0]
        compare(alone, result, rtol=0.0, atol=1e-10)


def regression(backend: Backend) -> DeviceData:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 3)) * 5
    y = X @ np.array([3.0, -2.0, 1.0]) * 100
    return to_device(backend, "regression", 0, (X[:60], y[:60]), (X[60:], y[60:]))


def test_a_diverging_member_stops_alone(backend: Backend) -> None:
    config = TrainConfig(
        activation="relu", optimizer="sgd", batch_size=16, epochs=4, patience=0
    )
    calm = Member(hidden=(8,), lr=1e-5, seed=1)
    wild = Member(hidden=(8,), lr=1e6, seed=2)
    fused = Trainer(backend, config, [calm, wild], regression(backend)).run()
    alone = Trainer(backend, config, [calm], regression(backend)).run()[0]

    assert fused[1].state == "diverged" and fused[1].step >= 1
    assert all(np.all(np.isfinite(p)) for p in fused[1].params)
    assert fused[0].state == "finished" and fused[0].epochs_run == 4
    compare(alone, fused[0], rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("seeds", [(3, 4), (3, 3)], ids=["own orders", "one order"])
def test_early_stopping_is_per_member(backend: Backend, seeds: tuple[int, int]) -> None:
    # A learning rate too small to improve the validation loss for long stops
    # early; the other member trains all its epochs, exactly as alone.
    config = TrainConfig(
        activation="tanh",
        optimizer="sgd",
        batch_size=16,
        epochs=12,
        patience=2,
        monitor="val_accuracy",
    )
    members = [
        Member(hidden=(6,), lr=1e-9, seed=seeds[0]),
        Member(hidden=(6,), lr=0.1, seed=seeds[1]),
    ]
    fused = Trainer(backend, config, members, synthetic(backend)).run()
    for member, result in zip(members, fused, strict=True):
        alone = Trainer(backend, config, [member], synthetic(backend)).run()[0]
        compare(alone, result, rtol=0.0, atol=1e-10)
    assert fused[0].epochs_run < fused[1].epochs_run
    assert "early stop" in fused[0].reason
