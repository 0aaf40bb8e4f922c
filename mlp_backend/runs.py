"""The run folder on disk: writing it atomically or append-only.

The format is documented in ``docs/run-format.md``. This module imports
neither NumPy nor the math, so that readers on a machine without either can
use it. JSON files are replaced atomically (write a temporary file in the same
folder, fsync unless told not to, rename); ``.jsonl`` files only grow by whole
lines. JSON has no NaN or Infinity: such values are written as ``null``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlp_backend.errors import OutputError, RunError, UsageError

FORMAT = 1
STATES = (
    "queued",
    "running",
    "finished",
    "diverged",
    "stopped",
    "interrupted",
    "failed",
    "pruned",
)
STOP_REQUEST = "stop.request"
#: Held by the process that trains a single run, so that no other can.
RUN_LOCK = "run.lock"
#: Held by the process that runs a sweep, likewise.
SWEEP_LOCK = "sweep.lock"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def plain(value: Any) -> Any:
    """A JSON-safe copy: plain Python numbers, non-finite floats as None.

    NumPy scalars and 0-d arrays are turned into Python numbers through their
    ``item``/``tolist`` methods, so no NumPy type reaches a JSON file.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to a run file")


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps({"format": FORMAT, **plain(obj)}, allow_nan=False)


def write_json(path: Path, obj: dict[str, Any], *, sync: bool = True) -> None:
    """Replaces ``path`` atomically with ``obj`` as JSON (plus the format number)."""
    replace_bytes(path, (dumps(obj) + "\n").encode(), sync=sync)


def replace_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Writes ``data`` to a temporary sibling, flushes it to disk, renames it over.

    The rename alone makes the change atomic for every reader: ``sync=False``
    skips only the wait for the disk, which protects against a power cut, not
    against a killed process.
    """
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk, say: the file keeps its old content, and no part of
        # the new one is left beside it.
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turns a failure to write ``path`` (a table or figure that a command
    makes for a person) into an :class:`OutputError` naming it."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or exc
        raise OutputError(f"{path}: cannot be written ({why})") from None


def append_bytes(path: Path, data: bytes) -> None:
    """Appends ``data`` at the end of ``path`` (created if missing).

    One ``write`` call in all but rare cases (a short write goes on from
    where it stopped), so a reader does not see part of it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    """Appends one whole line."""
    append_bytes(path, (dumps(obj) + "\n").encode())


def finite_number(value: Any) -> bool:
    """Whether a value read from a run file is a number a writer could have
    written: an int or float (not a bool) that is a finite float. The
    writers write NaN and infinities as null, and an integer too large for
    a float cannot be one of their figures."""
    if type(value) not in (int, float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def whole_lines(data: bytes) -> list[bytes]:
    """The complete lines of a ``.jsonl`` file's bytes, without their newlines.

    Split on LF alone: ``splitlines`` also splits at carriage returns (and,
    on text, at form feeds and other separators) that a damaged line may
    hold, and the piece cut off there passed for a torn last line, which hid
    every line after it. The bytes after the last LF are a line a killed
    writer left unfinished, and are left out.
    """
    return data.split(b"\n")[:-1]


def read_records(path: Path, count: int) -> list[dict[str, Any]]:
    """The first ``count`` records of a ``.jsonl`` run file, as the run made them.

    The ``format`` and ``time`` keys that the writer adds are left out.

    Raises:
        RunError: The file is missing, holds fewer whole lines, or a line is
            not a JSON object.
    """
    try:
        lines = whole_lines(path.read_bytes())[:count]
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    if len(lines) < count:
        raise RunError(f"{path}: has fewer than {count} whole records")
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            raise RunError(f"{path}, line {number}: not a JSON record") from None
        if not isinstance(record, dict):
            raise RunError(f"{path}, line {number}: not a JSON object")
        records.append({k: v for k, v in record.items() if k not in ("format", "time")})
    return records


def read_json(path: Path) -> dict[str, Any]:
    """Reads a run file, with an error naming it if it is missing or malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot be read as JSON ({exc})") from None


def check_name(name: str, option: str = "--name") -> str:
    """Accepts a run or sweep folder name that cannot escape the runs root.

    Raises:
        UsageError: The name has separators, ``..``, a leading dot or other
            characters than letters, digits, ``.``, ``_`` and ``-``.
    """
    if not _NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"{option}: {name!r} is not a valid folder name; use letters, digits, "
            "'.', '_' and '-' (starting with a letter or digit, no '..', no '/')"
        )
    return name


def new_name(prefix: str = "") -> str:
    """A fresh unique name: time of day plus a random suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{prefix}{stamp}-{secrets.token_hex(2)}"


def create_folder(root: Path, name: str | None, prefix: str = "") -> Path:
    """Creates ``root/name`` (or a fresh name); never reuses an existing folder.

    Raises:
        RunError: ``name`` was given and that folder exists already.
        UsageError: No folder can be made in ``root`` (a file on the way,
            a read-only or missing file system, no permission).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name is not None:
            folder = root / check_name(name)
            try:
                folder.mkdir()
            except FileExistsError:
                raise RunError(
                    f"{folder} exists already; choose another --name or remove it"
                ) from None
            return folder
        while True:
            folder = root / new_name(prefix)
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as exc:
        raise UsageError(
            f"--runs-dir {root}: cannot make a run folder there ({exc.strerror})"
        ) from None


class RunFolder:
    """Writes one run's files as training goes.

    Args:
        path: The run folder (existing, empty or being resumed).
        sync: Whether each replaced file waits for the disk (see
            :func:`replace_bytes`). A sweep's trials pass False: the sweep's
            record of a finished trial, ``results.jsonl``, is appended
            without waiting, so a trial's own files would gain nothing from
            it, and five waits of about 1 ms per trial were 5% of the time
            the 16-configuration grid spent in its groups (measured).
    """

    def __init__(self, path: Path, *, sync: bool = True) -> None:
        self.path = path
        self.sync = sync
        self.started = time.time()
        self.status: dict[str, Any] = {}
        # Reopening a run keeps what its status already says (epochs, start).
        try:
            self.status = read_json(path / "status.json")
            self.started = float(self.status.get("started", self.started))
        except RunError:
            pass

    @property
    def stop_requested(self) -> bool:
        return (self.path / STOP_REQUEST).exists()

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / "config.json", config, sync=self.sync)

    def set_status(self, state: str, *, sync: bool = True, **fields: Any) -> None:
        """Replaces status.json, keeping the fields not given.

        ``sync=False`` suits the per-epoch progress updates: the next update
        or the final status replaces them anyway (see :func:`replace_bytes`).
        A folder made with ``sync=False`` never waits.
        """
        assert state in STATES, f"unknown state {state!r}"
        self.status.update(fields)
        self.status.update(
            state=state,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=self.started,
            updated=time.time(),
        )
        write_json(self.path / "status.json", self.status, sync=sync and self.sync)

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.path / "metrics.jsonl", {**record, "time": time.time()})

    def event(self, message: str, level: str = "info") -> None:
        append_jsonl(
            self.path / "events.jsonl",
            {"time": time.time(), "level": level, "message": message},
        )

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "summary.json", summary, sync=self.sync)


def process_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has: a
    process killed but not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        # No /proc here (macOS), or the process ended just now; the next
        # look decides.
        return True
    # The state follows the command name, which is in parentheses and may
    # itself hold spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class FolderLock:
    """An exclusive lock file that keeps two processes out of one run or sweep
    folder (``run.lock``, ``sweep.lock``).

    The file holds the owner's host and pid. A lock left by a process that no
    longer exists on this host is taken over, so ``kill -9`` does not block a
    later ``--resume``.
    """

    def __init__(self, path: Path, what: str = "sweep") -> None:
        self.path = path
        self.what = what

    def __enter__(self) -> FolderLock:
        mine = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not self._stale():
                    owner = self.path.read_text(errors="replace").strip()
                    raise RunError(
                        f"{self.path.parent} is in use by another {self.what} "
                        f"({owner}); "
                        f"wait for it, or remove {self.path} if that process is gone"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, mine.encode())
            os.close(fd)
            return self
        raise RunError(f"cannot take the lock {self.path}")

    def held(self) -> bool:
        """Whether a live process holds the lock now (another host's counts)."""
        return self.path.exists() and not self._stale()

    def _stale(self) -> bool:
        try:
            host, pid = self.path.read_text().split()
        except (OSError, ValueError):
            return False
        if host != socket.gethostname():
            return False
        try:
            return not process_running(int(pid))
        except ValueError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
