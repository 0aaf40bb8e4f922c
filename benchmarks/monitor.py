"""How fast the monitor takes in a large runs folder, and how much memory it needs.

Writes a runs folder of ``--runs`` runs with ``--epochs`` metric lines each
(one million lines by default) into a temporary folder, then runs the monitor
headless and prints:

- the time to the first screen: from starting the app until the runs table
  holds every run;
- the time to take in new lines: ``--append`` lines appended in all, spread
  over the ``--running`` running runs, until every one of those rows shows
  its new epoch (the app reads on its own timer, ``--refresh`` seconds), over
  ``--rounds`` rounds that fall at different points of the timer's cycle;
- the time to open one run's screen with its full history;
- the peak resident memory of the process.

Targets on a 2-core machine: first screen within 2 s, new lines within one
refresh interval, peak memory under 500 MiB.

Usage::

    python benchmarks/monitor.py [--runs 1000] [--epochs 1000] [--running 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from textual.widgets import DataTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tui.app import MonitorApp  # noqa: E402
from tui.run_screen import RunScreen  # noqa: E402
from tui.runs_screen import RunsScreen  # noqa: E402

T0 = 1_764_786_600.0
METRICS_LINE = (
    '{{"format": 1, "epoch": {e}, "train_loss": {t:.6f}, "val_loss": {v:.6f}, '
    '"val_accuracy": {a:.6f}, "val_f1": {a:.6f}, "val_roc_auc": {a:.6f}, '
    '"lr": 0.003, "seconds": 0.21, "time": {s:.1f}}}\n'
)


def metrics_lines(first: int, last: int, seed: int) -> str:
    """Metrics lines for epochs ``first`` to ``last`` of run number ``seed``."""
    lines = []
    for e in range(first, last + 1):
        v = 0.3 + 0.4 / (1 + e / 50) + (seed % 7) * 0.001
        lines.append(
            METRICS_LINE.format(e=e, t=v - 0.05, v=v, a=1 - v / 2, s=T0 + e * 0.2)
        )
    return "".join(lines)


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` atomically, as the format asks."""
    tmp = path.with_name(path.name + ".tmp-0")
    tmp.write_text(json.dumps({"format": 1, **value}))
    tmp.replace(path)


def status(state: str, epoch: int, epochs: int, now: float) -> dict:
    """A ``status.json`` object."""
    return {
        "state": state,
        "epoch": epoch,
        "epochs": epochs,
        "host": "bench",
        "pid": 1,
        "started": T0,
        "updated": now,
        "reason": None,
        "device": {"name": "cpu", "memory_used": None, "memory_total": None},
    }


def build(root: Path, runs: int, epochs: int, running: int) -> list[str]:
    """Write the runs folder; return the names of the running runs."""
    now = time.time()
    live = []
    for i in range(runs):
        run = root / f"run-{i:04d}"
        run.mkdir(parents=True)
        is_running = i < running
        state = "running" if is_running else "finished"
        total = epochs + 1000 if is_running else epochs
        write_json(
            run / "config.json",
            {
                "name": run.name,
                "created": T0,
                "model": {"hidden": [64, 32], "activation": "relu"},
                "training": {"epochs": total, "lr": 0.003, "monitor": "val_loss"},
                "backend": {"name": "numpy", "device": "cpu", "dtype": "float32"},
                "sweep": None,
                "trial": None,
            },
        )
        (run / "metrics.jsonl").write_text(metrics_lines(1, epochs, i))
        write_json(run / "status.json", status(state, epochs, total, now))
        if is_running:
            live.append(run.name)
        else:
            write_json(
                run / "summary.json",
                {
                    "state": "finished",
                    "epochs_run": epochs,
                    "best_epoch": epochs,
                    "seconds": epochs * 0.2,
                    "monitor": "val_loss",
                    "best_value": 0.3,
                    "test": {"accuracy": 0.85},
                    "reason": None,
                },
            )
    return live


async def wait_for(pilot, check, timeout: float = 60.0) -> float:  # noqa: ANN001
    """Seconds until ``check()`` holds, looking every 10 ms."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the monitor did not get there in time")
        await pilot.pause(0.01)
    return time.perf_counter() - start


async def measure(root: Path, runs: int, live: list[str], args: argparse.Namespace):
    """Run the app headless and return the timings in seconds."""
    started = time.perf_counter()
    app = MonitorApp(root, refresh=args.refresh)
    async with app.run_test(size=(160, 50)) as pilot:

        def table() -> DataTable:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            return screen.query_one("#runs", DataTable)

        await wait_for(pilot, lambda: table().row_count == runs)
        first_screen = time.perf_counter() - started

        # Append across the running runs and move their status on, a few
        # times at different points of the refresh cycle.
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        per_run = args.append // max(len(live), 1)
        epoch = args.epochs
        take_in = []
        for round_ in range(args.rounds):
            await pilot.pause(0.37 * round_)
            appended_at = time.perf_counter()
            for i, name in enumerate(live):
                run = root / name
                with open(run / "metrics.jsonl", "a") as handle:
                    handle.write(metrics_lines(epoch + 1, epoch + per_run, i))
                write_json(
                    run / "status.json",
                    status("running", epoch + per_run, args.epochs + 1000, time.time()),
                )
            epoch += per_run
            await wait_for(
                pilot,
                lambda: all(
                    screen._shown.get(name) is not None
                    and screen._shown[name].epoch == epoch  # noqa: B023
                    for name in live
                ),
            )
            take_in.append(time.perf_counter() - appended_at)

        opened = time.perf_counter()
        app.push_screen(RunScreen(live[0] if live else "run-0000"))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunScreen) and app.screen.detail is not None,
        )
        open_run = time.perf_counter() - opened
    return first_screen, take_in, open_run


def main() -> None:
    """Build the folder, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--running", type=int, default=100)
    parser.add_argument("--append", type=int, default=10_000)
    parser.add_argument("--refresh", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        root = Path(tmp) / "runs"
        built = time.perf_counter()
        live = build(root, args.runs, args.epochs, args.running)
        size = sum(p.stat().st_size for p in root.glob("*/metrics.jsonl"))
        print(
            f"runs folder: {args.runs} runs x {args.epochs} epochs "
            f"({args.runs * args.epochs:,} metric lines, {size / 2**20:.0f} MiB), "
            f"{len(live)} running; written in {time.perf_counter() - built:.1f} s"
        )
        first, take_in, open_run = asyncio.run(measure(root, args.runs, live, args))

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"time to first screen:      {first:6.2f} s   (target 2 s)")
    rounds = ", ".join(f"{seconds:.2f}" for seconds in take_in)
    print(
        f"take in {args.append:,} new lines:  {max(take_in):6.2f} s max, "
        f"{sum(take_in) / len(take_in):.2f} s mean over rounds ({rounds}); "
        f"target {args.refresh:g} s, the refresh"
    )
    print(f"open a run's full history: {open_run:6.2f} s")
    print(f"peak memory (max RSS):     {peak_mib:6.0f} MiB (target 500 MiB)")


if __name__ == "__main__":
    main()
