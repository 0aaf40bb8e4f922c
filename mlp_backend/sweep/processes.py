"""How local worker processes start: forked from the sweep, else a fork server.

A fork of the sweep process is the cheapest start (a millisecond, and each
worker has this process's imports and data at once), but it is safe only in
a process of one thread: a fork copies the forking thread alone, so a lock
that another thread held, a BLAS pool's among them, stays locked in the
child for good. ``mlp-backend sweep`` therefore calls
:func:`prepare_local_workers` before it imports NumPy, which keeps NumPy's
BLAS to one thread, and :func:`worker_context` forks only where the process
still has one thread then. Elsewhere workers come from a fork server, which
imports the worker's modules once (about 0.1 s of CPU on this project's
2-core machines, beside the sweep's own start), or are spawned.

This module imports nothing of the library, so that the command can prepare
before it imports NumPy and the math.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
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


def prepare_local_workers(backend: str | None) -> None:
    """Gets this process ready to start local workers, before it imports NumPy.

    For a sweep that may run on NumPy, BLAS is kept to one thread here, so
    that this process can fork its workers (see the module doc); the workers
    would have one-thread BLAS anyway, since the processes fill the cores,
    and this process trains nothing while they run. One-thread BLAS did not
    change the time of a stack trained in-process either (a sweep of eight
    members of 64 units, 0.38 to 0.43 s with one thread or two). For CuPy,
    which cannot be forked once CUDA is up, the fork server starts now, so
    that its imports run beside this process's own.
    """
    if backend == "cupy":
        start_worker_server()
    else:
        os.environ.update({k: "1" for k in THREAD_VARIABLES})


def worker_context(backend: str | None) -> multiprocessing.context.BaseContext:
    """How local workers start for a sweep on ``backend`` (a resolved name).

    A fork of this process where that is safe: on Linux, for NumPy, in a
    process of one thread. The fork costs about a millisecond against the
    fork server's imports; on the 16-configuration grid of
    ``benchmarks/sweep.py`` the command took 0.47 to 0.56 s forked against
    0.56 to 0.64 s from the fork server. Elsewhere the fork server (started
    now unless :func:`prepare_local_workers` did), else spawn.
    """
    if backend == "numpy" and _may_fork():
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        start_worker_server()
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _may_fork() -> bool:
    """Whether this process may fork its workers: Linux, and one thread.

    Linux lists a process's threads in ``/proc``, native ones (BLAS pools,
    CUDA's) included, which ``threading`` does not see; elsewhere fork is
    left alone (macOS's system libraries do not survive one).
    """
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


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
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    context = multiprocessing.get_context("forkserver")
    from multiprocessing import forkserver, resource_tracker

    context.set_forkserver_preload(list(WORKER_MODULES))
    # The fork server starts the resource tracker first, unless it runs, and
    # that unblocks SIGINT after it; started here, outside the block, it
    # leaves the block whole.
    resource_tracker.ensure_running()
    with single_threaded(), sigint_held():
        forkserver.ensure_running()


@contextmanager
def sigint_held() -> Iterator[None]:
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
def sigint_ignored() -> Iterator[None]:
    """Ignores SIGINT in this process while the block runs.

    A process started in the block ignores it too, after ``exec`` as well,
    and Python leaves an ignored SIGINT ignored: how Dask's LocalCluster
    processes, which this code does not start itself, are kept out of a
    Ctrl-C. One that comes in the block (the second or two the cluster takes
    to start) is lost. Outside the main thread the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
