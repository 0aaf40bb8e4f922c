"""The in-place fast step equals the generic step: its oracle.

:class:`FastStep` rewrites the step for backends with in-place semantics
(NumPy, CuPy); :class:`GenericStep` is the array-API formulation that the
gradient checks and optimizer tests already pin down. Both run the same
epochs on the same padded stacks, across activations, losses and optimizers
with weight decay, through a compaction, and must agree within 1e-12 in
float64 and 1e-5 (relative) in float32. Backends without in-place semantics
(array-api-strict) must get the generic step.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import mlp_backend.fast as fast_module
import mlp_backend.train as train_module
from mlp_backend.activations import ACTIVATIONS
from mlp_backend.backend import Backend, cupy_problem
from mlp_backend.fast import FastStep, GenericStep, make_step
from mlp_backend.losses import LOSSES
from mlp_backend.model import Shape, Stack, init_weights
from mlp_backend.optim import OPTIMIZERS, Optimizer
from mlp_backend.train import Member, TrainConfig, Trainer, to_device
from tests.conftest import BACKENDS

WIDTHS = [(6, 4), (3, 4), (6, 2)]
LR = [0.05, 0.02, 0.1]
MOMENTUM = [0.9, 0.5, 0.8]
DECAY = [0.01, 0.0, 0.1]
ROWS = 21  # batches of 8: two full ones and a partial one of 5
BATCH = 8


# The fast path exists where arrays can be updated in place (NumPy, CuPy):
# its tests take only those backends. array-api-strict, which cannot, is
# checked below to take the generic step instead.
IN_PLACE = [name for name in BACKENDS if name != "array_api_strict"]
on_fast = pytest.mark.parametrize("backend", IN_PLACE, indirect=True)
on_fast32 = pytest.mark.parametrize("backend32", IN_PLACE, indirect=True)


def problem(
    backend: Backend,
    activation: str,
    loss: str,
    seed: int = 0,
    widths: list[tuple[int, ...]] = WIDTHS,
):
    """Two identical padded stacks and one epoch of data in batch order."""
    rng = np.random.default_rng(seed)
    k = 3 if loss == "softmax_cross_entropy" else 1
    widest = tuple(max(col) for col in zip(*widths, strict=True))
    shape = Shape(5, widest, k, activation, loss)
    init = ACTIVATIONS[activation].init
    members = [init_weights(rng, (5, *w, k), init) for w in widths]
    X = rng.normal(size=(len(WIDTHS), ROWS, 5))
    if loss == "softmax_cross_entropy":
        T = np.eye(k)[rng.integers(0, k, size=(len(WIDTHS), ROWS))]
    elif loss == "binary_cross_entropy":
        T = rng.integers(0, 2, size=(len(WIDTHS), ROWS, 1)).astype(np.float64)
    else:
        T = rng.normal(size=(len(WIDTHS), ROWS, 1))
    stacks = [Stack.from_host(backend, shape, members) for _ in range(2)]
    return stacks, backend.asarray(X), backend.asarray(T)


def optimizer(backend: Backend, kind: str) -> Optimizer:
    return Optimizer(backend, kind, LR, MOMENTUM, DECAY)


def run_epoch(step, X, T, factor: float):
    n = int(X.shape[1])
    starts = range(0, n, BATCH)
    for s in starts:
        step.step(X, T, s, min(s + BATCH, n), factor)
    return step.epoch_losses(T, BATCH, len(starts))


def assert_close(backend: Backend, fast, generic) -> None:
    """Within 1e-12 in float64; within 1e-5 relative in float32."""
    tight = backend.dtype_name == "float64"
    rtol, atol = (1e-12, 1e-12) if tight else (1e-5, 1e-6)
    for a, b in zip(fast, generic, strict=True):
        np.testing.assert_allclose(
            backend.to_host(a), backend.to_host(b), rtol=rtol, atol=atol
        )


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("kind", OPTIMIZERS)
@on_fast
def test_fast_step_matches_generic(backend: Backend, activation, loss, kind):
    (fast_stack, generic_stack), X, T = problem(backend, activation, loss)
    fast = FastStep(fast_stack, optimizer(backend, kind))
    generic = GenericStep(generic_stack, optimizer(backend, kind))
    for factor in (1.0, 0.5):
        losses = run_epoch(fast, X, T, factor), run_epoch(generic, X, T, factor)
        assert losses[0].shape == (3, len(WIDTHS))
        assert_close(backend, [losses[0]], [losses[1]])
        assert_close(backend, fast_stack.params, generic_stack.params)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@on_fast
def test_batches_of_one_row(backend: Backend, activation, loss):
    """One row per step: the gradients' outer products as element-wise ones."""
    (fast_stack, generic_stack), X, T = problem(backend, activation, loss)
    fast = FastStep(fast_stack, optimizer(backend, "momentum"))
    generic = GenericStep(generic_stack, optimizer(backend, "momentum"))
    for s in range(7):
        fast.step(X, T, s, s + 1, 1.0)
        generic.step(X, T, s, s + 1, 1.0)
    assert_close(backend, fast_stack.params, generic_stack.params)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
@on_fast
def test_one_member_batches_of_one_row(backend: Backend, activation, loss):
    """One value per step: the output delta in Python numbers on the host."""
    (fast_stack, generic_stack), X, T = problem(
        backend, activation, loss, widths=[(4,)]
    )
    X, T = X[:1], T[:1]
    fast = FastStep(fast_stack, Optimizer(backend, "sgd", LR[:1], [0.0], DECAY[:1]))
    generic = GenericStep(
        generic_stack, Optimizer(backend, "sgd", LR[:1], [0.0], DECAY[:1])
    )
    for s in range(ROWS):
        fast.step(X, T, s, s + 1, 1.0)
        generic.step(X, T, s, s + 1, 1.0)
    assert_close(backend, fast_stack.params, generic_stack.params)
    losses = fast.epoch_losses(T, 1, ROWS), generic.epoch_losses(T, 1, ROWS)
    assert_close(backend, [losses[0]], [losses[1]])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("width", [4, 100])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
@on_fast32
def test_row_step_rounds_as_the_batch_path(backend32: Backend, activation, width, kind):
    """One member of one hidden layer at batch 1 on the host takes the 1-D
    row step, which must give the general path's float32 numbers exactly."""
    backend = backend32
    (row_stack, batch_stack), X, T = problem(
        backend, activation, "binary_cross_entropy", widths=[(width,)]
    )
    X, T = X[:1], T[:1]
    steps = [
        FastStep(stack, Optimizer(backend, kind, LR[:1], MOMENTUM[:1], DECAY[:1]))
        for stack in (row_stack, batch_stack)
    ]
    assert (steps[0]._row is not None) == (backend.name == "numpy")
    steps[1]._row = None
    for step in steps:
        for s in range(ROWS):
            step.step(X, T, s, s + 1, 1.0)
    for a, b in zip(row_stack.params, batch_stack.params, strict=True):
        np.testing.assert_array_equal(backend.to_host(a), backend.to_host(b))
    np.testing.assert_array_equal(
        *(backend.to_host(step.epoch_losses(T, 1, ROWS)) for step in steps)
    )


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mean_squared_error"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@on_fast
def test_one_hidden_layer_and_one_output(backend: Backend, activation, loss, kind):
    """The shortcut for the input layer's gradients (padded widths included)."""
    widths = [(6,), (3,), (5,)]
    (fast_stack, generic_stack), X, T = problem(
        backend, activation, loss, widths=widths
    )
    fast = FastStep(fast_stack, optimizer(backend, kind))
    generic = GenericStep(generic_stack, optimizer(backend, kind))
    for _ in range(2):
        losses = run_epoch(fast, X, T, 1.0), run_epoch(generic, X, T, 1.0)
        assert_close(backend, [losses[0]], [losses[1]])
        assert_close(backend, fast_stack.params, generic_stack.params)
    W0 = backend.to_host(fast_stack.params[0])
    assert np.all(W0[1, :, 3:] == 0.0), "member 1 has 3 units"
    assert np.all(W0[2, :, 5:] == 0.0), "member 2 has 5 units"


@pytest.mark.parametrize("kind", OPTIMIZERS)
@on_fast32
def test_fast_step_float32(backend32: Backend, kind):
    (fast_stack, generic_stack), X, T = problem(
        backend32, "relu", "binary_cross_entropy"
    )
    fast = FastStep(fast_stack, optimizer(backend32, kind))
    generic = GenericStep(generic_stack, optimizer(backend32, kind))
    for _ in range(3):
        losses = run_epoch(fast, X, T, 1.0), run_epoch(generic, X, T, 1.0)
        assert_close(backend32, [losses[0]], [losses[1]])
    assert all(p.dtype == backend32.dtype for p in fast_stack.params)
    assert_close(backend32, fast_stack.params, generic_stack.params)


@pytest.mark.parametrize("kind", ["adam", "nesterov"])
@on_fast
def test_fast_step_survives_compaction(backend: Backend, kind):
    """Dropping a member keeps the others' weights and optimizer state."""
    (fast_stack, generic_stack), X, T = problem(backend, "tanh", "mean_squared_error")
    fast_opt, generic_opt = optimizer(backend, kind), optimizer(backend, kind)
    fast, generic = (
        FastStep(fast_stack, fast_opt),
        GenericStep(generic_stack, generic_opt),
    )
    run_epoch(fast, X, T, 1.0)
    run_epoch(generic, X, T, 1.0)

    keep = [0, 2]
    fast_stack, generic_stack = fast_stack.select(keep), generic_stack.select(keep)
    fast_opt.select(keep)
    generic_opt.select(keep)
    fast = FastStep(fast_stack, fast_opt)
    generic = GenericStep(generic_stack, generic_opt)
    Xk, Tk = X[:2, ...], T[:2, ...]
    for _ in range(2):
        assert_close(
            backend, [run_epoch(fast, Xk, Tk, 1.0)], [run_epoch(generic, Xk, Tk, 1.0)]
        )
    assert_close(backend, fast_stack.params, generic_stack.params)
    assert_close(backend, fast_opt.state[0], generic_opt.state[0])


@on_fast
def test_parameters_are_views_of_one_buffer(backend: Backend):
    (stack, _), X, T = problem(backend, "relu", "binary_cross_entropy")
    before = [backend.to_host(p).copy() for p in stack.params]
    fast = FastStep(stack, optimizer(backend, "adam"))
    assert fast.theta.shape == (3, sum(int(np.prod(p.shape[1:])) for p in stack.params))
    for p, host in zip(stack.params, before, strict=True):
        assert np.array_equal(backend.to_host(p), host)
        assert fast.np.shares_memory(p, fast.theta)
    snapshot = fast.snapshot()
    run_epoch(fast, X, T, 1.0)
    for p, host in zip(snapshot, before, strict=True):
        assert np.array_equal(backend.to_host(p), host)


@pytest.mark.parametrize("budget", [1 << 19, 1])
@on_fast
def test_logits_in_blocks_equal_the_forward_pass(backend: Backend, monkeypatch, budget):
    """Blocks of 256 rows and a partial one, or all rows in one block of 1024
    (a budget so small that the minimum rows apply, or one that fits them)."""
    monkeypatch.setattr(fast_module, "BLOCK_BYTES", budget)
    (stack, _), _, _ = problem(backend, "tanh", "softmax_cross_entropy")
    fast = FastStep(stack, optimizer(backend, "sgd"))
    assert fast._block_rows() == (1024 if budget > 1 else fast_module.MIN_BLOCK_ROWS)
    X = backend.asarray(np.random.default_rng(3).normal(size=(1, 700, 5)))
    expected = stack.forward(X)[0]
    assert_close(backend, [fast.logits(X)], [expected])
    # A second call reuses the buffers and the rows with their ones.
    assert_close(backend, [fast.logits(X)], [expected])


@on_fast
def test_padded_units_stay_zero(backend: Backend):
    (stack, _), X, T = problem(backend, "elu", "softmax_cross_entropy")
    fast = FastStep(stack, optimizer(backend, "adam"))
    for _ in range(3):
        run_epoch(fast, X, T, 1.0)
    W1 = backend.to_host(stack.params[2])
    assert np.all(W1[1, 3:, :] == 0.0), "member 1 has 3 units in layer 1"
    assert np.all(W1[2, :, 2:] == 0.0), "member 2 has 2 units in layer 2"
    b1 = backend.to_host(stack.params[3])
    assert np.all(b1[2, :, 2:] == 0.0)


def test_backends_without_inplace_take_the_generic_step(backend: Backend):
    (stack, _), _, _ = problem(backend, "relu", "binary_cross_entropy")
    step = make_step(stack, optimizer(backend, "sgd"))
    expected = FastStep if backend.native is not None else GenericStep
    assert type(step) is expected


def trainer_results(backend: Backend, monkeypatch, fast: bool):
    """A fused run with a diverging member, a pruned one and early stopping."""
    if not fast:
        monkeypatch.setattr(train_module, "make_step", GenericStep)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 5))
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=90) > 0).astype(np.int64)
    data = to_device(backend, "binary", 2, (X[:60], y[:60]), (X[60:], y[60:]))
    members = [
        Member((6, 4), lr=0.05, weight_decay=0.01, seed=1),
        Member((3, 4), lr=1e300, seed=2),
        Member((6, 2), lr=0.02, seed=3),
        Member((5, 3), lr=0.01, seed=4),
    ]
    config = TrainConfig(optimizer="momentum", batch_size=16, epochs=6, patience=3)
    pruner = lambda epoch, values: [3] if epoch == 2 else []  # noqa: E731
    results = Trainer(backend, config, members, data, pruner=pruner).run()
    monkeypatch.undo()
    return results


@on_fast
def test_trainer_fast_equals_generic(backend: Backend, monkeypatch):
    fast = trainer_results(backend, monkeypatch, fast=True)
    generic = trainer_results(backend, monkeypatch, fast=False)
    assert [r.state for r in fast] == [r.state for r in generic]
    assert "diverged" in [r.state for r in fast] and "pruned" in [r.state for r in fast]
    for a, b in zip(fast, generic, strict=True):
        assert (a.epochs_run, a.best_epoch, a.step) == (
            b.epochs_run,
            b.best_epoch,
            b.step,
        )
        for ra, rb in zip(a.history, b.history, strict=True):
            assert ra.keys() == rb.keys()
            for key in ra.keys() - {"seconds"}:
                assert ra[key] == pytest.approx(rb[key], rel=1e-12, abs=1e-12), key
        for pa, pb in zip(a.params, b.params, strict=True):
            np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-12)


def gpu_check():
    """benchmarks/gpu_check.py as a module (benchmarks is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is made.
    sys.modules.setdefault("gpu_check", module)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_says_no_cuda_device(capsys):
    if cupy_problem() is None:
        pytest.skip("a CUDA device is usable here")
    assert gpu_check().main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_gpu_check_runs_end_to_end_on_the_cpu(magic_path, monkeypatch, capsys):
    """The whole script, on NumPy in place of CuPy: its table and judgements.

    NumPy against itself agrees exactly; a stack of two is not ten times one
    member's throughput, so that target fails and the script exits 1 (the
    other target times NumPy against itself, either way round).
    """
    monkeypatch.setenv("MLP_BACKEND_DATA", str(magic_path))
    code = gpu_check().main(["--backend", "numpy", "--skip-tests", "--members", "1,2"])
    table = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in table.splitlines()}
    assert lines["numpy = numpy, float32, 3 epochs"].endswith("loss rel 0.0e+00  ok")
    for check in (
        "epoch numpy (dry run) batch 4096",
        "epoch numpy batch 4096",
        "sweep 2 members",
        "transfers (batch 256 = 4096)",
    ):
        assert check in lines
    assert lines["target: 2 members >= 10x one member"].endswith("FAILED")
    assert lines["target: batch 4096 epoch, numpy (dry run) < numpy"]
    assert code == 1


def test_gpu_check_sees_no_copies_per_batch(backend32: Backend):
    """The transfer count of the GPU check, on the host backends."""
    check = gpu_check()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    y = (X[:, 0] > 0).astype(np.int64)
    data = to_device(backend32, "binary", 2, (X[:60], y[:60]), (X[60:], y[60:]))
    row = check.transfers(backend32, data, batches=(4, 32), epochs=2)
    assert row.ok, row.value
    assert Backend.asarray.__name__ == "asarray", "the counters are removed"
