"""The monitor: a terminal user interface that follows a runs folder.

It reads run folders (``docs/run-format.md``) and nothing else, and writes
only ``stop.request`` files. It imports neither the math of ``mlp_backend``
nor CuPy.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_monitor"]


def run_monitor(runs_dir: Path, refresh: float = 1.0) -> None:
    """Open the monitor on ``runs_dir`` and return when the user quits.

    Args:
        runs_dir: The runs folder to follow.
        refresh: Seconds between looks at the files.
    """
    # Textual is imported here so that importing ``tui`` stays cheap.
    from tui.app import MonitorApp

    MonitorApp(runs_dir, refresh=refresh).run()
