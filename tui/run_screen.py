"""One run: live curves, its settings, status, device and last events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual_plot import PlotWidget

from tui.cells import duration, number, state_text
from tui.charts import draw
from tui.curves import LOSS_METRICS, validation_metrics
from tui.runs import DetailSnapshot, Snapshot

if TYPE_CHECKING:
    from tui.app import MonitorApp

SMOOTHING_WINDOWS = (1, 5, 20)
EVENTS_SHOWN = 8
BAD_LINES_SHOWN = 3


def _settings(config: dict[str, Any]) -> Text:
    text = Text()
    for section in ("model", "training"):
        values = config.get(section)
        if not isinstance(values, dict):
            continue
        text.append(f"{section}\n", style="bold")
        for name, value in values.items():
            text.append(f"  {name} = {value}\n")
    return text


def _status(detail: DetailSnapshot, row_state: str | None) -> Text:
    status = detail.status or {}
    text = Text()
    text.append("state ")
    text.append_text(state_text(row_state or str(status.get("state", "?"))))
    text.append(f"  epoch {status.get('epoch', '?')}/{status.get('epochs', '?')}\n")
    for problem in detail.problems:
        text.append(f"{problem}\n", style="red")
    if status.get("reason"):
        text.append(f"reason {status['reason']}\n")
    device = status.get("device") if isinstance(status.get("device"), dict) else {}
    backend = (detail.config or {}).get("backend") or {}
    text.append(
        f"backend {backend.get('name', '?')} {backend.get('dtype', '')}"
        f"  device {device.get('name', backend.get('device', '?'))}\n"
    )
    used, total = device.get("memory_used"), device.get("memory_total")
    if isinstance(used, (int, float)) and isinstance(total, (int, float)) and total:
        text.append(f"memory {used / 2**20:.0f} / {total / 2**20:.0f} MiB\n")
    summary = detail.summary or {}
    test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
    scores = [
        f"{name} {number(value)}"
        for name, value in test.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if scores:
        text.append("test " + ", ".join(scores) + "\n")
    if isinstance(summary.get("seconds"), (int, float)):
        text.append(f"took {duration(summary['seconds'])}\n")
    return text


def _events(detail: DetailSnapshot) -> Text:
    text = Text("events\n", style="bold")
    for event in detail.events[-EVENTS_SHOWN:]:
        stamp = event.get("time")
        # UTC, so that what is shown does not depend on the viewer's zone.
        when = (
            time.strftime("%H:%M:%S", time.gmtime(stamp))
            if isinstance(stamp, (int, float))
            else "--:--:--"
        )
        level = str(event.get("level", ""))
        style = {"warning": "yellow", "error": "red"}.get(level, "")
        text.append(f"{when} {level} {event.get('message', '')}\n", style=style)
    if detail.bad_count:
        text.append(f"{detail.bad_count} bad line(s) skipped\n", style="red")
        for bad in detail.bad_lines[:BAD_LINES_SHOWN]:
            text.append(f"  {bad.path.name}:{bad.line}: {bad.error}\n", style="red")
    return text


class RunScreen(Screen[None]):
    """Curves and facts of one run, followed live.

    Args:
        key: The run's key (its folder relative to the runs folder).
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "toggle_log", "Log scale"),
        Binding("m", "smoothing", "Smoothing"),
        Binding("x", "stop", "Stop"),
    ]

    log_scale: reactive[bool] = reactive(False, init=False)
    window: reactive[int] = reactive(1, init=False)

    app: MonitorApp

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.detail: DetailSnapshot | None = None
        # True from on_mount to on_unmount: the widgets exist only then.
        self.live = False

    def compose(self) -> ComposeResult:
        """Plots on the left, facts on the right."""
        yield Header()
        yield Static(id="run-title")
        with Horizontal(id="run-body"):
            with Vertical(id="run-plots"):
                yield PlotWidget(id="loss-plot", allow_pan_and_zoom=False)
                yield PlotWidget(id="metric-plot", allow_pan_and_zoom=False)
            with VerticalScroll(id="run-side"):
                yield Static(id="run-status")
                yield Static(id="run-settings")
                yield Static(id="run-events")
        yield Footer()

    def on_mount(self) -> None:
        """Ask the reader for this run's history."""
        self.live = True
        self.app.update_watch()
        self.show_snapshot(self.app.snapshot)

    def on_unmount(self) -> None:
        """Let the reader drop this run's history."""
        self.live = False
        self.app.call_later(self.app.update_watch)

    def watched_keys(self) -> set[str]:
        """This run."""
        return {self.key}

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Redraw when the run's details changed (not before mount, nor after)."""
        if not self.live:
            return
        detail = self.app.details.get(self.key)
        row = snapshot.rows.get(self.key)
        title = Text(f"run {self.key}", style="bold")
        if row is not None:
            title.append("  ")
            title.append_text(state_text(row.state))
            if row.best is not None:
                title.append(f"  best {row.monitor} {number(row.best)}")
        self.query_one("#run-title", Static).update(title)
        if detail is None or detail is self.detail:
            return
        self.detail = detail
        self._draw()
        state = row.state if row is not None else None
        self.query_one("#run-status", Static).update(_status(detail, state))
        self.query_one("#run-settings", Static).update(_settings(detail.config or {}))
        self.query_one("#run-events", Static).update(_events(detail))

    def _draw(self) -> None:
        if self.detail is None or not self.live:
            return
        history = self.detail.history
        draw(
            self.query_one("#loss-plot", PlotWidget),
            [(metric, history, metric) for metric in LOSS_METRICS],
            "loss",
            window=self.window,
            log=self.log_scale,
        )
        draw(
            self.query_one("#metric-plot", PlotWidget),
            [(metric, history, metric) for metric in validation_metrics(history)],
            "validation",
            window=self.window,
        )

    def on_resize(self, event: Resize) -> None:
        """Thin the curves again for the new width."""
        self._draw()

    def watch_log_scale(self) -> None:
        """Redraw the losses."""
        self._draw()

    def watch_window(self) -> None:
        """Redraw with the new smoothing."""
        self._draw()

    def action_toggle_log(self) -> None:
        """Switch the loss plot between linear and log10."""
        self.log_scale = not self.log_scale
        self.notify(f"loss scale: {'log10' if self.log_scale else 'linear'}")

    def action_smoothing(self) -> None:
        """Step through the moving-average windows."""
        index = SMOOTHING_WINDOWS.index(self.window)
        self.window = SMOOTHING_WINDOWS[(index + 1) % len(SMOOTHING_WINDOWS)]
        self.notify(f"smoothing over {self.window} epoch(s)")

    def action_stop(self) -> None:
        """Ask to stop this run."""
        self.app.confirm_stop(self.key)
