"""Several runs on one chart, with a table of the settings in which they differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plot import PlotWidget

from tui.cells import fill_table
from tui.charts import COLOURS, draw
from tui.curves import CLASSIFICATION_METRICS, LOSS_METRICS, REGRESSION_METRICS
from tui.run_screen import SMOOTHING_WINDOWS
from tui.runs import DetailSnapshot, Snapshot, hyperparameters

if TYPE_CHECKING:
    from tui.app import MonitorApp

# The metrics the overlay can show, in the order the metric key steps through.
OVERLAY_METRICS = LOSS_METRICS[::-1] + CLASSIFICATION_METRICS + REGRESSION_METRICS
SECTIONS = ("model", "training")


def settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """A run's model and training settings, by dotted name (``model.hidden``)."""
    params = hyperparameters(config)
    return {
        name: value
        for name, value in params.items()
        if name.split(".", 1)[0] in SECTIONS
    }


def differing(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """The dotted settings whose values are not the same in every config.

    A setting that some configs lack and others have differs too. Configs
    not read yet (None) are left out of the comparison.
    """
    known = [settings(config) for config in configs if config is not None]
    names: list[str] = []
    for params in known:
        names.extend(name for name in params if name not in names)
    missing = object()
    return [
        name
        for name in names
        if len({repr(params.get(name, missing)) for params in known}) > 1
    ]


def short_names(names: Sequence[str]) -> dict[str, str]:
    """``model.hidden`` → ``hidden``, unless two sections share a name."""
    last = [name.split(".", 1)[-1] for name in names]
    return {
        name: short if last.count(short) == 1 else name
        for name, short in zip(names, last, strict=True)
    }


def value_text(value: Any) -> str:
    """A setting as the table shows it: ``64x32`` for a list of sizes."""
    if isinstance(value, tuple):
        return "x".join(str(item) for item in value) or "-"
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def available_metrics(details: Sequence[DetailSnapshot]) -> list[str]:
    """The overlay metrics that at least one of the runs has recorded."""
    keys: set[str] = set()
    for detail in details:
        for record in detail.history[-1:]:
            keys.update(record)
    return [metric for metric in OVERLAY_METRICS if metric in keys]


class OverlayScreen(Screen[None]):
    """One metric of several runs on one chart, followed live.

    Args:
        keys: The runs' keys, in the order their curves are drawn.
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "next_metric", "Metric"),
        Binding("l", "toggle_log", "Log scale"),
        Binding("m", "smoothing", "Smoothing"),
    ]

    metric: reactive[str] = reactive("val_loss", init=False)
    log_scale: reactive[bool] = reactive(False, init=False)
    window: reactive[int] = reactive(1, init=False)

    app: MonitorApp

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__()
        self.keys = list(keys)
        self.labels = self._labels({})
        self._drawn_of: tuple[DetailSnapshot | None, ...] = ()
        self._table_of: tuple[Any, ...] | None = None
        self.columns: list[str] = []
        # True from on_mount to on_unmount: the widgets exist only then.
        self.live = False

    def compose(self) -> ComposeResult:
        """Title, the chart, the table of differing settings, the keys."""
        yield Header()
        yield Static(id="overlay-title")
        yield PlotWidget(id="overlay-plot", allow_pan_and_zoom=False)
        table: DataTable[Any] = DataTable(id="overlay-settings", cursor_type="row")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        """Ask the reader for the runs' histories."""
        self.live = True
        # The table, not the chart: the footer then lists this screen's keys
        # rather than the chart's zoom and pan, which are off here.
        self.query_one("#overlay-settings", DataTable).focus()
        self.app.update_watch()
        self.show_snapshot(self.app.snapshot)

    def on_unmount(self) -> None:
        """Let the reader drop the histories."""
        self.live = False
        self.app.call_later(self.app.update_watch)

    def watched_keys(self) -> set[str]:
        """The overlaid runs."""
        return set(self.keys)

    def _labels(self, snapshot_rows: dict[str, Any]) -> dict[str, str]:
        names = {
            key: getattr(snapshot_rows.get(key), "name", None) or key.split("/")[-1]
            for key in self.keys
        }
        values = list(names.values())
        # Two trials of different sweeps share a name: show their keys then.
        return {
            key: name if values.count(name) == 1 else key for key, name in names.items()
        }

    def details(self) -> list[DetailSnapshot | None]:
        """What the reader has of each run, None where nothing yet."""
        return [self.app.details.get(key) for key in self.keys]

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Redraw what changed (not before mount, nor after)."""
        if not self.live:
            return
        self.labels = self._labels(snapshot.rows)
        details = self.details()
        metrics = available_metrics([d for d in details if d is not None])
        if metrics and self.metric not in metrics:
            # Assigning redraws through the watcher.
            self.metric = metrics[0]
        self._show_title()
        self._show_table(details)
        # The reader hands a new object for every change: identity is enough.
        if len(details) == len(self._drawn_of) and all(
            new is old for new, old in zip(details, self._drawn_of, strict=True)
        ):
            return
        self._draw()

    def _show_title(self) -> None:
        text = Text(f"overlay of {len(self.keys)} runs", style="bold")
        text.append(f"  {self.metric}")
        if self.window > 1:
            text.append(f"  smoothed over {self.window}")
        if self.log_scale:
            text.append("  log10")
        self.query_one("#overlay-title", Static).update(text)

    def _show_table(self, details: Sequence[DetailSnapshot | None]) -> None:
        configs = [None if d is None else d.config for d in details]
        labels = tuple(self.labels[key] for key in self.keys)
        state = (labels, tuple(repr(c) for c in configs))
        if state == self._table_of:
            return
        self._table_of = state
        names = differing(configs)
        short = short_names(names)
        # Setting names and values come from the files: Text, never markup.
        headers = {"run": Text("run")} | {name: Text(short[name]) for name in names}
        rows: dict[str, list[Text]] = {}
        for index, (key, config) in enumerate(zip(self.keys, configs, strict=True)):
            params = settings(config)
            colour = COLOURS[index % len(COLOURS)]
            cells = [Text(f"━ {self.labels[key]}", style=colour)]
            cells.extend(Text(value_text(params.get(name))) for name in names)
            rows[key] = cells
        if not names:
            headers["settings"] = Text("settings")
            known = any(config is not None for config in configs)
            for cells in rows.values():
                cells.append(Text("the same in every run" if known else "reading…"))
        self.columns = [short[name] for name in names]
        fill_table(self.query_one("#overlay-settings", DataTable), headers, rows)

    def _draw(self) -> None:
        if not self.live:
            return
        details = self.details()
        self._drawn_of = tuple(details)
        curves = [
            (self.labels[key], detail.history if detail else (), self.metric)
            for key, detail in zip(self.keys, details, strict=True)
        ]
        draw(
            self.query_one("#overlay-plot", PlotWidget),
            curves,
            self.metric,
            window=self.window,
            log=self.log_scale,
        )

    def _redraw(self) -> None:
        if not self.live:
            return
        self._show_title()
        self._draw()

    def on_resize(self, event: Resize) -> None:
        """Thin the curves again for the new width."""
        self._draw()

    def watch_metric(self) -> None:
        """Draw the new metric."""
        self._redraw()

    def watch_log_scale(self) -> None:
        """Redraw on the new scale."""
        self._redraw()

    def watch_window(self) -> None:
        """Redraw with the new smoothing."""
        self._redraw()

    def action_next_metric(self) -> None:
        """Step through the metrics that the runs have."""
        metrics = available_metrics([d for d in self.details() if d is not None])
        if not metrics:
            self.notify("no metrics yet", severity="warning")
            return
        index = metrics.index(self.metric) if self.metric in metrics else -1
        self.metric = metrics[(index + 1) % len(metrics)]

    def action_toggle_log(self) -> None:
        """Switch the chart between linear and log10."""
        self.log_scale = not self.log_scale
        self.notify(f"scale: {'log10' if self.log_scale else 'linear'}")

    def action_smoothing(self) -> None:
        """Step through the moving-average windows."""
        index = SMOOTHING_WINDOWS.index(self.window)
        self.window = SMOOTHING_WINDOWS[(index + 1) % len(SMOOTHING_WINDOWS)]
        self.notify(f"smoothing over {self.window} epoch(s)")
