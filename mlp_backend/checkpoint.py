"""A run's ``checkpoint.npz``: the state to resume a killed run from.

Written after every epoch (replaced atomically, so a ``kill -9`` leaves the
last whole one) and removed when the run ends in a final state; the arrays
keep the model's dtype, so a resumed float32 run goes on bit for bit. Like
``model.npz`` it holds only plain arrays and is read with
``allow_pickle=False``; the scalars and the epoch records travel as one JSON
document stored as bytes.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.errors import RunError
from mlp_backend.runs import FORMAT, plain, replace_bytes
from mlp_backend.train import MemberState

NAME = "checkpoint.npz"


def save_checkpoint(path: Path, state: MemberState) -> None:
    """Replaces ``path`` with ``state`` (no fsync: see ``runs.replace_bytes``)."""
    arrays: dict[str, np.ndarray] = {}
    for k, p in enumerate(state.params):
        arrays[f"params_{k}"] = p
    for k, p in enumerate(state.best):
        arrays[f"best_{k}"] = p
    for g, slot in enumerate(state.moments):
        for k, p in enumerate(slot):
            arrays[f"moment{g}_{k}"] = p
    meta = {
        "format": FORMAT,
        "epoch": state.epoch,
        "steps": state.steps,
        "slots": len(state.moments),
        "arrays": len(state.params),
        "shuffle": state.shuffle,
        # JSON has no infinity: no best value yet is null.
        "best_value": state.best_value if math.isfinite(state.best_value) else None,
        "best_epoch": state.best_epoch,
        "waited": state.waited,
        "history": plain(state.history),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    replace_bytes(path, buffer.getvalue(), sync=False)


def load_checkpoint(path: Path) -> MemberState:
    """Reads ``path`` back.

    Raises:
        RunError: The file is missing, torn, or lacks an array or a field.
    """
    try:
        with open(path, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with npz:
                arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise RunError(f"{path}: no checkpoint here") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"{path}: not a readable checkpoint ({exc})") from None
    try:
        meta: dict[str, Any] = json.loads(arrays["meta"].tobytes().decode())
        count, slots = int(meta["arrays"]), int(meta["slots"])
        params = [arrays[f"params_{k}"] for k in range(count)]
        best = [arrays[f"best_{k}"] for k in range(count)]
        moments = [
            [arrays[f"moment{g}_{k}"] for k in range(count)] for g in range(slots)
        ]
        value = meta["best_value"]
        return MemberState(
            epoch=int(meta["epoch"]),
            steps=int(meta["steps"]),
            params=params,
            best=best,
            moments=moments,
            shuffle=dict(meta["shuffle"]),
            best_value=math.inf if value is None else float(value),
            best_epoch=int(meta["best_epoch"]),
            waited=int(meta["waited"]),
            history=list(meta["history"]),
        )
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: the checkpoint is incomplete ({exc})") from None
