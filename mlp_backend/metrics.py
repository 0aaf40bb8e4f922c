"""Classification and regression metrics computed where the arrays live.

Every metric takes backend arrays and returns a backend array (0-d unless
stated), written against the Python array API standard with the namespace of
its inputs, so it runs unchanged on NumPy, CuPy and ``array-api-strict``.
The ``*_report`` functions compute a whole set at once and bring it to the
host as plain Python numbers, which is what run files and the monitor store.

Vocabulary:
    y_true: True labels, integer class indices, shape (n,). Binary metrics
        treat class 1 as positive and every other label as negative.
    y_pred: Predicted labels, the same kind and shape as ``y_true``.
    scores: Any float score that grows with the belief in class 1, shape (n,).
    proba: Predicted probabilities: of class 1, shape (n,), or of every
        class, shape (n, n_classes), rows summing to one.

Conventions shared with scikit-learn, so its metrics serve as our oracle:
a ratio whose denominator is zero counts as 0 (``zero_division=0``); class
averages run over all ``n_classes`` classes, absent ones included (sklearn's
``labels=range(n_classes)``); ROC quantities are undefined (nan) when
``y_true`` holds a single class; probabilities are clipped to
``[eps, 1 - eps]`` with ``eps`` the machine epsilon of their dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from array_api_compat import device

from mlp_backend.backend import namespace_of
from mlp_backend.errors import UsageError

if TYPE_CHECKING:
    from mlp_backend.backend import Backend

DEFAULT_FPRS = (0.01, 0.02, 0.05, 0.1, 0.2)


def _check_pair(name: str, a: Any, b: Any) -> None:
    """Raises UsageError unless ``a`` and ``b`` hold the same n >= 1 samples."""
    if a.ndim == 0 or a.shape[0] == 0:
        raise UsageError(f"{name}: expected at least one sample, got shape {a.shape}")
    if a.shape[0] != b.shape[0]:
        raise UsageError(
            f"{name}: inputs disagree on the number of samples: "
            f"{a.shape[0]} vs {b.shape[0]}"
        )


def _ratio(xp: Any, num: Any, den: Any) -> Any:
    """``num / den``, and 0 where ``den`` is 0, without a division warning."""
    nonzero = den > 0
    return xp.where(nonzero, num / xp.where(nonzero, den, 1), 0)


def _label_float(xp: Any) -> Any:
    # Labels carry no float dtype of their own; counts become the namespace's
    # default float, which holds integers exactly up to 2**53 on our backends.
    return xp.__array_namespace_info__().default_dtypes()["real floating"]


def _one_hot(xp: Any, labels: Any, n_classes: int) -> Any:
    """Labels as a (n, n_classes) bool indicator; out-of-range labels match none."""
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    return labels[:, None] == classes[None, :]


# Labels: accuracy, binary and macro precision/recall/F1, confusion matrix.


def accuracy(y_true: Any, y_pred: Any) -> Any:
    """The fraction of samples whose predicted label is the true one.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).

    Returns:
        A 0-d float array.
    """
    _check_pair("accuracy", y_true, y_pred)
    return _hit_rate(y_true, y_pred)


def _hit_rate(y_true: Any, y_pred: Any) -> Any:
    """The fraction of right labels along the last axis (``y_pred`` may be
    ``(m, n)`` against ``y_true`` ``(n,)``: one figure per row)."""
    xp = namespace_of(y_true, y_pred)
    return xp.mean(xp.astype(y_true == y_pred, _label_float(xp)), axis=-1)


def _binary_counts(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
    """True positives, false positives and false negatives along the last axis:
    0-d floats, or one per row of an ``(m, n)`` ``y_pred``."""
    xp = namespace_of(y_true, y_pred)
    dtype = _label_float(xp)
    true_pos = y_true == 1
    pred_pos = y_pred == 1
    tp = xp.sum(xp.astype(true_pos & pred_pos, dtype), axis=-1)
    fp = xp.sum(xp.astype(~true_pos & pred_pos, dtype), axis=-1)
    fn = xp.sum(xp.astype(true_pos & ~pred_pos, dtype), axis=-1)
    return tp, fp, fn


def precision(y_true: Any, y_pred: Any) -> Any:
    """tp / (tp + fp) for class 1; 0 when nothing is predicted positive.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).

    Returns:
        A 0-d float array.
    """
    _check_pair("precision", y_true, y_pred)
    tp, fp, _ = _binary_counts(y_true, y_pred)
    return _ratio(namespace_of(tp), tp, tp + fp)


def recall(y_true: Any, y_pred: Any) -> Any:
    """tp / (tp + fn) for class 1; 0 when no sample is truly positive.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).

    Returns:
        A 0-d float array.
    """
    _check_pair("recall", y_true, y_pred)
    tp, _, fn = _binary_counts(y_true, y_pred)
    return _ratio(namespace_of(tp), tp, tp + fn)


def f1(y_true: Any, y_pred: Any) -> Any:
    """The harmonic mean of precision and recall for class 1.

    Written as 2 tp / (2 tp + fp + fn), which equals the harmonic mean
    wherever that is defined and is 0 where both of its terms are 0.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).

    Returns:
        A 0-d float array.
    """
    _check_pair("f1", y_true, y_pred)
    tp, fp, fn = _binary_counts(y_true, y_pred)
    return _ratio(namespace_of(tp), 2 * tp, 2 * tp + fp + fn)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> Any:
    """Counts of (true, predicted) label pairs, rows indexed by the true class.

    Labels outside ``[0, n_classes)`` are not counted.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).
        n_classes: The number of classes k.

    Returns:
        An int64 array of shape (k, k); entry [i, j] counts samples of class i
        predicted as class j.
    """
    _check_pair("confusion_matrix", y_true, y_pred)
    xp = namespace_of(y_true, y_pred)

    # One matrix product counts all k*k pairs at once, with no scatter-add,
    # which the standard lacks.
    true_hot = xp.astype(_one_hot(xp, y_true, n_classes), xp.int64)
    pred_hot = xp.astype(_one_hot(xp, y_pred, n_classes), xp.int64)
    return xp.matmul(xp.matrix_transpose(true_hot), pred_hot)


def _per_class_counts(y_true: Any, y_pred: Any, n_classes: int) -> tuple[Any, ...]:
    """Per-class true positives, predicted counts and true counts, each (k,)."""
    xp = namespace_of(y_true, y_pred)
    dtype = _label_float(xp)
    cm = xp.astype(confusion_matrix(y_true, y_pred, n_classes), dtype)
    diagonal = xp.eye(n_classes, dtype=dtype, device=device(cm))
    return xp.sum(cm * diagonal, axis=1), xp.sum(cm, axis=0), xp.sum(cm, axis=1)


def macro_precision(y_true: Any, y_pred: Any, n_classes: int) -> Any:
    """Precision of each class taken as positive, averaged over the k classes.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).
        n_classes: The number of classes k.

    Returns:
        A 0-d float array.
    """
    tp, predicted, _ = _per_class_counts(y_true, y_pred, n_classes)
    xp = namespace_of(tp)
    return xp.mean(_ratio(xp, tp, predicted))


def macro_recall(y_true: Any, y_pred: Any, n_classes: int) -> Any:
    """Recall of each class taken as positive, averaged over the k classes.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).
        n_classes: The number of classes k.

    Returns:
        A 0-d float array.
    """
    tp, _, actual = _per_class_counts(y_true, y_pred, n_classes)
    xp = namespace_of(tp)
    return xp.mean(_ratio(xp, tp, actual))


def macro_f1(y_true: Any, y_pred: Any, n_classes: int) -> Any:
    """F1 of each class taken as positive, averaged over the k classes.

    Args:
        y_true: True labels, shape (n,).
        y_pred: Predicted labels, shape (n,).
        n_classes: The number of classes k.

    Returns:
        A 0-d float array.
    """
    tp, predicted, actual = _per_class_counts(y_true, y_pred, n_classes)
    xp = namespace_of(tp)
    return xp.mean(_ratio(xp, 2 * tp, predicted + actual))


# Scores: the ROC curve and what is read off it.


def _roc_counts(y_true: Any, scores: Any) -> tuple[Any, Any]:
    """False and true positive counts at every operating point of the ROC curve.

    Returns:
        Two int64 arrays ``fps`` and ``tps`` of shape (t + 1,), t the number
        of distinct scores: entry 0 is the point (0, 0) where nothing is
        positive, entry i counts the samples scoring at least the i-th highest
        distinct score. The last entries are the numbers of negatives and
        positives.
    """
    xp = namespace_of(y_true, scores)
    # Highest first. Tied scores become one operating point below, so their
    # order does not matter: an unstable sort of the negated scores is enough
    # and about twice as fast as a stable descending one (measured on NumPy).
    order = xp.argsort(-scores, stable=False)
    ranked = xp.take(scores, order, axis=0)
    positive = xp.astype(xp.take(y_true, order, axis=0) == 1, xp.int64)

    # Tied scores share one threshold, so only the last sample of each tie
    # group is an operating point. Index j of the cumulative sum (with its
    # initial 0) covers the first j ranked samples.
    always = xp.ones(1, dtype=xp.bool, device=device(ranked))
    keep = xp.concat([always, ranked[1:] != ranked[:-1], always])
    (points,) = xp.nonzero(keep)
    tps = xp.take(xp.cumulative_sum(positive, include_initial=True), points, axis=0)
    return points - tps, tps


def roc_auc(y_true: Any, scores: Any) -> Any:
    """The area under the ROC curve, with tied scores forming one step.

    Each group of tied scores is one diagonal step of the curve, so a tied
    positive-negative pair counts half, as in scikit-learn's ``roc_auc_score``.

    Args:
        y_true: True labels, shape (n,).
        scores: Scores for class 1, float, shape (n,).

    Returns:
        A 0-d array of the scores' dtype; nan when ``y_true`` holds only
        positives or only negatives, where the area is undefined.
    """
    _check_pair("roc_auc", y_true, scores)
    return roc_auc_rows(y_true, scores[None, :])[0]


def roc_auc_rows(y_true: Any, scores: Any) -> Any:
    """:func:`roc_auc` of every row of ``scores`` against the same labels.

    One sort and one pass for all rows, where a loop over the rows would
    issue each operation once per row (on CuPy, a kernel launch and a device
    sync each). The rows are laid end to end: every tie group, and every
    row's end, closes one step of a row's curve, so the steps are one flat
    list and each row's area is a segment of its cumulative sum.

    Args:
        y_true: True labels, shape (n,).
        scores: Scores for class 1, float, shape (m, n).

    Returns:
        An array of shape (m,) and the scores' dtype; nan for every row when
        ``y_true`` holds only positives or only negatives.
    """
    _check_pair("roc_auc_rows", y_true, scores[0, ...])
    xp = namespace_of(y_true, scores)
    m, n = (int(s) for s in scores.shape)
    where = device(scores)
    order = xp.argsort(-scores, axis=1, stable=False)
    row_start = xp.arange(m, dtype=xp.int64, device=where) * n
    ranked = xp.reshape(
        xp.take(
            xp.reshape(scores, (-1,)), xp.reshape(order + row_start[:, None], (-1,))
        ),
        (m, n),
    )
    positive = xp.astype(xp.take(y_true, xp.reshape(order, (-1,))) == 1, xp.int64)
    before = xp.cumulative_sum(positive, include_initial=True)

    # The last sample of each tie group, and of each row, ends a step.
    closes = xp.concat(
        [ranked[:, 1:] != ranked[:, :-1], xp.ones((m, 1), dtype=xp.bool, device=where)],
        axis=1,
    )
    (ends,) = xp.nonzero(xp.reshape(closes, (-1,)))
    starts = xp.concat([xp.zeros(1, dtype=ends.dtype, device=where), ends[:-1] + 1])
    # Per step: its positives and negatives, and the positives ranked above it
    # in its own row (the flat count less the rows before).
    step_tp = xp.take(before, ends + 1) - xp.take(before, starts)
    step_fp = ends + 1 - starts - step_tp
    above = xp.take(before, starts) - xp.take(before, (ends // n) * n)
    # In count units (one negative by one positive) the doubled trapezoids
    # are integers, so the sums are exact; only the final division rounds.
    doubled = xp.cumulative_sum(step_fp * (2 * above + step_tp), include_initial=True)
    last = xp.cumulative_sum(xp.sum(xp.astype(closes, xp.int64), axis=1))
    first = xp.concat([xp.zeros(1, dtype=last.dtype, device=where), last[:-1]])
    doubled_area = xp.take(doubled, last) - xp.take(doubled, first)

    positives = xp.sum(xp.astype(y_true == 1, xp.int64))
    doubled_pairs = 2 * (n - positives) * positives
    area = _ratio(
        xp,
        xp.astype(doubled_area, scores.dtype),
        xp.astype(doubled_pairs, scores.dtype),
    )
    return xp.where(doubled_pairs > 0, area, xp.nan)


def binary_rows(
    y_true: Any, proba: Any, threshold: float = 0.5, scores: Any | None = None
) -> dict[str, Any]:
    """Accuracy, F1 and ROC AUC of every row of ``proba``, as (m,) arrays.

    The same figures as :func:`accuracy`, :func:`f1` and :func:`roc_auc` of
    each row with ``y_pred = proba > threshold``, computed for all rows at
    once (see :func:`roc_auc_rows`).

    Args:
        y_true: True labels, shape (n,).
        proba: Probability of class 1 per row, shape (m, n).
        threshold: Class 1 is predicted where ``proba > threshold``.
        scores: What the ROC ranks, shape (m, n); ``proba`` when None. Pass
            the logits: probabilities saturate at 0 and 1 where the logits
            still differ (in float32 from about |z| > 17), and ties between
            rows of both classes move the area.
    """
    xp = namespace_of(y_true, proba)
    y_pred = xp.astype(proba > threshold, y_true.dtype)
    tp, fp, fn = _binary_counts(y_true, y_pred)
    return {
        "accuracy": _hit_rate(y_true, y_pred),
        "f1": _ratio(xp, 2 * tp, 2 * tp + fp + fn),
        "roc_auc": roc_auc_rows(y_true, proba if scores is None else scores),
    }


def tpr_at_fpr(y_true: Any, scores: Any, fprs: tuple[float, ...] = DEFAULT_FPRS) -> Any:
    """The best true-positive rate at each false-positive-rate budget.

    The operating points are those of scikit-learn's ``roc_curve`` with
    ``drop_intermediate=False``: one per distinct score, plus (0, 0).

    Args:
        y_true: True labels, shape (n,).
        scores: Scores for class 1, float, shape (n,).
        fprs: The budgets, each in [0, 1], length f.

    Returns:
        An array of shape (f,) and the scores' dtype: for each budget the
        largest TPR among operating points whose FPR is <= the budget; all
        nan when ``y_true`` holds a single class.
    """
    _check_pair("tpr_at_fpr", y_true, scores)
    if not all(0.0 <= budget <= 1.0 for budget in fprs):
        raise UsageError(f"tpr_at_fpr: fprs must lie in [0, 1], got {fprs!r}")
    xp = namespace_of(y_true, scores)
    fps, tps = _roc_counts(y_true, scores)
    negatives = xp.astype(fps[-1], scores.dtype)
    positives = xp.astype(tps[-1], scores.dtype)
    fpr = _ratio(xp, xp.astype(fps, scores.dtype), negatives)
    tpr = _ratio(xp, xp.astype(tps, scores.dtype), positives)

    # Both rates rise along the curve, so the best point within a budget is
    # the last one inside it; (0, 0) is inside every budget.
    budgets = xp.asarray(fprs, dtype=scores.dtype, device=device(scores))
    last_inside = xp.searchsorted(fpr, budgets, side="right") - 1
    best = xp.take(tpr, last_inside, axis=0)
    return xp.where((negatives > 0) & (positives > 0), best, xp.nan)


# Probabilities.


def log_loss(y_true: Any, proba: Any) -> Any:
    """The mean negative log-likelihood of the true labels.

    Args:
        y_true: True labels, shape (n,).
        proba: Probability of class 1, shape (n,); or of each class, shape
            (n, k), where labels outside ``[0, k)`` contribute 0.

    Returns:
        A 0-d array of the probabilities' dtype.
    """
    _check_pair("log_loss", y_true, proba)
    xp = namespace_of(y_true, proba)

    # Clipping bounds every term by -log(eps), so one confident mistake does
    # not make the mean infinite; each class's probability is clipped on its
    # own, as scikit-learn does.
    eps = xp.finfo(proba.dtype).eps
    if proba.ndim == 1:
        log_likelihood = xp.where(
            y_true == 1,
            xp.log(xp.clip(proba, eps, 1 - eps)),
            xp.log(xp.clip(1 - proba, eps, 1 - eps)),
        )
    else:
        is_true = _one_hot(xp, y_true, proba.shape[1])
        log_proba = xp.log(xp.clip(proba, eps, 1 - eps))
        log_likelihood = xp.sum(xp.where(is_true, log_proba, 0), axis=1)
    return -xp.mean(log_likelihood)


# Regression: targets of shape (n,) or (n, t), outputs averaged uniformly.


def mse(y_true: Any, y_pred: Any) -> Any:
    """The mean squared error over samples and outputs.

    Args:
        y_true: Float targets, shape (n,) or (n, t).
        y_pred: Float predictions, the same shape.

    Returns:
        A 0-d float array.
    """
    _check_pair("mse", y_true, y_pred)
    xp = namespace_of(y_true, y_pred)
    return xp.mean((y_true - y_pred) ** 2)


def mae(y_true: Any, y_pred: Any) -> Any:
    """The mean absolute error over samples and outputs.

    Args:
        y_true: Float targets, shape (n,) or (n, t).
        y_pred: Float predictions, the same shape.

    Returns:
        A 0-d float array.
    """
    _check_pair("mae", y_true, y_pred)
    xp = namespace_of(y_true, y_pred)
    return xp.mean(xp.abs(y_true - y_pred))


def r2(y_true: Any, y_pred: Any) -> Any:
    """The coefficient of determination, averaged over outputs.

    An output whose target is constant scores 1 when predicted exactly and 0
    otherwise, as in scikit-learn, rather than a division by zero.

    Args:
        y_true: Float targets, shape (n,) or (n, t).
        y_pred: Float predictions, the same shape.

    Returns:
        A 0-d float array.
    """
    _check_pair("r2", y_true, y_pred)
    xp = namespace_of(y_true, y_pred)
    residual = xp.sum((y_true - y_pred) ** 2, axis=0)
    total = xp.sum((y_true - xp.mean(y_true, axis=0)) ** 2, axis=0)
    explained = 1 - _ratio(xp, residual, total)
    exact = xp.astype(residual == 0, explained.dtype)
    per_output = xp.where(total > 0, explained, exact)
    return xp.mean(per_output)


# Reports: everything for one epoch, brought to the host once.


def _to_float(backend: Backend | None, value: Any) -> float:
    # Without a Backend, Python's float() is the standard's own way out of a
    # 0-d array, on every namespace.
    return float(value) if backend is None else backend.scalar(value)


def _to_floats(backend: Backend | None, array: Any) -> list[float]:
    """A (f,) float array as a list of Python floats."""
    if backend is not None:
        return backend.to_host(array).tolist()
    return [float(array[i]) for i in range(array.shape[0])]


def _to_counts(backend: Backend | None, array: Any) -> list[list[int]]:
    """A (k, k) integer array as nested lists of Python ints."""
    if backend is not None:
        return backend.to_host(array).tolist()
    rows, columns = array.shape
    return [[int(array[i, j]) for j in range(columns)] for i in range(rows)]


def binary_report(
    backend: Backend | None,
    y_true: Any,
    proba: Any,
    threshold: float = 0.5,
    scores: Any | None = None,
) -> dict[str, Any]:
    """Every binary metric of one evaluation, as plain Python values.

    Args:
        backend: The backend holding the arrays, used to copy results to the
            host; None copies through Python's ``float``/``int`` instead.
        y_true: True labels, shape (n,).
        proba: Probability of class 1, shape (n,). ROC metrics only need its
            order, but the threshold and the log loss read it as a probability.
        threshold: Class 1 is predicted where ``proba > threshold``, the rule
            of scikit-learn's ``MLPClassifier.predict``.
        scores: What the ROC metrics rank, shape (n,); ``proba`` when None.
            The logits rank without the ties a saturated probability makes
            (see :func:`binary_rows`).

    Returns:
        ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc`` and
        ``log_loss`` as floats (nan where undefined), ``tpr_at_fpr`` as a dict
        from each budget in :data:`DEFAULT_FPRS` written as a string ("0.01")
        to a float, and ``confusion_matrix`` as a 2 x 2 nested list of ints.
    """
    xp = namespace_of(y_true, proba)
    y_pred = xp.astype(proba > threshold, y_true.dtype)
    ranked = proba if scores is None else scores
    scalars = {
        "accuracy": accuracy(y_true, y_pred),
        "precision": precision(y_true, y_pred),
        "recall": recall(y_true, y_pred),
        "f1": f1(y_true, y_pred),
        "roc_auc": roc_auc(y_true, ranked),
        "log_loss": log_loss(y_true, proba),
    }
    report: dict[str, Any] = {
        key: _to_float(backend, value) for key, value in scalars.items()
    }
    rates = _to_floats(backend, tpr_at_fpr(y_true, ranked))
    report["tpr_at_fpr"] = {
        str(budget): rate for budget, rate in zip(DEFAULT_FPRS, rates, strict=True)
    }
    report["confusion_matrix"] = _to_counts(
        backend, confusion_matrix(y_true, y_pred, 2)
    )
    return report


def multiclass_report(
    backend: Backend | None, y_true: Any, proba: Any
) -> dict[str, Any]:
    """Every multiclass metric of one evaluation, as plain Python values.

    Args:
        backend: The backend holding the arrays, used to copy results to the
            host; None copies through Python's ``float``/``int`` instead.
        y_true: True labels, shape (n,).
        proba: Class probabilities, shape (n, k); the prediction is the most
            probable class, the first one on ties.

    Returns:
        ``accuracy``, ``f1`` (macro over all k classes) and ``log_loss`` as
        floats, and ``confusion_matrix`` as a k x k nested list of ints.
    """
    xp = namespace_of(y_true, proba)
    n_classes = proba.shape[1]
    y_pred = xp.astype(xp.argmax(proba, axis=1), y_true.dtype)
    scalars = {
        "accuracy": accuracy(y_true, y_pred),
        "f1": macro_f1(y_true, y_pred, n_classes),
        "log_loss": log_loss(y_true, proba),
    }
    report: dict[str, Any] = {
        key: _to_float(backend, value) for key, value in scalars.items()
    }
    report["confusion_matrix"] = _to_counts(
        backend, confusion_matrix(y_true, y_pred, n_classes)
    )
    return report


def regression_report(
    backend: Backend | None, y_true: Any, y_pred: Any
) -> dict[str, float]:
    """Every regression metric of one evaluation, as Python floats.

    Args:
        backend: The backend holding the arrays, used to copy results to the
            host; None copies through Python's ``float`` instead.
        y_true: Float targets, shape (n,) or (n, t).
        y_pred: Float predictions, the same shape.

    Returns:
        ``mse``, ``mae`` and ``r2``.
    """
    scalars = {
        "mse": mse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "r2": r2(y_true, y_pred),
    }
    return {key: _to_float(backend, value) for key, value in scalars.items()}
