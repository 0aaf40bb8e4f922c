"""How values look in the monitor's tables: text, colours, bars."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui.runs import RunRow

STATE_STYLES = {
    "running": "bold green",
    "finished": "blue",
    "diverged": "bold magenta",
    "stopped": "yellow",
    "interrupted": "yellow",
    "failed": "bold red",
    "pruned": "dim",
    "queued": "dim",
    "stale": "bold dark_orange",
    "unreadable": "bold red",
}
BAR_CELLS = 6
_EIGHTHS = " ▏▎▍▌▋▊▉"

# The runs table: column key, header, width. Fixed widths keep the columns
# still while values change every second. They add up, with a cell of
# padding on each side of each column and a scrollbar, to 120 columns:
# :data:`TABLE_WIDTH`. A run name of the trainer's ``YYYYMMDD-HHMMSS-xxxx``
# form fits, and so does a trial's ``sweep/trial-NNN``. There is no sweep
# column: grouped, trials sit under their sweep; ungrouped, their name
# starts with it.
COLUMNS = (
    ("name", "name", 22),
    ("state", "state", 11),
    ("progress", "epoch", 10 + BAR_CELLS),
    ("best", "best val", 16),
    ("test", "test", 15),
    ("backend", "backend", 10),
    ("elapsed", "elapsed", 7),
    ("eta", "ETA", 5),
)
CELL_PADDING = 1
SCROLLBAR = 2
TABLE_WIDTH = sum(width + 2 * CELL_PADDING for _, _, width in COLUMNS) + SCROLLBAR


NAME_WIDTH = COLUMNS[0][2]


def elide(text: str, width: int) -> str:
    """``text`` cut to ``width`` in the middle, so that both ends show.

    Names differ at their ends: a default sweep name by its last characters,
    a trial by its number after the sweep's name.
    """
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head) :]}"


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; empty when unknown."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def number(value: float | None) -> str:
    """Four significant digits; empty when unknown."""
    return "" if value is None else f"{value:.4g}"


def bar(done: int | None, total: int | None, cells: int = BAR_CELLS) -> str:
    """A bar of ``cells`` characters filled in eighths."""
    if not total or done is None:
        return " " * cells
    eighths = round(min(max(done / total, 0.0), 1.0) * cells * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part else "")
    return text.ljust(cells)


def state_text(state: str) -> Text:
    """The state, coloured."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def progress_text(row: RunRow) -> Text:
    """``12/60 ███▏    `` for a run, trials for a sweep."""
    done = "" if row.epoch is None else str(row.epoch)
    total = "?" if row.epochs is None else str(row.epochs)
    text = Text(f"{done:>4}/{total:<4} ")
    text.append(bar(row.epoch, row.epochs), style=STATE_STYLES.get(row.state, ""))
    return text


def row_cells(row: RunRow, grouped: bool) -> dict[str, Text]:
    """Every cell of a row of the runs table, by column key.

    Every cell is :class:`~rich.text.Text`: a table takes a plain string as
    markup, and a folder named ``[red]x`` would show as a red ``x``.

    Args:
        row: The row.
        grouped: Whether trials are shown under their sweep, indented.
    """
    name = row.name
    if row.kind == "sweep":
        name = f"▸ {name}"
    elif row.sweep:
        name = f"  {name}" if grouped else row.key
    # The header says "best val": ``val_loss`` shows as ``loss``.
    monitor = row.monitor.removeprefix("val_")
    best = "" if row.best is None else f"{monitor} {number(row.best)}"
    if row.best_partial:
        # Older lines are still being read: the best may change.
        best += "…"
    test = "" if row.test is None else f"{row.test_name} {number(row.test)}"
    return {
        "name": Text(elide(name, NAME_WIDTH)),
        "state": state_text(row.state),
        "progress": progress_text(row),
        "best": Text(best),
        "test": Text(test),
        "backend": Text(row.backend),
        "elapsed": Text(duration(row.elapsed)),
        "eta": Text(duration(row.eta)),
    }


def fill_table(
    table: DataTable[Any], headers: dict[str, Text], rows: dict[str, list[Text]]
) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell.

    Args:
        table: The table to fill.
        headers: Each column's key and header, in order.
        rows: Each row's key and cells, in the order of ``headers``.
    """
    table.clear(columns=True)
    # Widths measured here rather than left to the table: it sizes auto
    # columns on a later idle pass but keeps cells it rendered before at their
    # header's width, so a table drawn in between stayed cut short until
    # something else changed it (CI pictured the overlay's so, one run in five).
    for column, (key, header) in enumerate(headers.items()):
        cells = [header, *(row[column] for row in rows.values())]
        table.add_column(header, key=key, width=max(t.cell_len for t in cells))
    for key, row in rows.items():
        table.add_row(*row, key=key)
