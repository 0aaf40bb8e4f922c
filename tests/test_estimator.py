"""The scikit-learn style estimators, checked with scikit-learn itself.

scikit-learn is the oracle here (``clone``, ``Pipeline``, ``cross_val_score``,
its metrics); the library itself must never import it, which a subprocess
checks.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlp_backend.errors import (
    DataConversionWarning,
    MLPBackendWarning,
    NotFittedError,
    UsageError,
    UsageTypeError,
)
from mlp_backend.estimator import MLPClassifier, MLPRegressor
from tests.conftest import BACKENDS

FAST = dict(hidden=(16,), epochs=30, batch_size=32, lr=0.01, patience=0, seed=0)


def blobs(n: int = 300, seed: int = 0, classes=("no", "yes")):
    """Two or more Gaussian blobs in 3 dimensions with string labels."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    centres = 3.0 * np.eye(k, 3)
    index = rng.integers(0, k, size=n)
    X = centres[index] + rng.normal(size=(n, 3)) + np.array([100.0, -5.0, 0.01])
    return X, np.asarray(classes)[index]


@pytest.mark.parametrize("backend", BACKENDS)
def test_classifier_fits_a_small_problem(backend):
    X, y = blobs()
    model = MLPClassifier(**FAST, backend=backend).fit(X[:200], y[:200])
    pred = model.predict(X[200:])
    assert isinstance(pred, np.ndarray) and pred.shape == (100,)
    assert pred.dtype.kind == "U" and set(pred) <= {"no", "yes"}
    assert list(model.classes_) == ["no", "yes"]
    assert model.score(X[200:], y[200:]) > 0.9
    proba = model.predict_proba(X[200:])
    assert isinstance(proba, np.ndarray) and proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(pred, model.classes_[(proba[:, 1] > 0.5).astype(int)])
    assert model.result_.state == "finished" and len(model.history_) == 30


def test_multiclass_three_classes():
    X, y = blobs(n=360, classes=("a", "b", "c"))
    model = MLPClassifier(**FAST).fit(X[:240], y[:240])
    proba = model.predict_proba(X[240:])
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(model.classes_) == ["a", "b", "c"]
    np.testing.assert_array_equal(
        model.predict(X[240:]), model.classes_[proba.argmax(axis=1)]
    )
    assert model.score(X[240:], y[240:]) > 0.85


def test_decision_function_gives_the_logits_behind_the_probabilities():
    X, y = blobs()
    model = MLPClassifier(**FAST).fit(X[:200], y[:200])
    z = model.decision_function(X[200:])
    assert z.shape == (100,)
    np.testing.assert_allclose(
        1.0 / (1.0 + np.exp(-z)), model.predict_proba(X[200:])[:, 1], rtol=1e-5
    )
    X3, y3 = blobs(n=360, classes=("a", "b", "c"))
    model3 = MLPClassifier(**FAST).fit(X3[:240], y3[:240])
    z3 = model3.decision_function(X3[240:])
    assert z3.shape == (120, 3)
    softmax = np.exp(z3 - z3.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        softmax / softmax.sum(axis=1, keepdims=True),
        model3.predict_proba(X3[240:]),
        rtol=1e-4,
        atol=1e-6,
    )


def test_positive_class_goes_to_index_one():
    X, y = blobs()
    model = MLPClassifier(**FAST, positive="no").fit(X, y)
    assert list(model.classes_) == ["yes", "no"]
    proba = model.predict_proba(X)
    assert np.mean((proba[:, 1] > 0.5) == (y == "no")) > 0.9


@pytest.mark.parametrize("backend", BACKENDS)
def test_regressor_linear_problem(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 0.0]) + 3.0 + 0.1 * rng.normal(size=300)
    model = MLPRegressor(**FAST, backend=backend).fit(X[:200], y[:200])
    pred = model.predict(X[200:])
    assert isinstance(pred, np.ndarray) and pred.shape == (100,)
    assert model.score(X[200:], y[200:]) > 0.8
    np.testing.assert_allclose(
        model.score(X[200:], y[200:]), r2_score(y[200:], pred), rtol=1e-6
    )


def test_get_params_set_params_round_trip_and_clone():
    model = MLPClassifier(hidden=(8, 4), lr=0.05, epochs=7, positive="yes")
    params = model.get_params()
    assert (
        params["hidden"] == (8, 4)
        and params["lr"] == 0.05
        and params["positive"] == "yes"
    )
    copy = MLPClassifier().set_params(**params)
    assert copy.get_params() == params
    cloned = clone(model)
    assert cloned is not model and cloned.get_params() == params
    assert MLPClassifier().set_params(epochs=3).epochs == 3
    # The classifier spells out the shared parameters; their defaults agree.
    shared = MLPClassifier().get_params()
    assert shared.pop("positive") is None
    assert shared == MLPRegressor().get_params()
    with pytest.raises(ValueError, match="invalid parameter 'nope'"):
        model.set_params(nope=1)
    assert "MLPClassifier(hidden=(8, 4)" in repr(model)


def test_clone_of_fitted_model_is_unfitted():
    X, y = blobs(n=120)
    model = MLPClassifier(**FAST).fit(X, y)
    fresh = clone(model)
    assert not hasattr(fresh, "params_")
    with pytest.raises(NotFittedError, match="not fitted"):
        fresh.predict(X)
    assert issubclass(NotFittedError, (UsageError, AttributeError))


def test_pipeline_and_cross_val_score_without_warnings():
    X, y = blobs(n=240)
    pipe = Pipeline(
        [("scale", StandardScaler()), ("mlp", MLPClassifier(**FAST, standardize=False))]
    )
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe.predict(X[:5]).dtype.kind == "U"
    pipe.set_params(mlp__epochs=20)
    assert pipe.named_steps["mlp"].epochs == 20
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.85)
    reg_scores = cross_val_score(
        MLPRegressor(**FAST), X, (y == "yes") * 2.0 + X[:, 0] * 0.1, cv=2, scoring="r2"
    )
    assert np.all(np.isfinite(reg_scores))


def test_labels_keep_their_type_as_in_sklearn():
    X, y = blobs(n=240)
    numbers = (y == "yes").astype(np.int64)
    model = MLPClassifier(**FAST).fit(X, numbers)
    assert model.classes_.tolist() == [0, 1] and model.classes_.dtype == np.int64
    predicted = model.predict(X)
    assert predicted.dtype == np.int64
    assert accuracy_score(numbers, predicted) == pytest.approx(model.score(X, numbers))
    assert model.score(X, numbers) > 0.9
    f1 = cross_val_score(MLPClassifier(**FAST), X, numbers, cv=3, scoring="f1")
    assert np.all(f1 > 0.85), f1
    flags = MLPClassifier(**FAST).fit(X, numbers == 1)
    assert flags.classes_.tolist() == [False, True]
    # positive names a label of y's own type; it goes to index 1.
    flipped = MLPClassifier(**FAST, positive=0).fit(X, numbers)
    assert flipped.classes_.tolist() == [1, 0]
    # The same labels come out: an order applied the wrong way round would
    # turn them over.
    assert np.mean(flipped.predict(X) == predicted) > 0.95
    with pytest.raises(UsageError, match="^positive: 7 must be one of exactly two"):
        MLPClassifier(**FAST, positive=7).fit(X, numbers)
    with pytest.raises(UsageError, match="^positive: 'no' contradicts the class order"):
        MLPClassifier(**FAST, positive="no").fit(X, y, classes=["no", "yes"])
    # Numbers are matched by value, whatever their type: 1, 1.0 and True.
    accuracy = model.score(X, numbers)
    assert model.score(X, numbers.astype(float)) == accuracy
    assert model.score(X, numbers == 1) == accuracy
    assert flags.score(X, numbers) == flags.score(X, numbers == 1)
    floats = MLPClassifier(**FAST, positive=0).fit(X, numbers.astype(float))
    assert floats.classes_.tolist() == [1.0, 0.0]
    with pytest.raises(UsageError, match=r"^eval_set: y: labels 2 are not among"):
        model.fit(X, numbers, eval_set=(X[:10], np.full(10, 2)))


def test_a_fitted_model_pickles():
    X, y = blobs(n=120)
    model = MLPClassifier(**FAST).fit(X, y)
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    assert copy.predict(X).tolist() == model.predict(X).tolist()
    unfitted = pickle.loads(pickle.dumps(MLPRegressor(**FAST)))
    assert unfitted.get_params() == MLPRegressor(**FAST).get_params()


def test_bad_targets_and_parameters_are_usage_errors():
    X, y = blobs(n=120)
    with_nan = np.where(X[:, 0] > 101.0, np.nan, (y == "yes") * 1.0)
    with pytest.raises(UsageError, match="^y holds NaN or infinite values$"):
        MLPClassifier(**FAST).fit(X, with_nan)
    with pytest.raises(UsageError, match="^y holds NaN or infinite values$"):
        MLPRegressor(**FAST).fit(X, with_nan)
    with pytest.raises(UsageError, match="^y: regression targets must be numbers$"):
        MLPRegressor(**FAST).fit(X, y)
    with pytest.raises(UsageError, match=r"^y must be one-dimensional .* \(120, 2\)"):
        MLPRegressor(**FAST).fit(X, np.c_[X[:, 0], X[:, 1]])
    with pytest.raises(UsageError, match="^monitor: val_r2 is for regression tasks$"):
        MLPClassifier(**{**FAST, "monitor": "val_r2"}).fit(X, y)
    with pytest.raises(UsageError, match="^hidden: expected widths like"):
        MLPClassifier(**{**FAST, "hidden": "64x32"}).fit(X, y)
    with pytest.raises(UsageError, match="^X must hold numbers$"):
        MLPClassifier(**FAST).fit(np.full((120, 3), "a"), y)
    with pytest.raises(
        UsageError, match=r"^validation_fraction: 0.15 of 3 sample\(s\)"
    ):
        MLPClassifier(**FAST).fit(X[:3], [0, 1, 0])
    # A column of targets is taken as one, with a warning, and an int as one
    # hidden layer.
    with pytest.warns(DataConversionWarning, match=r"^A column-vector y .* \(120, 1\)"):
        column = MLPRegressor(**{**FAST, "hidden": 8}).fit(X, X[:, :1])
    assert [p.shape for p in column.params_[:2]] == [(3, 8), (8,)]


def test_inputs_scikit_learn_refuses_are_refused_saying_why():
    X, y = blobs(n=60)
    target = X[:, 0]
    refusals = [
        (scipy.sparse.csr_array(X), target, "^X: sparse input is not supported"),
        (X + 1j, target, "^X: Complex data not supported"),
        (X, target + 1j, "^y: Complex data not supported"),
        (np.empty((0, 3)), [], r"^X has 0 sample\(s\) \(shape=\(0, 3\)\)"),
        (np.empty((60, 0)), target, r"^X has 0 feature\(s\) \(shape=\(60, 0\)\)"),
        (X, None, "^MLPRegressor requires y to be passed, but the target y is None$"),
    ]
    for bad_X, bad_y, message in refusals:
        with pytest.raises(UsageError, match=message):
            MLPRegressor(**FAST).fit(bad_X, bad_y)
    with pytest.raises(UsageError, match="^y: labels such as 0.5 are continuous"):
        MLPClassifier(**FAST).fit(X, (y == "yes") + 0.5 * (X[:, 0] > 100))
    objects = X.astype(object)
    objects[0, 0] = {"a": 1}
    with pytest.raises(UsageTypeError, match="^X must hold numbers: float"):
        MLPClassifier(**FAST).fit(objects, y)
    assert issubclass(UsageTypeError, TypeError)


def test_objects_holding_numbers_are_numbers():
    X, y = blobs(n=120)
    a = MLPClassifier(**FAST).fit(X.astype(object), y.astype(object))
    b = MLPClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize(
    "name,value,said",
    [
        ("batch_size", 2.5, "^batch_size: expected an integer, got 2.5$"),
        ("batch_size", "32", "^batch_size: expected an integer, got '32'$"),
        ("epochs", True, "^epochs: expected an integer, got True$"),
        ("seed", 1.5, "^seed: expected an integer, got 1.5$"),
        ("seed", None, "^seed: expected an integer, got None$"),
        ("seed", -1, "^seed: must be 0 or more, got -1$"),
        ("lr", "0.1", "^lr: expected a number, got '0.1'$"),
        ("standardize", "no", "^standardize: expected True or False, got 'no'$"),
        ("hidden", True, "^hidden: expected widths like"),
        ("hidden", (8, True), "^hidden: expected widths like"),
    ],
)
def test_parameters_of_the_wrong_type_are_refused(name, value, said):
    X, y = blobs(n=60)
    with pytest.raises(UsageError, match=said):
        MLPClassifier(**{**FAST, name: value}).fit(X, y)


def test_a_diverged_fit_warns():
    X, y = blobs(n=120)
    with pytest.warns(MLPBackendWarning, match="MLPClassifier diverged: loss or") as w:
        model = MLPClassifier(**{**FAST, "lr": 1e30, "optimizer": "sgd"}).fit(X, y)
    assert model.result_.state == "diverged"
    # The warning points at the caller's line.
    assert [record.filename for record in w] == [__file__]


def test_an_eval_set_that_does_not_match_is_refused():
    X, y = blobs(n=120)
    for bad in ((X[:50], y[:40]), (X[:50, :2], y[:50]), (X[:0], y[:0])):
        with pytest.raises(UsageError, match="^eval_set: X of shape"):
            MLPClassifier(**FAST).fit(X, y, eval_set=bad)
    for bad in ([(X[:50], y[:50])], (X[:50], y[:50], None), X[:50]):
        with pytest.raises(UsageError, match=r"^eval_set: expected a pair \(X, y\)"):
            MLPClassifier(**FAST).fit(X, y, eval_set=bad)
    with pytest.raises(UsageError, match="^eval_set: X must hold numbers"):
        MLPClassifier(**FAST).fit(X, y, eval_set=(np.full((5, 3), "a"), y[:5]))


def test_same_seed_same_predictions():
    X, y = blobs(n=150)
    a = MLPClassifier(**FAST).fit(X, y).predict_proba(X)
    b = MLPClassifier(**FAST).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_float64_learning_rate_keeps_float32_model():
    X, y = blobs(n=120)
    model = MLPClassifier(**{**FAST, "lr": np.array([0.01, 0.1])[0]}).fit(X, y)
    assert all(p.dtype == np.float32 for p in model.params_)
    assert model.predict_proba(X).dtype == np.float32


def test_bad_inputs_are_usage_errors():
    X, y = blobs(n=60)
    model = MLPClassifier(**FAST).fit(X, y)
    with pytest.raises(
        UsageError, match="^X has 2 features, but MLPClassifier is expecting 3 "
    ):
        model.predict(X[:, :2])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UsageError, match="NaN"):
        MLPClassifier(**FAST).fit(bad, y)
    with pytest.raises(UsageError, match=r"two-dimensional.*\. Reshape your data: "):
        model.predict(X[0])
    # The errors name the parameters, not the command line's options.
    with pytest.raises(UsageError, match="^batch_size: must be at least 1, got 0$"):
        MLPClassifier(**{**FAST, "batch_size": 0}).fit(X, y)
    with pytest.raises(UsageError, match="^activation: unknown activation 'nope'"):
        MLPClassifier(**{**FAST, "activation": "nope"}).fit(X, y)
    with pytest.raises(UsageError, match="^monitor: expected one of"):
        MLPClassifier(**{**FAST, "monitor": "nope"}).fit(X, y)
    with pytest.raises(UsageError, match="^weight_decay: must be 0 or more"):
        MLPRegressor(**{**FAST, "weight_decay": -1.0}).fit(X, X[:, 0])


def test_bad_inputs_are_value_errors_as_in_sklearn():
    X, y = blobs(n=60)
    model = MLPClassifier(**FAST).fit(X, y)
    for bad_call in (
        lambda: model.predict(X[:, :2]),
        lambda: MLPClassifier(**{**FAST, "batch_size": 0}).fit(X, y),
        lambda: MLPClassifier(**FAST).predict(X),
    ):
        with pytest.raises(ValueError) as caught:
            bad_call()
        assert isinstance(caught.value, UsageError)


def test_library_never_imports_sklearn():
    code = (
        "import sys, numpy as np\n"
        "import mlp_backend, mlp_backend.estimator, mlp_backend.cli\n"
        "import mlp_backend.train_command\n"
        "from mlp_backend import MLPClassifier, MLPRegressor\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(60, 3))\n"
        "y = np.where(X[:, 0] > 0, 'a', 'b')\n"
        "m = MLPClassifier(hidden=(4,), epochs=2).fit(X, y)\n"
        "m.predict_proba(X); m.score(X, y)\n"
        "MLPRegressor(hidden=(4,), epochs=2).fit(X, X[:, 0]).predict(X)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] == 'sklearn')\n"
        "print('SKLEARN', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "SKLEARN []" in out.stdout


def _checked_estimators():
    """A small network on NumPy in float64 that still learns the checks' data.

    float64, as the checks compare predictions of reordered rows to 1e-7, finer
    than float32 rounding; NumPy, as they check the contract, not the backends.
    """
    settings = dict(hidden=(16,), epochs=10, batch_size=16, lr=0.01, backend="numpy")
    return [
        MLPClassifier(**settings, dtype="float64"),
        MLPRegressor(**settings, dtype="float64"),
    ]


def _expected_failed_checks(estimator) -> dict[str, str]:
    return {
        "check_estimators_unfitted": (
            "it asks for scikit-learn's NotFittedError class; ours is a "
            "ValueError and AttributeError like it, but cannot subclass it "
            "without the library importing scikit-learn"
        ),
    }


with warnings.catch_warnings():
    # The estimators follow the contract without inheriting from scikit-learn's
    # BaseEstimator, as the library never imports scikit-learn.
    warnings.filterwarnings(
        "ignore", "Estimator MLP.* does not inherit from", UserWarning
    )
    _ESTIMATOR_CHECKS = parametrize_with_checks(
        _checked_estimators(),
        expected_failed_checks=_expected_failed_checks,
        xfail_strict=True,
    )


# check_supervised_y_2d records the warning of a column-vector y.
@pytest.mark.filterwarnings("always::mlp_backend.errors.DataConversionWarning")
@_ESTIMATOR_CHECKS
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
