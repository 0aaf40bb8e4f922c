"""Fixtures shared by the test suite.

Every test of the math takes the ``backend`` fixture and so runs twice: on
NumPy and on array-api-strict, which rejects anything outside the array API
standard (the calls that would break on CuPy). ``MLP_TEST_BACKENDS`` chooses
other sets, e.g. ``cupy`` on a GPU machine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from mlp_backend.backend import Backend, get_backend

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MLP_BACKEND_SHARED", REPO.parent / "shared"))
CASES = SHARED / "cases"

BACKENDS = os.environ.get("MLP_TEST_BACKENDS", "numpy,array_api_strict").split(",")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI points the package logger at the runner's stream; undo that."""
    logger = logging.getLogger("mlp_backend")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """A float64 backend: gradient checks and oracles compare in float64."""
    return get_backend(request.param, "float64")


@pytest.fixture(params=BACKENDS)
def backend32(request: pytest.FixtureRequest) -> Backend:
    """The same backends in float32, the training default."""
    return get_backend(request.param, "float32")


@pytest.fixture
def magic_path() -> Path:
    """The MAGIC file: ``$MLP_BACKEND_DATA``, the shared folder, or ``data/``.

    Tests that need it skip, saying where they looked, when it is nowhere.
    """
    candidates = [SHARED / "data" / "magic04.data", REPO / "data" / "magic04.data"]
    if os.environ.get("MLP_BACKEND_DATA"):
        candidates = [Path(os.environ["MLP_BACKEND_DATA"])]
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(f"MAGIC data not found at {', '.join(map(str, candidates))}")


@pytest.fixture
def small_magic(magic_path: Path, tmp_path: Path) -> Path:
    """400 MAGIC rows (both classes) in a file named as MAGIC, for quick runs."""
    lines = magic_path.read_text().splitlines()
    path = tmp_path / "data" / "magic04.data"
    path.parent.mkdir()
    path.write_text("\n".join(lines[:200] + lines[-200:]) + "\n")
    return path


def case_file(name: str) -> Path:
    """A file of the shared failure cases; the test skips when it is absent."""
    path = CASES / name
    if not path.exists():
        pytest.skip(f"shared case file {path} not found (set MLP_BACKEND_SHARED)")
    return path
