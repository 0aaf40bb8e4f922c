"""Saving and loading a trained network as ``model.npz``.

The file holds only plain arrays (no pickled objects) and is read back with
``allow_pickle=False``; every array is checked against the saved
configuration before use, so a damaged or foreign file fails here with a
message naming the key, not deep inside a forward pass.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.data import Standardizer
from mlp_backend.errors import RunError
from mlp_backend.runs import FORMAT, replace_bytes


@dataclass
class SavedModel:
    """A network as stored: host parameters plus what predicting needs.

    Attributes:
        params: ``[W0, b0, W1, b1, ...]`` with ``W`` of shape (fan_in, fan_out)
            and ``b`` of shape (fan_out,).
        standardizer: The standardiser fitted on the training rows.
        classes: Label strings in class-index order (empty for regression).
        config: The run's configuration (``model`` holds hidden, activation, loss).
    """

    params: list[np.ndarray]
    standardizer: Standardizer
    classes: list[str]
    config: dict[str, Any]


def save_model(path: Path, model: SavedModel, *, sync: bool = True) -> None:
    """Writes ``model.npz`` atomically; ``sync`` as in :func:`replace_bytes`."""
    arrays: dict[str, np.ndarray] = {
        f"{'W' if k % 2 == 0 else 'b'}{k // 2}": np.asarray(p, dtype=np.float64)
        for k, p in enumerate(model.params)
    }
    arrays["mean"] = np.asarray(model.standardizer.mean, dtype=np.float64)
    arrays["scale"] = np.asarray(model.standardizer.scale, dtype=np.float64)
    arrays["classes"] = np.array(model.classes, dtype=np.str_)
    arrays["config"] = np.array(json.dumps(model.config))
    arrays["format"] = np.array(FORMAT)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    replace_bytes(path, buffer.getvalue(), sync=sync)


def load_model(path: Path) -> SavedModel:
    """Reads and checks ``model.npz``.

    Raises:
        RunError: The file is missing, not an npz archive, or an array is
            missing or has the wrong shape or dtype.
    """
    try:
        # Our own handle: np.load leaks its own when the archive is torn.
        with open(path, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            with npz:
                arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise RunError(f"{path}: no saved model here") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # An empty file ends early (EOFError); a torn archive is a BadZipFile.
        raise RunError(f"{path}: not a readable model file ({exc})") from None

    def need(key: str, kind: str) -> np.ndarray:
        if key not in arrays:
            raise RunError(f"{path}: missing array {key!r}")
        if arrays[key].dtype.kind not in kind:
            raise RunError(f"{path}: array {key!r} has dtype {arrays[key].dtype}")
        return arrays[key]

    try:
        config = json.loads(str(need("config", "U")))
        hidden = [int(h) for h in config["model"]["hidden"]]
        n_features = int(config["data"]["features"])
        n_outputs = int(config["model"]["outputs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path}: the saved config is incomplete ({exc})") from None
    sizes = [n_features, *hidden, n_outputs]
    params = []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        for key, shape in ((f"W{l}", (fan_in, fan_out)), (f"b{l}", (fan_out,))):
            array = need(key, "f")
            if array.shape != shape:
                raise RunError(
                    f"{path}: array {key!r} has shape {array.shape}, expected {shape}"
                )
            if not np.all(np.isfinite(array)):
                raise RunError(f"{path}: array {key!r} holds non-finite values")
            params.append(array)
    mean, scale = need("mean", "f"), need("scale", "f")
    if mean.shape != (n_features,) or scale.shape != (n_features,):
        raise RunError(f"{path}: the standardiser does not have {n_features} columns")
    classes = [str(c) for c in need("classes", "U")]
    return SavedModel(params, Standardizer(mean, scale), classes, config)
