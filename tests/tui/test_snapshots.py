"""Pictures of the screens at a fixed size on the fixture runs folder.

Update them with ``pytest tests/tui --snapshot-update`` after a deliberate
change of looks, and look at the new SVG files before keeping them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tests.tui.conftest import fixed_now
from tui.app import MonitorApp

SIZE = (120, 32)


def make_app(runs_dir: Path) -> MonitorApp:
    """The fixture app, with nothing on screen that depends on the temp path."""
    app = MonitorApp(runs_dir, refresh=3600, now=fixed_now)
    app.sub_title = "runs"
    return app


def pressing(*keys: str) -> Callable[[Pilot[None]], object]:
    """Wait for the screen to settle, press ``keys``, and wait again."""

    async def run_before(pilot: Pilot[None]) -> None:
        for batch in ((), keys):
            await pilot.press(*batch)
            await settled(pilot)

    return run_before


async def settled(pilot: Pilot[None], rounds: int = 50) -> None:
    """Waits until two pictures of the screen in a row are the same.

    The reader's threads post their results, and a table sizes its columns
    on a later pass; a fixed three rounds of waiting once came too early in
    CI's full run, which pictured the overlay's columns still unsized.
    """
    previous = None
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        picture = pilot.app.export_screenshot()
        if picture == previous:
            return
        previous = picture


def test_runs_screen(runs_dir: Path, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(make_app(runs_dir), terminal_size=SIZE, run_before=pressing())


def test_run_screen(runs_dir: Path, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(
        make_app(runs_dir), terminal_size=SIZE, run_before=pressing("down", "enter")
    )


def test_sweep_screen(runs_dir: Path, snap_compare: Callable[..., bool]) -> None:
    keys = ("down", "down", "down", "down", "enter")
    assert snap_compare(
        make_app(runs_dir), terminal_size=SIZE, run_before=pressing(*keys)
    )


def test_confirm_stop(runs_dir: Path, snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(
        make_app(runs_dir), terminal_size=SIZE, run_before=pressing("down", "x")
    )


def test_overlay_screen(runs_dir: Path, snap_compare: Callable[..., bool]) -> None:
    # alpha, sweep-hl/trial-000 and sweep-hl/trial-003, marked and overlaid.
    keys = ("space", *["down"] * 5, "space", *["down"] * 3, "space", "o")
    assert snap_compare(
        make_app(runs_dir), terminal_size=SIZE, run_before=pressing(*keys)
    )
