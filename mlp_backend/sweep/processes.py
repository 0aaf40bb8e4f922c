"""How local worker processes start: a fork server, one-thread BLAS.

This module imports nothing of the library, so that ``mlp-backend sweep`` can
start the fork server before it imports NumPy and the math itself: the
server's imports (about 0.4 s) then run beside this process's own imports and
reading of the data, instead of after them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

#: BLAS thread pools in each worker process: one, since the processes already
#: fill the cores and nested pools would fight over them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: What a worker imports to train; the fork server imports it in advance.
#: NumPy loads ``numpy.random`` on first use, which each worker's first group
#: did (12 to 25 ms) until it was named here.
WORKER_MODULES = (
    "numpy",
    "numpy.random",
    "mlp_backend.sweep.execute",
    "mlp_backend.sweep.worker",
    "threadpoolctl",
)


def worker_context() -> multiprocessing.context.BaseContext:
    """How local workers start: forked from a fork server where there is one.

    Not a plain fork of this process, which may hold threads (a progress bar,
    BLAS pools); the fork server is a single-threaded process that
    :func:`start_worker_server` started early. Elsewhere, spawn.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def uses_local_workers(options: Mapping[str, Any]) -> bool:
    """Whether the ``sweep`` options ask for local worker processes."""
    dask = options.get("scheduler") or options.get("dask_local")
    return not dask and options.get("workers") != 1


def start_worker_server() -> None:
    """Starts the fork server of local workers now, where the platform has one.

    It imports the worker's modules once, with one-thread BLAS, while this
    process goes on importing, reading the data and planning; each worker is
    then a fork of it, ready at once instead of importing NumPy and the
    library itself (a third of a second each, measured on MAGIC sweeps).
    Calling it again does nothing.
    """
    context = worker_context()
    if context.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver, resource_tracker

    context.set_forkserver_preload(list(WORKER_MODULES))
    # The fork server starts the resource tracker first, unless it runs, and
    # that unblocks SIGINT after it; started here, outside the block, it
    # leaves the block whole.
    resource_tracker.ensure_running()
    with single_threaded(), _sigint_held():
        forkserver.ensure_running()


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Holds SIGINT back from this thread and the processes it starts in the block.

    A Ctrl-C reaches the whole process group. The fork server ignores it
    only once its imports are done, so one during them killed it with a
    traceback, and the sweep then failed to start its workers (exit code 1,
    no message). A process inherits the blocked signal: the fork server drops
    it when it starts ignoring SIGINT, and each worker takes it once its own
    handler is in place (:func:`mlp_backend.job.stop_gracefully_on_signals`).
    This thread takes one that came meanwhile as the block ends (another
    thread may take it sooner; either way it is a KeyboardInterrupt). Ignoring
    the signal here instead lost it: a CI run saw a sweep that a Ctrl-C hit
    while it started its fork server run to its end and exit 0.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Child processes started in the block inherit one-thread BLAS settings."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: "1" for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
