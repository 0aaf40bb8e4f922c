"""The monitor's screens, driven through Textual's pilot."""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Static
from textual_plot import PlotWidget

from tests.tui.conftest import fixed_now
from tests.tui.writer import append_jsonl, metrics_line, write_json, write_run
from tui.app import MonitorApp, SnapshotReady, stop_refusal
from tui.cells import TABLE_WIDTH
from tui.charts import EpochFormatter
from tui.confirm import ConfirmScreen
from tui.run_screen import RunScreen
from tui.runs import RunRow, SweepProgress
from tui.runs_screen import RunsScreen
from tui.sweep_screen import SweepScreen

SIZE = (140, 36)


def synchronous(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test body in its own event loop (no asyncio plugin here)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def make_app(runs_dir: Path) -> MonitorApp:
    """An app that reads only when told (the timer would fire after an hour)."""
    return MonitorApp(runs_dir, refresh=3600, now=fixed_now)


async def settle(pilot: Pilot[None]) -> None:
    """Wait until every read has been shown, including reads they started."""
    app = pilot.app
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause()


async def poll(pilot: Pilot[None]) -> None:
    """Read the files now and wait until the result is shown."""
    assert isinstance(pilot.app, MonitorApp)
    pilot.app.poll_files()
    await settle(pilot)


def notices(app: MonitorApp) -> list[str]:
    """Record what the app notifies from now on."""
    said: list[str] = []
    notify = app.notify

    def record(message: str, **kwargs: Any) -> None:
        said.append(message)
        notify(message, **kwargs)

    app.notify = record  # type: ignore[method-assign]
    return said


def shown(screen: RunsScreen) -> list[str]:
    """The keys of the rows of the runs table, in order."""
    table = screen.query_one("#runs", DataTable)
    return [row.key.value or "" for row in table.ordered_rows]


@synchronous
async def test_opens_with_every_run(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert shown(screen) == [
            "alpha",
            "bravo",
            "charlie",
            "delta",
            "sweep-hl",
            *(f"sweep-hl/trial-{i:03d}" for i in range(6)),
        ]
        table = screen.query_one("#runs", DataTable)
        assert str(table.get_cell("delta", "state")) == "stale"
        assert "bravo" not in app.folder._details


@synchronous
async def test_navigate_sort_and_group(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("down", "down")
        assert screen.selected_key() == "charlie"
        # Ungrouped, then sorted by the second column (state).
        await pilot.press("g", "s")
        assert screen.sort_column == "state"
        order = shown(screen)
        states = [screen.rows[key].state for key in order]
        assert states == sorted(states)
        assert screen.selected_key() == "charlie"
        await pilot.press("r")
        assert shown(screen) != order
        states = [screen.rows[key].state for key in shown(screen)]
        assert states == sorted(states, reverse=True)


@synchronous
async def test_filter(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("slash", *"char")
        assert shown(screen) == ["charlie"]
        await pilot.press("enter")
        assert shown(screen) == ["charlie"]
        await pilot.press("escape")
        assert len(shown(screen)) == 11
        await pilot.press("slash", *"failed", "enter")
        assert shown(screen) == ["sweep-hl", "sweep-hl/trial-005"]


@synchronous
async def test_updates_cells_in_place(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        rebuilds = 0
        rebuild = screen._rebuild

        def counting(order: list[str]) -> None:
            nonlocal rebuilds
            rebuilds += 1
            rebuild(order)

        screen._rebuild = counting  # type: ignore[method-assign]
        append_jsonl(runs_dir / "bravo" / "metrics.jsonl", [metrics_line(13)])
        write_json(
            runs_dir / "bravo" / "status.json",
            {"state": "running", "epoch": 13, "epochs": 40, "started": 0.0},
        )
        await poll(pilot)
        table = screen.query_one("#runs", DataTable)
        assert str(table.get_cell("bravo", "progress")).startswith("  13/40")
        assert rebuilds == 0


@synchronous
async def test_open_a_run(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.key == "bravo"
        assert screen.detail is not None and len(screen.detail.history) == 12
        append_jsonl(runs_dir / "bravo" / "metrics.jsonl", [metrics_line(13)])
        await poll(pilot)
        assert len(screen.detail.history) == 13
        await pilot.press("l", "m", "m", "m")
        assert screen.log_scale and screen.window == 1
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        await poll(pilot)
        assert app.folder._details == {} and app.details == {}


@synchronous
async def test_open_a_sweep(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 4, "enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SweepScreen) and screen.key == "sweep-hl"
        board = screen.query_one("#leaderboard", DataTable)
        assert board.row_count == 6
        first = board.ordered_rows[0].key.value
        assert first == "sweep-hl/trial-003"
        assert set(app.details) == {
            "sweep-hl/trial-003",
            "sweep-hl/trial-002",
            "sweep-hl/trial-001",
        }
        await pilot.press("h")
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        assert app.screen.key == "sweep-hl/trial-003"


@synchronous
async def test_stop_a_run(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    stop_file = runs_dir / "bravo" / "stop.request"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not stop_file.exists()
        await pilot.press("x", "y")
        await pilot.pause()
        assert stop_file.is_file()
        # A finished run has nothing to stop.
        await pilot.press("up", "x")
        assert isinstance(app.screen, RunsScreen)
        assert not (runs_dir / "alpha" / "stop.request").exists()


@synchronous
async def test_stop_a_sweep(runs_dir: Path) -> None:
    # Once only the trials begun were asked (their folders exist): the sweep
    # went on with the others, and the question counted 1 of 3.
    app = make_app(runs_dir)
    said = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 4, "enter")
        await settle(pilot)
        await pilot.press("x")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        # Of 8 planned: 4 finished and 1 failed; 1 running and 2 not begun.
        assert question.question == "Stop sweep sweep-hl (3 unfinished trials)?"
        await pilot.press("y")
        await pilot.pause()
    # The sweep's own request, which the sweep's workers read.
    assert (runs_dir / "sweep-hl" / "stop.request").is_file()
    assert not list(runs_dir.glob("sweep-hl/*/stop.request"))
    assert said == [
        "asked sweep sweep-hl to stop: its 3 unfinished trials are left to "
        "mlp-backend sweep --resume"
    ]


@synchronous
async def test_stop_a_stale_run_asks_nothing(runs_dir: Path) -> None:
    # Once "asked 1 run(s) to stop", of a run whose process is gone.
    app = make_app(runs_dir)
    said = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 3, "x")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
    assert not (runs_dir / "delta" / "stop.request").exists()
    assert said == [
        "run delta is stale: it is not running, so nothing was asked to stop"
    ]


def test_stop_refusals() -> None:
    def sweep(state: str, total: int, ended: int) -> RunRow:
        progress = SweepProgress(total=total, done=ended)
        return RunRow("s", "s", None, "sweep", state, progress=progress)

    assert stop_refusal(sweep("queued", 3, 0)) is None
    assert stop_refusal(sweep("running", 3, 2)) is None
    assert "nothing left" in str(stop_refusal(sweep("finished", 3, 3)))
    assert "--resume" in str(stop_refusal(sweep("interrupted", 3, 1)))
    assert "stale" in str(stop_refusal(sweep("stale", 3, 1)))
    run = RunRow("r", "r", None, "run", "running")
    assert stop_refusal(run) is None
    assert "nothing left" in str(stop_refusal(replace(run, state="diverged")))


def line_with(table: DataTable[Any], text: str) -> str:
    """The line of the table as shown that holds ``text``."""
    lines = [table.render_line(y).text for y in range(table.size.height)]
    return next(line for line in lines if text in line)


@synchronous
async def test_names_show_as_they_are_not_as_markup(tmp_path: Path) -> None:
    # A folder named "[red]redname" showed as a red "redname".
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    write_run(runs_dir, "[red]redname")
    write_run(runs_dir, "[b]gone", state="running", epoch=2)
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs", DataTable)
        assert "[red]redname" in line_with(table, "redname")
        assert "[b]gone" in line_with(table, "gone")
        # A notice quotes the name as it is too.
        shutil.rmtree(runs_dir / "[b]gone")
        await poll(pilot)
        toasts = app.screen.query("Toast")
        assert [str(toast.render()) for toast in toasts] == ["run [b]gone is gone"]


@synchronous
async def test_unreadable_status_is_told_and_shown(runs_dir: Path) -> None:
    (runs_dir / "bravo" / "status.json").write_text("[1, 2]")
    app = make_app(runs_dir)
    said = notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs", DataTable)
        assert str(table.get_cell("bravo", "state")) == "unreadable"
        await pilot.press("down", "enter")
        await settle(pilot)
        await poll(pilot)
        status = app.screen.query_one("#run-status", Static)
        assert "status.json: a JSON list, not an object" in str(status.render())
    assert said == [f"{runs_dir / 'bravo' / 'status.json'}: a JSON list, not an object"]


@synchronous
async def test_small_terminal(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(pilot)
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


@synchronous
async def test_deleted_run_drops_out(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shutil.rmtree(runs_dir / "charlie")
        await poll(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert "charlie" not in shown(screen)


@synchronous
async def test_refresh_while_screens_come_and_go(runs_dir: Path) -> None:
    # A look that lands while a screen is pushed but not yet composed, or
    # after it was popped, once raised NoMatches('#run-title') and closed the
    # app; a stop on a running run opened a moment earlier did it.
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        snapshot = app.snapshot
        for screen in (RunScreen("bravo"), SweepScreen("sweep-hl"), RunsScreen()):
            app.push_screen(screen)
            # No await: the screen is on the stack but has no widgets yet.
            app.on_snapshot_ready(SnapshotReady(snapshot))
            await settle(pilot)
            assert app.screen is screen and screen.live
            app.pop_screen()
            await settle(pilot)
            assert not screen.live
            screen.show_snapshot(snapshot)
        # The user's way: open a running run, stop it, and let looks land
        # while it is being composed and while the question is open.
        await pilot.press("down", "enter")
        app.poll_files()
        await pilot.press("x")
        await poll(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await poll(pilot)
        run_screen = app.screen
        assert isinstance(run_screen, RunScreen) and run_screen.key == "bravo"
        assert app.return_code is None


@synchronous
async def test_confirm_shows_question_and_keys(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(pilot)
        await pilot.press("down", "x")
        screen = app.screen
        assert isinstance(screen, ConfirmScreen)
        assert screen.question == "Stop run bravo?"
        box = screen.query_one("#confirm").region
        for selector, text in (("#question", screen.question), ("#answers", "y")):
            region = screen.query_one(selector, Static).content_region
            # Once the box shrank to its border: 6x4 with nothing inside.
            assert region.width >= len(text) and region.height >= 1
            assert box.contains_region(region)
        # Its own footer, listing the keys that answer (not those behind).
        footer = screen.query_one(Footer)
        assert footer.region.height == 1
        listed = {
            k for k, active in screen.active_bindings.items() if active.binding.show
        }
        assert {"y", "n"} <= listed and "x" not in listed
        await pilot.press("n")
        assert isinstance(app.screen, RunsScreen)


@synchronous
async def test_runs_table_fits_120_columns(runs_dir: Path) -> None:
    # Once the backend column was cut to "numpy/c" at 120 columns.
    assert TABLE_WIDTH <= 120
    app = make_app(runs_dir)
    # Twelve rows: too many for the table, so the scrollbar takes its place.
    async with app.run_test(size=(120, 12)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs", DataTable)
        assert table.show_vertical_scrollbar
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert table.max_scroll_x == 0
        assert str(table.get_cell("alpha", "backend")) == "numpy/cpu"
        await pilot.press("g")
        assert str(table.get_cell("sweep-hl/trial-003", "name")) == (
            "sweep-hl/trial-003"
        )


@synchronous
async def test_one_epoch_run_has_whole_epoch_ticks(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    write_run(runs_dir, "once", epoch=1, epochs=1)
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        for plot in app.screen.query(PlotWidget):
            low, high = plot._x_min, plot._x_max
            ticks, labels = plot._x_formatter.get_ticks_and_labels(low, high)
            # Once 0.9999990: textual-plot widens a one-point axis by 1e-6.
            assert ticks == [1.0] and labels == ["1"]


def test_epoch_ticks() -> None:
    ticks = EpochFormatter().get_ticks_and_labels
    assert ticks(1 - 1e-6, 1 + 1e-6) == ([1.0], ["1"])
    assert ticks(1, 3) == ([1.0, 2.0, 3.0], ["1", "2", "3"])
    assert ticks(1, 40)[1] == ["10", "20", "30", "40"]
    assert ticks(1, 1000)[1] == ["200", "400", "600", "800", "1000"]
    assert ticks(0.2, 0.8) == ([], [])


@synchronous
async def test_quit_in_a_small_terminal(runs_dir: Path) -> None:
    # At 40x12 the footer has no room for "q Quit"; the key still works, on
    # the runs table and on a run.
    for keys in ((), ("down", "enter")):
        app = make_app(runs_dir)
        async with app.run_test(size=(40, 12)) as pilot:
            await settle(pilot)
            await pilot.press(*keys)
            await settle(pilot)
            await pilot.press("q")
            await pilot.pause()
            assert app.return_code == 0
            assert not app.is_running
