"""Reading a finished (or running) sweep: leaderboard, results.csv, figures.

Figures need matplotlib (the optional extra ``plot``); the leaderboard and
``results.csv`` do not.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlp_backend.errors import RunError, UsageError
from mlp_backend.runs import (
    SWEEP_LOCK,
    FolderLock,
    finite_number,
    whole_lines,
    writing,
)
from mlp_backend.sweep.folder import FINAL_STATES, SweepFolder, result_record
from mlp_backend.sweep.repeats import SETTINGS, TRAINED
from mlp_backend.sweep.spec import KEYS

logger = logging.getLogger(__name__)

#: Metrics where lower is better; every other metric is sorted highest first.
LOWER_IS_BETTER = ("loss", "mse", "mae", "seconds")
#: Outcome columns of the leaderboard by task; the hyperparameters shown are
#: the reference pair (hidden, lr) plus every other key that differs between
#: trials.
OUTCOMES = {
    "classification": ("epochs_run", "val_loss", "val_f1", "test_f1", "test_roc_auc"),
    "regression": ("epochs_run", "val_loss", "val_r2", "test_mse", "test_r2"),
}
#: The states whose trials rank by their metrics, ahead of the rest.
RANKED = TRAINED
#: What a report sorts by and draws when no metric is named, by task.
DEFAULT_METRIC = {"classification": "val_f1", "regression": "val_r2"}


@dataclass
class Report:
    """What :func:`build_report` found and wrote.

    Attributes:
        rows: Results records, best first by ``sort_by``.
        sort_by: The sorting column.
        task: ``classification`` or ``regression``: which metrics it shows.
        pruning: Epochs planned, epochs run and trials pruned, or None when
            the sweep pruned nothing.
        survival: With ``--compare``, what :func:`survival` found.
        figures: PNG files written.
        unended: Trials without a final result (not begun, interrupted or
            failed): a resume trains them.
        total: Trials in the sweep.
        running: Whether a sweep process holds the folder's lock now (its
            trials without a result may still be training).
        configurations: Where some configuration has several seeds, one
            row per configuration (see :func:`repeats.configurations`),
            best first by the mean of ``sort_by``; else None.
        written: The tables written (``results.csv``, and
            ``configurations.csv`` with several seeds).
    """

    path: Path
    rows: list[dict[str, Any]]
    sort_by: str
    pruning: dict[str, Any] | None = None
    survival: dict[str, Any] | None = None
    figures: list[Path] = field(default_factory=list)
    task: str = "classification"
    unended: int = 0
    total: int = 0
    running: bool = False
    configurations: list[dict[str, Any]] | None = None
    written: list[Path] = field(default_factory=list)


def _lower_is_better(column: str) -> bool:
    return any(column.endswith(s) for s in LOWER_IS_BETTER)


def _is_metric(column: str) -> bool:
    """Whether ``column`` is an outcome to rank by, best first."""
    return column.startswith(("val_", "test_")) or column in ("best_value", "seconds")


def sort_rows(rows: Sequence[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Best first by a metric, else in ascending order of ``column``; rows
    without a value in it last, by trial.

    ``best_value`` is each trial's monitored metric, so it ranks only trials
    that monitor the same one, in that metric's direction.

    Raises:
        UsageError: ``best_value`` of trials that monitor different metrics.
    """
    if not _is_metric(column):

        def natural(row: dict[str, Any]) -> tuple:
            value = row.get(column)
            return (value is None, () if value is None else _order(value), row["trial"])

        return sorted(rows, key=natural)
    ranked_as = column
    if column == "best_value":
        monitors = sorted({str(r.get("monitor")) for r in rows if r.get("monitor")})
        if len(monitors) > 1:
            raise UsageError(
                f"--sort best_value: the trials monitor different metrics "
                f"({', '.join(monitors)}); sort by one of them instead"
            )
        ranked_as = monitors[0] if monitors else "val_loss"
    sign = 1.0 if _lower_is_better(ranked_as) else -1.0

    def key(row: dict[str, Any]) -> tuple[bool, float, int]:
        value = row.get(column)
        good = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
        # A diverged trial's metrics are those of its last finite weights,
        # no trained result: it ranks after the trials that trained.
        return (
            row.get("state") not in RANKED,
            sign * value if good else math.inf,
            row["trial"],
        )

    return sorted(rows, key=key)


def sort_configurations(
    rows: Sequence[dict[str, Any]], column: str
) -> list[dict[str, Any]]:
    """Configurations best first by the mean of a metric, else in ascending
    order of a hyperparameter, else as they are; those without a value last."""
    if column in SETTINGS:
        return sorted(
            rows, key=lambda r: (r.get(column) is None, _order(r.get(column)))
        )
    if not _is_metric(column):
        return list(rows)
    ranked_as = column
    if column == "best_value" and rows:
        # Each configuration's monitored metric; the trials' ranking has
        # refused trials that monitor different ones.
        ranked_as = str(rows[0].get("metric"))
    sign = 1.0 if _lower_is_better(ranked_as) else -1.0

    def key(row: dict[str, Any]) -> float:
        value = row.get(f"{column}_mean")
        return sign * value if isinstance(value, (int, float)) else math.inf

    return sorted(rows, key=key)


def outcomes(rows: Sequence[dict[str, Any]], task: str) -> tuple[str, ...]:
    """The leaderboard's outcome columns: the task's, with test accuracy in
    place of ROC AUC where no trial has one (more than two classes)."""
    columns = OUTCOMES[task]
    if task == "classification" and rows and not any("test_roc_auc" in r for r in rows):
        columns = tuple("test_accuracy" if c == "test_roc_auc" else c for c in columns)
    return columns


def pruning_savings(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Member-epochs saved by pruning: planned versus run, over the pruned trials."""
    pruned = [r for r in rows if r.get("state") == "pruned"]
    if not pruned:
        return None
    planned = sum(int(r["epochs"]) for r in rows)
    run = sum(int(r["epochs_run"] or 0) for r in rows)
    return {
        "pruned": len(pruned),
        "planned_epochs": planned,
        "run_epochs": run,
        "saved_fraction": 1.0 - run / planned if planned else 0.0,
    }


def read_results(folder: SweepFolder) -> dict[int, dict[str, Any]]:
    """Every ended trial's results record by trial index."""
    trials = SweepFolder.trials_of(folder.read())
    results = folder.results(trials)
    # Trials that ended but have no results line yet (the sweep is running).
    for i, summary in folder.finished(len(trials)).items():
        results.setdefault(i, result_record(i, trials[i], summary["state"], summary))
    return results


def survival(
    rows: Sequence[dict[str, Any]], other: Path, sort_by: str
) -> dict[str, Any]:
    """How the best trial of sweep ``other`` (say, unpruned) fared in ``rows``.

    The trials are matched by their hyperparameters. Returns the other sweep's
    best record, the matching record here (or None) and its rank here.

    Raises:
        UsageError: ``other`` has no ended trial with a value in ``sort_by``.
    """
    theirs = sort_rows(list(read_results(SweepFolder(other)).values()), sort_by)
    if not theirs or not isinstance(theirs[0].get(sort_by), (int, float)):
        raise UsageError(f"--compare {other}: no ended trial has {sort_by!r}")
    best = theirs[0]
    ranked = sort_rows(rows, sort_by)
    for rank, row in enumerate(ranked, 1):
        if all(row.get(k) == best.get(k) for k in KEYS):
            return {"sweep": other, "best": best, "match": row, "rank": rank}
    return {"sweep": other, "best": best, "match": None, "rank": None}


def _check_same_data(ours: dict[str, Any], theirs: dict[str, Any], other: Path) -> None:
    """Refuses to compare sweeps trained on different data or splits.

    The files' checksums decide where both sweeps recorded them; the rest of
    the data record (task, label, split seed) must agree too.
    """
    mine, yours = ours["spec"].get("data", {}), theirs["spec"].get("data", {})
    sums = ours["spec"].get("checksums"), theirs["spec"].get("checksums")
    keys = [k for k in mine if k not in ("data", "test_data")]
    same = all(mine.get(k) == yours.get(k) for k in keys)
    if sums[0] and sums[1]:
        same = same and sums[0] == sums[1]
    else:
        same = same and all(mine.get(k) == yours.get(k) for k in ("data", "test_data"))
    if not same:
        raise UsageError(
            f"--compare {other}: its trials were trained on other data or another "
            "split than this sweep's; compare sweeps of the same data"
        )


def survival_line(found: dict[str, Any], sort_by: str, total: int) -> str:
    """One sentence on whether the other sweep's best configuration survived."""
    best = found["best"]
    what = (
        f"best of {found['sweep']} by {sort_by}: {best['name']} (hidden "
        f"{best['hidden']}, lr {best['lr']:.4g}, {sort_by} {best[sort_by]:.4g})"
    )
    match = found["match"]
    if match is None:
        return f"{what}: not among this sweep's trials"
    outcome = (
        f"pruned after {match['epochs_run']} epoch"
        + ("" if match["epochs_run"] == 1 else "s")
        if match["state"] == "pruned"
        else match["state"]
    )
    return f"{what}: here {match['name']} {outcome}, ranked {found['rank']} of {total}"


def build_report(
    path: Path,
    sort_by: str | None,
    x_key: str,
    y_key: str,
    figures: bool = True,
    compare: Path | None = None,
) -> Report:
    """Reads the sweep, rewrites ``results.csv`` and writes the figures.

    Args:
        sort_by: The column to sort by; None for the task's
            :data:`DEFAULT_METRIC`.
        compare: Another sweep of the same trials (an unpruned one, say):
            where its best configuration ranks here goes into ``survival``.

    Raises:
        UsageError: An unknown column or hyperparameter, or matplotlib missing.
    """
    folder = SweepFolder(path)
    info = folder.read()
    task = task_of(info)
    sort_by = sort_by or DEFAULT_METRIC[task]
    results = read_results(folder)
    rows = [results[i] for i in sorted(results)]
    # A metric of the task is known even where no trial has it (all diverged).
    columns = {k for row in rows for k in row} | set(outcomes(rows, task))
    if rows and sort_by not in columns:
        shown = sorted(columns - {"format"})
        raise UsageError(
            f"--sort: no column {sort_by!r}; choose from {', '.join(shown)}"
        )
    for option, key in (("--x", x_key), ("--y", y_key)):
        if key not in KEYS:
            raise UsageError(
                f"{option}: expected a hyperparameter ({', '.join(KEYS)}), got {key!r}"
            )
    if x_key == y_key:
        raise UsageError(
            f"--x and --y: the heatmap needs two different hyperparameters, got "
            f"{x_key!r} for both"
        )
    if compare is not None and not _is_metric(sort_by):
        raise UsageError(
            f"--compare: the best configuration is the best by a metric, and "
            f"--sort {sort_by} is none; sort by a val_ or test_ metric"
        )
    means = folder.write_csv(results, SweepFolder.trials_of(info))
    report = Report(path, sort_rows(rows, sort_by), sort_by, pruning_savings(rows))
    report.written.append(path / "results.csv")
    if means is not None:
        report.configurations = sort_configurations(means, sort_by)
        report.written.append(path / "configurations.csv")
    report.task = task
    report.total = len(info["trials"])
    ended = sum(1 for row in rows if row.get("state") in FINAL_STATES)
    report.unended = report.total - ended
    report.running = FolderLock(path / SWEEP_LOCK).held()
    if compare is not None:
        try:
            other = SweepFolder(compare).read()
        except RunError as exc:
            raise UsageError(f"--compare: {exc}") from None
        _check_same_data(info, other, compare)
        report.survival = survival(rows, compare, sort_by)
    if figures and rows:
        metric = heatmap_metric(rows, sort_by, task)
        # With several seeds a cell shows a configuration's mean, not its
        # luckiest seed; a heatmap over the seed itself shows the trials.
        cells = None
        if report.configurations and "seed" not in (x_key, y_key):
            cells = [_mean_row(row, metric) for row in report.configurations]
        report.figures = write_figures(path, rows, metric, x_key, y_key, task, cells)
    return report


def _mean_row(configuration: dict[str, Any], metric: str) -> dict[str, Any]:
    """A configuration as the heatmap reads a trial: its settings, the mean
    of ``metric`` and a trained state where any of its seeds trained."""
    return {
        **{k: configuration[k] for k in SETTINGS},
        metric: configuration.get(f"{metric}_mean"),
        "state": TRAINED[0] if configuration["trained"] else None,
    }


def task_of(info: dict[str, Any]) -> str:
    """``classification`` or ``regression``, from a ``sweep.json``."""
    data = info.get("spec", {}).get("data") or {}
    return "regression" if data.get("task") == "regression" else "classification"


def heatmap_metric(rows: Sequence[dict[str, Any]], sort_by: str, task: str) -> str:
    """What the heatmap shows: the sorting column where it is a validation or
    test metric that some trial has, else the task's :data:`DEFAULT_METRIC`.
    A heatmap of ``state`` or ``trial``, or of ``best_value`` over trials
    that monitor different metrics, showed nothing of use."""
    measured = sort_by.startswith(("val_", "test_")) and any(
        isinstance(row.get(sort_by), (int, float))
        and not isinstance(row.get(sort_by), bool)
        for row in rows
    )
    return sort_by if measured else DEFAULT_METRIC[task]


def _history(path: Path) -> list[dict[str, Any]]:
    """A trial's epoch records for its curves; a damaged line is skipped and
    told, as the monitor skips it, rather than ending the report."""
    file = path / "metrics.jsonl"
    if not file.is_file():
        return []
    history = []
    for number, line in enumerate(whole_lines(file.read_bytes()), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and _is_epoch(record.get("epoch")):
            history.append(record)
        else:
            logger.warning("%s, line %d: not an epoch record; skipped", file, number)
    return history


def _is_epoch(value: Any) -> bool:
    return type(value) is int and 0 < value < 2**31


def _figure(value: Any) -> float:
    """A value to plot: a finite number, or NaN (a gap) for anything else, so
    that a damaged record does not turn an axis into categories."""
    return float(value) if finite_number(value) else math.nan


def write_figures(
    path: Path,
    rows: Sequence[dict[str, Any]],
    metric: str,
    x_key: str,
    y_key: str,
    task: str = "classification",
    cells: Sequence[dict[str, Any]] | None = None,
) -> list[Path]:
    """Curves per epoch by hidden size and by learning rate, and a heatmap.

    Args:
        cells: What the heatmap ranks in each cell: the trials (``rows``)
            when None, else configurations' means (see :func:`_mean_row`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise UsageError(
            f"figures need matplotlib ({exc}); install it with "
            "pip install 'mlp-backend[plot]', or pass --no-figures"
        ) from None
    histories = {r["trial"]: _history(path / r["name"]) for r in rows}
    written = []
    for key in ("hidden", "lr"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
        values = sorted({r[key] for r in rows}, key=_order)
        colours = plt.get_cmap("viridis")
        panels = ("val_loss", DEFAULT_METRIC[task])
        for panel, column in zip(axes, panels, strict=True):
            for row in rows:
                history = histories[row["trial"]]
                shade = colours(values.index(row[key]) / max(1, len(values) - 1))
                panel.plot(
                    [h["epoch"] for h in history],
                    [_figure(h.get(column)) for h in history],
                    color=shade,
                    alpha=0.8,
                    # A trial pruned or stopped after one epoch is one point,
                    # which a line alone does not draw.
                    marker="o" if len(history) == 1 else None,
                    markersize=3,
                )
            panel.set_xlabel("epoch")
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.set_ylabel(column)
        for v in values:
            shade = colours(values.index(v) / max(1, len(values) - 1))
            axes[1].plot([], [], color=shade, label=f"{key} {_tick(v)}")
        axes[1].legend(fontsize="small")
        fig.suptitle(f"validation curves by {key}")
        out = path / f"curves_by_{key}.png"
        with writing(out):
            fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    means = cells is not None
    written.append(
        _heatmap(plt, path, cells if means else rows, metric, x_key, y_key, means=means)
    )
    return written


def _order(value: Any) -> tuple:
    if isinstance(value, str):
        return (0, tuple(int(p) if p.isdigit() else 0 for p in value.split("x")), value)
    return (1, (), value)


def _tick(value: Any) -> str:
    """A heatmap label: a random search's drawn learning rate, such as
    0.003604551411348232, as 0.0036."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _heatmap(
    plt: Any,
    path: Path,
    rows: Sequence[dict[str, Any]],
    metric: str,
    x_key: str,
    y_key: str,
    *,
    means: bool = False,
) -> Path:
    """Best ``metric`` over the other hyperparameters, per (x, y) cell, of
    the trials that trained (finished or pruned), or with ``means`` of the
    configurations' means over their seeds."""
    xs = sorted({r[x_key] for r in rows}, key=_order)
    ys = sorted({r[y_key] for r in rows}, key=_order)
    best = [[math.nan] * len(xs) for _ in ys]
    lower = _lower_is_better(metric)
    for row in rows:
        if row.get("state") not in RANKED:
            continue
        value = row.get(metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        cell = (ys.index(row[y_key]), xs.index(row[x_key]))
        old = best[cell[0]][cell[1]]
        if math.isnan(old) or (value < old if lower else value > old):
            best[cell[0]][cell[1]] = value
    fig, ax = plt.subplots(
        figsize=(1.2 * len(xs) + 3, 0.8 * len(ys) + 2), constrained_layout=True
    )
    image = ax.imshow(best, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(xs)), [_tick(x) for x in xs])
    ax.set_yticks(range(len(ys)), [_tick(y) for y in ys])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    found = [v for line in best for v in line if not math.isnan(v)]
    middle = (min(found) + max(found)) / 2 if found else 0.0
    for r, line in enumerate(best):
        for c, value in enumerate(line):
            if math.isnan(value):
                continue
            # Dark text on the bright (high) end of viridis, light text elsewhere.
            shade = "k" if value > middle else "w"
            ax.text(c, r, f"{value:.3f}", ha="center", va="center", color=shade)
    # Each trial's metric is at its own best epoch (early stopping's
    # choice); a cell shows the best trial among those that share it.
    label = (
        f"{metric}, mean over seeds, best configuration of each cell"
        if means
        else f"{metric}, best trial of each cell"
    )
    fig.colorbar(image, ax=ax, label=label)
    out = path / f"heatmap_{metric}_{x_key}_{y_key}.png"
    with writing(out):
        fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def leaderboard(report: Report) -> Any:
    """The leaderboard as a rich ``Table``, best first (the caller prints it)."""
    from rich.table import Table

    by = f"best {report.sort_by} first" if _is_metric(report.sort_by) else ""
    table = Table(title=f"{report.path.name}: {by or 'by ' + report.sort_by}")
    varying = [
        k
        for k in KEYS
        if k in ("hidden", "lr") or len({str(r.get(k)) for r in report.rows}) > 1
    ]
    shown = outcomes(report.rows, report.task)
    columns = ["trial", "state", *varying, *shown]
    if report.sort_by not in columns:
        columns.append(report.sort_by)
    for column in columns:
        numeric = column in shown or column == "lr" or _is_metric(column)
        table.add_column(column, justify="right" if numeric else "left")
    for row in report.rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    return table


def configurations_table(report: Report) -> Any:
    """Where configurations have several seeds, their mean and standard
    deviation over the seeds as a rich ``Table``, in the report's order."""
    from rich.table import Table

    rows = report.configurations or []
    by = (
        f", best mean {report.sort_by} first"
        if _is_metric(report.sort_by) and report.sort_by not in SETTINGS
        else ""
    )
    table = Table(title=f"{report.path.name}: configurations over seeds{by}")
    varying = [
        k
        for k in SETTINGS
        if k in ("hidden", "lr") or len({str(r.get(k)) for r in rows}) > 1
    ]
    metrics = [
        c for c in outcomes(report.rows, report.task) if c.startswith(("val_", "test_"))
    ]
    if _is_metric(report.sort_by) and report.sort_by not in metrics:
        metrics.append(report.sort_by)
    for column in varying:
        table.add_column(column, justify="right" if column == "lr" else "left")
    table.add_column("trained", justify="right")
    for metric in metrics:
        table.add_column(f"{metric} mean ± sd", justify="right")
    for row in rows:
        seeds = len(row["seeds"].split())
        table.add_row(
            *(_cell(row.get(c)) for c in varying),
            f"{row['trained']} of {seeds}",
            *(_spread(row.get(f"{m}_mean"), row.get(f"{m}_std")) for m in metrics),
        )
    return table


def _spread(mean: Any, std: Any) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"


def pruning_line(report: Report) -> str | None:
    """How much compute pruning saved, or None when nothing was pruned."""
    if not report.pruning:
        return None
    p = report.pruning
    trials = "trial" if p["pruned"] == 1 else "trials"
    return (
        f"pruning: {p['pruned']} {trials} pruned; {p['run_epochs']} of "
        f"{p['planned_epochs']} member-epochs run "
        f"({100 * p['saved_fraction']:.0f}% compute saved)"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
