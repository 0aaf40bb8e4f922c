"""One sweep: progress, leaderboard, a heatmap and the best trials' curves."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plot import PlotWidget

from tui.cells import duration, fill_table, number, state_text
from tui.charts import draw
from tui.runs import (
    RunRow,
    Snapshot,
    better_first,
    is_better,
    lower_is_better,
    sweep_monitor,
)

if TYPE_CHECKING:
    from tui.app import MonitorApp

DEFAULT_AXES = ("model.hidden", "training.lr")
TOP_CURVES = 3
#: The leaderboard's columns, each keyed by its header.
LEADERBOARD_COLUMNS = ("#", "trial", "state", "best", "test", "settings")
# Worst to best.
HEAT_STYLES = ("on red3", "on dark_orange3", "on yellow4", "on green4", "on green3")


def varying(trials: Sequence[RunRow]) -> list[str]:
    """The hyperparameters that take more than one value among ``trials``."""
    values: dict[str, set[Any]] = {}
    for row in trials:
        for name, value in row.params.items():
            values.setdefault(name, set()).add(value)
    return sorted(name for name, seen in values.items() if len(seen) > 1)


def axis_pairs(trials: Sequence[RunRow]) -> list[tuple[str, str]]:
    """Heatmap axes to offer: the default pair first, then the others."""
    names = varying(trials)
    pairs = list(permutations(names, 2))
    present = {name for row in trials for name in row.params}
    if set(DEFAULT_AXES) <= present:
        pairs = [DEFAULT_AXES] + [pair for pair in pairs if pair != DEFAULT_AXES]
    return pairs


def _label(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(item) for item in value) or "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sort_key(value: Any) -> tuple[str, Any]:
    # Values of one hyperparameter share a type; the name keeps mixed ones apart.
    return (type(value).__name__, value)


def heatmap(trials: Sequence[RunRow], rows_by: str, cols_by: str) -> Table:
    """The best value per pair of hyperparameter values, coloured by rank.

    Only the trials of the sweep's metric (:func:`~tui.runs.sweep_monitor`)
    are mapped: the values of another metric do not compare with theirs.
    Names and values from the files are never taken as markup.

    Args:
        trials: The sweep's trials.
        rows_by: The hyperparameter down the side.
        cols_by: The hyperparameter across the top.
    """
    monitor = sweep_monitor(trials)
    cells: dict[tuple[Any, Any], RunRow] = {}
    for row in trials:
        if row.best is None or row.monitor != monitor:
            continue
        if rows_by not in row.params or cols_by not in row.params:
            continue
        spot = (row.params[rows_by], row.params[cols_by])
        held = cells.get(spot)
        if held is None or is_better(row.monitor, row.best, held.best):
            cells[spot] = row
    row_values = sorted({spot[0] for spot in cells}, key=_sort_key)
    col_values = sorted({spot[1] for spot in cells}, key=_sort_key)
    # Escaped rather than Text, which would lose the title's style.
    title = escape(f"best {monitor}: {rows_by} ↓ × {cols_by} →")
    table = Table(title=title, expand=False)
    table.add_column(Text(rows_by.split(".")[-1]), style="bold")
    for value in col_values:
        table.add_column(Text(_label(value)), justify="right")
    ranked = sorted(
        {row.best for row in cells.values() if row.best is not None},
        reverse=not lower_is_better(monitor),
    )
    for row_value in row_values:
        line: list[Text | str] = [Text(_label(row_value))]
        for col_value in col_values:
            held = cells.get((row_value, col_value))
            if held is None or held.best is None:
                line.append("")
                continue
            # Rank from the worst (0) to the best (1), so colours spread evenly.
            place = ranked.index(held.best) / max(len(ranked) - 1, 1)
            style = HEAT_STYLES[round((1 - place) * (len(HEAT_STYLES) - 1))]
            line.append(Text(number(held.best), style=style))
        table.add_row(*line)
    return table


def ranked_trials(trials: Sequence[RunRow]) -> list[RunRow]:
    """Trials with a value, best first, then the others by name.

    The trials of the sweep's metric (:func:`~tui.runs.sweep_monitor`) come
    first; any that monitor another metric follow, grouped by it, since their
    values do not compare with the others'.
    """
    monitor = sweep_monitor(trials)
    scored = sorted(
        (row for row in trials if row.best is not None),
        key=lambda row: (
            row.monitor != monitor,
            row.monitor,
            better_first(row.monitor, row.best),
            row.key,
        ),
    )
    rest = sorted((row for row in trials if row.best is None), key=lambda r: r.key)
    return scored + rest


class SweepScreen(Screen[None]):
    """Progress, leaderboard, heatmap and top curves of one sweep.

    Args:
        key: The sweep's key (its folder's name).
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("h", "next_axes", "Heatmap axes"),
        Binding("x", "stop", "Stop sweep"),
        Binding("space", "mark", "Mark"),
        Binding("o", "overlay", "Overlay"),
    ]

    app: MonitorApp

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.trials: list[RunRow] = []
        self.axes_index = 0
        self._top: list[str] = []
        self._curves_of: tuple[Any, ...] = ()
        # True from on_mount to on_unmount: the widgets exist only then.
        self.live = False

    def compose(self) -> ComposeResult:
        """Progress on top, leaderboard and heatmap, curves below."""
        yield Header()
        yield Static(id="sweep-progress")
        with Horizontal(id="sweep-body"):
            board: DataTable[Any] = DataTable(id="leaderboard", cursor_type="row")
            yield board
            yield Static(id="heatmap")
        yield PlotWidget(id="top-plot", allow_pan_and_zoom=False)
        yield Footer()

    def on_mount(self) -> None:
        """Fill in from what the app has read so far."""
        self.live = True
        self._show_leaderboard()
        self.show_snapshot(self.app.snapshot)

    def on_unmount(self) -> None:
        """Let the reader drop the trials' histories."""
        self.live = False
        self.app.call_later(self.app.update_watch)

    def watched_keys(self) -> set[str]:
        """The best trials, for their curves."""
        return set(self._top)

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Update every part from ``snapshot`` (not before mount, nor after)."""
        if not self.live:
            return
        sweep = snapshot.rows.get(self.key)
        trials = [row for row in snapshot.rows.values() if row.sweep == self.key]
        self._show_progress(sweep)
        if trials != self.trials:
            self.trials = trials
            self._show_leaderboard()
            self._show_heatmap()
        # One chart, one metric: the best trials of the sweep's metric.
        monitor = sweep_monitor(trials)
        ranked = [row for row in ranked_trials(trials) if row.monitor == monitor]
        top = [row.key for row in ranked[:TOP_CURVES]]
        if top != self._top:
            self._top = top
            self.app.update_watch()
        self._show_curves()

    def _show_progress(self, sweep: RunRow | None) -> None:
        text = Text(f"sweep {self.key}  ", style="bold")
        if sweep is None or sweep.progress is None:
            text.append("not found", style="red")
        else:
            p = sweep.progress
            text.append_text(state_text(sweep.state))
            text.append(
                f"  {p.results}/{p.total} with a result: {p.done} done, "
                f"{p.running} running, {p.queued} queued, {p.failed} failed, "
                f"{p.diverged} diverged"
            )
            if p.pruned:
                text.append(f", {p.pruned} pruned")
            if p.other:
                text.append(f", {p.other} stopped or stale")
            if sweep.eta is not None:
                text.append(f"  ETA {duration(sweep.eta)}")
            for problem in sweep.problems:
                text.append(f"  {problem}", style="red")
        self.query_one("#sweep-progress", Static).update(text)

    def _show_leaderboard(self) -> None:
        board = self.query_one("#leaderboard", DataTable)
        cursor = board.cursor_row
        names = varying(self.trials)
        monitor = sweep_monitor(self.trials)
        rows: dict[str, list[Text]] = {}
        for rank, row in enumerate(ranked_trials(self.trials), start=1):
            settings = " ".join(
                f"{name.split('.')[-1]}={_label(row.params[name])}"
                for name in names
                if name in row.params
            )
            best = number(row.best)
            if row.best is not None and row.monitor != monitor:
                # Not the sweep's metric: say which, as it does not compare.
                best = f"{row.monitor.removeprefix('val_')} {best}"
            rows[row.key] = [
                Text(str(rank)),
                self._trial_cell(row.key, row.name),
                state_text(row.state),
                Text(best),
                Text(number(row.test)),
                Text(settings),
            ]
        headers = {label: Text(label) for label in LEADERBOARD_COLUMNS}
        fill_table(board, headers, rows)
        if board.row_count:
            board.move_cursor(row=min(cursor, board.row_count - 1), animate=False)

    def _trial_cell(self, key: str, name: str) -> Text:
        text = Text()
        if key in self.app.marked:
            text.append("● ", style="bold yellow")
        text.append(name)
        return text

    def _show_heatmap(self) -> None:
        pairs = axis_pairs(self.trials)
        target = self.query_one("#heatmap", Static)
        if not pairs:
            target.update(Text("no two hyperparameters to map"))
            return
        rows_by, cols_by = pairs[self.axes_index % len(pairs)]
        target.update(heatmap(self.trials, rows_by, cols_by))

    def _show_curves(self) -> None:
        details = [self.app.details.get(key) for key in self._top]
        # The reader hands a new object for every change: identity is enough.
        if len(details) == len(self._curves_of) and all(
            new is old for new, old in zip(details, self._curves_of, strict=True)
        ):
            return
        self._curves_of = tuple(details)
        curves = []
        for detail in details:
            if detail is None:
                continue
            row = next((r for r in self.trials if r.key == detail.key), None)
            monitor = row.monitor if row is not None else "val_loss"
            curves.append((detail.key.split("/")[-1], detail.history, monitor))
        monitor = curves[0][2] if curves else "val_loss"
        draw(self.query_one("#top-plot", PlotWidget), curves, monitor)

    def action_next_axes(self) -> None:
        """Show the heatmap over the next pair of hyperparameters."""
        self.axes_index += 1
        if not self.live:
            return
        self._show_heatmap()

    def action_stop(self) -> None:
        """Ask the sweep to stop."""
        self.app.confirm_stop(self.key)

    def action_mark(self) -> None:
        """Mark the trial under the cursor for an overlay, or unmark it."""
        board = self.query_one("#leaderboard", DataTable)
        if not board.row_count:
            return
        row_key, _ = board.coordinate_to_cell_key(board.cursor_coordinate)
        key = row_key.value
        if key is None or self.app.toggle_mark(key) is None:
            return
        # Drawn again, not updated in place: the mark widens the trial column.
        self._show_leaderboard()

    def action_overlay(self) -> None:
        """Overlay the marked runs."""
        self.app.open_overlay()

    @on(DataTable.RowSelected, "#leaderboard")
    def _open(self, event: DataTable.RowSelected) -> None:
        from tui.run_screen import RunScreen

        if event.row_key.value is not None:
            self.app.push_screen(RunScreen(event.row_key.value))
