"""``python -m tui RUNS_DIR``: open the monitor on a runs folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui import check_refresh, check_runs_dir, check_terminal, run_monitor


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the monitor."""
    parser = argparse.ArgumentParser(
        prog="python -m tui", description="Follow the runs in a runs folder."
    )
    parser.add_argument(
        "runs_dir", nargs="?", type=Path, default=Path("runs"), help="default: runs"
    )
    parser.add_argument(
        "--refresh", type=float, default=1.0, help="seconds between looks (1.0)"
    )
    args = parser.parse_args(argv)
    problem = check_runs_dir(args.runs_dir)
    if problem is not None:
        parser.error(problem)
    problem = check_refresh(args.refresh)
    if problem is not None:
        parser.error(f"--refresh: {problem}")
    problem = check_terminal()
    if problem is not None:
        parser.error(problem)
    run_monitor(args.runs_dir, refresh=args.refresh)


if __name__ == "__main__":
    main()
