"""The ``mlp-backend`` command line: train, evaluate, predict, info, monitor.

This is a face: it parses options (click), decides what a person sees
(logging and a rich progress bar on a terminal, plain lines otherwise) and
turns the library's errors into one-line messages and exit codes:
0 success, 2 bad usage or input, 3 a diverged or failed run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import click

from mlp_backend import __version__
from mlp_backend.defaults import DEFAULTS
from mlp_backend.errors import (
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    MLPBackendError,
    MLPBackendWarning,
    OutputError,
    UsageError,
)
from mlp_backend.options import (
    BACKEND,
    NonEmptyPath,
    data_options,
    refuse_on_resume,
    task_options,
)

logger = logging.getLogger("mlp_backend")


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns the library's errors into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            # A write that fails at the last flush fails here, with a message,
            # not in the interpreter's exit.
            sys.stdout.flush()
            return result
        except MLPBackendError as exc:
            if isinstance(exc, OutputError) and isinstance(sys.stdout, ReaderGoneSafe):
                # Said now: the interpreter's last flush must not raise it again.
                sys.stdout.reported()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C before training began: nothing was written to keep.
            fail("interrupted", EXIT_INTERRUPTED)


class ReaderGoneSafe:
    """A text stream that goes on quietly once the program reading it has gone.

    ``mlp-backend train | head -1`` closes the pipe after one line, while the
    run must still finish and save: the first write that meets a closed pipe
    points the stream's file descriptor at ``/dev/null``, and writing goes on
    there instead of raising ``BrokenPipeError`` out of the training loop.
    Any other failure to write standard output (a full disk) is an
    :class:`OutputError`, which the command reports on standard error; one of
    standard error itself leaves nobody to tell, so it is dropped too. The
    error is raised again by every later write and flush: click's probe of
    the stream (an empty write) met it first and swallowed it, and the sweep
    command then ended with exit code 0 and its output lost.
    """

    def __init__(self, stream: Any, name: str) -> None:
        self._stream = stream
        self._name = name
        self._error: OutputError | None = None

    def write(self, text: str) -> int:
        if self._error is not None:
            raise self._error
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._stream.flush()
        except OSError as exc:
            self._failed(exc)

    def reported(self) -> None:
        """The error has been told: later writes go on quietly."""
        self._error = None

    def _failed(self, exc: OSError) -> None:
        self._divert()
        if self._name == "stdout" and not isinstance(exc, BrokenPipeError):
            self._error = OutputError(
                f"cannot write standard output ({exc.strerror or exc})"
            )
            raise self._error

    def _divert(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_output() -> None:
    """Makes standard output and error survive a reader that goes away."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, ReaderGoneSafe):
            setattr(sys, name, ReaderGoneSafe(stream, name))


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    warnings.showwarning = _show_warning


_python_show_warning = warnings.showwarning


def _show_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> None:
    """The library's warnings as one line of the log, like its other messages;
    Python's own form adds the file, line and source of the call."""
    if issubclass(category, MLPBackendWarning):
        logger.warning("warning: %s", message)
    else:
        _python_show_warning(message, category, *args, **kwargs)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlp-backend")
@click.option("-v", "--verbose", count=True, help="More log lines.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Train multilayer perceptrons with hand-written backprop on NumPy or CuPy."""
    guard_output()
    setup_logging(verbose, quiet)


def training_options(f: Any) -> Any:
    """The options of ``train`` (the sweep reuses their names)."""
    options = [
        data_options,
        click.option(
            "--name",
            default=None,
            help="Run folder name [default: a fresh unique one].",
        ),
        click.option(
            "--epochs", type=int, default=DEFAULTS["epochs"], show_default=True
        ),
        click.option(
            "--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True
        ),
        click.option(
            "--lr",
            type=float,
            default=DEFAULTS["lr"],
            show_default=True,
            help="Learning rate.",
        ),
        click.option(
            "--hidden",
            default=",".join(map(str, DEFAULTS["hidden"])),
            show_default=True,
            help="Hidden widths.",
        ),
        click.option(
            "--activation",
            type=click.Choice(["relu", "tanh", "sigmoid", "leaky_relu", "elu"]),
            default=DEFAULTS["activation"],
            show_default=True,
        ),
        click.option(
            "--optimizer",
            type=click.Choice(["sgd", "momentum", "nesterov", "adam"]),
            default=DEFAULTS["optimizer"],
            show_default=True,
        ),
        click.option(
            "--momentum", type=float, default=DEFAULTS["momentum"], show_default=True
        ),
        click.option(
            "--weight-decay",
            type=float,
            default=DEFAULTS["weight_decay"],
            show_default=True,
        ),
        click.option(
            "--schedule",
            type=click.Choice(["none", "step", "cosine"]),
            default=DEFAULTS["schedule"],
            show_default=True,
            help="Learning-rate schedule.",
        ),
        click.option(
            "--patience",
            type=int,
            default=DEFAULTS["patience"],
            show_default=True,
            help="Epochs without improvement before early stopping (0: off).",
        ),
        click.option(
            "--metric",
            type=click.Choice(
                [
                    "val_loss",
                    "val_accuracy",
                    "val_f1",
                    "val_roc_auc",
                    "val_mse",
                    "val_r2",
                ]
            ),
            default=DEFAULTS["metric"],
            show_default=True,
            help="Validation metric for early stopping and the best weights.",
        ),
        click.option(
            "--seed",
            type=int,
            default=DEFAULTS["seed"],
            show_default=True,
            help="Seed of initial weights and batch order.",
        ),
        task_options,
    ]
    for option in reversed(options):
        f = option(f)
    return f


#: Options that ``train --resume`` takes besides the run's own settings.
RESUME_KEEPS = ("resume", "backend", "runs_dir")


@main.command()
@training_options
@click.option(
    "--monitor",
    "open_monitor",
    is_flag=True,
    help="Follow the run in the terminal monitor.",
)
@click.option(
    "--resume",
    type=NonEmptyPath(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Go on with a killed or stopped run (its folder) from its last "
    "epoch, with its own settings.",
)
def train(open_monitor: bool, **options: Any) -> None:
    """Train one network; with no options, a good default network on MAGIC."""
    if options["resume"] is not None:
        refuse_on_resume(options, RESUME_KEEPS, "the run keeps its own settings")
    if open_monitor:
        from mlp_backend.launch import run_with_monitor

        # A resumed run trains in its own folder, wherever that is.
        resume = options["resume"]
        runs_dir = Path(resume).parent if resume else Path(options["runs_dir"])
        sys.exit(run_with_monitor(sys.argv[1:], runs_dir))
    from mlp_backend.job import interrupted
    from mlp_backend.train_command import run_train

    quiet = logger.getEffectiveLevel() > logging.INFO
    display = "none" if quiet else "bar" if sys.stderr.isatty() else "lines"
    state = run_train(options, display=display)
    if state in ("diverged", "failed"):
        sys.exit(EXIT_RUN_FAILED)
    if state == "stopped" and interrupted():
        sys.exit(EXIT_INTERRUPTED)


@main.command()
@click.argument("run", type=NonEmptyPath(path_type=Path))
@click.option(
    "--data",
    type=NonEmptyPath(),
    default=None,
    help="Score this labelled file instead of the run's test part.",
)
@BACKEND
def evaluate(run: Path, data: str | None, backend: str | None) -> None:
    """Re-score a saved model on its test data or on a given file."""
    from mlp_backend.train_command import run_evaluate

    report = run_evaluate(run, data, backend)
    print_metrics(report)


@main.command()
@click.argument("run", type=NonEmptyPath(path_type=Path))
@click.argument("file", type=NonEmptyPath(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=NonEmptyPath(dir_okay=False, path_type=Path),
    default=None,
    help="Write the CSV here [default: standard output].",
)
@BACKEND
def predict(run: Path, file: Path, output: Path | None, backend: str | None) -> None:
    """Write the predicted class and probability of each row of FILE as CSV."""
    from mlp_backend.runs import replace_bytes
    from mlp_backend.train_command import run_predict

    if output is not None and not output.parent.is_dir():
        raise UsageError(f"-o/--output: the folder {output.parent} does not exist")
    if (
        output is not None
        and output.exists()
        and file.exists()
        and output.samefile(file)
    ):
        raise UsageError(
            f"-o/--output: {output} is the file to predict on; it would be "
            "replaced by the predictions"
        )
    header, rows = run_predict(run, file, backend)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    if output is None:
        sys.stdout.write(text.getvalue())
        return
    try:
        if output.exists() and not output.is_file():
            # A device or a pipe (/dev/stdout, a FIFO): a rename would replace
            # it; and a reader that has gone is no failure, as on stdout.
            with contextlib.suppress(BrokenPipeError):
                output.write_text(text.getvalue(), newline="")
        else:
            # Whole or not at all: a failed write leaves no partial CSV behind.
            replace_bytes(output, text.getvalue().encode())
    except OSError as exc:
        raise OutputError(
            f"-o/--output: cannot write {output} ({exc.strerror or exc})"
        ) from None


@main.command()
@click.option("--data", default=None, help="Where to look for MAGIC first.")
def info(data: str | None) -> None:
    """Backends, devices, versions, and where the data was found."""
    import platform
    from importlib import metadata

    import numpy as np

    from mlp_backend.backend import cupy_problem, get_backend
    from mlp_backend.errors import DataError

    python = platform.python_version()
    click.echo(f"mlp-backend {__version__}, Python {python}, NumPy {np.__version__}")
    click.echo(
        "with "
        + ", ".join(
            f"{name} {_version(name) or 'not installed'}"
            for name in ("array-api-compat", "click", "rich", "textual", "textual-plot")
        )
    )
    builds = sorted(
        f"{d.metadata['Name']} {d.version}"
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").lower().startswith("cupy")
    )
    cupy = ", ".join(builds) if builds else "cupy"
    problem = cupy_problem()
    if problem is None:
        click.echo(f"{cupy}: {get_backend('cupy').device_name}")
    else:
        click.echo(f"{cupy}: {problem}")
    # A diagnosis goes on past what it finds wrong: MLP_BACKEND naming a
    # backend that cannot run here, a MAGIC file that is not there.
    try:
        chosen = get_backend(None)
        click.echo(f"backend now: {chosen.name} on {chosen.device_name}")
    except MLPBackendError as exc:
        click.echo(f"backend now: none ({exc})")
    from mlp_backend.data import locate_magic
    from mlp_backend.data.magic import MAGIC_FILE

    try:
        path = locate_magic(data, download=False)
    except DataError as exc:
        # The message says what it looked for ("MAGIC data: ... does not exist").
        click.echo(str(exc))
    else:
        if path.name == MAGIC_FILE:
            click.echo(f"MAGIC data: {path}")
        else:
            click.echo(f"data: {path} (read as a general table: not {MAGIC_FILE})")


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@main.command()
@click.argument(
    "runs_dir", type=NonEmptyPath(file_okay=False, path_type=Path), default=Path("runs")
)
@click.option(
    "--refresh",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between redraws (0.05 to 3600).",
)
def monitor(runs_dir: Path, refresh: float) -> None:
    """Follow training runs and sweeps live in the terminal."""
    from tui import check_refresh, check_runs_dir, check_terminal, run_monitor

    problem = check_refresh(refresh)
    if problem is not None:
        raise UsageError(f"--refresh: {problem}")
    problem = check_runs_dir(runs_dir)
    if problem is not None:
        raise UsageError(f"RUNS_DIR: {problem}")
    problem = check_terminal()
    if problem is not None:
        raise UsageError(problem)
    run_monitor(runs_dir, refresh)


from mlp_backend.sweep_command import report, sweep  # noqa: E402  (registers after main)

main.add_command(sweep)
main.add_command(report)


def print_metrics(report: dict[str, Any]) -> None:
    """A readable table of test metrics (rich when on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="test metrics", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in report.items():
        if key == "tpr_at_fpr":
            for fpr, tpr in value.items():
                table.add_row(f"TPR at FPR {fpr}", _fmt(tpr))
        elif key == "confusion_matrix":
            table.add_row(key, str(value))
        else:
            table.add_row(key, _fmt(value))
    Console(soft_wrap=True).print(table)


def _fmt(value: Any) -> str:
    # As the epoch lines show it: a metric the test part cannot define (ROC
    # AUC of one class) is n/a, not nan.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def elapsed(start: float) -> str:
    return f"{time.perf_counter() - start:.1f}s"
