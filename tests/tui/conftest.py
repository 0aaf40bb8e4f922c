"""Fixtures of the monitor's tests: shared cases, run folders, a fixed clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.writer import T0, standard_runs

REPO = Path(__file__).resolve().parents[2]
# As in the rest of the suite: MLP_BACKEND_SHARED names the folder that holds
# cases/ and data/ (../shared by default); MLP_BACKEND_CASES, when set,
# names the cases folder itself.
SHARED = Path(os.environ.get("MLP_BACKEND_SHARED", REPO.parent / "shared"))
CASES = Path(os.environ.get("MLP_BACKEND_CASES", SHARED / "cases"))
# Twenty seconds after the fixture runs started: "delta" is stale by then.
NOW = T0 + 20


def case_path(name: str) -> Path:
    """A shared case file; the test is skipped when the cases are not here."""
    path = CASES / name
    if not path.is_file():
        pytest.skip(f"shared case {path} not found (set MLP_BACKEND_SHARED)")
    return path


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """The standard fixture runs folder (see ``writer.standard_runs``)."""
    return standard_runs(tmp_path / "runs")


def fixed_now() -> float:
    """The tests' clock: always :data:`NOW`."""
    return NOW
