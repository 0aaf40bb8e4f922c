"""Drawing metric curves on textual-plot's ``PlotWidget``.

textual-plot needs NumPy; only the run and sweep screens import this module,
so the runs table works where NumPy is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual_plot import HiResMode, PlotWidget

from tui.curves import prepare

# Braille cells hold two dots across: twice the width in points is all the
# detail the plot can show.
DOTS_PER_CELL = 2
COLOURS = ("green", "cyan", "magenta", "yellow", "red", "blue")


def draw(
    plot: PlotWidget,
    curves: Sequence[tuple[str, Sequence[dict[str, Any]], str]],
    ylabel: str,
    window: int = 1,
    log: bool = False,
) -> None:
    """Replace the plot's curves.

    Args:
        plot: The widget.
        curves: ``(label, history, metric)`` per curve.
        ylabel: The vertical axis' label (``log10`` is prefixed when ``log``).
        window: Moving-average window in epochs.
        log: Plot log10 of the values.
    """
    points = max(plot.size.width * DOTS_PER_CELL, 20)
    plot.clear()
    drawn = 0
    for index, (label, history, metric) in enumerate(curves):
        xs, ys = prepare(history, metric, window=window, points=points, log=log)
        if not xs:
            continue
        plot.plot(
            xs,
            ys,
            line_style=COLOURS[index % len(COLOURS)],
            hires_mode=HiResMode.BRAILLE,
            label=label,
        )
        drawn += 1
    plot.set_xlabel("epoch")
    plot.set_ylabel(f"log10 {ylabel}" if log else ylabel)
    plot.show_legend(is_visible=drawn > 0)
