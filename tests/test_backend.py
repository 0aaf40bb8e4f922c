"""The backend boundary: where arrays cross between host and device.

Case B08 (NumPy arrays straight from the loader into training on a device)
runs here on every backend of the run; with ``MLP_TEST_BACKENDS=cupy`` it is
the real GPU case.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mlp_backend.backend import get_backend
from mlp_backend.data import MAGIC_CLASSES, load_magic
from mlp_backend.errors import BackendError, UsageError
from mlp_backend.estimator import MLPClassifier
from mlp_backend.runs import dumps
from tests.conftest import case_file


def test_case_b08_loader_arrays_train_on_the_backend(backend32, magic_path):
    spec = json.loads(case_file("B08_backend_mixing.json").read_text())
    table = load_magic(magic_path)
    rows = spec["rows"]
    clf = MLPClassifier(
        hidden=tuple(spec["hidden"]),
        activation=spec["activation"],
        optimizer="sgd",
        lr=spec["learning_rate"],
        batch_size=spec["batch_size"],
        epochs=spec["epochs"],
        backend=backend32.name,
    )
    clf.fit(table.X[:rows], table.labels[:rows], classes=MAGIC_CLASSES)

    record = clf.history_[0]
    assert all(type(v) in (int, float) for v in record.values())
    line = json.loads(dumps(record))
    assert line["epoch"] == 1 and isinstance(line["val_loss"], float)

    predicted = clf.predict(table.X[:10])
    proba = clf.predict_proba(table.X[:10])
    assert isinstance(predicted, np.ndarray) and set(predicted) <= set(MAGIC_CLASSES)
    assert isinstance(proba, np.ndarray) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_asarray_takes_the_backend_float_dtype(backend32):
    x = backend32.asarray(np.arange(3, dtype=np.float64))
    assert x.dtype == backend32.xp.float32
    i = backend32.asarray(np.arange(3))
    assert i.dtype == backend32.xp.int64
    assert backend32.to_host(x).tolist() == [0.0, 1.0, 2.0]
    assert backend32.scalar(backend32.xp.sum(x)) == 3.0


def test_unknown_backend_names_the_option():
    with pytest.raises(
        UsageError, match="--backend: expected one of auto, numpy, cupy"
    ):
        get_backend("tpu")


def test_unknown_dtype_names_the_option():
    with pytest.raises(UsageError, match="--dtype"):
        get_backend("numpy", "float16")


def test_environment_variable_chooses_the_backend(monkeypatch):
    monkeypatch.setenv("MLP_BACKEND", "numpy")
    assert get_backend(None).name == "numpy"
    monkeypatch.setenv("MLP_BACKEND", "nope")
    with pytest.raises(UsageError, match="MLP_BACKEND: expected one of"):
        get_backend(None)


def test_real_cupy_without_device_falls_back_and_explicit_cupy_fails(
    caplog, monkeypatch
):
    cupy = pytest.importorskip("cupy")
    if cupy.cuda.is_available():
        pytest.skip("a CUDA device is present: the fallback case does not arise")
    with caplog.at_level(logging.INFO, logger="mlp_backend.backend"):
        assert get_backend("auto").name == "numpy"
    assert "using numpy" in caplog.text and "cupy" in caplog.text
    with pytest.raises(
        BackendError, match="--backend cupy: .*CUDA|--backend cupy: .*cuda"
    ):
        get_backend("cupy")
    # Asked for through the environment, the message says so.
    monkeypatch.setenv("MLP_BACKEND", "CUPY")
    with pytest.raises(BackendError, match="^MLP_BACKEND=cupy: "):
        get_backend(None)


def test_training_scope_restores_blas_threads():
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    backend = get_backend("numpy")
    with backend.training_scope(10):
        inside = [
            i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"
        ]
    after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert inside == [1] * len(before)
    assert after == before
