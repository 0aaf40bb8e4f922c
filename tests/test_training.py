"""The training loop: determinism, dtypes, divergence, stopping and optimizers.

Each test of the loop runs on NumPy and array-api-strict through the backend
fixtures, on small synthetic data. Optimizer updates are compared with the
textbook formulas evaluated in NumPy float64. Cases B04 (divergence on MAGIC),
B11 (float64 learning rate into a float32 model) and B17 (batch larger than
the data) use the shared files.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mlp_backend.backend import get_backend
from mlp_backend.cli import main
from mlp_backend.data import load_table
from mlp_backend.errors import UsageError
from mlp_backend.losses import get_loss
from mlp_backend.model import Shape, Stack
from mlp_backend.optim import Optimizer, schedule_factor
from mlp_backend.persist import load_model
from mlp_backend.train import (
    Member,
    TrainConfig,
    Trainer,
    memory_needed,
    to_device,
)
from tests.conftest import case_file


def synthetic(n: int = 240, features: int = 4, seed: int = 1, task: str = "binary"):
    """A linearly separable-ish problem: (train, val) host pairs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    w = np.arange(1, features + 1, dtype=np.float64)
    score = X @ w + 0.3 * rng.normal(size=n)
    y = (score > 0).astype(np.int64) if task == "binary" else score
    cut = int(0.75 * n)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def device_data(backend, task: str = "binary", **kwargs):
    train, val = synthetic(task=task, **kwargs)
    return to_device(backend, task, 2 if task == "binary" else 0, train, val)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


class Recorder:
    def __init__(self):
        self.records = []
        self.ends = []

    def on_epoch(self, member, record):
        self.records.append((member, record))

    def on_member_end(self, member, result):
        self.ends.append((member, result.state))


# Determinism.


def test_same_seed_same_backend_gives_identical_metrics(backend32):
    config = TrainConfig(
        activation="tanh", optimizer="adam", batch_size=32, epochs=3, patience=0
    )
    member = Member(hidden=(8,), lr=0.01, seed=7)
    runs = [
        Trainer(backend32, config, [member], device_data(backend32)).run()[0]
        for _ in range(2)
    ]
    assert runs[0].state == runs[1].state == "finished"
    assert len(runs[0].history) == 3
    assert without_time(runs[0].history) == without_time(runs[1].history)
    for a, b in zip(runs[0].params, runs[1].params, strict=True):
        np.testing.assert_array_equal(a, b)
    # A different seed really changes the run.
    other = Trainer(
        backend32,
        config,
        [Member(hidden=(8,), lr=0.01, seed=8)],
        device_data(backend32),
    ).run()[0]
    assert without_time(other.history) != without_time(runs[0].history)


# B11: a numpy.float64 learning rate must not promote a float32 model.


def test_case_b11_float64_learning_rate_keeps_float32(backend32):
    spec = json.loads(case_file("B11_float64_lr_promotion.json").read_text())
    assert spec["model_dtype"] == "float32"
    rates = np.array([1.0, 0.1, 0.01, 0.001])
    lr = rates[1]
    assert type(lr) is np.float64
    xp = backend32.xp
    shape = Shape(4, (5, 3), 1, "tanh", "binary_cross_entropy")
    stack = Stack.initialise(backend32, shape, [(5, 3)], [np.random.default_rng(0)])
    X = backend32.asarray(np.random.default_rng(1).normal(size=(1, 16, 4)))
    Y = backend32.asarray(np.ones((1, 16, 1)))
    z, cache = stack.forward(X)
    loss, delta = stack.loss.value_and_delta(xp, z, Y)
    grads = stack.backward(cache, delta)
    optimizer = Optimizer(
        backend32, "momentum", [lr], [np.float64(0.9)], [np.float64(1e-3)]
    )
    stack.params = optimizer.step(stack.params, grads, np.float64(0.5))
    arrays = [
        z,
        loss,
        delta,
        *grads,
        *stack.params,
        *[a for pair in cache for a in pair],
    ]
    assert all(a.dtype == xp.float32 for a in arrays), [a.dtype for a in arrays]
    assert all(s.dtype == xp.float32 for group in optimizer.state for s in group)

    # Through the trainer, with every hyperparameter a NumPy float64.
    config = TrainConfig(activation="tanh", optimizer="adam", batch_size=32, epochs=1)
    member = Member(
        hidden=(6,),
        lr=lr,
        momentum=np.float64(0.9),
        weight_decay=np.float64(1e-4),
        seed=0,
    )
    seen = []

    class DtypeProbe:
        def on_epoch(self, member, record):
            seen.append(record)

        def on_member_end(self, member, result):
            pass

    result = Trainer(
        backend32, config, [member], device_data(backend32), [DtypeProbe()]
    ).run()[0]
    assert all(p.dtype == np.float32 for p in result.params)
    assert all(type(v) in (int, float) for v in seen[0].values())


# B04: divergence is a result, not a crash.


def strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-JSON constant {name} in a run file")

    return json.loads(text, parse_constant=refuse)


def check_run_files(folder: Path) -> dict:
    for name in ("config.json", "status.json", "summary.json"):
        strict_json((folder / name).read_text())
    # A run that diverges in its first epoch has no epoch to record.
    metrics = folder / "metrics.jsonl"
    for line in metrics.read_text().splitlines() if metrics.exists() else []:
        strict_json(line)
    status = strict_json((folder / "status.json").read_text())
    summary = strict_json((folder / "summary.json").read_text())
    saved = load_model(folder / "model.npz")  # checks every weight is finite
    assert all(np.all(np.isfinite(p)) for p in saved.params)
    return {"status": status, "summary": summary}


def test_case_b04_lr10_on_magic_finishes_or_diverges_cleanly(tmp_path, magic_path):
    spec = json.loads(case_file("B04_diverge_lr10.json").read_text())
    args = [
        "train",
        "--data",
        str(magic_path),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "b04",
        "--hidden",
        ",".join(str(h) for h in spec["hidden"]),
        "--activation",
        spec["activation"],
        "--lr",
        str(spec["learning_rate"]),
        "--batch-size",
        str(spec["batch_size"]),
        "--epochs",
        str(spec["epochs"]),
        "--seed",
        str(spec["seed"]),
        "--optimizer",
        "sgd",
        "--patience",
        "0",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output
    )
    files = check_run_files(tmp_path / "b04")
    state = files["status"]["state"]
    assert state in ("finished", "diverged")
    if state == "finished":
        assert result.exit_code == 0
        for line in (tmp_path / "b04" / "metrics.jsonl").read_text().splitlines():
            record = strict_json(line)
            for key in ("train_loss", "val_loss", "val_accuracy"):
                assert math.isfinite(record[key])
    else:
        assert result.exit_code == 3
        assert files["status"]["epoch"] >= 1 and files["status"]["step"] >= 1


def test_forced_divergence_is_recorded_with_epoch_step_and_finite_weights(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * 5
    y = X @ np.array([3.0, -2.0, 1.0]) * 100
    data = tmp_path / "reg.csv"
    data.write_text(
        "".join(
            ",".join(f"{v:.6g}" for v in [*x, t]) + "\n"
            for x, t in zip(X, y, strict=True)
        )
    )
    args = [
        "train",
        "--data",
        str(data),
        "--task",
        "regression",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--name",
        "boom",
        "--hidden",
        "16",
        "--activation",
        "relu",
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--batch-size",
        "16",
        "--epochs",
        "5",
        "--patience",
        "0",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    files = check_run_files(tmp_path / "runs" / "boom")
    status, summary = files["status"], files["summary"]
    assert status["state"] == summary["state"] == "diverged"
    assert status["epoch"] == 1 and status["step"] >= 1
    assert f"epoch {status['epoch']}, step {status['step']}" in summary["reason"]
    events = (tmp_path / "runs" / "boom" / "events.jsonl").read_text()
    assert "stopped being finite" in events
    # One line says so, with no best epoch where none was recorded.
    said = [line for line in result.output.splitlines() if "diverged" in line]
    assert len(said) == 1, result.output
    assert said[0].startswith("run diverged in epoch 1 in "), said
    assert said[0].endswith(f"s: {summary['reason']}"), said


def test_divergence_in_trainer_keeps_last_finite_weights(backend32):
    config = TrainConfig(
        activation="relu", optimizer="sgd", batch_size=16, epochs=4, patience=0
    )
    train, val = synthetic(task="regression")
    train = (train[0] * 5, train[1] * 1000)
    val = (val[0] * 5, val[1] * 1000)
    data = to_device(backend32, "regression", 0, train, val)
    seen = Recorder()
    result = Trainer(
        backend32, config, [Member(hidden=(16,), lr=1e6, seed=0)], data, [seen]
    ).run()[0]
    assert result.state == "diverged"
    assert result.epochs_run >= 1 and result.step >= 1
    assert all(np.all(np.isfinite(p)) for p in result.params)
    assert seen.ends == [(0, "diverged")]
    for _, record in seen.records:
        assert all(math.isfinite(v) for v in record.values())


# B17: a batch larger than the data.


def test_validation_roc_ranks_logits_not_saturated_probabilities():
    # A confident float32 model's sigmoid rounds to exactly 0 or 1 for many
    # rows, and where rows of both classes tie there, ranking probabilities
    # moves the area (0.80 recorded against 0.82 in the reference preset).
    # Wide features and labels flipped at random make such a model; on NumPy
    # only, since the trajectory at this learning rate depends on rounding
    # (test_metrics checks the ranking itself on every backend).
    from sklearn.metrics import roc_auc_score

    backend32 = get_backend("numpy", "float32")

    rng = np.random.default_rng(10)
    X = 10.0 * rng.normal(size=(800, 4))
    y = (X @ np.arange(1.0, 5.0) > 0).astype(np.int64)
    flipped = rng.random(800) < 0.1
    y[flipped] = 1 - y[flipped]
    data = to_device(backend32, "binary", 2, (X[:600], y[:600]), (X[600:], y[600:]))
    config = TrainConfig(
        activation="relu", optimizer="sgd", batch_size=8, epochs=3, patience=0
    )
    member = Member((16,), lr=0.3, momentum=0.0)
    result = Trainer(backend32, config, [member], data).run()[0]
    stack = Stack.from_host(
        backend32, Shape(4, (16,), 1, "relu", "binary_cross_entropy"), [result.params]
    )
    z = backend32.to_host(stack.forward(data.X_val)[0])[0, :, 0]
    proba = backend32.to_host(stack.predict_output(data.X_val))[0, :, 0]
    # The case in point: the probabilities tie where the logits do not.
    assert roc_auc_score(y[600:], proba) != roc_auc_score(y[600:], z)
    record = result.history[result.best_epoch - 1]
    assert record["val_roc_auc"] == pytest.approx(roc_auc_score(y[600:], z), rel=1e-6)


def test_case_b17_five_rows_batch_64_one_step_per_epoch(backend32):
    table = load_table(case_file("B17_five_rows.csv"))
    y = (table.labels == "g").astype(np.int64)
    X = (table.X - table.X.mean(axis=0)) / table.X.std(axis=0)
    data = to_device(backend32, "binary", 2, (X, y), (X, y))
    calls = []

    def should_stop():
        calls.append(1)
        return False

    config = TrainConfig(
        activation="tanh", optimizer="sgd", batch_size=64, epochs=3, patience=0
    )
    result = Trainer(
        backend32, config, [Member(hidden=(4,), lr=0.1)], data, should_stop=should_stop
    ).run()[0]
    assert len(calls) == 3, "one step per epoch"
    assert result.state == "finished" and len(result.history) == 3
    losses = [r["train_loss"] for r in result.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("batch", [0, -3])
def test_batch_size_zero_or_negative_rejected_naming_option(batch, backend32):
    with pytest.raises(UsageError, match="--batch-size"):
        TrainConfig(batch_size=batch).check()
    with pytest.raises(UsageError, match="--batch-size"):
        Trainer(
            backend32,
            TrainConfig(batch_size=batch),
            [Member(hidden=(4,), lr=0.1)],
            device_data(backend32),
        )


@pytest.mark.parametrize("batch", ["0", "-1"])
def test_cli_batch_size_rejected_before_run_folder(tmp_path, batch):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(case_file("B17_five_rows.csv")),
            "--runs-dir",
            str(runs),
            "--batch-size",
            batch,
            "--epochs",
            "3",
        ],
    )
    assert result.exit_code == 2
    assert "--batch-size" in result.output
    assert not runs.exists() or not any(runs.iterdir())


# Early stopping and stop requests.


def test_early_stopping_restores_best_weights(backend):
    train, val = synthetic(n=120, seed=3)
    # Noisy labels and a big learning rate: validation loss rises after a while.
    rng = np.random.default_rng(5)
    flip = rng.random(train[1].size) < 0.3
    train = (train[0], np.where(flip, 1 - train[1], train[1]))
    data = to_device(backend, "binary", 2, train, val)
    config = TrainConfig(
        activation="relu", optimizer="adam", batch_size=8, epochs=60, patience=3
    )
    result = Trainer(
        backend, config, [Member(hidden=(32, 32), lr=0.05, seed=0)], data
    ).run()[0]
    assert result.state == "finished"
    assert result.best_epoch < result.epochs_run < 60, "early stopping must trigger"
    assert result.epochs_run - result.best_epoch == 3
    best = result.history[result.best_epoch - 1]["val_loss"]
    assert best == min(r["val_loss"] for r in result.history)
    assert result.best_value == best
    shape = Shape(4, (32, 32), 1, "relu", "binary_cross_entropy")
    stack = Stack.from_host(backend, shape, [result.params])
    z, _ = stack.forward(data.X_val)
    loss, _ = get_loss("binary_cross_entropy").value_and_delta(
        backend.xp, z, data.T_val
    )
    np.testing.assert_allclose(backend.scalar(loss[0]), best, rtol=1e-12)


def test_a_members_end_is_left_to_the_caller_and_named_in_the_debug_log(
    backend32, caplog
):
    """The train command's last lines and a sweep's line per trial say how a
    member ended; logged at INFO by the trainer too, it came out twice."""
    train, val = synthetic(n=120, seed=3)
    data = to_device(backend32, "binary", 2, train, val)
    config = TrainConfig(batch_size=8, epochs=6, patience=1)
    lone = [Member(hidden=(8,), lr=5.0, seed=0)]
    pair = [Member(hidden=(8,), lr=0.01, seed=0), *lone]
    with caplog.at_level(logging.INFO, logger="mlp_backend.train"):
        (alone,) = Trainer(backend32, config, lone, data).run()
        results = Trainer(backend32, config, pair, data).run()
    assert alone.reason.startswith("early stop"), alone.reason
    assert results[1].reason.startswith("early stop"), results[1].reason
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    # Named members (a sweep's trials) are logged by name.
    with caplog.at_level(logging.DEBUG, logger="mlp_backend.train"):
        Trainer(backend32, config, pair, data, names=["trial-0004", "trial-0006"]).run()
    messages = [r.getMessage() for r in caplog.records]
    assert f"trial-0006: {results[1].reason}" in messages


@pytest.mark.parametrize(
    "stop_at, whole", [(10, 1), (12, 2)], ids=["mid-epoch", "at-epoch-end"]
)
def test_should_stop_ends_after_the_current_batch(backend32, stop_at, whole):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) >= stop_at

    seen = Recorder()
    config = TrainConfig(activation="tanh", batch_size=32, epochs=20, patience=0)
    result = Trainer(
        backend32,
        config,
        [Member(hidden=(4,), lr=0.01)],
        device_data(backend32),
        [seen],
        should_stop,
    ).run()[0]
    # 180 training rows in batches of 32: 6 steps per epoch, stop in epoch 2,
    # after its 4th step or after its last. Only whole epochs are recorded.
    assert len(calls) == stop_at
    assert result.state == "stopped"
    assert result.epochs_run == whole
    assert "during epoch 2" in result.reason
    assert ("not recorded" in result.reason) == (whole == 1)
    assert seen.ends == [(0, "stopped")]
    assert [r["epoch"] for _, r in seen.records] == list(range(1, whole + 1))
    assert [r["epoch"] for r in result.history] == list(range(1, whole + 1))
    assert all(np.all(np.isfinite(p)) for p in result.params)


def test_a_stop_in_the_first_epoch_keeps_the_first_weights(backend32):
    """No whole epoch ran, so the weights kept are the ones it started from,
    wherever in the epoch the stop came."""

    def stopping_after(steps):
        calls = []

        def should_stop():
            calls.append(1)
            return len(calls) >= steps

        return should_stop

    config = TrainConfig(activation="tanh", batch_size=32, epochs=3, patience=0)
    member = [Member(hidden=(4,), lr=0.1)]
    data = device_data(backend32)
    early, late = (
        Trainer(backend32, config, member, data, [], stopping_after(k)).run()[0]
        for k in (1, 5)
    )
    trained = Trainer(backend32, config, member, data, [], stopping_after(7)).run()[0]
    assert (early.epochs_run, late.epochs_run, trained.epochs_run) == (0, 0, 1)
    for a, b, c in zip(early.params, late.params, trained.params, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_a_batch_past_the_rows_is_one_batch_of_them_all(backend32):
    """However large the number: no buffer is sized by it (it was, and 2**63
    rows raised "array is too big")."""
    data = device_data(backend32)
    rows = int(data.X_train.shape[0])
    results = [
        Trainer(
            backend32,
            TrainConfig(activation="tanh", batch_size=size, epochs=2, patience=0),
            [Member(hidden=(4,), lr=0.1)],
            data,
        ).run()[0]
        for size in (rows, 10**20, 2**63 - 1)
    ]
    for other in results[1:]:
        assert [r["train_loss"] for r in other.history] == [
            r["train_loss"] for r in results[0].history
        ]
        for a, b in zip(other.params, results[0].params, strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_stack_past_the_free_memory_is_refused_before_it_allocates(
    backend32, monkeypatch
):
    data = device_data(backend32)
    config = TrainConfig(activation="tanh", batch_size=32, epochs=1, patience=0)
    rows = int(data.X_train.shape[0])
    n_val = int(data.X_val.shape[1])
    sizes = (int(data.X_train.shape[1]), 4, 1)
    needed = memory_needed(sizes, 2, 32, rows, n_val, 4)
    members = [Member(hidden=(4,), lr=0.1), Member(hidden=(4,), lr=0.1, seed=1)]
    monkeypatch.setattr(type(backend32), "free_memory", lambda self: needed - 1)
    with pytest.raises(UsageError, match=r"^not enough memory: training 2 networks"):
        Trainer(backend32, config, members, data).run()
    monkeypatch.setattr(type(backend32), "free_memory", lambda self: needed)
    assert Trainer(backend32, config, members, data).run()[0].state == "finished"


def test_a_network_too_large_for_memory_leaves_no_run_folder(tmp_path, magic_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(magic_path), "--runs-dir", str(runs)]
        + ["--hidden", "100000000", "--epochs", "1"],
    )
    assert result.exit_code == 2, result.output
    assert "error: not enough memory: training a network of hidden layers " in (
        result.output
    )
    assert not runs.exists() or not any(runs.iterdir())


# Schedules.


def test_schedule_factors():
    assert [schedule_factor("none", e, 10) for e in (0, 5, 9)] == [1.0, 1.0, 1.0]
    step = [
        schedule_factor("step", e, 30, step_size=10, gamma=0.5) for e in (0, 9, 10, 25)
    ]
    assert step == [1.0, 1.0, 0.5, 0.25]
    cosine = [schedule_factor("cosine", e, 10) for e in (0, 5, 10)]
    np.testing.assert_allclose(cosine, [1.0, 0.5, 0.0], atol=1e-15)
    values = [schedule_factor("cosine", e, 10) for e in range(10)]
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    with pytest.raises(UsageError, match="--schedule"):
        schedule_factor("linear", 0, 10)


def test_schedule_reaches_the_recorded_learning_rate(backend32):
    config = TrainConfig(
        activation="tanh",
        optimizer="sgd",
        batch_size=64,
        epochs=3,
        schedule="step",
        step_size=1,
        gamma=0.5,
        patience=0,
    )
    result = Trainer(
        backend32, config, [Member(hidden=(4,), lr=0.2)], device_data(backend32)
    ).run()[0]
    assert [r["lr"] for r in result.history] == [0.2, 0.1, 0.05]


# Optimizers against the formulas, in float64.


def reference_updates(kind, params, grads_seq, lr, mu, wd, factor=1.0):
    """The textbook update rules applied step by step in NumPy float64."""
    params = [p.copy() for p in params]
    v = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t, grads in enumerate(grads_seq, start=1):
        for k, (p, g) in enumerate(zip(params, grads, strict=True)):
            if k % 2 == 0:
                g = g + wd * p
            step = lr * factor
            if kind == "sgd":
                p -= step * g
            elif kind == "momentum":
                v[k] = mu * v[k] + g
                p -= step * v[k]
            elif kind == "nesterov":
                v[k] = mu * v[k] + g
                p -= step * (g + mu * v[k])
            else:
                v[k] = b1 * v[k] + (1 - b1) * g
                m2[k] = b2 * m2[k] + (1 - b2) * g * g
                m_hat = v[k] / (1 - b1**t)
                v_hat = m2[k] / (1 - b2**t)
                p -= step * m_hat / (np.sqrt(v_hat) + eps)
    return params


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_optimizer_matches_reference(backend, kind, wd):
    rng = np.random.default_rng(11)
    params = [rng.normal(size=(1, 3, 2)), rng.normal(size=(1, 1, 2))]
    grads_seq = [[rng.normal(size=p.shape) for p in params] for _ in range(4)]
    lr, mu, factor = 0.1, 0.8, 0.5
    optimizer = Optimizer(backend, kind, [lr], [mu], [wd])
    current = [backend.asarray(p) for p in params]
    for grads in grads_seq:
        current = optimizer.step(current, [backend.asarray(g) for g in grads], factor)
    expected = reference_updates(kind, params, grads_seq, lr, mu, wd, factor)
    for got, want in zip(current, expected, strict=True):
        np.testing.assert_allclose(backend.to_host(got), want, rtol=1e-12, atol=1e-14)
    # The bias (index 1) never sees weight decay; the weight does.
    if wd:
        plain = reference_updates(kind, params, grads_seq, lr, mu, 0.0, factor)
        np.testing.assert_allclose(backend.to_host(current[1]), plain[1], rtol=1e-12)
        assert not np.allclose(backend.to_host(current[0]), plain[0])


def test_optimizer_members_are_independent(backend):
    rng = np.random.default_rng(2)
    params = [rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 1, 2))]
    grads = [rng.normal(size=p.shape) for p in params]
    optimizer = Optimizer(backend, "adam", [0.1, 0.01], [0.9, 0.9], [0.0, 0.1])
    out = optimizer.step(
        [backend.asarray(p) for p in params], [backend.asarray(g) for g in grads], 1.0
    )
    for j, (lr, wd) in enumerate(((0.1, 0.0), (0.01, 0.1))):
        want = reference_updates(
            "adam",
            [p[j : j + 1] for p in params],
            [[g[j : j + 1] for g in grads]],
            lr,
            0.9,
            wd,
        )
        for got, w in zip(out, want, strict=True):
            np.testing.assert_allclose(backend.to_host(got)[j : j + 1], w, rtol=1e-12)


def test_unknown_optimizer_names_the_option(backend):
    with pytest.raises(UsageError, match="--optimizer"):
        Optimizer(backend, "rmsprop", [0.1], [0.9], [0.0])


def test_weight_decay_shrinks_trained_weights(backend32):
    config = TrainConfig(
        activation="tanh", optimizer="sgd", batch_size=32, epochs=5, patience=0
    )
    norms = []
    for wd in (0.0, 0.5):
        result = Trainer(
            backend32,
            config,
            [Member(hidden=(8,), lr=0.1, weight_decay=wd)],
            device_data(backend32),
        ).run()[0]
        norms.append(
            sum(float(np.sum(W.astype(np.float64) ** 2)) for W in result.params[::2])
        )
    assert norms[1] < 0.7 * norms[0]


def test_plain_lines_show_an_undefined_figure_as_such(capsys):
    from mlp_backend.progress import PlainLines

    record = {"epoch": 1, "train_loss": 0.25, "val_loss": 0.5}
    PlainLines(2).on_epoch(0, {**record, "val_roc_auc": math.nan})
    line = capsys.readouterr().err
    assert "train_loss 0.2500  val_loss 0.5000  val_roc_auc n/a  eta " in line


def test_patience_that_runs_out_in_the_last_epoch_is_no_early_stop(backend32):
    train, val = synthetic(n=120, seed=3)
    data = to_device(backend32, "binary", 2, train, val)
    member = [Member(hidden=(8,), lr=5.0, seed=0)]
    long = Trainer(
        backend32, TrainConfig(batch_size=8, epochs=20, patience=1), member, data
    )
    (stopped,) = long.run()
    assert stopped.reason == (
        f"early stop at epoch {stopped.epochs_run}: no better val_loss for 1 epoch"
    )
    config = TrainConfig(batch_size=8, epochs=stopped.epochs_run, patience=1)
    (ended,) = Trainer(backend32, config, member, data).run()
    assert (ended.state, ended.reason) == ("finished", None)
    assert ended.epochs_run == stopped.epochs_run
