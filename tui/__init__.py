"""The monitor: a terminal user interface that follows a runs folder.

It reads run folders (``docs/run-format.md``) and nothing else, and writes
only ``stop.request`` files. It imports neither the math of ``mlp_backend``
nor CuPy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

__all__ = ["check_refresh", "check_runs_dir", "check_terminal", "run_monitor"]

#: The shortest and longest times between looks: shorter only spins the CPU
#: (a nan or 1e-9 never let the screen draw), longer never updates.
REFRESH_RANGE = (0.05, 3600.0)


def check_runs_dir(path: Path) -> str | None:
    """Why the monitor cannot open ``path``, or None when it can.

    Every entry point (``python -m tui``, ``mlp-backend monitor``) checks
    with this before it starts, and exits with status 2 and the message when
    there is one.

    Args:
        path: The runs folder the user named.

    Returns:
        A one-line message for the user, or None.
    """
    if not path.exists():
        return f"runs folder {path} does not exist; pass the runs folder"
    if not path.is_dir():
        return f"{path} is not a folder; pass the runs folder"
    return None


def check_terminal() -> str | None:
    """Why the monitor cannot draw here, or None when it can.

    It reads keys from standard input and draws on standard output; into a
    pipe or a file it wrote its escape codes. Checked by every entry point,
    as :func:`check_runs_dir` is (``train --monitor`` before it starts the
    job).
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return (
            "the monitor needs a terminal on standard input and output (over "
            "SSH, ssh -t); without one, mlp-backend report and the run "
            "folders' files say how runs are going"
        )
    return None


def check_refresh(seconds: float) -> str | None:
    """Why ``seconds`` cannot be the time between looks, or None when it can.

    Every entry point checks with this, as with :func:`check_runs_dir`.
    """
    low, high = REFRESH_RANGE
    if not (math.isfinite(seconds) and low <= seconds <= high):
        return f"expected seconds from {low:g} to {high:g}, got {seconds:g}"
    return None


def run_monitor(runs_dir: Path, refresh: float = 1.0) -> None:
    """Open the monitor on ``runs_dir`` and return when the user quits.

    Args:
        runs_dir: The runs folder to follow.
        refresh: Seconds between looks at the files.
    """
    # Textual is imported here so that importing ``tui`` stays cheap.
    from tui.app import MonitorApp

    MonitorApp(runs_dir, refresh=refresh).run()
