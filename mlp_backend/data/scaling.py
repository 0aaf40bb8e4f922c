"""Standardisation of feature columns to zero mean and unit variance.

A constant column carries no information and has no spread to divide by: it gets
scale 1.0 and its own value as mean, so it standardises to exactly 0.0 and training
goes on. A warning names such columns, since they usually point at a data problem.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlp_backend.errors import DataError, MLPBackendWarning, UsageError


@dataclass(frozen=True)
class Standardizer:
    """Per-column shift and scale, fitted on training rows.

    Attributes:
        mean: Subtracted from each column, (features,), float64.
        scale: Divides each column after the shift, (features,), float64, > 0.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, feature_names: Sequence[str]) -> Standardizer:
        """Fit to the columns of ``X``.

        Args:
            X: Training features, (rows, features), finite.
            feature_names: One name per column, for the constant-column warning.

        Returns:
            The fitted standardizer.

        Raises:
            UsageError: ``X`` is not two-dimensional with at least one row, or the
                names do not match its columns.
            DataError: ``X`` holds a value that is not finite.
        """
        X = np.asarray(X, dtype=np.float64)
        names = list(feature_names)
        if X.ndim != 2 or X.shape[0] == 0:
            raise UsageError(
                f"X must be (rows, features) with rows >= 1; got {X.shape}"
            )
        if len(names) != X.shape[1]:
            raise UsageError(
                f"{len(names)} feature names given for {X.shape[1]} columns"
            )
        finite = np.isfinite(X).all(axis=0)
        if not finite.all():
            bad = [names[j] for j in np.flatnonzero(~finite)]
            raise DataError(
                f"feature column(s) {', '.join(bad)} hold non-finite values"
            )

        # Dividing by the largest magnitude first keeps the squares from overflowing
        # for values near the float64 limit.
        peak = np.abs(X).max(axis=0)
        peak[peak == 0] = 1.0
        std = (X / peak).std(axis=0) * peak
        constant = X.min(axis=0) == X.max(axis=0)
        mean = np.where(constant, X[0], X.mean(axis=0))
        scale = np.where(constant | (std == 0), 1.0, std)
        if constant.any():
            which = ", ".join(
                f"{names[j]} (column {j + 1})" for j in np.flatnonzero(constant)
            )
            warnings.warn(
                f"constant feature column(s) {which}: standardised to 0.0; they carry "
                "no information",
                MLPBackendWarning,
                stacklevel=2,
            )
        return cls(mean=mean, scale=scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise ``X``.

        Args:
            X: Features, (rows, features).

        Returns:
            ``(X - mean) / scale``, (rows, features), float64, a new array.

        Raises:
            DataError: ``X`` has a different number of columns than the fit.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise DataError(
                f"expected features of shape (rows, {self.mean.shape[0]}); got "
                f"{X.shape}"
            )
        return (X - self.mean) / self.scale
