"""Incremental readers for the files of a run folder, independent of Textual.

Two readers cover the run format (``docs/run-format.md``):

- :class:`JsonlFollower` follows an append-only JSON-lines file. It remembers
  the byte offset it has read up to and reads only the bytes appended since.
  A last line without its newline is held back until the writer finishes it.
  A complete line that is not a JSON object is skipped and recorded as a
  :class:`BadLine` (file and line number) for display.
- :class:`JsonFile` reads a small JSON file that is replaced atomically and
  parses it again only when its inode, size or modification time changed.

Both poll with :func:`os.stat` and never raise for a missing or unreadable
file: the problem is kept in ``notice`` for the monitor to show.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# A bad line is shown to a person; the start of it is enough to recognise it.
_EXCERPT_CHARS = 60


@dataclass(frozen=True)
class BadLine:
    """A complete line that could not be used.

    Attributes:
        path: The file the line is in.
        line: The 1-based line number.
        error: Why the line was skipped.
        excerpt: The start of the line as text.
    """

    path: Path
    line: int
    error: str
    excerpt: str

    def describe(self) -> str:
        """Return ``file:line: error`` for display."""
        return f"{self.path}:{self.line}: {self.error} ({self.excerpt!r})"


@dataclass(frozen=True)
class Chunk:
    """What one look at a followed file found.

    Attributes:
        records: The JSON objects of the lines completed since the last look.
        reset: True when the file was truncated, replaced or deleted, so
            that the records start again from the first line and whoever
            keeps state built from earlier records must rebuild it.
    """

    records: list[dict[str, Any]]
    reset: bool = False


def file_identity(st: os.stat_result) -> tuple[int, int]:
    """What tells a file apart from one that replaced it: (device, inode)."""
    return (st.st_dev, st.st_ino)


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects among complete lines; anything else is left out.

    For reading a range of a file quickly where no line numbers are needed.
    """
    records = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def read_range(path: Path, start: int, stop: int) -> bytes:
    """Bytes ``start`` to ``stop`` of a file; empty when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            return handle.read(stop - start)
    except OSError as exc:
        logger.info("cannot read %s: %s", path, exc)
        return b""


class JsonlFollower:
    """Follow one append-only JSON-lines file.

    Args:
        path: The file to follow; it need not exist yet.
        max_bad_lines: How many bad lines to keep for display; more are only
            counted.

    Attributes:
        bytes_read: Bytes read from disk in total, over all looks.
        bad_count: Complete lines skipped because they were not JSON objects.
        bad_lines: The first ``max_bad_lines`` of those.
        notice: The last problem met reading the file, or None.
    """

    def __init__(self, path: Path, max_bad_lines: int = 20) -> None:
        self.path = path
        self.max_bad_lines = max_bad_lines
        self.bytes_read = 0
        self.bad_count = 0
        self.bad_lines: list[BadLine] = []
        self.notice: str | None = None
        self._offset = 0
        self._identity: tuple[int, int] | None = None
        self._pending = b""
        self._line_no = 0

    def resume_at(self, offset: int, identity: tuple[int, int]) -> None:
        """Start following at ``offset`` of the file ``identity`` (device, inode).

        For a reader that took in the bytes before ``offset`` another way;
        line numbers in :class:`BadLine` then count from ``offset``.
        """
        self._restart()
        self._offset = offset
        self._identity = identity

    def poll(self) -> Chunk:
        """Read what was appended since the last look.

        Returns:
            The records of the lines completed since then.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return Chunk([], self._forget())
        except OSError as exc:
            self._set_notice(f"cannot stat {self.path}: {exc.strerror}")
            return Chunk([])

        reset = False
        identity = file_identity(st)
        if self._identity is not None and (
            identity != self._identity or st.st_size < self._offset
        ):
            # Replaced or truncated: what we read before no longer describes it.
            logger.info("%s was replaced or truncated; reading it again", self.path)
            self._restart()
            reset = True
        self._identity = identity
        if st.st_size == self._offset:
            return Chunk([], reset)

        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read(st.st_size - self._offset)
        except FileNotFoundError:
            return Chunk([], self._forget() or reset)
        except OSError as exc:
            self._set_notice(f"cannot read {self.path}: {exc.strerror}")
            return Chunk([], reset)
        self.notice = None
        self.bytes_read += len(data)
        self._offset += len(data)
        return Chunk(self._split(data), reset)

    def _split(self, data: bytes) -> list[dict[str, Any]]:
        *lines, self._pending = (self._pending + data).split(b"\n")
        records = []
        for raw in lines:
            self._line_no += 1
            record = self._parse(raw)
            if record is not None:
                records.append(record)
        return records

    def _parse(self, raw: bytes) -> dict[str, Any] | None:
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            self._bad(raw, f"not JSON: {exc}")
            return None
        if not isinstance(value, dict):
            self._bad(raw, f"a JSON {type(value).__name__}, not an object")
            return None
        return value

    def _bad(self, raw: bytes, error: str) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < self.max_bad_lines:
            excerpt = raw[:_EXCERPT_CHARS].decode("utf-8", errors="replace")
            self.bad_lines.append(BadLine(self.path, self._line_no, error, excerpt))
        logger.debug("skipped %s:%d: %s", self.path, self._line_no, error)

    def _restart(self) -> None:
        self._offset = 0
        self._pending = b""
        self._line_no = 0
        self.bad_count = 0
        self.bad_lines = []

    def _forget(self) -> bool:
        """Drop what was read; return whether anything was (a reset to report).

        A file created again under the same name is a new file: what was read
        from the old one must not be kept with it.
        """
        known = self._identity is not None
        if known:
            self._set_notice(f"{self.path} disappeared")
        self._identity = None
        self._restart()
        return known

    def _set_notice(self, text: str) -> None:
        if text != self.notice:
            logger.info(text)
        self.notice = text


class JsonFile:
    """A small JSON object file that is replaced atomically.

    Args:
        path: The file; it need not exist yet.

    Attributes:
        value: The last object read successfully, or None.
        notice: The last problem met reading the file, or None.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value: dict[str, Any] | None = None
        self.notice: str | None = None
        self._signature: tuple[int, int, int, int] | None = None

    @property
    def exists(self) -> bool:
        """Whether the file was present at the last look."""
        return self._signature is not None

    def poll(self) -> bool:
        """Read the file again if it changed.

        Returns:
            True when ``value`` changed.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            # A file that is not there is not one that cannot be read.
            changed = self.value is not None
            self.value = None
            self.notice = None
            self._signature = None
            return changed
        except OSError as exc:
            self.notice = f"cannot stat {self.path}: {exc.strerror}"
            return False
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if signature == self._signature:
            return False
        try:
            with open(self.path, "rb") as handle:
                value = json.loads(handle.read())
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.notice = f"cannot read {self.path}: {exc.strerror}"
            return False
        except ValueError as exc:
            # A writer that does not replace atomically may be mid-write: the
            # next change of the file gives it another chance.
            self._signature = signature
            self.notice = f"{self.path}: not JSON: {exc}"
            return False
        self._signature = signature
        if not isinstance(value, dict):
            self.notice = f"{self.path}: a JSON {type(value).__name__}, not an object"
            return False
        self.notice = None
        changed = value != self.value
        self.value = value
        return changed
