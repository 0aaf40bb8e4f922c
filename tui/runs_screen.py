"""The first screen: a table of every run, trial and sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui.cells import CELL_PADDING, COLUMNS, row_cells
from tui.runs import RunRow, Snapshot, better_first

if TYPE_CHECKING:
    from tui.app import MonitorApp

COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
# Before the name of a run marked for an overlay.
MARK = "● "
LABELS = {key: label for key, label, _ in COLUMNS}


def sort_value(row: RunRow, column: str) -> Any:
    """The value a column sorts by (None when the row has none).

    Scores sort by metric, and within one metric the best first: a loss does
    not compare with an accuracy, nor does an accuracy rank lowest first.
    """
    if column == "progress":
        return row.epoch / row.epochs if row.epoch is not None and row.epochs else None
    if column == "best" and row.best is not None:
        return (row.monitor, better_first(row.monitor, row.best))
    if column == "test" and row.test is not None:
        return (row.test_name, better_first(row.test_name, row.test))
    if column in ("best", "test"):
        return None
    if column in ("elapsed", "eta"):
        return getattr(row, column)
    if column == "name":
        # The key: ungrouped, a sweep's trials sort together, as they show.
        return row.key
    return getattr(row, column) or ""


def sort_rows(rows: list[RunRow], column: str, reverse: bool) -> list[RunRow]:
    """Sort by ``column``; rows without a value go last either way."""
    known = [row for row in rows if sort_value(row, column) is not None]
    unknown = [row for row in rows if sort_value(row, column) is None]
    known.sort(key=lambda row: (sort_value(row, column), row.key), reverse=reverse)
    return known + unknown


def matches(row: RunRow, query: str) -> bool:
    """Whether a row's name, sweep, state or backend contains ``query``."""
    text = f"{row.name} {row.sweep or ''} {row.state} {row.backend}".lower()
    return query.lower() in text


def visible_order(
    rows: dict[str, RunRow], column: str, reverse: bool, grouped: bool, query: str
) -> list[str]:
    """The keys of the rows to show, in the order to show them.

    Grouped, each sweep is followed by its trials; a sweep shows when it or
    one of its trials matches the filter, and all its trials show when the
    sweep itself matches.
    """
    if not grouped:
        shown = [row for row in rows.values() if matches(row, query)]
        return [row.key for row in sort_rows(shown, column, reverse)]
    trials: dict[str, list[RunRow]] = {}
    for row in rows.values():
        if row.sweep is not None:
            trials.setdefault(row.sweep, []).append(row)
    order = []
    top = [row for row in rows.values() if row.sweep is None]
    for row in sort_rows(top, column, reverse):
        children = trials.get(row.key, [])
        if not matches(row, query):
            children = [child for child in children if matches(child, query)]
            if not children:
                continue
        order.append(row.key)
        order.extend(child.key for child in sort_rows(children, column, reverse))
    return order


class RunsScreen(Screen[None]):
    """Every run and sweep, one line each, kept up to date in place."""

    BINDINGS = [
        Binding("s", "sort_next", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("slash", "filter", "Filter"),
        Binding("g", "group", "Group"),
        Binding("x", "stop", "Stop"),
        Binding("space", "mark", "Mark"),
        Binding("o", "overlay", "Overlay"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    sort_column: reactive[str] = reactive("name", init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)
    grouped: reactive[bool] = reactive(True, init=False)
    filter_text: reactive[str] = reactive("", init=False)

    app: MonitorApp

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, RunRow] = {}
        self._order: list[str] = []
        self._shown: dict[str, RunRow] = {}
        self._cells: dict[str, dict[str, Any]] = {}
        # True from on_mount to on_unmount: the widgets exist only then.
        self.live = False

    def compose(self) -> ComposeResult:
        """The table, a status line, the filter box and the keys."""
        yield Header()
        table: DataTable[Any] = DataTable(
            id="runs", cursor_type="row", cell_padding=CELL_PADDING
        )
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static(id="runs-status")
        yield Input(placeholder="filter: name, sweep, state or backend", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        """Start with what the app has read so far."""
        self.live = True
        self.query_one("#filter", Input).display = False
        self.show_snapshot(self.app.snapshot)

    def on_unmount(self) -> None:
        """Take no more updates: the widgets are going."""
        self.live = False

    def watched_keys(self) -> set[str]:
        """The runs table needs no run in full."""
        return set()

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Bring the table up to date, in place where the rows stay the same.

        Before mount and after unmount only the rows are kept: the widgets
        are not there to update.
        """
        self.rows = snapshot.rows
        if not self.live:
            return
        order = visible_order(
            self.rows,
            self.sort_column,
            self.sort_reverse,
            self.grouped,
            self.filter_text,
        )
        if order == self._order:
            self._update_cells()
        else:
            self._rebuild(order)
        self._show_status()

    def _update_cells(self) -> None:
        table = self.query_one("#runs", DataTable)
        for key in self._order:
            row = self.rows[key]
            if self._shown.get(key) == row:
                continue
            cells = self._row_cells(row)
            old = self._cells[key]
            for column, value in cells.items():
                if old.get(column) != value:
                    table.update_cell(key, column, value)
            self._shown[key] = row
            self._cells[key] = cells

    def _row_cells(self, row: RunRow) -> dict[str, Any]:
        cells: dict[str, Any] = row_cells(row, self.grouped)
        if row.key in self.app.marked:
            name = Text()
            name.append(MARK, style="bold yellow")
            name.append(str(cells["name"]))
            cells["name"] = name
        return cells

    def _show_marks(self) -> None:
        """Bring the marks in the name cells up to date."""
        if not self.live:
            return
        table = self.query_one("#runs", DataTable)
        for key in self._order:
            cells = self._row_cells(self.rows[key])
            if self._cells[key]["name"] != cells["name"]:
                table.update_cell(key, "name", cells["name"])
                self._cells[key] = cells
        self._show_status()

    def on_screen_resume(self) -> None:
        """Show marks changed on another screen (a sweep's leaderboard)."""
        self._show_marks()

    def _rebuild(self, order: list[str]) -> None:
        table = self.query_one("#runs", DataTable)
        selected = self.selected_key()
        table.clear()
        self._shown = {}
        self._cells = {}
        for key in order:
            row = self.rows[key]
            cells = self._row_cells(row)
            table.add_row(*(cells[column] for column in COLUMN_KEYS), key=key)
            self._shown[key] = row
            self._cells[key] = cells
        self._order = order
        if selected in order:
            table.move_cursor(row=order.index(selected), animate=False)

    def _refilter(self) -> None:
        self.show_snapshot(Snapshot(self.rows))

    def _show_status(self) -> None:
        runs = sum(1 for row in self.rows.values() if row.kind == "run")
        sweeps = len(self.rows) - runs
        label = LABELS[self.sort_column]
        parts = [
            f"{runs} run{'' if runs == 1 else 's'}, "
            f"{sweeps} sweep{'' if sweeps == 1 else 's'}",
            f"sorted by {label} {'↓' if self.sort_reverse else '↑'}",
        ]
        if self.grouped:
            parts.append("grouped by sweep")
        if self.app.marked:
            parts.append(f"{len(self.app.marked)} marked (o: overlay)")
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r}: {len(self._order)} shown")
        self.query_one("#runs-status", Static).update(Text(" · ".join(parts)))

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def watch_sort_column(self) -> None:
        """Re-sort."""
        self._refilter()

    def watch_sort_reverse(self) -> None:
        """Re-sort."""
        self._refilter()

    def watch_grouped(self) -> None:
        """Regroup; the names' indentation changes too."""
        self._order = []
        self._refilter()

    def watch_filter_text(self) -> None:
        """Filter again."""
        self._refilter()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        index = COLUMN_KEYS.index(self.sort_column)
        self.sort_column = COLUMN_KEYS[(index + 1) % len(COLUMN_KEYS)]

    def action_reverse(self) -> None:
        """Flip the sort order."""
        self.sort_reverse = not self.sort_reverse

    def action_group(self) -> None:
        """Show trials under their sweep, or all rows in one sorted list."""
        self.grouped = not self.grouped

    def action_filter(self) -> None:
        """Open the filter box."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Drop the filter and close its box."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.query_one("#runs", DataTable).focus()

    def action_stop(self) -> None:
        """Ask the selected run or sweep to stop."""
        key = self.selected_key()
        if key is not None:
            self.app.confirm_stop(key)

    def action_mark(self) -> None:
        """Mark the run under the cursor for an overlay, or unmark it."""
        key = self.selected_key()
        if key is not None and self.app.toggle_mark(key) is not None:
            self._show_marks()

    def action_overlay(self) -> None:
        """Overlay the marked runs."""
        self.app.open_overlay()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(box.value)
        self.query_one("#runs", DataTable).focus()

    @on(DataTable.RowSelected, "#runs")
    def _open(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        row = self.rows.get(key or "")
        if row is None:
            return
        # The plotting screens need textual-plot, and so NumPy: imported only
        # when opened, so that the table works where NumPy is missing.
        if row.kind == "sweep":
            from tui.sweep_screen import SweepScreen

            self.app.push_screen(SweepScreen(row.key))
        else:
            from tui.run_screen import RunScreen

            self.app.push_screen(RunScreen(row.key))
