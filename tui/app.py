"""The monitor: a Textual app that follows a runs folder.

Files are read in a thread worker (:class:`~tui.runs.RunsFolder` does the
reading); the worker hands each result to the user interface as one
:class:`SnapshotReady` message, at most one per refresh interval, and the
screens update their widgets from it. No widget is touched from the thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import Worker, WorkerState

from tui.confirm import ConfirmScreen
from tui.runs import (
    ENDED_STATES,
    DetailSnapshot,
    RunRow,
    RunsFolder,
    Snapshot,
    request_stop,
)
from tui.runs_screen import RunsScreen

logger = logging.getLogger(__name__)


class SnapshotReady(Message):
    """The reader thread finished a look at the runs folder."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


@runtime_checkable
class SnapshotView(Protocol):
    """A screen that shows what the reader found."""

    def watched_keys(self) -> set[str]:
        """The runs whose full details the screen needs."""

    def show_snapshot(self, snapshot: Snapshot) -> None:
        """Update the screen's widgets from ``snapshot``.

        Called for every screen on the stack, including one not yet mounted
        or already unmounted: it must then leave its widgets alone.
        """


class MonitorApp(App[None]):
    """Follow the runs and sweeps in a runs folder.

    Args:
        runs_dir: The runs folder.
        refresh: The longest, in seconds, that a change to the files waits
            before it shows; the files are looked at twice per interval.
        now: The clock, in Unix seconds; tests pass a fixed one.
        stale_after: Seconds without a status update after which a running
            run is shown as stale.
    """

    CSS_PATH = "monitor.tcss"
    TITLE = "mlp-backend monitor"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(
        self,
        runs_dir: Path,
        refresh: float = 1.0,
        now: Callable[[], float] = time.time,
        stale_after: float = 60.0,
    ) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.refresh_interval = refresh
        self.folder = RunsFolder(runs_dir, now=now, stale_after=stale_after)
        self.snapshot = Snapshot({})
        self.details: dict[str, DetailSnapshot] = {}
        # Runs marked for an overlay, in the order they were marked.
        self.marked: list[str] = []
        self.sub_title = str(runs_dir)
        self._reading = False
        self._read_again = False

    def on_mount(self) -> None:
        """Show the runs table and start looking at the files."""
        self.push_screen(RunsScreen())
        self.poll_files()
        # A look at a moment's change starts at most half an interval later
        # and takes a fraction of the rest, so the change shows within one.
        self.set_interval(self.refresh_interval / 2, self.poll_files)

    def poll_files(self) -> None:
        """Start a look at the files unless one is under way."""
        if self._reading:
            # Asked while reading (a screen wants new details): look again
            # straight after, rather than wait for the next tick.
            self._read_again = True
            return
        self._reading = True
        self.run_worker(self._read, thread=True, group="read", exit_on_error=False)

    def _read(self) -> None:
        self.post_message(SnapshotReady(self.folder.poll()))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Let the next look start; report a reader that failed."""
        if event.worker.group != "read" or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        if event.state == WorkerState.ERROR:
            logger.error(
                "reading %s failed", self.runs_dir, exc_info=event.worker.error
            )
            self.notify(
                f"reading {self.runs_dir} failed: {event.worker.error}",
                severity="error",
                markup=False,
            )
        self._reading = False
        if self._read_again:
            self._read_again = False
            self.poll_files()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        """Hand a reader's result to the screens."""
        snapshot = message.snapshot
        self.snapshot = snapshot
        self.details.update(snapshot.details)
        # Notices quote names and errors from the files: never markup.
        for notice in snapshot.notices:
            self.notify(notice, severity="warning", markup=False)
        # A screen may be on the stack before it is composed (just pushed) or
        # while it is being taken down; each screen skips the update then.
        # Should one still miss a widget, the next look redraws it: a refresh
        # must not bring the app down.
        for screen in list(self.screen_stack):
            if isinstance(screen, SnapshotView):
                try:
                    screen.show_snapshot(snapshot)
                except NoMatches:
                    logger.warning(
                        "%r is not ready for an update", screen, exc_info=True
                    )

    def update_watch(self) -> None:
        """Tell the reader which runs the open screens need in full."""
        keys: set[str] = set()
        for screen in self.screen_stack:
            if isinstance(screen, SnapshotView):
                keys |= screen.watched_keys()
        for key in set(self.details) - keys:
            del self.details[key]
        self.folder.watch(keys)
        if keys - set(self.details):
            self.poll_files()

    def toggle_mark(self, key: str) -> bool | None:
        """Mark a run for an overlay, or unmark it.

        Returns:
            Whether the run is marked now; None when ``key`` is not a run
            (a sweep cannot be overlaid: its trials can).
        """
        row = self.snapshot.rows.get(key)
        if row is None or row.kind == "sweep":
            self.notify(
                "only runs can be marked: open the sweep or mark its trials",
                severity="warning",
            )
            return None
        if key in self.marked:
            self.marked.remove(key)
            return False
        self.marked.append(key)
        return True

    def open_overlay(self) -> None:
        """Overlay the marked runs, or say how to mark them."""
        self.marked = [key for key in self.marked if key in self.snapshot.rows]
        if len(self.marked) < 2:
            self.notify(
                f"{len(self.marked)} run(s) marked: mark at least two with "
                "space, then press o",
                severity="warning",
            )
            return
        # Imported when opened: the plotting screens need NumPy.
        from tui.overlay_screen import OverlayScreen

        self.push_screen(OverlayScreen(self.marked))

    def confirm_stop(self, key: str) -> None:
        """Ask, then write ``stop.request`` in the folder of ``key``.

        A sweep's own ``stop.request`` stops the whole sweep
        (``docs/run-format.md``): its trials in flight end as interrupted,
        and those not begun do not start, both left to ``sweep --resume``.
        """
        row = self.snapshot.rows.get(key)
        if row is None:
            return
        refusal = stop_refusal(row)
        if refusal is not None:
            self.notify(refusal, severity="warning", markup=False)
            return
        what = (
            f"sweep {key} ({unfinished(row)} unfinished trials)"
            if row.kind == "sweep"
            else f"run {key}"
        )

        def stop(confirmed: bool | None) -> None:
            if confirmed:
                self._write_stop(row)

        self.push_screen(ConfirmScreen(f"Stop {what}?"), stop)

    def _write_stop(self, row: RunRow) -> None:
        try:
            request_stop(self.runs_dir / row.key)
        except OSError as exc:
            logger.warning("cannot write stop.request for %s: %s", row.key, exc)
            self.notify(
                f"could not ask {row.key} to stop: {exc.strerror}",
                severity="error",
                markup=False,
            )
            return
        if row.kind == "sweep":
            message = (
                f"asked sweep {row.key} to stop: its {unfinished(row)} unfinished "
                "trials are left to mlp-backend sweep --resume"
            )
        else:
            message = f"asked run {row.key} to stop"
        self.notify(message, markup=False)


def unfinished(row: RunRow) -> int:
    """The trials of a sweep row that have not ended, begun or not."""
    progress = row.progress
    return progress.total - progress.ended if progress is not None else 0


def stop_refusal(row: RunRow) -> str | None:
    """Why a stop of ``row`` would ask no process, or None when it would."""
    what = f"sweep {row.key}" if row.kind == "sweep" else f"run {row.key}"
    if row.state == "stale":
        # Stale: the status is no longer updated because its process died.
        return f"{what} is stale: it is not running, so nothing was asked to stop"
    if row.kind == "sweep" and row.state == "interrupted":
        return (
            f"{what} was interrupted and is not running, so nothing was asked "
            "to stop; mlp-backend sweep --resume goes on with it"
        )
    ended = unfinished(row) == 0 if row.kind == "sweep" else row.state in ENDED_STATES
    return f"{what} has nothing left to stop" if ended else None
