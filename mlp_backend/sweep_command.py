"""The ``sweep`` and ``report`` commands: their options and what a person sees.

This module imports only click and the light parts of the library: the
``sweep`` command gets ready to start its local workers before it imports
NumPy and the math (see :mod:`mlp_backend.sweep.processes`), and
:mod:`mlp_backend.sweep.driver` does the rest.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mlp_backend.defaults import DEFAULTS
from mlp_backend.errors import EXIT_INTERRUPTED, EXIT_RUN_FAILED
from mlp_backend.options import (
    NonEmptyPath,
    data_options,
    not_empty,
    option_name,
    refuse_on_resume,
    task_options,
)
from mlp_backend.sweep.processes import prepare_local_workers, uses_local_workers
from mlp_backend.widths import widths_text


def _list_option(key: str, help_text: str) -> Any:
    value = DEFAULTS[key]
    shown = widths_text(value) if key == "hidden" else value
    return click.option(
        option_name(key),
        key,
        default=None,
        help=f"{help_text} Comma list [default: {shown}].",
    )


def sweep_options(f: Any) -> Any:
    options = [
        data_options,
        click.option("--name", default=None, help="Sweep folder name."),
        _list_option("hidden", "Hidden widths, layers joined by x (64x32)."),
        _list_option("lr", "Learning rates."),
        _list_option("epochs", "Epochs."),
        _list_option("batch_size", "Batch sizes."),
        _list_option("activation", "Hidden activations."),
        _list_option("optimizer", "Optimizers."),
        _list_option("momentum", "Momentum coefficients."),
        _list_option("weight_decay", "L2 coefficients."),
        _list_option("schedule", "Learning-rate schedules."),
        _list_option("patience", "Early-stopping patience (0: off)."),
        _list_option("metric", "Monitored validation metric."),
        _list_option("seed", "Base seeds."),
        click.option(
            "--repeats",
            type=int,
            # None, not 1, so that a --repeats given beside --spec is seen.
            default=None,
            help="Seeds per configuration: seed, seed+1, ... [default: 1]",
        ),
        click.option("--preset", default=None, help="A named sweep: reference."),
        click.option(
            "--spec",
            type=NonEmptyPath(),
            default=None,
            help="A TOML spec file (grid or random).",
        ),
        click.option("--trials", type=int, default=None, help="Random-search trials."),
        click.option(
            "--no-fuse", is_flag=True, help="Train one configuration at a time."
        ),
        click.option(
            "--workers",
            type=int,
            default=None,
            help="Local processes [default: one per core, at most one per "
            "group]; 1 trains in this process.",
        ),
        click.option(
            "--scheduler",
            default=None,
            callback=not_empty,
            help="Dask scheduler, tcp://host:port.",
        ),
        click.option(
            "--dask-local",
            type=int,
            default=None,
            help="Start a Dask LocalCluster of N processes.",
        ),
        click.option(
            "--max-group",
            type=int,
            default=None,
            help="Most members per fused stack (default 64; a resume keeps "
            "the sweep's own).",
        ),
        click.option(
            "--max-bytes",
            type=int,
            default=None,
            help="Most estimated bytes per fused stack (a resume keeps the "
            "sweep's own).",
        ),
        click.option("--prune", default=None, help="halving: successive halving."),
        click.option(
            "--resume",
            type=NonEmptyPath(file_okay=False, path_type=Path),
            default=None,
            help="Continue the sweep in this folder.",
        ),
        task_options,
    ]
    for option in reversed(options):
        f = option(f)
    return f


#: Options that ``sweep --resume`` takes besides the sweep's own settings:
#: where and how its trials run, not what they train.
RESUME_KEEPS = (
    "resume",
    "runs_dir",
    "workers",
    "scheduler",
    "dask_local",
    "max_group",
    "max_bytes",
)


@click.command()
@sweep_options
@click.option(
    "--monitor", "open_monitor", is_flag=True, help="Follow the sweep in the monitor."
)
def sweep(open_monitor: bool, **options: Any) -> None:
    """Train many configurations, fused into stacks, over local or Dask workers."""
    if options["resume"] is not None:
        refuse_on_resume(
            options, RESUME_KEEPS, "the sweep keeps its own trials and settings"
        )
    if open_monitor:
        from mlp_backend.launch import run_with_monitor

        runs_dir = Path(options["resume"]).parent if options.get("resume") else None
        sys.exit(run_with_monitor(sys.argv[1:], runs_dir or Path(options["runs_dir"])))
    if uses_local_workers(options):
        # backend.ENV_VAR, which cannot be imported before NumPy is.
        prepare_local_workers(options.get("backend") or os.environ.get("MLP_BACKEND"))
    # Imported after that, which must come before NumPy's import (see
    # mlp_backend.sweep.processes).
    from mlp_backend.job import interrupted
    from mlp_backend.sweep.driver import run_sweep
    from mlp_backend.sweep.folder import FINAL_STATES, SweepFolder

    path, results = run_sweep(options)
    states: dict[str, int] = {}
    for record in results:
        states[record["state"]] = states.get(record["state"], 0) + 1
    total = len(SweepFolder(path).read()["trials"])
    counts = [f"{n} {s}" for s, n in sorted(states.items())]
    if total > len(results):
        counts.append(f"{total - len(results)} not begun")
    click.echo(f"sweep {path}: " + ", ".join(counts))
    resume = f"mlp-backend sweep --resume {path}"
    ended = sum(states.get(state, 0) for state in FINAL_STATES)
    # A Ctrl-C that came once every trial had ended interrupted nothing.
    if interrupted() and ended < total:
        click.echo(f"sweep interrupted; continue it with: {resume}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if states.get("interrupted"):
        # A stop.request (the monitor's x): a request, so not exit code 130,
        # as a train run stopped that way exits 0.
        click.echo(f"sweep stopped on request; continue it with: {resume}", err=True)
    if states.get("failed"):
        sys.exit(EXIT_RUN_FAILED)


@click.command()
@click.argument(
    "sweep_dir", type=NonEmptyPath(file_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--sort",
    "sort_by",
    default=None,
    callback=not_empty,
    help="Leaderboard column to sort by: a metric best first, anything else "
    "in ascending order. The heatmap shows it where it is a val_ or test_ "
    "metric. Default: val_f1, or val_r2 for regression.",
)
@click.option(
    "--x",
    "x_key",
    default="hidden",
    show_default=True,
    help="Heatmap columns: a hyperparameter.",
)
@click.option(
    "--y",
    "y_key",
    default="lr",
    show_default=True,
    help="Heatmap rows: a hyperparameter.",
)
@click.option("--no-figures", is_flag=True, help="Only the table and results.csv.")
@click.option(
    "--compare",
    type=NonEmptyPath(file_okay=False, exists=True, path_type=Path),
    help="Another sweep of the same trials (e.g. unpruned): say whether its "
    "best configuration survived here.",
)
def report(
    sweep_dir: Path,
    sort_by: str | None,
    x_key: str,
    y_key: str,
    no_figures: bool,
    compare: Path | None,
) -> None:
    """Print a sweep's leaderboard; write results.csv and PNG figures."""
    from rich.console import Console

    from mlp_backend.sweep.report import (
        build_report,
        configurations_table,
        leaderboard,
        pruning_line,
        survival_line,
    )

    summary = build_report(
        sweep_dir, sort_by, x_key, y_key, figures=not no_figures, compare=compare
    )
    console = Console()
    if not console.is_terminal:
        # Piped output has no width to fit; keep every column readable.
        console = Console(width=160)
    console.print(leaderboard(summary))
    if summary.configurations:
        console.print(configurations_table(summary))
    savings = pruning_line(summary)
    if savings:
        click.echo(savings)
    if summary.survival is not None:
        click.echo(survival_line(summary.survival, summary.sort_by, len(summary.rows)))
    if summary.unended and summary.running:
        click.echo(
            f"{summary.unended} of {summary.total} trials have no final result "
            "yet: the sweep is still running"
        )
    elif summary.unended:
        click.echo(
            f"{summary.unended} of {summary.total} trials have no final result "
            f"(not begun, interrupted or failed); mlp-backend sweep --resume "
            f"{sweep_dir} trains them"
        )
    for path in [*summary.written, *summary.figures]:
        click.echo(f"wrote {path}")
