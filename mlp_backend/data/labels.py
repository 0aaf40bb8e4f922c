"""Class labels as strings on disk, as class indices in training.

The mapping is an ``Encoding``, saved with the model, so that a file predicted on
later is encoded with the classes the model was trained on, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlp_backend.errors import DataError, UsageError


@dataclass(frozen=True)
class Encoding:
    """The label mapping of a classifier.

    Attributes:
        classes: Class index -> label string. For a binary task index 1 is the
            positive class.
    """

    classes: list[str]


def encode_labels(
    labels: np.ndarray,
    *,
    positive: str | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, Encoding]:
    """Turn label strings into class indices.

    Args:
        labels: Label strings, shape (rows,).
        positive: For two classes found in the data, the label to put at index 1.
        classes: A fixed class order (from a saved model, or ``MAGIC_CLASSES``);
            every label must be one of them. Without it the classes are the sorted
            distinct labels.

    Returns:
        Class indices, shape (rows,), int64, and the encoding.

    Raises:
        DataError: A label is not in ``classes``, or the data hold fewer than two
            classes.
        UsageError: ``classes`` repeats a label, or ``positive`` is not one of the
            two classes.
    """
    labels = np.asarray(labels).astype(str)
    distinct, inverse = np.unique(labels, return_inverse=True)
    if classes is not None:
        order = [str(c) for c in classes]
        if len(set(order)) != len(order):
            raise UsageError(f"classes must be distinct; got {order}")
        unknown = [str(u) for u in distinct if u not in order]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5])
            raise DataError(
                f"labels {shown} are not among the allowed labels "
                f"{', '.join(repr(c) for c in order)}"
            )
        if positive is not None and (len(order) != 2 or order[1] != positive):
            raise UsageError(
                f"--positive: {positive!r} contradicts the class order {order}"
            )
    else:
        order = [str(u) for u in distinct]
        if len(order) < 2:
            raise DataError(
                f"the labels hold {len(order)} class(es) ({', '.join(order)}); a "
                "classifier needs at least two"
            )
        if positive is not None:
            if len(order) != 2 or positive not in order:
                raise UsageError(
                    f"--positive: {positive!r} must be one of exactly two classes; "
                    f"the labels are {', '.join(repr(c) for c in order)}"
                )
            order.remove(positive)
            order.append(positive)

    # Map each distinct label once, then spread the mapping over the rows.
    index_of = {label: i for i, label in enumerate(order)}
    lookup = np.array([index_of[str(u)] for u in distinct], dtype=np.int64)
    y = lookup[inverse.reshape(-1)] if distinct.size else np.empty(0, np.int64)
    return y, Encoding(classes=order)
