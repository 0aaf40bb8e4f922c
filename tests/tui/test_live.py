"""The monitor following a folder while a real training process writes to it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.tui.test_app import SIZE, poll, synchronous
from tui.app import MonitorApp
from tui.runs_screen import RunsScreen

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


@pytest.fixture
def magic_subset(tmp_path: Path) -> Path:
    import os

    source = Path(os.environ.get("MLP_BACKEND_DATA", SHARED / "data" / "magic04.data"))
    if not source.is_file():
        pytest.skip(f"MAGIC data not found at {source} (set MLP_BACKEND_DATA)")
    lines = source.read_text().splitlines()
    path = tmp_path / "data" / "magic04.data"
    path.parent.mkdir()
    path.write_text("\n".join(lines[:300] + lines[-300:]) + "\n")
    return path


@synchronous
async def test_follows_a_real_training_run(magic_subset: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    command = [
        sys.executable, "-m", "mlp_backend", "-q", "train",
        "--data", str(magic_subset), "--runs-dir", str(runs), "--name", "live",
        "--epochs", "5000", "--batch-size", "1", "--hidden", "16",
    ]  # fmt: skip
    # Thousands of batch-1 epochs: the run is still going when the app stops it.
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    app = MonitorApp(runs, refresh=3600)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            table = screen.query_one("#runs", DataTable)
            seen: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(set(seen)) < 3:
                await poll(pilot)
                if "live" in [r.key.value for r in table.ordered_rows]:
                    progress = str(table.get_cell("live", "progress")).split("/")[0]
                    seen.append(int(progress))
                await pilot.pause(0.2)
            # The epoch column moved forward several times while training ran.
            assert len(set(seen)) >= 3, seen
            assert seen == sorted(seen)
            assert str(table.get_cell("live", "state")) == "running"

            # Ask it to stop from the app, as a person would.
            await pilot.press("x")
            await pilot.press("y")
            assert job.wait(timeout=60) == 0, job.stderr.read() if job.stderr else ""
            await poll(pilot)
            assert str(table.get_cell("live", "state")) == "stopped"
    finally:
        if job.poll() is None:
            job.kill()
        job.wait()
        if job.stderr:
            job.stderr.close()
