"""Drawing metric curves on textual-plot's ``PlotWidget``.

textual-plot needs NumPy; only the run and sweep screens import this module,
so the runs table works where NumPy is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from textual_plot import HiResMode, NumericAxisFormatter, PlotWidget

from tui.curves import prepare

# Braille cells hold two dots across: twice the width in points is all the
# detail the plot can show.
DOTS_PER_CELL = 2
COLOURS = ("green", "cyan", "magenta", "yellow", "red", "blue")
# Steps between epoch ticks: 1, 2, 5, 10, 20, 50, ...
_STEPS = (1, 2, 5)


class EpochFormatter(NumericAxisFormatter):
    """Ticks on whole epochs only, labelled as integers.

    The default formatter puts ticks at fractions: for a one-epoch run, whose
    axis textual-plot widens to ``1 ± 1e-6``, it labelled ``0.9999990``.
    """

    def get_ticks(self, min_: float, max_: float, max_ticks: int = 8) -> list[float]:
        """Whole numbers in ``[min_, max_]``, 1, 2 or 5 times a power of ten apart.

        At most ``max(max_ticks, 2)`` of them, and about six.
        """
        if not (math.isfinite(min_) and math.isfinite(max_)):
            return []
        low, high = math.ceil(min_), math.floor(max_)
        if high < low:
            return []
        most = max(min(max_ticks, 6), 2)
        power = 1
        while True:
            for factor in _STEPS:
                step = factor * power
                if (high - low) // step + 1 <= most:
                    start = math.ceil(low / step) * step
                    return [float(t) for t in range(start, high + 1, step)]
            power *= 10

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        """``"12"``, never ``"12.0"``."""
        return [str(round(tick)) for tick in ticks]


EPOCH_TICKS = EpochFormatter()


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
    plot.set_x_formatter(EPOCH_TICKS)
    plot.set_xlabel("epoch")
    plot.set_ylabel(f"log10 {ylabel}" if log else ylabel)
    plot.show_legend(is_visible=drawn > 0)
