"""Where arrays live: the array namespace, the device and the default float dtype.

Everything above this module gets its namespace from a :class:`Backend` and
writes its math against the Python array API standard, so the same code runs
on NumPy, on CuPy and on ``array-api-strict`` (the test-only backend that
rejects anything outside the standard).

Host/device boundary: the data layer hands NumPy arrays to
:meth:`Backend.asarray`, once per run; results come back through
:meth:`Backend.to_host` or :meth:`Backend.scalar`, once per epoch. Random
numbers are always drawn on the host with NumPy's seeded ``Generator`` and
then moved, so one seed gives the same start and the same batches on every
backend.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mlp_backend.errors import BackendError, UsageError

logger = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "numpy", "cupy")
DTYPE_CHOICES = ("float32", "float64")
ENV_VAR = "MLP_BACKEND"
# Below this many multiply-adds per matrix product, one BLAS thread is faster.
SMALL_MATMUL = 1 << 24


@dataclass(frozen=True)
class Backend:
    """An array namespace plus the few operations the standard lacks.

    Attributes:
        name: ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
        xp: The array-API namespace (array-api-compat's wrapper where needed).
        dtype: The float dtype object of ``xp`` that models use by default.
        device_name: A human-readable device description for run files.
    """

    name: str
    xp: ModuleType
    dtype: Any
    device_name: str

    @property
    def dtype_name(self) -> str:
        return "float64" if self.dtype == self.xp.float64 else "float32"

    def with_dtype(self, dtype: str) -> Backend:
        """The same backend with another default float dtype."""
        return Backend(
            self.name, self.xp, _float_dtype(self.xp, dtype), self.device_name
        )

    def asarray(self, host: Any, dtype: Any = None) -> Any:
        """Copies a host array (or nested list, or scalar) onto the device.

        Floating inputs take the backend's float dtype unless ``dtype`` says
        otherwise, so a float64 NumPy array never leaks float64 into a float32
        model.
        """
        host = np.asarray(host)
        if dtype is None and host.dtype.kind == "f":
            dtype = self.dtype
        return self.xp.asarray(host, dtype=dtype)

    @property
    def native(self) -> ModuleType | None:
        """The backend's own array module, for the in-place fast path.

        NumPy and CuPy have views, ``out=`` arguments and in-place ufuncs, so
        a training step can run without temporaries (:mod:`mlp_backend.fast`);
        array-api-strict has none of these and returns None, which keeps it
        on the generic path.
        """
        if self.name == "numpy":
            return np
        if self.name == "cupy":
            import cupy

            return cupy
        return None

    def to_host(self, array: Any) -> np.ndarray:
        """Copies a device array to a NumPy array."""
        if self.name == "cupy":
            return array.get()
        return np.asarray(array)

    def scalar(self, array: Any) -> float:
        """A 0-d device array as a Python float (one device round trip)."""
        return float(self.to_host(array))

    def synchronize(self) -> None:
        """Waits for queued device work; a no-op on host backends."""
        if self.name == "cupy":
            import cupy

            cupy.cuda.get_current_stream().synchronize()

    @contextmanager
    def training_scope(self, matmul_size: int) -> Iterator[None]:
        """Host settings for the duration of a training loop.

        On the host backends, floating-point warnings are silenced: divergence
        is detected from the losses and weights after each epoch, and NumPy's
        overflow warnings on the way there would only escape as noise. BLAS
        runs on one thread when the largest matrix product of a step
        (``matmul_size`` multiply-adds) is small: for such products the
        threads' hand-offs cost more than the work (measured: 20 us against
        100-200 us per 256x64x32 product on two busy cores).
        """
        if self.name == "cupy":
            yield
            return
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if matmul_size >= SMALL_MATMUL:
                yield
                return
            with _thread_pools().limit(limits=1, user_api="blas"):
                yield

    def free_memory(self) -> int | None:
        """Bytes that training could still take: the device's free memory on
        CuPy, the host's available memory elsewhere; None where the system
        does not say."""
        if self.name == "cupy":
            import cupy

            return int(cupy.cuda.runtime.memGetInfo()[0])
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return None

    def memory(self) -> dict[str, int | None]:
        """Device memory in bytes, where the device reports it."""
        if self.name == "cupy":
            import cupy

            free, total = cupy.cuda.runtime.memGetInfo()
            return {"memory_used": int(total - free), "memory_total": int(total)}
        return {"memory_used": None, "memory_total": None}

    def describe(self) -> dict[str, Any]:
        """What run files record about the backend."""
        return {"name": self.name, "device": self.device_name, "dtype": self.dtype_name}


@functools.cache
def _thread_pools() -> Any:
    """threadpoolctl's view of this process's thread pools, found once.

    Finding them walks every loaded library (3 ms, measured), which a sweep
    worker would otherwise pay for each group it trains; the BLAS that NumPy
    loaded is among them before any training starts.
    """
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _float_dtype(xp: ModuleType, dtype: str) -> Any:
    if dtype not in DTYPE_CHOICES:
        raise UsageError(
            f"--dtype: expected one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}"
        )
    return getattr(xp, dtype)


def _numpy(dtype: str) -> Backend:
    # NumPy's own namespace: since 2.1 it implements the standard this code
    # is written against (array-api-strict checks that), and it costs no
    # import, where array-api-compat's wrapper takes 0.17 s to build, paid by
    # every process that trains (measured).
    return Backend("numpy", np, _float_dtype(np, dtype), "cpu")


def namespace_of(*arrays: Any) -> ModuleType:
    """The array-API namespace of some arrays: NumPy's own for NumPy arrays
    (see :func:`_numpy`), else array-api-compat's choice."""
    if all(isinstance(a, np.ndarray | np.generic) for a in arrays):
        return np
    from array_api_compat import array_namespace

    return array_namespace(*arrays)


def _strict(dtype: str) -> Backend:
    xp = importlib.import_module("array_api_strict")
    return Backend("array_api_strict", xp, _float_dtype(xp, dtype), "cpu (strict)")


def cupy_problem() -> str | None:
    """Why CuPy cannot be used here, or None when it can.

    Never raises: a broken CuPy install must not break ``import mlp_backend``
    or the NumPy fallback.
    """
    try:
        import cupy
    except Exception as exc:  # any import failure means "not usable"
        return f"cupy is not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"cupy is installed but no CUDA device is usable ({exc})"
    if count < 1:
        return "cupy is installed but no CUDA device was found"
    return None


def _cuda_device() -> str:
    """The current CUDA device as ``cuda:N name``."""
    import cupy

    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    label = (
        props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    )
    return f"cuda:{device.id} {label}"


def _cupy(dtype: str) -> Backend:
    from array_api_compat import cupy as xp

    return Backend("cupy", xp, _float_dtype(xp, dtype), _cuda_device())


def resolve_name(name: str | None = None, dtype: str = "float32") -> str:
    """Which backend a choice means: the argument, else ``$MLP_BACKEND``, else auto.

    Checks everything :func:`get_backend` checks without importing an array
    namespace, so a process that only plans (a sweep's client) stays light.
    ``auto`` takes CuPy when a CUDA device works and NumPy otherwise, and logs
    one line saying which and why.

    Returns:
        ``numpy``, ``cupy`` or ``array_api_strict``.

    Raises:
        UsageError: The name or the dtype is not known.
        BackendError: ``cupy`` was asked for explicitly and cannot be used.
    """
    if dtype not in DTYPE_CHOICES:
        raise UsageError(
            f"--dtype: expected one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}"
        )
    source = "--backend"
    if name is None:
        name = os.environ.get(ENV_VAR) or "auto"
        source = ENV_VAR if ENV_VAR in os.environ else "--backend"
    name = name.strip().lower()
    if name in ("numpy", "array_api_strict"):
        return name
    if name == "array-api-strict":
        return "array_api_strict"
    if name == "cupy":
        problem = cupy_problem()
        if problem is not None:
            asked = "--backend cupy" if source == "--backend" else f"{source}=cupy"
            raise BackendError(
                f"{asked}: {problem}; install a CuPy build that matches the "
                "CUDA driver (pip install 'mlp-backend[gpu]') or use --backend numpy"
            )
        return name
    if name != "auto":
        raise UsageError(
            f"{source}: expected one of {', '.join(BACKEND_CHOICES)}, got {name!r}"
        )
    problem = cupy_problem()
    if problem is None:
        logger.info("backend auto: using cupy on %s", _cuda_device())
        return "cupy"
    logger.info("backend auto: %s: using numpy", problem)
    return "numpy"


def get_backend(name: str | None = None, dtype: str = "float32") -> Backend:
    """The backend a choice means (see :func:`resolve_name`), ready to use.

    Raises:
        UsageError: The name is not a known backend.
        BackendError: ``cupy`` was asked for explicitly and cannot be used.
    """
    return {"numpy": _numpy, "cupy": _cupy, "array_api_strict": _strict}[
        resolve_name(name, dtype)
    ](dtype)
