"""A run's ``checkpoint.npz``: the state to resume a killed run from.

Written after every epoch (replaced atomically, so a ``kill -9`` leaves the
last whole one) and removed when the run ends in a final state; the arrays
keep the model's dtype, so a resumed float32 run goes on bit for bit. Like
``model.npz`` it holds only plain arrays and is read with
``allow_pickle=False``; the scalars travel as one JSON document stored as
bytes. The epoch records are not in it: they are the first ``epoch`` lines of
the run's ``metrics.jsonl``, which is written before each checkpoint, so a
checkpoint stays the same size however long the run.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.errors import RunError
from mlp_backend.persist import read_npz
from mlp_backend.runs import FORMAT, read_records, replace_bytes
from mlp_backend.train import MemberState

NAME = "checkpoint.npz"


def save_checkpoint(path: Path, state: MemberState) -> None:
    """Replaces ``path`` with ``state`` (no fsync: see ``runs.replace_bytes``).

    All arrays travel as one flat ``values`` array, with their shapes in the
    metadata: a zip entry per array would double the cost of a checkpoint,
    which is paid after every epoch of every member.
    """
    groups = [state.params, state.best, *state.moments]
    arrays = [a for group in groups for a in group]
    meta = {
        "format": FORMAT,
        "epoch": state.epoch,
        "steps": state.steps,
        "slots": len(state.moments),
        "shapes": [list(a.shape) for a in arrays],
        "shuffle": state.shuffle,
        # JSON has no infinity: no best value yet is null.
        "best_value": state.best_value if math.isfinite(state.best_value) else None,
        "best_epoch": state.best_epoch,
        "waited": state.waited,
    }
    values = np.concatenate([np.ravel(a) for a in arrays])
    buffer = io.BytesIO()
    np.savez(
        buffer,
        values=values,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    )
    replace_bytes(path, buffer.getvalue(), sync=False)


def load_checkpoint(path: Path) -> MemberState:
    """Reads ``path`` back, with the epoch records of the run folder it is in.

    Raises:
        RunError: The file is missing, torn, or lacks an array or a field, or
            ``metrics.jsonl`` beside it lacks the checkpoint's epochs.
    """
    arrays = read_npz(path, "no checkpoint here", "not a readable checkpoint")
    try:
        values = arrays["values"]
        meta: dict[str, Any] = json.loads(arrays["meta"].tobytes().decode())
        shapes = [tuple(int(n) for n in shape) for shape in meta["shapes"]]
        sizes = [math.prod(shape) for shape in shapes]
        if sum(sizes) != values.size or values.dtype.kind != "f":
            raise ValueError(f"{values.size} values for shapes {shapes}")
        arrays, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            arrays.append(values[start : start + size].reshape(shape))
            start += size
        slots = int(meta["slots"])
        count = len(arrays) // (2 + slots)
        if count * (2 + slots) != len(arrays):
            raise ValueError(f"{len(arrays)} arrays for {slots} optimizer slots")
        groups = [arrays[g * count : (g + 1) * count] for g in range(2 + slots)]
        value = meta["best_value"]
        epoch = int(meta["epoch"])
        history = read_records(path.parent / "metrics.jsonl", epoch)
        return MemberState(
            epoch=epoch,
            steps=int(meta["steps"]),
            params=groups[0],
            best=groups[1],
            moments=groups[2:],
            shuffle=dict(meta["shuffle"]),
            best_value=math.inf if value is None else float(value),
            best_epoch=int(meta["best_epoch"]),
            waited=int(meta["waited"]),
            history=history,
        )
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: the checkpoint is incomplete ({exc})") from None
