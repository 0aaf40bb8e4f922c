"""Estimators in the scikit-learn style, built on the hand-written training loop.

``MLPClassifier`` and ``MLPRegressor`` follow scikit-learn's estimator
contract (``get_params``/``set_params``, ``fit``, ``predict``, ``score``,
constructor arguments stored unchanged), so they work inside ``Pipeline``,
``clone`` and ``cross_val_score`` without this library importing
scikit-learn. Inputs and outputs are NumPy arrays; the device is an internal
matter (the data cross to it once in ``fit`` and once per ``predict``).

They pass scikit-learn's estimator checks but one: ``check_estimators_unfitted``
asks for scikit-learn's own ``NotFittedError``, which ours
(:class:`mlp_backend.errors.NotFittedError`) cannot subclass without importing
it. In float32 (the default) a wide network can also fail the checks that
predict on reordered rows: a prediction may move by a rounding step, finer than
the float64 tolerance of the checks. Sparse ``X`` is refused with a message
saying so.
"""

from __future__ import annotations

import inspect
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlp_backend.backend import Backend, get_backend
from mlp_backend.data import Encoding, Standardizer, encode_labels, stratified_split
from mlp_backend.defaults import DEFAULTS
from mlp_backend.errors import (
    BackendError,
    DataConversionWarning,
    DivergenceWarning,
    MLPBackendWarning,
    NotFittedError,
    UsageError,
    UsageTypeError,
)
from mlp_backend.losses import TASK_LOSS
from mlp_backend.model import Shape, Stack
from mlp_backend.persist import SavedModel
from mlp_backend.train import (
    Callback,
    Checkpoint,
    Member,
    MemberResult,
    MemberState,
    TrainConfig,
    Trainer,
    check_member,
    check_metric,
    to_device,
)


class _MLP:
    """What the classifier and the regressor share."""

    _task_kind = ""

    def __init__(
        self,
        hidden: Sequence[int] = DEFAULTS["hidden"],
        activation: str = DEFAULTS["activation"],
        optimizer: str = DEFAULTS["optimizer"],
        lr: float = DEFAULTS["lr"],
        momentum: float = DEFAULTS["momentum"],
        weight_decay: float = DEFAULTS["weight_decay"],
        batch_size: int = DEFAULTS["batch_size"],
        epochs: int = DEFAULTS["epochs"],
        patience: int = DEFAULTS["patience"],
        monitor: str = DEFAULTS["metric"],
        schedule: str = DEFAULTS["schedule"],
        validation_fraction: float = 0.15,
        standardize: bool = True,
        seed: int = 0,
        backend: str | None = None,
        dtype: str = "float32",
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.monitor = monitor
        self.schedule = schedule
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.seed = seed
        self.backend = backend
        self.dtype = dtype

    # The scikit-learn estimator contract.

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> _MLP:
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __getstate__(self) -> dict[str, Any]:
        # The backend holds modules, which do not pickle; a fitted model is
        # its host arrays, and the backend is found again by name on load.
        state = dict(self.__dict__)
        backend = state.pop("backend_", None)
        state.pop("_stack", None)
        if backend is not None:
            state["_backend_name"] = backend.name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        name = state.pop("_backend_name", None)
        self.__dict__.update(state)
        if name is None:
            return
        try:
            self.backend_ = get_backend(name, self.dtype)
        except BackendError as exc:
            # Trained on a GPU, loaded on a laptop: the weights are host arrays.
            warnings.warn(
                f"{name} cannot be used here ({exc}); predicting with numpy",
                MLPBackendWarning,
                stacklevel=2,
            )
            self.backend_ = get_backend("numpy", self.dtype)
        self._set_params(self.params_)

    def __sklearn_tags__(self) -> Any:
        # Only scikit-learn calls this, so scikit-learn is already imported.
        from sklearn.utils import (
            ClassifierTags,
            InputTags,
            RegressorTags,
            Tags,
            TargetTags,
        )

        classifier = self._task_kind == "classifier"
        return Tags(
            estimator_type=self._task_kind,
            target_tags=TargetTags(required=True),
            input_tags=InputTags(),
            classifier_tags=ClassifierTags() if classifier else None,
            regressor_tags=None if classifier else RegressorTags(),
        )

    # Training.

    def train_config(self) -> TrainConfig:
        """The shared training settings these parameters describe."""
        return TrainConfig(
            activation=self.activation,
            optimizer=self.optimizer,
            batch_size=int(self.batch_size),
            epochs=int(self.epochs),
            schedule=self.schedule,
            patience=int(self.patience),
            monitor=self.monitor,
        )

    def member(self) -> Member:
        return Member(
            hidden=_widths(self.hidden),
            lr=float(self.lr),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            seed=int(self.seed),
        )

    def _fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None,
        callbacks: Sequence[Callback],
        should_stop: Callable[[], bool] | None,
        feature_names: Sequence[str] | None,
        checkpoint: Checkpoint | None = None,
        resume: MemberState | None = None,
    ) -> _MLP:
        args = (eval_set, callbacks, should_stop, feature_names, checkpoint, resume)
        try:
            self._check_types()
            # The shared checks, before any work: the split's seed is ours.
            self.train_config().check()
            check_member(self.member())
            return self._train(X, y, *args)
        except UsageError as exc:
            raise _naming_parameters(exc) from None

    def _check_types(self) -> None:
        """Refuses parameters of the wrong type, which int() or float() would
        quietly turn into others (a batch_size of 2.5 into 2, "no" into True)."""
        for name in ("batch_size", "epochs", "patience", "seed"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, np.integer)
            ):
                raise UsageError(f"{name}: expected an integer, got {value!r}")
        for name in ("lr", "momentum", "weight_decay", "validation_fraction"):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise UsageError(f"{name}: expected a number, got {value!r}")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise UsageError(
                f"standardize: expected True or False, got {self.standardize!r}"
            )

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None,
        callbacks: Sequence[Callback],
        should_stop: Callable[[], bool] | None,
        feature_names: Sequence[str] | None,
        checkpoint: Checkpoint | None,
        resume: MemberState | None,
    ) -> _MLP:
        X, target, task, n_classes = self._training_data(X, y, feature_names)
        check_metric(self.monitor, task)
        if eval_set is None:
            if not 0.0 < self.validation_fraction < 1.0:
                raise UsageError(
                    "validation_fraction: must be in (0, 1), "
                    f"got {self.validation_fraction}"
                )
            half = self.validation_fraction / 2.0
            split = stratified_split(target, (1.0 - 2.0 * half, half, half), self.seed)
            val_rows = np.sort(np.concatenate([split.val, split.test]))
            if val_rows.size == 0:
                raise UsageError(
                    f"validation_fraction: {self.validation_fraction} of "
                    f"{X.shape[0]} sample(s) leaves none to validate on; give "
                    "more samples or an eval_set"
                )
            X_val, y_val = X[val_rows], target[val_rows]
            X, target = X[split.train], target[split.train]
        else:
            X_val, y_val = self._eval_set(eval_set, X.shape[1])

        self.standardizer_ = (
            Standardizer.fit(X, self.feature_names_)
            if self.standardize
            else _identity(X.shape[1])
        )
        self.backend_ = get_backend(self.backend, self.dtype)
        data = to_device(
            self.backend_,
            task,
            n_classes,
            (self.standardizer_.transform(X), target),
            (self.standardizer_.transform(X_val), y_val),
        )
        trainer = Trainer(
            self.backend_,
            self.train_config(),
            [self.member()],
            data,
            callbacks,
            should_stop or (lambda: False),
            checkpoint=checkpoint,
            resume=None if resume is None else [resume],
        )
        self.result_: MemberResult = trainer.run()[0]
        if self.result_.state == "diverged":
            # The model kept is the last finite one; say so rather than let
            # predictions pass for those of a trained network.
            warnings.warn(
                f"{type(self).__name__} diverged: {self.result_.reason}",
                DivergenceWarning,
                # The caller of fit (past _train and _fit).
                stacklevel=4,
            )
        self.task_ = task
        self._set_params(self.result_.params)
        return self

    def _eval_set(self, eval_set: Any, n_features: int) -> tuple[np.ndarray, Any]:
        """``eval_set`` as validation rows and their encoded labels."""
        if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
            got = type(eval_set).__name__
            if isinstance(eval_set, (tuple, list)):
                got += f" of {len(eval_set)}"
            raise UsageError(
                "eval_set: expected a pair (X, y) of validation rows and labels, "
                f"got a {got}"
            )
        try:
            X_val = _features(eval_set[0])
            y_val, _, _ = self._encode(eval_set[1], fit=False)
        except UsageError as exc:
            raise UsageError(f"eval_set: {exc}") from None
        rows = X_val.shape[0]
        if rows == 0 or rows != y_val.shape[0] or X_val.shape[1] != n_features:
            raise UsageError(
                f"eval_set: X of shape {X_val.shape} and y of {y_val.shape[0]} "
                f"labels do not match each other or X's {n_features} features"
            )
        return X_val, y_val

    def _training_data(
        self, X: Any, y: Any, feature_names: Sequence[str] | None
    ) -> tuple[np.ndarray, np.ndarray, str, int]:
        """``X`` (rows, features) and ``y`` encoded (rows,), checked, with the
        task and the number of classes; sets the attributes of their shapes."""
        if y is None:
            raise UsageError(
                f"{type(self).__name__} requires y to be passed, but the target "
                "y is None"
            )
        X = _features(X)
        _check_fit_shape(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            # Level 5 is the caller of fit (past _train, _fit and fit).
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected: y of "
                f"shape {y.shape} is taken as shape ({y.shape[0]},); pass "
                "y.ravel() to say so",
                DataConversionWarning,
                stacklevel=5,
            )
        target, task, n_classes = self._encode(y, fit=True)
        if target.shape[0] != X.shape[0]:
            raise UsageError(
                f"X has {X.shape[0]} rows but y has {target.shape[0]} labels"
            )
        self.n_features_in_ = X.shape[1]
        self.feature_names_ = list(
            feature_names or [f"x{i}" for i in range(X.shape[1])]
        )
        return X, target, task, n_classes

    def _set_params(self, params: list[np.ndarray]) -> None:
        self.params_ = params
        n_outputs = params[-1].shape[0]
        hidden = tuple(p.shape[1] for p in params[0:-2:2])
        shape = Shape(
            self.n_features_in_,
            hidden,
            n_outputs,
            self.activation,
            TASK_LOSS[self.task_],
        )
        self._stack = Stack.from_host(self.backend_, shape, [params])

    @property
    def history_(self) -> list[dict[str, float]]:
        return self.result_.history

    def _output(self, X: np.ndarray) -> np.ndarray:
        """The network's probabilities or values on host rows, ``(rows, outputs)``."""
        return self._run(X, logits=False)

    def _run(self, X: np.ndarray, logits: bool) -> np.ndarray:
        """The network's logits, or its outputs, on host rows ``(rows, outputs)``."""
        name = type(self).__name__
        if not hasattr(self, "params_"):
            raise NotFittedError(f"this {name} is not fitted yet; call fit first")
        X = _features(X)
        if X.shape[1] != self.n_features_in_:
            # scikit-learn's wording, which its checks and users look for.
            raise UsageError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input, as many as it was "
                "fitted on"
            )
        rows = self.backend_.asarray(self.standardizer_.transform(X)[None])
        z, _ = self._stack.forward(rows)
        out = z if logits else self._stack.loss.output(self.backend_.xp, z)
        return self.backend_.to_host(out[0, ...])

    def to_saved(self, config: dict[str, Any]) -> SavedModel:
        """The fitted network in the form ``model.npz`` stores."""
        return SavedModel(
            list(self.params_), self.standardizer_, self._classes(), config
        )

    def _classes(self) -> list[str]:
        return []

    def _encode(self, y: np.ndarray, fit: bool) -> tuple[np.ndarray, str, int]:
        raise NotImplementedError

    @classmethod
    def from_saved(cls, saved: SavedModel, backend: Backend) -> _MLP:
        """An estimator that predicts with a saved network."""
        model = saved.config["model"]
        training = saved.config.get("training", {})
        est = cls(hidden=tuple(model["hidden"]), activation=model["activation"])
        est.set_params(**{k: v for k, v in training.items() if k in cls._param_names()})
        est.backend_ = backend
        est.standardizer_ = saved.standardizer
        est.n_features_in_ = int(saved.config["data"]["features"])
        est.task_ = saved.config["task"]
        if saved.classes:
            est.encoding_ = Encoding(list(saved.classes))
            est.classes_ = np.array(saved.classes)
        est._set_params(saved.params)
        return est


class MLPClassifier(_MLP):
    """A multilayer perceptron classifier (binary or multi-class).

    For two classes the network has one logit and the binary cross-entropy
    loss; for more, one logit per class and softmax cross-entropy. Label
    strings are mapped to classes in sorted order, except that ``positive``
    (for two classes) is put at index 1, the positive class.
    """

    _task_kind = "classifier"

    # Every parameter is spelled out, as scikit-learn reads them from this
    # signature: a **kwargs would be taken for a parameter named kwargs.
    def __init__(
        self,
        hidden: Sequence[int] = DEFAULTS["hidden"],
        *,
        activation: str = DEFAULTS["activation"],
        optimizer: str = DEFAULTS["optimizer"],
        lr: float = DEFAULTS["lr"],
        momentum: float = DEFAULTS["momentum"],
        weight_decay: float = DEFAULTS["weight_decay"],
        batch_size: int = DEFAULTS["batch_size"],
        epochs: int = DEFAULTS["epochs"],
        patience: int = DEFAULTS["patience"],
        monitor: str = DEFAULTS["metric"],
        schedule: str = DEFAULTS["schedule"],
        validation_fraction: float = 0.15,
        standardize: bool = True,
        seed: int = 0,
        backend: str | None = None,
        dtype: str = "float32",
        positive: str | None = None,
    ) -> None:
        super().__init__(
            hidden,
            activation=activation,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            monitor=monitor,
            schedule=schedule,
            validation_fraction=validation_fraction,
            standardize=standardize,
            seed=seed,
            backend=backend,
            dtype=dtype,
        )
        self.positive = positive

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callbacks: Sequence[Callback] = (),
        should_stop: Callable[[], bool] | None = None,
        feature_names: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        checkpoint: Checkpoint | None = None,
        resume: MemberState | None = None,
    ) -> MLPClassifier:
        """Trains on ``X`` (rows, features) and labels ``y`` (rows,).

        Args:
            eval_set: Validation ``(X, y)``; without it ``validation_fraction``
                of the rows (stratified) are held out for validation.
            callbacks: Told of each epoch and of the end (see ``train``).
            should_stop: Polled after each batch; True stops training.
            feature_names: Column names, for messages.
            classes: A fixed class order (index 1 positive for binary tasks).
            checkpoint: Called after each epoch with the training state.
            resume: Such a state to go on from, with the same data and
                parameters as the fit that made it.
        """
        self._fixed_classes = classes
        return self._fit(
            X, y, eval_set, callbacks, should_stop, feature_names, checkpoint, resume
        )

    def _encode(self, y: np.ndarray, fit: bool) -> tuple[np.ndarray, str, int]:
        y = _labels(y)
        if fit:
            self.classes_ = self._class_order(y)
            self.encoding_ = Encoding([str(c) for c in self.classes_])
        index = self._class_indices(y)
        n = len(self.encoding_.classes)
        return index, ("binary" if n == 2 else "multiclass"), n

    def _class_indices(self, y: np.ndarray) -> np.ndarray:
        """Each label's index in ``classes_``: numbers match numbers by value
        (1, 1.0 and True alike), anything else matches as strings, as a saved
        model's classes are stored."""
        index_of = {_label_key(c): i for i, c in enumerate(self.classes_.tolist())}
        keys = [_label_key(v) for v in y.tolist()]
        unknown = sorted({repr(k) for k in keys if k not in index_of})
        if unknown:
            raise UsageError(
                f"y: labels {', '.join(unknown[:5])} are not among the classes "
                f"{', '.join(repr(c) for c in self.classes_.tolist())}"
            )
        return np.asarray([index_of[k] for k in keys], dtype=np.int64)

    def _class_order(self, y: np.ndarray) -> np.ndarray:
        """``classes_``: in ``y``'s own type (so ``predict`` gives labels like
        ``y``'s, as scikit-learn's classifiers do), sorted, with ``positive``
        at index 1; or the fixed order ``fit`` was given."""
        if self._fixed_classes is not None:
            # Checks the order and the labels against it, and words the errors.
            encode_labels(
                y.astype(str), positive=self.positive, classes=self._fixed_classes
            )
            return np.asarray(self._fixed_classes)
        try:
            distinct = np.unique(y)
        except TypeError:
            raise UsageError(
                "y: labels must be of one kind (all numbers or all strings)"
            ) from None
        _refuse_continuous(distinct)
        if distinct.size < 2:
            raise UsageError(
                f"y holds {distinct.size} class(es); a classifier needs at least two"
            )
        if self.positive is None:
            return distinct
        wanted = _label_key(self.positive)
        found = [i for i, c in enumerate(distinct.tolist()) if _label_key(c) == wanted]
        if distinct.size != 2 or not found:
            raise UsageError(
                f"positive: {self.positive!r} must be one of exactly two classes; "
                f"the labels are {', '.join(repr(c) for c in distinct.tolist())}"
            )
        return distinct[[1 - found[0], found[0]]]

    def _classes(self) -> list[str]:
        return list(self.encoding_.classes)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, ``(rows, classes)``, columns in ``classes_`` order."""
        out = self._output(X)
        if self.task_ == "binary":
            return np.concatenate([1.0 - out, out], axis=1)
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The logits: ``(rows,)`` for two classes (positive: ``classes_[1]``),
        ``(rows, classes)`` for more.

        They order rows like :meth:`predict_proba` but do not saturate, so
        ROC metrics are computed on them.
        """
        z = self._run(X, logits=True)
        return z[:, 0] if self.task_ == "binary" else z

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels, ``(rows,)``, as the label strings of ``classes_``."""
        proba = self.predict_proba(X)
        if self.task_ == "binary":
            index = (proba[:, 1] > 0.5).astype(np.int64)
        else:
            index = np.argmax(proba, axis=1)
        return self.classes_[index]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on ``(X, y)``."""
        predicted = [_label_key(v) for v in self.predict(X).tolist()]
        truth = [_label_key(v) for v in _labels(y).tolist()]
        return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))


class MLPRegressor(_MLP):
    """A multilayer perceptron for one real-valued target (mean squared error)."""

    _task_kind = "regressor"

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callbacks: Sequence[Callback] = (),
        should_stop: Callable[[], bool] | None = None,
        feature_names: Sequence[str] | None = None,
        checkpoint: Checkpoint | None = None,
        resume: MemberState | None = None,
    ) -> MLPRegressor:
        """Trains on ``X`` (rows, features) and targets ``y`` (rows,).

        The arguments after ``y`` are those of :meth:`MLPClassifier.fit`.
        """
        return self._fit(
            X, y, eval_set, callbacks, should_stop, feature_names, checkpoint, resume
        )

    def _encode(self, y: np.ndarray, fit: bool) -> tuple[np.ndarray, str, int]:
        if np.asarray(y).dtype.kind == "c":
            raise UsageError(
                "y: Complex data not supported; regression targets must be real numbers"
            )
        try:
            targets = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise UsageError("y: regression targets must be numbers") from None
        return _labels(targets), "regression", 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values, ``(rows,)``."""
        return self._output(X)[:, 0]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        """The coefficient of determination R^2 on ``(X, y)``."""
        y = np.asarray(y, dtype=np.float64)
        residual = np.sum((y - self.predict(X)) ** 2)
        total = np.sum((y - y.mean()) ** 2)
        return float(1.0 - residual / total) if total > 0 else 0.0


def _naming_parameters(exc: UsageError) -> UsageError:
    """``exc`` naming this class's parameter where it names an option.

    The checks shared with the command line name its options
    (``--batch-size: must be at least 1``); a caller of ``fit`` set
    ``batch_size``. Each parameter is its option's name in Python's
    spelling, except ``monitor``, which the command line calls ``--metric``.
    """
    option, colon, rest = str(exc).partition(": ")
    if not (colon and option.startswith("--") and " " not in option):
        return exc
    name = "monitor" if option == "--metric" else option[2:].replace("-", "_")
    return UsageError(f"{name}: {rest}")


def _widths(hidden: Any) -> tuple[int, ...]:
    """``hidden`` as layer widths; an int is one layer (a bool is no width)."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        return (int(hidden),)
    if not isinstance(hidden, str):
        try:
            widths = tuple(operator.index(h) for h in hidden)
        except TypeError:
            pass
        else:
            if not any(isinstance(h, (bool, np.bool_)) for h in hidden):
                return widths
    raise UsageError(f"hidden: expected widths like (64, 32), got {hidden!r}")


def _labels(y: Any) -> np.ndarray:
    """``y`` as a ``(rows,)`` array; a column ``(rows, 1)`` is taken as one."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"y must be one-dimensional (rows,); got shape {y.shape}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise UsageError("y holds NaN or infinite values")
    return y


def _label_key(label: Any) -> Any:
    """What a label is matched by: its value for a number (so 1, 1.0 and True
    are one class, as Python's equality has it), else its string."""
    if isinstance(label, (bool, int, float, np.number, np.bool_)):
        return label.item() if isinstance(label, (np.number, np.bool_)) else label
    return str(label)


def _refuse_continuous(classes: np.ndarray) -> None:
    """Refuses float labels that are not whole numbers: they are a regression
    target, each value of which would otherwise become a class."""
    if classes.dtype.kind != "f":
        return
    fractional = classes[classes != np.round(classes)]
    if fractional.size:
        raise UsageError(
            f"y: labels such as {fractional[0]:g} are continuous values, not "
            "classes; use MLPRegressor for a continuous target"
        )


def _features(X: Any) -> np.ndarray:
    """``X`` as a float64 array ``(rows, features)`` of finite numbers."""
    X = _numbers(X)
    if X.ndim != 2:
        hint = ""
        if X.ndim == 1:
            hint = (
                ". Reshape your data: X.reshape(1, -1) if it is one sample, "
                "X.reshape(-1, 1) if it is one feature"
            )
        raise UsageError(
            f"X must be two-dimensional (rows, features); got shape {X.shape}{hint}"
        )
    if not np.all(np.isfinite(X)):
        raise UsageError("X holds NaN or infinite values")
    return X


def _numbers(X: Any) -> np.ndarray:
    """``X`` as a float64 array; complex numbers are refused, not cut to their
    real parts."""
    # NumPy would wrap a SciPy sparse matrix in a 0-d array of objects.
    if type(X).__module__.startswith("scipy.sparse"):
        raise UsageError(
            f"X: sparse input is not supported (got a {type(X).__name__}); pass "
            "a dense array, such as X.toarray()"
        )
    try:
        X = np.asarray(X)
    except ValueError:
        raise UsageError("X must hold numbers") from None
    if X.dtype.kind == "c":
        raise UsageError("X: Complex data not supported; X must hold real numbers")
    try:
        return X.astype(np.float64, copy=False)
    except TypeError as exc:
        # NumPy's reason names the value's type (a dict, say).
        raise UsageTypeError(f"X must hold numbers: {exc}") from None
    except ValueError:
        raise UsageError("X must hold numbers") from None


def _check_fit_shape(X: np.ndarray) -> None:
    """Refuses an ``X`` (rows, features) with no rows or no columns to fit on."""
    if X.shape[0] == 0:
        raise UsageError(
            f"X has 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
            "required; give at least one row"
        )
    if X.shape[1] == 0:
        raise UsageError(
            f"X has 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
            "required; give at least one column"
        )


def _identity(n: int) -> Standardizer:
    return Standardizer(np.zeros(n), np.ones(n))
