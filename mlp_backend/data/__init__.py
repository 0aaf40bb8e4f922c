"""The data layer: reading, checking and preparing tables on the host.

Everything here works on NumPy arrays and never imports CuPy or the array
namespaces of ``mlp_backend.backend``: the caller moves the arrays to a device
once. Errors in files are ``DataError``s naming file, line and column; bad
arguments are ``UsageError``s.
"""

from __future__ import annotations

from mlp_backend.data.labels import Encoding, encode_labels
from mlp_backend.data.magic import (
    DATA_ENV,
    MAGIC_CLASSES,
    MAGIC_FEATURES,
    MAGIC_LABELS,
    MAGIC_SHA256,
    MAGIC_URL,
    load_magic,
    locate_magic,
)
from mlp_backend.data.scaling import Standardizer
from mlp_backend.data.split import Split, stratified_split
from mlp_backend.data.tables import (
    Features,
    Table,
    carries_label,
    load_table,
    scoring_label,
)

__all__ = [
    "DATA_ENV",
    "MAGIC_CLASSES",
    "MAGIC_FEATURES",
    "MAGIC_LABELS",
    "MAGIC_SHA256",
    "MAGIC_URL",
    "Encoding",
    "Features",
    "Split",
    "Standardizer",
    "Table",
    "carries_label",
    "encode_labels",
    "load_magic",
    "load_table",
    "locate_magic",
    "scoring_label",
    "stratified_split",
]
