"""Configurations trained with several seeds (``--repeats``): mean and spread.

A configuration is a trial's hyperparameters without its seed. Where some
configuration has more than one trial, a single trial's figures say as much
about its seed as about its settings, so the sweep also keeps, per
configuration, the mean and the sample standard deviation of every metric
over the seeds whose trials trained (``configurations.csv``), and the report
ranks and draws those means.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from mlp_backend.runs import finite_number
from mlp_backend.sweep.spec import KEYS

#: The hyperparameters that make a configuration.
SETTINGS = tuple(k for k in KEYS if k != "seed")
#: The states of trials whose figures count: they trained (to the end, or
#: until successive halving stopped them).
TRAINED = ("finished", "pruned")


def settings_of(row: Mapping[str, Any]) -> tuple:
    """The configuration of a trial (or of a results record)."""
    return tuple(row.get(k) for k in SETTINGS)


def repeated(trials: Sequence[Mapping[str, Any]]) -> bool:
    """Whether some configuration has more than one trial (seed)."""
    seen = set()
    for trial in trials:
        key = settings_of(trial)
        if key in seen:
            return True
        seen.add(key)
    return False


def configurations(
    trials: Sequence[Mapping[str, Any]], records: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per configuration, in the order of its first trial.

    Args:
        trials: Every trial's hyperparameters as flat values (``"64x32"``
            for widths), by trial index.
        records: The results records of the trials that have one, by index.

    Returns:
        Rows of the configuration's hyperparameters, ``seeds`` (its trials'
        seeds, space-separated), ``trained`` (how many of them trained) and,
        for every ``val_`` and ``test_`` metric that a trained trial has and
        for ``best_value`` (the monitored metric at the best epoch),
        ``<metric>_mean`` and ``<metric>_std`` over those trials (the
        standard deviation is None below two values).
    """
    groups: dict[tuple, list[int]] = {}
    for index, trial in enumerate(trials):
        groups.setdefault(settings_of(trial), []).append(index)
    rows = []
    for key, indices in groups.items():
        trained = [
            records[i]
            for i in indices
            if i in records and records[i].get("state") in TRAINED
        ]
        row: dict[str, Any] = dict(zip(SETTINGS, key, strict=True))
        row["seeds"] = " ".join(str(trials[i]["seed"]) for i in indices)
        row["trained"] = len(trained)
        metrics = [
            k
            for k in dict.fromkeys(k for r in trained for k in r)
            if k.startswith(("val_", "test_")) or k == "best_value"
        ]
        for metric in metrics:
            values = [r[metric] for r in trained if finite_number(r.get(metric))]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else None
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows
