"""Command-line options that ``train`` and ``sweep`` share (click).

What data, which split, which device: the same names, defaults and help on
every command that trains, defined once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from mlp_backend.errors import UsageError


def option_name(key: str) -> str:
    """The command-line flag of a training or trial key (``--batch-size``)."""
    return "--" + key.replace("_", "-")


def refuse_on_resume(options: dict[str, Any], keeps: tuple[str, ...], why: str) -> None:
    """Refuses, beside ``--resume``, the options typed on the command line but
    ``keeps``: the folder holds what they would set. An option left at its
    default is not given; one typed with its default value is.

    Raises:
        UsageError: ``--resume: {why}; leave out`` the options given.
    """
    ctx = click.get_current_context()
    given = [
        option_name(name)
        for name in options
        if name not in keeps
        and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    ]
    if given:
        raise UsageError(f"--resume: {why}; leave out " + ", ".join(given))


EMPTY = "expected a value, got an empty string"


def not_empty(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuses an empty value of a text option (an address, a column).

    ``--sort "$COLUMN"`` with ``COLUMN`` unset passes an empty string, which
    read as the option left out.
    """
    if value == "":
        raise click.BadParameter(EMPTY)
    return value


class NonEmptyPath(click.Path):
    """A path option or argument that refuses an empty value.

    ``--spec "$SPEC"`` with ``SPEC`` unset passes an empty string: as a
    plain option it read as left out (the sweep trained the default network,
    ``--data ""`` found MAGIC), and ``click.Path`` takes it for the current
    folder (``--runs-dir ""`` wrote there).
    """

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value == "":
            self.fail(EMPTY, param, ctx)
        return super().convert(value, param, ctx)


BACKEND = click.option(
    "--backend",
    type=click.Choice(["auto", "numpy", "cupy"]),
    default=None,
    help="Array backend [default: $MLP_BACKEND, else auto].",
)
RUNS_DIR = click.option(
    "--runs-dir",
    type=NonEmptyPath(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Root folder of run folders.",
)


def data_options(f: Any) -> Any:
    """``--data``, ``--test-data`` and ``--runs-dir``."""
    options = [
        click.option(
            "--data",
            type=NonEmptyPath(),
            default=None,
            help="Data file [default: MAGIC by its location rules].",
        ),
        click.option(
            "--test-data",
            type=NonEmptyPath(),
            default=None,
            help="Separate test file instead of a test split.",
        ),
        RUNS_DIR,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def task_options(f: Any) -> Any:
    """The split, the task, the label column, the backend and the dtype."""
    options = [
        click.option(
            "--split-seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of the train/validation/test split.",
        ),
        click.option(
            "--task",
            type=click.Choice(["classification", "regression"]),
            default="classification",
            show_default=True,
        ),
        click.option(
            "--label",
            default="-1",
            show_default=True,
            help="Label column: a name (with a header) or an index.",
        ),
        click.option(
            "--positive",
            default=None,
            help="Positive class of a binary task [MAGIC: g].",
        ),
        BACKEND,
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float64"]),
            default="float32",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def label_value(value: str) -> str | int:
    """``--label``: a column index when it reads as an integer, else a name."""
    try:
        return int(value)
    except ValueError:
        return value


def int_list(value: str, option: str) -> tuple[int, ...]:
    """Hidden widths of one network: ``64,32`` (or ``64x32``, as sweeps write it)."""
    items = [v.strip() for v in value.replace("x", ",").split(",")]
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise UsageError(
            f"{option}: expected integers like 64,32 or 64x32 (one per hidden "
            "layer); "
            f"got {value!r}"
        ) from None
