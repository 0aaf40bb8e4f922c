"""The monitor: a terminal user interface that follows a runs folder.

It reads run folders (``docs/run-format.md``) and nothing else, and writes
only ``stop.request`` files. It imports neither the math of ``mlp_backend``
nor CuPy.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_runs_dir", "run_monitor"]


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


def run_monitor(runs_dir: Path, refresh: float = 1.0) -> None:
    """Open the monitor on ``runs_dir`` and return when the user quits.

    Args:
        runs_dir: The runs folder to follow.
        refresh: Seconds between looks at the files.
    """
    # Textual is imported here so that importing ``tui`` stays cheap.
    from tui.app import MonitorApp

    MonitorApp(runs_dir, refresh=refresh).run()
