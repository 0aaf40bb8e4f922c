"""Metrics against scikit-learn, the oracle, on every backend.

Each test draws fresh data from a seeded generator, computes the metric on
the backend and compares it with ``sklearn.metrics`` on the same host data.
Ties in scores get their own cases (scores rounded to one decimal, or to
whole numbers so that nearly everything ties), since that is where ROC code
usually goes wrong.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from mlp_backend import metrics
from mlp_backend.backend import Backend, namespace_of
from mlp_backend.errors import UsageError

SEEDS = (0, 1, 2)
SIZES = (7, 64, 1000)
# None: continuous scores; 1: rounded to one decimal; 0: rounded to 0 or 1.
DECIMALS = (None, 1, 0)


def _binary(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels holding both classes and scores in [0, 1] that lean towards them."""
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    scores = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    return y, scores


def _rounded(scores: np.ndarray, decimals: int | None) -> np.ndarray:
    return scores if decimals is None else np.round(scores, decimals)


def _proba(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Rows on the simplex, some of them exactly one-hot, so clipping matters."""
    proba = rng.dirichlet(np.full(k, 0.5), n)
    proba[: n // 5] = np.eye(k)[rng.integers(0, k, n // 5)]
    return proba


def _host(backend: Backend, array: object) -> np.ndarray:
    return backend.to_host(array)


def _assert_scalar_on(backend: Backend, result: object, dtype: object) -> None:
    """The metric stayed on the backend: a 0-d array of its namespace."""
    assert namespace_of(result) is backend.xp
    assert result.shape == ()
    assert result.dtype == dtype


def _sklearn_tpr_at_fpr(
    y: np.ndarray, scores: np.ndarray, fprs: tuple[float, ...]
) -> np.ndarray:
    fpr, tpr, _ = sk.roc_curve(y, scores, drop_intermediate=False)
    return np.array([tpr[fpr <= budget].max() for budget in fprs])


# Labels.


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy(backend: Backend, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y, y_pred = rng.integers(0, 4, n), rng.integers(0, 4, n)
    result = metrics.accuracy(backend.asarray(y), backend.asarray(y_pred))
    _assert_scalar_on(backend, result, backend.xp.float64)
    assert _host(backend, result) == pytest.approx(sk.accuracy_score(y, y_pred))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_label_metrics(backend: Backend, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y, y_pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y_true_b, y_pred_b = backend.asarray(y), backend.asarray(y_pred)
    expected = {
        metrics.precision: sk.precision_score(y, y_pred, zero_division=0),
        metrics.recall: sk.recall_score(y, y_pred, zero_division=0),
        metrics.f1: sk.f1_score(y, y_pred, zero_division=0),
    }
    for metric, value in expected.items():
        result = metric(y_true_b, y_pred_b)
        _assert_scalar_on(backend, result, backend.xp.float64)
        assert _host(backend, result) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("y", "y_pred"),
    [
        ([0, 1, 1, 0], [0, 0, 0, 0]),  # nothing predicted positive
        ([0, 0, 0, 0], [0, 1, 0, 1]),  # no true positive
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # neither
    ],
)
def test_binary_zero_division(
    backend: Backend, y: list[int], y_pred: list[int]
) -> None:
    y_true_b, y_pred_b = backend.asarray(y), backend.asarray(y_pred)
    assert _host(backend, metrics.precision(y_true_b, y_pred_b)) == sk.precision_score(
        y, y_pred, zero_division=0
    )
    assert _host(backend, metrics.recall(y_true_b, y_pred_b)) == sk.recall_score(
        y, y_pred, zero_division=0
    )
    assert _host(backend, metrics.f1(y_true_b, y_pred_b)) == sk.f1_score(
        y, y_pred, zero_division=0
    )


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_macro_metrics(backend: Backend, seed: int, n: int) -> None:
    # Class 4 never occurs, so the average also covers an absent class.
    rng = np.random.default_rng(seed)
    k = 5
    y, y_pred = rng.integers(0, k - 1, n), rng.integers(0, k - 1, n)
    y_pred[: n // 2] = y[: n // 2]
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y, y_pred, labels=np.arange(k), average="macro", zero_division=0
    )
    y_true_b, y_pred_b = backend.asarray(y), backend.asarray(y_pred)
    expected = {
        metrics.macro_precision: precision,
        metrics.macro_recall: recall,
        metrics.macro_f1: f1,
    }
    for metric, value in expected.items():
        result = metric(y_true_b, y_pred_b, k)
        _assert_scalar_on(backend, result, backend.xp.float64)
        assert _host(backend, result) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix(backend: Backend, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    k = 4
    y, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)
    result = metrics.confusion_matrix(backend.asarray(y), backend.asarray(y_pred), k)
    assert result.shape == (k, k)
    assert result.dtype == backend.xp.int64
    expected = sk.confusion_matrix(y, y_pred, labels=np.arange(k))
    np.testing.assert_array_equal(_host(backend, result), expected)


# Scores.


@pytest.mark.parametrize("decimals", DECIMALS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc(backend: Backend, seed: int, n: int, decimals: int | None) -> None:
    y, scores = _binary(np.random.default_rng(seed), n)
    scores = _rounded(scores, decimals)
    result = metrics.roc_auc(backend.asarray(y), backend.asarray(scores))
    _assert_scalar_on(backend, result, backend.xp.float64)
    expected = sk.roc_auc_score(y, scores)
    assert _host(backend, result) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("decimals", DECIMALS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_tpr_at_fpr(backend: Backend, seed: int, n: int, decimals: int | None) -> None:
    y, scores = _binary(np.random.default_rng(seed), n)
    scores = _rounded(scores, decimals)
    fprs = (0.0, *metrics.DEFAULT_FPRS, 0.5, 1.0)
    result = metrics.tpr_at_fpr(backend.asarray(y), backend.asarray(scores), fprs)
    assert result.shape == (len(fprs),)
    expected = _sklearn_tpr_at_fpr(y, scores, fprs)
    np.testing.assert_allclose(_host(backend, result), expected, rtol=1e-12)


@settings(
    max_examples=60,
    deadline=None,
    # The fixture returns an immutable Backend, so examples may share it.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 1), st.integers(-2, 2)), min_size=2, max_size=40
    ).filter(lambda pairs: len({label for label, _ in pairs}) == 2)
)
def test_roc_on_tied_integer_scores(
    backend: Backend, pairs: list[tuple[int, int]]
) -> None:
    y = np.array([label for label, _ in pairs])
    scores = np.array([score for _, score in pairs], dtype=np.float64)
    y_b, scores_b = backend.asarray(y), backend.asarray(scores)
    auc = _host(backend, metrics.roc_auc(y_b, scores_b))
    assert auc == pytest.approx(sk.roc_auc_score(y, scores), rel=1e-12)
    rates = _host(backend, metrics.tpr_at_fpr(y_b, scores_b))
    expected = _sklearn_tpr_at_fpr(y, scores, metrics.DEFAULT_FPRS)
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


@pytest.mark.parametrize("label", [0, 1])
def test_roc_single_class_is_nan(backend: Backend, label: int) -> None:
    # sklearn raises here; we return nan, silently (warnings are errors).
    y = backend.asarray(np.full(6, label))
    scores = backend.asarray(np.linspace(0.0, 1.0, 6))
    assert math.isnan(backend.scalar(metrics.roc_auc(y, scores)))
    assert np.isnan(_host(backend, metrics.tpr_at_fpr(y, scores))).all()


# Rows: a stack's members scored at once.


def _assert_rows(y: np.ndarray, proba: np.ndarray, result: dict) -> None:
    """Each row's figures are scikit-learn's for that row alone."""
    for i, p in enumerate(proba):
        pred = (p > 0.5).astype(np.int64)
        assert result["accuracy"][i] == pytest.approx(
            sk.accuracy_score(y, pred), rel=1e-12
        )
        assert result["f1"][i] == pytest.approx(
            sk.f1_score(y, pred, zero_division=0), rel=1e-12
        )
        assert result["roc_auc"][i] == pytest.approx(sk.roc_auc_score(y, p), rel=1e-12)


@pytest.mark.parametrize("decimals", DECIMALS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_rows(backend: Backend, seed: int, n: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    y, first = _binary(rng, n)
    # Rows that lean towards the labels by different amounts, one against them.
    proba = np.stack([first, np.clip(0.1 * y + 0.9 * rng.random(n), 0, 1), 1.0 - first])
    proba = _rounded(proba, decimals)
    result = metrics.binary_rows(backend.asarray(y), backend.asarray(proba))
    host = {k: _host(backend, v) for k, v in result.items()}
    assert all(v.shape == (3,) for v in host.values())
    _assert_rows(y, proba, host)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    labels=st.lists(st.integers(0, 1), min_size=2, max_size=30).filter(
        lambda labels: len(set(labels)) == 2
    ),
    data=st.data(),
)
def test_binary_rows_on_tied_scores(
    backend: Backend, labels: list[int], data: st.DataObject
) -> None:
    # Few distinct scores per row, so ties span labels and cross row ends.
    rows = data.draw(st.integers(1, 4))
    scores = data.draw(
        st.lists(
            st.lists(
                st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]),
                min_size=len(labels),
                max_size=len(labels),
            ),
            min_size=rows,
            max_size=rows,
        )
    )
    y, proba = np.array(labels), np.array(scores)
    result = metrics.binary_rows(backend.asarray(y), backend.asarray(proba))
    _assert_rows(y, proba, {k: _host(backend, v) for k, v in result.items()})


def test_roc_ranks_the_scores_given(backend: Backend) -> None:
    # Probabilities of 1.0 (float32 saturation) for rows of both classes tie,
    # where their logits would not; given the logits, ROC figures use them.
    y = np.array([0, 1, 1, 0, 1, 0, 1, 0])
    logits = np.array([25.0, 30.0, 40.0, 35.0, -3.0, -5.0, 2.0, 0.5])
    proba = np.where(logits > 17, 1.0, 1.0 / (1.0 + np.exp(-logits)))
    assert sk.roc_auc_score(y, proba) != sk.roc_auc_score(y, logits)
    y_b, p_b, z_b = (backend.asarray(a) for a in (y, proba, logits))
    rows = metrics.binary_rows(y_b, p_b[None, :], scores=z_b[None, :])
    assert _host(backend, rows["roc_auc"])[0] == pytest.approx(
        sk.roc_auc_score(y, logits), rel=1e-12
    )
    report = metrics.binary_report(backend, y_b, p_b, scores=z_b)
    assert report["roc_auc"] == pytest.approx(sk.roc_auc_score(y, logits), rel=1e-12)
    expected = _sklearn_tpr_at_fpr(y, logits, metrics.DEFAULT_FPRS)
    np.testing.assert_allclose(list(report["tpr_at_fpr"].values()), expected)
    # Thresholded figures still read the probabilities.
    assert report["accuracy"] == sk.accuracy_score(y, proba > 0.5)


@pytest.mark.parametrize("label", [0, 1])
def test_binary_rows_single_class(backend: Backend, label: int) -> None:
    y = np.full(5, label)
    proba = np.array([[0.1, 0.7, 0.7, 0.2, 0.9], [0.0, 0.0, 0.0, 0.0, 0.0]])
    result = metrics.binary_rows(backend.asarray(y), backend.asarray(proba))
    assert np.isnan(_host(backend, result["roc_auc"])).all()
    pred = proba > 0.5
    np.testing.assert_allclose(
        _host(backend, result["accuracy"]), (pred == (y == 1)).mean(axis=1)
    )
    expected_f1 = [sk.f1_score(y, p, zero_division=0) for p in pred.astype(int)]
    np.testing.assert_allclose(_host(backend, result["f1"]), expected_f1)


# Probabilities.


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_log_loss(backend: Backend, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y, proba = _binary(rng, n)
    # Certain predictions, right and wrong, exercise the clipping on both ends.
    proba[: n // 5] = rng.integers(0, 2, n // 5)
    result = metrics.log_loss(backend.asarray(y), backend.asarray(proba))
    _assert_scalar_on(backend, result, backend.xp.float64)
    expected = sk.log_loss(y, proba, labels=[0, 1])
    assert _host(backend, result) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_log_loss(backend: Backend, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    k = 4
    y, proba = rng.integers(0, k, n), _proba(rng, n, k)
    result = metrics.log_loss(backend.asarray(y), backend.asarray(proba))
    _assert_scalar_on(backend, result, backend.xp.float64)
    expected = sk.log_loss(y, proba, labels=np.arange(k))
    assert _host(backend, result) == pytest.approx(expected, rel=1e-12)


# Regression.


@pytest.mark.parametrize("outputs", [None, 3])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics(
    backend: Backend, seed: int, n: int, outputs: int | None
) -> None:
    rng = np.random.default_rng(seed)
    shape = (n,) if outputs is None else (n, outputs)
    y = rng.normal(size=shape)
    y_pred = 0.7 * y + 0.5 * rng.normal(size=shape)
    y_b, y_pred_b = backend.asarray(y), backend.asarray(y_pred)
    expected = {
        metrics.mse: sk.mean_squared_error(y, y_pred),
        metrics.mae: sk.mean_absolute_error(y, y_pred),
        metrics.r2: sk.r2_score(y, y_pred),
    }
    for metric, value in expected.items():
        result = metric(y_b, y_pred_b)
        _assert_scalar_on(backend, result, backend.xp.float64)
        assert _host(backend, result) == pytest.approx(value, rel=1e-10)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_r2_constant_target(backend: Backend, offset: float) -> None:
    # Column 0 is constant: sklearn scores it 1 if predicted exactly, else 0.
    y = np.column_stack([np.full(5, 2.0), np.arange(5.0)])
    y_pred = y.copy()
    y_pred[:, 0] += offset
    y_pred[:, 1] += np.array([0.1, -0.2, 0.0, 0.3, -0.1])
    result = metrics.r2(backend.asarray(y), backend.asarray(y_pred))
    assert _host(backend, result) == pytest.approx(sk.r2_score(y, y_pred), rel=1e-12)


# float32.


@pytest.mark.parametrize("seed", SEEDS)
def test_float32(backend32: Backend, seed: int) -> None:
    # sklearn computes in float32 too (eps included), so the two agree to a
    # few float32 roundings accumulated over 1000 terms.
    rng = np.random.default_rng(seed)
    n, k = 1000, 3
    y, scores = _binary(rng, n)
    scores = np.round(scores, 1).astype(np.float32)
    labels, proba = rng.integers(0, k, n), _proba(rng, n, k).astype(np.float32)
    target = rng.normal(size=n).astype(np.float32)
    guess = (0.8 * target + 0.3 * rng.normal(size=n)).astype(np.float32)
    f32 = backend32.xp.float32
    cases = [
        (metrics.roc_auc, (y, scores), sk.roc_auc_score(y, scores)),
        (metrics.log_loss, (y, scores), sk.log_loss(y, scores, labels=[0, 1])),
        (metrics.log_loss, (labels, proba), sk.log_loss(labels, proba)),
        (metrics.mse, (target, guess), sk.mean_squared_error(target, guess)),
        (metrics.r2, (target, guess), sk.r2_score(target, guess)),
    ]
    for metric, (a, b), expected in cases:
        result = metric(backend32.asarray(a), backend32.asarray(b))
        _assert_scalar_on(backend32, result, f32)
        assert _host(backend32, result) == pytest.approx(expected, rel=1e-5)
    rates = metrics.tpr_at_fpr(backend32.asarray(y), backend32.asarray(scores))
    assert rates.dtype == f32
    expected_rates = _sklearn_tpr_at_fpr(y, scores, metrics.DEFAULT_FPRS)
    np.testing.assert_allclose(_host(backend32, rates), expected_rates, rtol=1e-6)


# Reports.


def _assert_plain(report: dict[str, object]) -> None:
    """Only Python floats, str-keyed dicts of floats and nested lists of ints."""
    for key, value in report.items():
        if key == "tpr_at_fpr":
            assert list(value) == ["0.01", "0.02", "0.05", "0.1", "0.2"]
            assert all(type(rate) is float for rate in value.values())
        elif key == "confusion_matrix":
            assert all(type(count) is int for row in value for count in row)
        else:
            assert type(value) is float, (key, type(value))


@pytest.mark.parametrize("through_backend", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_binary_report(backend: Backend, seed: int, through_backend: bool) -> None:
    y, proba = _binary(np.random.default_rng(seed), 300)
    proba = np.round(proba, 1)
    report = metrics.binary_report(
        backend if through_backend else None,
        backend.asarray(y),
        backend.asarray(proba),
    )
    _assert_plain(report)
    y_pred = (proba > 0.5).astype(int)
    expected = {
        "accuracy": sk.accuracy_score(y, y_pred),
        "precision": sk.precision_score(y, y_pred, zero_division=0),
        "recall": sk.recall_score(y, y_pred, zero_division=0),
        "f1": sk.f1_score(y, y_pred, zero_division=0),
        "roc_auc": sk.roc_auc_score(y, proba),
        "log_loss": sk.log_loss(y, proba, labels=[0, 1]),
    }
    assert {key: report[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    rates = _sklearn_tpr_at_fpr(y, proba, metrics.DEFAULT_FPRS)
    assert list(report["tpr_at_fpr"].values()) == pytest.approx(rates, rel=1e-12)
    expected_matrix = sk.confusion_matrix(y, y_pred, labels=[0, 1]).tolist()
    assert report["confusion_matrix"] == expected_matrix


def test_binary_report_threshold_is_strict(backend: Backend) -> None:
    y = backend.asarray(np.array([0, 1, 1]))
    proba = backend.asarray(np.array([0.5, 0.5, 0.9]))
    report = metrics.binary_report(backend, y, proba)
    assert report["confusion_matrix"] == [[1, 0], [1, 1]]


def test_binary_report_single_class(backend: Backend) -> None:
    y = backend.asarray(np.zeros(4, dtype=np.int64))
    proba = backend.asarray(np.array([0.1, 0.2, 0.7, 0.4]))
    report = metrics.binary_report(backend, y, proba)
    _assert_plain(report)
    assert math.isnan(report["roc_auc"])
    assert all(math.isnan(rate) for rate in report["tpr_at_fpr"].values())
    assert report["precision"] == 0.0
    assert report["confusion_matrix"] == [[3, 1], [0, 0]]


@pytest.mark.parametrize("through_backend", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_multiclass_report(backend: Backend, seed: int, through_backend: bool) -> None:
    rng = np.random.default_rng(seed)
    k = 4
    y, proba = rng.integers(0, k, 300), _proba(rng, 300, k)
    report = metrics.multiclass_report(
        backend if through_backend else None,
        backend.asarray(y),
        backend.asarray(proba),
    )
    _assert_plain(report)
    y_pred = proba.argmax(axis=1)
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(y, y_pred))
    assert report["f1"] == pytest.approx(
        sk.f1_score(y, y_pred, labels=np.arange(k), average="macro", zero_division=0)
    )
    assert report["log_loss"] == pytest.approx(
        sk.log_loss(y, proba, labels=np.arange(k)), rel=1e-12
    )
    expected_matrix = sk.confusion_matrix(y, y_pred, labels=np.arange(k)).tolist()
    assert report["confusion_matrix"] == expected_matrix


@pytest.mark.parametrize("through_backend", [True, False])
def test_regression_report(backend: Backend, through_backend: bool) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    y_pred = y + rng.normal(size=50)
    report = metrics.regression_report(
        backend if through_backend else None,
        backend.asarray(y),
        backend.asarray(y_pred),
    )
    assert list(report) == ["mse", "mae", "r2"]
    _assert_plain(report)
    assert report == pytest.approx(
        {
            "mse": sk.mean_squared_error(y, y_pred),
            "mae": sk.mean_absolute_error(y, y_pred),
            "r2": sk.r2_score(y, y_pred),
        },
        rel=1e-12,
    )


# Usage errors and the import boundary.


def test_usage_errors(backend: Backend) -> None:
    y = backend.asarray(np.array([0, 1, 1]))
    with pytest.raises(UsageError, match="3 vs 2"):
        metrics.accuracy(y, backend.asarray(np.array([0, 1])))
    with pytest.raises(UsageError, match="at least one sample"):
        metrics.mse(backend.asarray(np.zeros(0)), backend.asarray(np.zeros(0)))
    with pytest.raises(UsageError, match="fprs"):
        metrics.tpr_at_fpr(y, backend.asarray(np.array([0.1, 0.5, 0.9])), (1.5,))


def test_library_does_not_import_sklearn() -> None:
    code = "import sys, mlp_backend.metrics; assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
