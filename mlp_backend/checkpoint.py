"""A run's ``checkpoint.log``: the state to resume a killed run from.

One record per epoch is appended to the log, and a reader takes the last
whole record. Appending costs about 40 us where replacing a file costs 0.7 ms
on the ext4 disks here (measured; a member's epoch in a sweep can take 3 ms),
so the log is replaced atomically only by its first record in a process and
every :data:`COMPACT_AFTER` records after that: it stays small, and a tail
torn by a kill (or left by an earlier process) is never appended to. No
fsync: a killed process loses nothing already written, a power cut may.

A record is a fixed header (:data:`HEADER`: magic, the lengths of the two
parts, the CRC-32 of both), the JSON metadata, and every array of the state
raveled one after another in the model's dtype, so a resumed float32 run goes
on bit for bit. Nothing is unpickled. The epoch records are not in it: they
are the first ``epoch`` lines of the run's ``metrics.jsonl``, which is written
before each checkpoint, so a record stays the same size however long the run.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.errors import RunError
from mlp_backend.optim import SLOTS
from mlp_backend.runs import FORMAT, append_bytes, read_records, replace_bytes
from mlp_backend.train import MemberState

logger = logging.getLogger(__name__)

NAME = "checkpoint.log"
MAGIC = b"MLPCKPT1"
#: magic, metadata bytes, values bytes, CRC-32 of metadata and values.
HEADER = struct.Struct("<8sIQI")
#: Records appended before the log is replaced by its newest one.
COMPACT_AFTER = 16


def encode(state: MemberState) -> bytes:
    """One whole record of the log for ``state``."""
    groups = [state.params, state.best, *state.moments]
    arrays = [a for group in groups for a in group]
    values = np.concatenate([np.ravel(a) for a in arrays])
    meta = {
        "format": FORMAT,
        "dtype": values.dtype.name,
        "epoch": state.epoch,
        "steps": state.steps,
        "slots": len(state.moments),
        "shapes": [list(a.shape) for a in arrays],
        "shuffle": state.shuffle,
        # JSON has no infinity: no best value yet is null.
        "best_value": state.best_value if math.isfinite(state.best_value) else None,
        "best_epoch": state.best_epoch,
        "waited": state.waited,
        "stack": list(state.stack),
        "seconds": state.seconds,
    }
    body = json.dumps(meta).encode()
    data = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    crc = zlib.crc32(data, zlib.crc32(body))
    return HEADER.pack(MAGIC, len(body), len(data), crc) + body + data


class CheckpointLog:
    """Writes one run's checkpoints: appends, and compacts now and then.

    Args:
        path: The run's ``checkpoint.log``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writes = 0

    def write(self, state: MemberState) -> None:
        record = encode(state)
        if self._writes % COMPACT_AFTER == 0:
            replace_bytes(self.path, record, sync=False)
        else:
            append_bytes(self.path, record)
        self._writes += 1


def last_record(data: bytes) -> tuple[bytes, bytes, bool] | None:
    """The metadata and values of the last whole record of a log, if any, and
    whether the log ends with it (False: a torn tail follows).

    Reading stops at the first record that is short or fails its CRC: only
    the tail can be torn, since the writer never appends to a torn log.
    """
    last = None
    offset = 0
    while offset + HEADER.size <= len(data):
        magic, n_meta, n_values, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        end = start + n_meta + n_values
        if magic != MAGIC or end > len(data):
            break
        body, values = data[start : start + n_meta], data[start + n_meta : end]
        if zlib.crc32(values, zlib.crc32(body)) != crc:
            break
        last, offset = (body, values), end
    return None if last is None else (*last, offset == len(data))


def load_checkpoint(
    path: Path, sizes: Sequence[int] | None = None, optimizer: str | None = None
) -> MemberState:
    """Reads the newest state back, with the epoch records of its run folder.

    Args:
        sizes: The network's layer sizes ``(features, *hidden, outputs)``:
            the state must have exactly its parameter shapes.
        optimizer: The run's optimizer: the state must have its slots.

    Raises:
        RunError: The file is missing or holds no whole record, a record
            lacks a field or holds an impossible value, the state does not
            fit ``sizes`` or ``optimizer``, or ``metrics.jsonl`` beside it
            lacks its epochs.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RunError(f"{path}: no checkpoint here") from None
    except OSError as exc:
        raise RunError(f"{path}: not a readable checkpoint ({exc})") from None
    record = last_record(data)
    if record is None:
        raise RunError(f"{path}: not a readable checkpoint (no whole record)")
    body, raw, whole = record
    if not whole:
        logger.info(
            "%s: the bytes after the last whole record are torn (a kill in the "
            "middle of a write); going on from that record",
            path,
        )
    try:
        meta: dict[str, Any] = json.loads(body.decode())
        dtype = np.dtype(meta["dtype"])
        if dtype.kind != "f":
            raise ValueError(f"values of dtype {dtype}")
        values = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
        shapes = [tuple(int(n) for n in shape) for shape in meta["shapes"]]
        counts = [math.prod(shape) for shape in shapes]
        if any(n < 0 for shape in shapes for n in shape) or sum(counts) != values.size:
            raise ValueError(f"{values.size} values for shapes {shapes}")
        arrays, start = [], 0
        for shape, count in zip(shapes, counts, strict=True):
            arrays.append(values[start : start + count].reshape(shape))
            start += count
        slots = int(meta["slots"])
        if slots < 0:
            raise ValueError(f"{slots} optimizer slots")
        count = len(arrays) // (2 + slots)
        if count * (2 + slots) != len(arrays):
            raise ValueError(f"{len(arrays)} arrays for {slots} optimizer slots")
        groups = [arrays[g * count : (g + 1) * count] for g in range(2 + slots)]
        value = meta["best_value"]
        epoch, steps = int(meta["epoch"]), int(meta["steps"])
        best_epoch, waited = int(meta["best_epoch"]), int(meta["waited"])
        if epoch < 1 or steps < 0 or not 0 <= best_epoch <= epoch or waited < 0:
            raise ValueError(
                f"epoch {epoch}, steps {steps}, best epoch {best_epoch}, "
                f"waited {waited}"
            )
        shuffle = dict(meta["shuffle"])
        # The batch-order generator's state, checked by loading it into one.
        np.random.PCG64().state = shuffle
        # Logs written before the stack was recorded have none.
        stack = tuple(str(name) for name in meta.get("stack", []))
        seconds = float(meta.get("seconds", 0.0))
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{seconds} seconds of training")
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: the checkpoint is incomplete ({exc})") from None
    _check_fit(path, groups, sizes, optimizer)
    return MemberState(
        epoch=epoch,
        steps=steps,
        params=groups[0],
        best=groups[1],
        moments=groups[2:],
        shuffle=shuffle,
        best_value=math.inf if value is None else float(value),
        best_epoch=best_epoch,
        waited=waited,
        history=read_records(path.parent / "metrics.jsonl", epoch),
        stack=stack,
        seconds=seconds,
    )


def _check_fit(
    path: Path,
    groups: list[list[np.ndarray]],
    sizes: Sequence[int] | None,
    optimizer: str | None,
) -> None:
    """Raises RunError unless the state has the network's shapes and slots."""
    if optimizer is not None and len(groups) - 2 != SLOTS.get(optimizer):
        raise RunError(
            f"{path}: the checkpoint holds {len(groups) - 2} optimizer slot(s), "
            f"not those of {optimizer}; it is not this run's"
        )
    if sizes is None:
        return
    shapes = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        shapes += [(fan_in, fan_out), (fan_out,)]
    if any([a.shape for a in group] != shapes for group in groups):
        raise RunError(
            f"{path}: the checkpoint does not fit the network of layer sizes "
            f"{', '.join(str(n) for n in sizes)}; it is not this run's"
        )
