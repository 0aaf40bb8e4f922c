"""Multilayer perceptrons with hand-written backprop on NumPy, CuPy and the array API.

Importing the package is cheap and never touches CuPy: the estimator and the
math are imported on first use, so the monitor can read run folders on a
machine that has neither NumPy's extras nor a GPU.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["MLPClassifier", "MLPRegressor", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("MLPClassifier", "MLPRegressor"):
        from mlp_backend import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'mlp_backend' has no attribute {name!r}")
