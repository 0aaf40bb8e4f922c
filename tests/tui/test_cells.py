"""Helpers of the monitor's tables."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tests.tui.test_app import synchronous
from tui.cells import fill_table


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


@synchronous
async def test_filled_table_is_whole_before_its_idle_pass() -> None:
    # A table drawn between filling and its own idle pass kept cells cut to
    # their header's width ("0." for 0.003), for good: CI's overlay picture.
    app = TableApp()
    async with app.run_test(size=(60, 8)) as pilot:
        table: DataTable[Any] = app.query_one(DataTable)
        await pilot.pause()
        headers = {"run": Text("run"), "lr": Text("lr")}
        fill_table(table, headers, {"a": [Text("━ trial-000"), Text("0.003")]})
        drawn = table.render_line(1).text
        assert drawn.split() == ["━", "trial-000", "0.003"]
        await pilot.pause()
        assert table.render_line(1).text == drawn
        assert [column.width for column in table.columns.values()] == [11, 5]
