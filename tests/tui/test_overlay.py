"""The overlay: several marked runs on one chart, and the settings that differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import DataTable
from textual_plot import PlotWidget

from tests.tui.test_app import (
    SIZE,
    make_app,
    notices,
    poll,
    settle,
    shown,
    synchronous,
)
from tests.tui.writer import append_jsonl, metrics_line, write_json, write_run
from tui.app import SnapshotReady
from tui.overlay_screen import OverlayScreen, differing, short_names
from tui.runs_screen import RunsScreen
from tui.sweep_screen import SweepScreen


def three_runs(root: Path) -> Path:
    """Runs that differ in hidden and lr, and share an optimizer."""
    root.mkdir(parents=True)
    for name, hidden, lr, speed in (
        ("one", (64,), 0.01, 1.0),
        ("two", (32,), 0.001, 0.5),
        ("three", (64,), 0.01, 2.0),
    ):
        run = write_run(root, name, hidden=hidden, lr=lr, speed=speed)
        config = json.loads((run / "config.json").read_text())
        config["training"]["optimizer"] = "adam"
        write_json(run / "config.json", config)
    return root


def table_rows(table: DataTable[Any]) -> list[list[str]]:
    """The table's cells as text, row by row."""
    return [
        [str(cell) for cell in table.get_row(row.key)] for row in table.ordered_rows
    ]


def test_differing_settings() -> None:
    base = {"model": {"hidden": [64], "activation": "relu"}, "training": {"lr": 0.1}}
    other = {"model": {"hidden": [32], "activation": "relu"}, "training": {"lr": 0.1}}
    third = {"model": {"hidden": [64]}, "training": {"lr": 0.1, "seed": 1}}
    assert differing([base, other]) == ["model.hidden"]
    assert differing([base, base, None]) == []
    assert differing([base, third]) == ["model.activation", "training.seed"]
    assert short_names(["model.dropout", "training.dropout", "training.lr"]) == {
        "model.dropout": "model.dropout",
        "training.dropout": "training.dropout",
        "training.lr": "lr",
    }


@synchronous
async def test_overlay_two_marked_runs(tmp_path: Path) -> None:
    runs_dir = three_runs(tmp_path / "runs")
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert shown(screen) == ["one", "three", "two"]
        # Mark "one" and "two"; "three" is marked and unmarked again.
        await pilot.press("space", "down", "space", "space", "down", "space")
        assert app.marked == ["one", "two"]
        table = screen.query_one("#runs", DataTable)
        assert str(table.get_cell("one", "name")) == "● one"
        assert str(table.get_cell("three", "name")) == "three"
        await pilot.press("o")
        await settle(pilot)
        overlay = app.screen
        assert isinstance(overlay, OverlayScreen) and overlay.keys == ["one", "two"]
        assert overlay.columns == ["hidden", "lr"]
        settings = overlay.query_one("#overlay-settings", DataTable)
        assert [str(column.label) for column in settings.columns.values()] == [
            "run",
            "hidden",
            "lr",
        ]
        assert table_rows(settings) == [
            ["━ one", "64", "0.01"],
            ["━ two", "32", "0.001"],
        ]
        plot = overlay.query_one("#overlay-plot", PlotWidget)
        assert plot._labels == ["one", "two"]
        assert overlay.metric == "val_loss"
        assert set(app.details) == {"one", "two"}
        # Live: a new epoch of "two" shows.
        append_jsonl(runs_dir / "two" / "metrics.jsonl", [metrics_line(11)])
        await poll(pilot)
        detail = app.details["two"]
        assert len(detail.history) == 11 and overlay._drawn_of[1] is detail
        await pilot.press("c")
        assert overlay.metric == "train_loss"
        await pilot.press("c", "c", "c", "c")
        assert overlay.metric == "val_loss"
        await pilot.press("l", "m")
        assert overlay.log_scale and overlay.window == 5
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        await pilot.resize_terminal(*SIZE)
        listed = {
            k for k, active in overlay.active_bindings.items() if active.binding.show
        }
        assert {"escape", "c", "l", "m"} <= listed
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        await poll(pilot)
        assert app.details == {} and app.folder._details == {}


@synchronous
async def test_overlay_settings_show_as_they_are_not_as_markup(
    tmp_path: Path,
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    for name, activation in (("one", "[b]relu"), ("two", "tanh")):
        run = write_run(runs_dir, name)
        config = json.loads((run / "config.json").read_text())
        config["model"]["[i]act"] = activation
        write_json(run / "config.json", config)
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "down", "space", "o")
        await settle(pilot)
        settings = app.screen.query_one("#overlay-settings", DataTable)
        lines = [settings.render_line(y).text for y in range(3)]
        assert "[i]act" in lines[0]
        assert "[b]relu" in lines[1] and "tanh" in lines[2]


@synchronous
async def test_overlay_needs_two_runs(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        said = notices(app)
        await pilot.press("o")
        assert isinstance(app.screen, RunsScreen)
        assert said[-1].startswith("0 run(s) marked: mark at least two")
        await pilot.press("space", "o")
        assert isinstance(app.screen, RunsScreen)
        assert said[-1].startswith("1 run(s) marked")
        # A sweep cannot be marked: its trials can.
        await pilot.press(*["down"] * 4, "space")
        assert app.marked == ["alpha"]
        assert said[-1].startswith("only runs can be marked")
        # A marked run whose folder went is dropped.
        await pilot.press("down", "space")
        assert app.marked == ["alpha", "sweep-hl/trial-000"]
        for path in sorted((runs_dir / "alpha").iterdir()):
            path.unlink()
        (runs_dir / "alpha").rmdir()
        await poll(pilot)
        await pilot.press("o")
        assert isinstance(app.screen, RunsScreen)
        assert app.marked == ["sweep-hl/trial-000"]


@synchronous
async def test_overlay_from_the_leaderboard(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*["down"] * 4, "enter")
        await settle(pilot)
        sweep = app.screen
        assert isinstance(sweep, SweepScreen)
        # The two best trials.
        await pilot.press("space", "down", "space", "o")
        await settle(pilot)
        overlay = app.screen
        assert isinstance(overlay, OverlayScreen)
        assert overlay.keys == ["sweep-hl/trial-003", "sweep-hl/trial-002"]
        assert overlay.columns == ["lr"]
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is sweep
        board = sweep.query_one("#leaderboard", DataTable)
        assert str(board.get_cell("sweep-hl/trial-003", "trial")) == "● trial-003"
        await pilot.press("escape")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        table = runs.query_one("#runs", DataTable)
        assert str(table.get_cell("sweep-hl/trial-002", "name")) == "●   trial-002"


@synchronous
async def test_overlay_refresh_before_mount_and_after(runs_dir: Path) -> None:
    app = make_app(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = OverlayScreen(["alpha", "bravo"])
        app.push_screen(screen)
        # No await: the screen is on the stack but has no widgets yet.
        app.on_snapshot_ready(SnapshotReady(app.snapshot))
        await settle(pilot)
        assert app.screen is screen and screen.live
        assert set(app.details) == {"alpha", "bravo"}
        app.pop_screen()
        await settle(pilot)
        assert not screen.live
        screen.show_snapshot(app.snapshot)
        assert app.return_code is None
