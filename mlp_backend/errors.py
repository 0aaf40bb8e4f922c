"""The project's error and warning types.

One error type per kind of fault. The command line turns each into a one-line
message and an exit code; library callers can catch them by kind.
"""

from __future__ import annotations

# Exit codes of the command line.
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130


class MLPBackendError(Exception):
    """Base class of every error this library raises on purpose."""

    exit_code = 2


class UsageError(MLPBackendError, ValueError):
    """An option, argument or spec value is invalid. The message names it.

    Also a ValueError, which Python and scikit-learn raise for bad arguments,
    so that callers' ``except ValueError`` (a grid search's, say) takes it.
    """


class UsageTypeError(UsageError, TypeError):
    """A value of the wrong type, such as a dict among the numbers of ``X``.

    Also a TypeError, which Python and NumPy raise for such a value.
    """


class NotFittedError(UsageError, AttributeError):
    """An estimator was asked to predict before it was fitted.

    Also an AttributeError, as scikit-learn's error of this name is; but not
    that class, as the library does not import scikit-learn.
    """


class OutputError(MLPBackendError):
    """Standard output or an output file cannot be written (a full disk, say).

    The command's work is done and saved; what it would print is not."""

    exit_code = EXIT_RUN_FAILED


class DataError(MLPBackendError):
    """An input file cannot be read as a table. The message names file and line."""


class BackendError(MLPBackendError):
    """The requested array backend cannot be used on this machine."""


class RunError(MLPBackendError):
    """A run folder or saved model is missing, locked or malformed."""


class MLPBackendWarning(UserWarning):
    """A degraded but working state (a constant column, a backend fallback)."""


class DataConversionWarning(MLPBackendWarning):
    """Input was taken in another shape than given: a column of targets as one.

    Named and worded as scikit-learn's warning for the same case, which its
    estimator checks look for by name; it is not that class, so filter it as
    this one.
    """


class DivergenceWarning(MLPBackendWarning):
    """A fit diverged and kept its last finite weights (scikit-learn warns of
    a fit that did not converge alike)."""
