"""Finding, fetching and reading the MAGIC Gamma Telescope data set.

MAGIC is UCI data set 159: 19,020 rows, ten float features and a class field, ``g``
(gamma, signal; 12,332 rows) or ``h`` (hadron, background; 6,688 rows), with no
header. ``locate_magic`` finds the file by a fixed order of places and downloads the
official zip only as the last resort; ``load_magic`` reads it strictly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import zipfile
from pathlib import Path

from mlp_backend.data.tables import Features, Table, _parse
from mlp_backend.errors import DataError

logger = logging.getLogger(__name__)

MAGIC_FEATURES = [
    "fLength",
    "fWidth",
    "fSize",
    "fConc",
    "fConc1",
    "fAsym",
    "fM3Long",
    "fM3Trans",
    "fAlpha",
    "fDist",
]
MAGIC_LABELS = ("g", "h")
# Class order for encode_labels: gamma, the signal, is the positive class (index 1).
MAGIC_CLASSES = ("h", "g")
MAGIC_ROWS = 19_020
MAGIC_COUNTS = {"g": 12_332, "h": 6_688}
MAGIC_URL = "https://archive.ics.uci.edu/static/public/159/magic+gamma+telescope.zip"
MAGIC_SHA256 = "e9314b7ebd4b4b59a3b3d65f7316663963777b16a46786877651dbbaa640b36a"
MAGIC_FILE = "magic04.data"
DATA_ENV = "MLP_BACKEND_DATA"


def locate_magic(
    data: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    url: str = MAGIC_URL,
) -> Path:
    """Find the MAGIC file, downloading it when it is nowhere to be found.

    The first of these wins: the explicit ``data`` argument (the ``--data`` option);
    the ``MLP_BACKEND_DATA`` environment variable; ``data/magic04.data`` in the
    current directory; a download of the official UCI zip (``url``) into ``./data/``,
    keeping ``magic04.data`` only if its sha256 and its row and class counts are
    those of the official file.

    Args:
        data: An explicit path, or None.
        download: Whether the last resort, the download, may be tried.
        url: Where to download the zip from.

    Returns:
        The path of the MAGIC file.

    Raises:
        DataError: An explicit path does not name a file (the message says whether
            it came from ``--data`` or the environment), or the file is nowhere and
            cannot be downloaded (the message says where to put it).
    """
    for value, origin in ((data, "--data"), (os.environ.get(DATA_ENV), DATA_ENV)):
        if value is None or str(value) == "":
            continue
        path = Path(value).expanduser()
        if path.is_file():
            return path
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"MAGIC data: {path} (from {origin}) {what}")

    default = Path.cwd() / "data" / MAGIC_FILE
    if default.is_file():
        return default
    if not download:
        raise DataError(_where_to_put(default, url, "downloading is switched off"))
    return _download(url, default)


def load_magic(
    path: str | os.PathLike[str],
    *,
    full: bool = False,
    features: Features | None = None,
) -> Table:
    """Read a file in the MAGIC layout: no header, ten features, label g or h.

    Args:
        path: The file; also accepts subsets such as the shared failure cases.
        full: Also require the official file's 19,020 rows and class counts.
        features: The feature columns a model expects, compared with MAGIC's
            before any row is read (see ``load_table``).

    Returns:
        The table, ``X`` (rows, 10) named by ``MAGIC_FEATURES``, ``labels`` (rows,).

    Raises:
        DataError: A row breaks the layout (the message names line and column),
            MAGIC's columns are not ``features``, or ``full`` is set and the counts
            differ from the official file's.
    """
    table = _parse(
        Path(path),
        delimiter=",",
        header=False,
        label=-1,
        task="classification",
        allowed=list(MAGIC_LABELS),
        names=[*MAGIC_FEATURES, "class"],
        features=features,
    )
    if full:
        counts = {c: int((table.labels == c).sum()) for c in MAGIC_LABELS}
        if table.X.shape[0] != MAGIC_ROWS or counts != MAGIC_COUNTS:
            raise DataError(
                f"{table.path}: has {table.X.shape[0]} rows ({counts['g']} g, "
                f"{counts['h']} h); the official MAGIC file has {MAGIC_ROWS} "
                f"({MAGIC_COUNTS['g']} g, {MAGIC_COUNTS['h']} h)"
            )
    return table


def _where_to_put(default: Path, url: str, reason: str) -> str:
    return (
        f"MAGIC data not found ({reason}). Put {MAGIC_FILE} at {default}, or point "
        f"{DATA_ENV} or --data at it. The official copy is in the zip at {url}"
    )


def _download(url: str, target: Path) -> Path:
    """Fetch the zip, check the extracted file, then move it to ``target``."""
    # pooch pulls in requests; only the download path should pay for that import.
    import pooch

    # The line above says what is downloaded; pooch's own would say it again.
    pooch.get_logger().setLevel(logging.WARNING)
    work = target.parent / f"{MAGIC_FILE}.download"
    made_folder = not target.parent.exists()
    logger.info("downloading MAGIC from %s into %s", url, target.parent)
    try:
        extracted = pooch.retrieve(
            url,
            known_hash=None,
            fname="magic.zip",
            path=work,
            processor=pooch.Unzip(members=[MAGIC_FILE]),
            progressbar=False,
        )
        found = [Path(p) for p in extracted if Path(p).name == MAGIC_FILE]
        if not found:
            raise DataError(f"MAGIC data: the zip at {url} holds no {MAGIC_FILE}")
        digest = _sha256(found[0])
        if digest != MAGIC_SHA256:
            raise DataError(
                f"MAGIC data: the {MAGIC_FILE} downloaded from {url} has sha256 "
                f"{digest}, expected {MAGIC_SHA256}; it was not kept"
            )
        load_magic(found[0], full=True)
        os.replace(found[0], target)

    # requests' errors derive from OSError, so this covers the network as well as
    # the disk; ValueError is how pooch reports a URL it cannot handle.
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        reason = f"downloading {url} failed: {type(exc).__name__}: {exc}"
        raise DataError(_where_to_put(target, url, reason)) from exc
    finally:
        # A bad or partial zip left here would be reused by the next attempt.
        shutil.rmtree(work, ignore_errors=True)
        if made_folder and not target.exists():
            # Nor does a failed attempt leave the empty folder it made.
            with contextlib.suppress(OSError):
                target.parent.rmdir()
    logger.info("MAGIC data saved to %s", target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
