"""Running a sweep's groups behind the ``concurrent.futures.Executor`` interface.

One code path serves every place trials run: :class:`InlineExecutor` (this
process, ``--workers 1``), a ``ProcessPoolExecutor`` (local processes) and
a Dask ``distributed.Client``'s executor (``--scheduler``, ``--dask-local``).
Workers write the trial run folders; the client receives each group's
records and alone writes ``results.jsonl`` and ``results.csv``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlp_backend.errors import RunError, UsageError
from mlp_backend.job import (
    Dataset,
    ignored_signals,
    interrupted,
    stop_gracefully_on_signals,
)
from mlp_backend.runs import STOP_REQUEST, RunFolder, process_running
from mlp_backend.sweep.folder import SweepFolder, result_record
from mlp_backend.sweep.plan import Group
from mlp_backend.sweep.processes import (
    sigint_held,
    sigint_ignored,
    single_threaded,
    worker_context,
)
from mlp_backend.sweep.spec import Trial
from mlp_backend.sweep.worker import DataSpec, GroupJob, adopt_dataset, run_group

logger = logging.getLogger(__name__)


class InlineExecutor(Executor):
    """Runs each submitted call at once in this process (``--workers 1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


#: A Dask scheduler address: ``tcp://host:port`` (Dask's default scheme when
#: none is given) or another of its schemes that name a host and a port.
SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ws|wss)://)?[^\s/]+:([0-9]{1,5})")


def check_scheduler(address: str) -> None:
    """Refuses a ``--scheduler`` that is not an address, before any folder exists.

    Dask's own parser would raise a bare ValueError only once the sweep
    folder was made; a well-formed address that nothing answers at is found
    out when the executor opens (:func:`open_executor`).

    Raises:
        UsageError: Naming ``--scheduler`` and the expected form.
    """
    match = SCHEDULER_ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match.group(3)) < 2**16:
        raise UsageError(
            f"--scheduler: expected a Dask scheduler address tcp://host:port, "
            f"got {address!r}"
        )


DASK_NEEDED = "--scheduler/--dask-local need Dask"
DASK_INSTALL = "install it with pip install 'mlp-backend[cluster]'"


def check_dask() -> None:
    """Refuses ``--scheduler`` and ``--dask-local`` where Dask is not
    installed, before any folder exists (the import itself waits for
    :func:`open_executor`: it takes a second).

    Raises:
        UsageError: Saying how to install it.
    """
    if importlib.util.find_spec("distributed") is None:
        raise UsageError(f"{DASK_NEEDED}, which is not installed; {DASK_INSTALL}")


def default_workers(trials: int) -> int:
    """One process per core, but no more than there are trials to run."""
    return max(1, min(os.cpu_count() or 1, trials))


@contextmanager
def open_executor(
    workers: int,
    scheduler: str | None = None,
    dask_local: int | None = None,
    loaded: tuple[DataSpec, Dataset] | None = None,
    backend: str | None = None,
) -> Iterator[Executor]:
    """The executor the options ask for, closed on exit.

    Args:
        workers: Local processes; 1 runs in this process.
        scheduler: Address of a running Dask scheduler, ``tcp://host:port``.
        dask_local: Start a Dask ``LocalCluster`` of this many processes.
        loaded: A data set this process has loaded, handed to local worker
            processes as they start (Dask workers read the data themselves).
        backend: The sweep's resolved backend, which decides how local
            workers start (see :func:`~mlp_backend.sweep.processes.worker_context`).

    Raises:
        UsageError: Dask is asked for but not installed.
    """
    if scheduler is not None or dask_local is not None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise UsageError(f"{DASK_NEEDED} ({exc}); {DASK_INSTALL}") from None
        if dask_local is not None:
            # Its processes start ignoring SIGINT (see sigint_ignored), so
            # that a Ctrl-C reaches this process alone, which asks the trials
            # to stop through the sweep's stop request: reaching Dask's
            # processes, it ended them with tracebacks while the sweep waited.
            with single_threaded(), sigint_ignored():
                cluster = LocalCluster(
                    n_workers=dask_local,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            with cluster, Client(cluster) as client:
                yield client.get_executor()
        else:
            try:
                client = Client(scheduler)
            except (OSError, TimeoutError) as exc:
                raise RunError(
                    f"--scheduler {scheduler}: cannot connect ({exc}); start the "
                    "scheduler, then continue with --resume"
                ) from None
            with client:
                yield client.get_executor()
        return
    if workers == 1:
        yield InlineExecutor()
        return
    context = worker_context(backend)
    with (
        single_threaded(),
        ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=worker_setup,
            initargs=(os.getpid(), loaded, ignored_signals()),
        ) as pool,
    ):
        if context.get_start_method() == "fork":
            # A fork pool starts all its processes at its first submit: here,
            # with SIGINT held, so that each worker takes a Ctrl-C of these
            # moments only once its own handler is in place (see sigint_held),
            # not with the handler of this process that it was forked with.
            with sigint_held():
                pool.submit(os.getpid)
        yield pool


def worker_setup(
    sweep: int,
    loaded: tuple[DataSpec, Dataset] | None,
    ignored: frozenset[int] = frozenset(),
) -> None:
    """Initializer of each local worker process.

    Signals become a stop request (see :func:`job.stop_gracefully_on_signals`),
    and the worker ends itself when the sweep process ``sweep`` is gone: after
    a ``kill -9`` of the sweep no one would record its work, and a resumed
    sweep would otherwise train the same trials beside it. ``loaded`` is the
    data set the sweep process read (see :func:`worker.adopt_dataset`);
    ``ignored`` the signals it ignores, which the worker ignores too.
    """
    if loaded is not None:
        adopt_dataset(*loaded)
    stop_gracefully_on_signals(ignored)
    threading.Thread(target=_watch_sweep, args=(sweep,), daemon=True).start()


def _watch_sweep(sweep: int) -> None:
    """Kills this worker once the sweep process has ended.

    The worker's parent is the sweep process (fork, spawn) or the fork server. The
    fork server outlives the sweep process while any worker does (each holds
    the pipe whose end the server waits for), so the sweep process itself is
    watched too, and a zombie counts as ended: a process that killed the
    sweep without reaping it left the workers training, and holding the
    sweep's output pipes open, for as long as the zombie lasted.
    """
    parent = os.getppid()
    while os.getppid() == parent and process_running(sweep):
        time.sleep(0.25)
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Settings:
    """How a sweep's trials are trained, shared by all groups."""

    data: DataSpec
    backend: str | None
    dtype: str
    prune: str | None = None


def run_groups(
    folder: SweepFolder,
    trials: Sequence[Trial],
    groups: Sequence[Group],
    settings: Settings,
    executor: Executor,
    on_result: Callable[[dict[str, Any]], None] = lambda record: None,
) -> list[dict[str, Any]]:
    """Submits every group, records each trial as its group ends.

    A group whose worker died or whose call raised outside the trials'
    own handling marks all its trials ``failed``; the others go on.

    Returns:
        The results records written, in the order the groups ended.
    """
    futures = {}
    written = []
    for group in groups:
        # In-process groups run inside submit: after an interrupt, start no more.
        if interrupted():
            break
        job = GroupJob(
            str(folder.path),
            settings.data,
            settings.backend,
            settings.dtype,
            tuple((i, trials[i]) for i in group.trials),
            settings.prune,
        )
        future = executor.submit(run_group, job)
        if future.done():
            # Ran in this process: record it now, not after the whole sweep.
            written += _record(folder, trials, group, future, on_result)
        else:
            futures[future] = group
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            written += _record(folder, trials, futures[future], future, on_result)
        if interrupted() and pending:
            # A file rather than signals, because workers may be Dask processes
            # on other machines that share only the sweep folder: groups in
            # flight stop as interrupted, and groups not begun return at once
            # (see worker.run_group). None is cancelled: cancelling a Dask
            # future ends its task even while it trains, and the records of
            # its trials with it.
            (folder.path / STOP_REQUEST).touch()
    # Every group has ended: the request has done its work.
    (folder.path / STOP_REQUEST).unlink(missing_ok=True)
    return written


def _record(
    folder: SweepFolder,
    trials: Sequence[Trial],
    group: Group,
    future: Future,
    on_result: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Writes the results of one ended group; returns its records."""
    written = []
    try:
        outcomes = future.result()
    except Exception as exc:
        # A pool broken by Ctrl-C reaching its workers is an interrupt, not a fault.
        state = "interrupted" if interrupted() else "failed"
        message = f"{type(exc).__name__}: {exc}"
        logger.error("group %s was lost: %s", list(group.trials), message)
        outcomes = [
            {"trial": i, "state": state, "error": message, "summary": None}
            for i in group.trials
        ]
        # The worker cannot say so itself: mark its trial folders for readers.
        for i in group.trials:
            trial = RunFolder(folder.trial_path(i), sync=False)
            if trial.path.is_dir():
                trial.set_status(state, reason=message)
    for outcome in outcomes:
        i = outcome["trial"]
        written.append(
            result_record(
                i,
                trials[i],
                outcome["state"],
                outcome["summary"],
                outcome["error"],
                outcome.get("members"),
            )
        )
    folder.add_results(written)
    for record in written:
        on_result(record)
    return written
