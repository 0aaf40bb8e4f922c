"""``--monitor``: run a job in a child process and follow it in the monitor.

The job runs as its own process (and process session), so the monitor's
terminal handling cannot disturb it and it can outlive the monitor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import click

from mlp_backend.errors import UsageError


def run_with_monitor(argv: list[str], runs_dir: Path) -> int:
    """Starts ``mlp-backend`` with ``argv`` minus ``--monitor``, then the monitor.

    Returns the exit code to leave with: the job's, if it ended while the
    monitor was open; 0 when the job was left running.
    """
    from tui import check_terminal

    problem = check_terminal()
    if problem is not None:
        # Before the job starts: it would otherwise run on, unwatched.
        raise UsageError(f"--monitor: {problem}")
    args = [a for a in argv if a != "--monitor"]
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / ".job.log"
    # The log is appended to by every job: this one's output starts here.
    start = path.stat().st_size if path.is_file() else 0
    # The child keeps its own copy of the log's descriptor; this one can go.
    with open(path, "ab") as log:
        job = subprocess.Popen(
            [sys.executable, "-m", "mlp_backend", "-q", *args],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Bad options or data end the job at once: show why instead of an empty monitor.
    try:
        code = job.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        code = None
    if code is not None and code != 0:
        with open(path, "rb") as log:
            log.seek(start)
            said = log.read().decode(errors="replace")
        click.echo(said[-2000:], err=True, nl=False)
        return code
    from tui import run_monitor

    run_monitor(runs_dir)
    code = job.poll()
    if code is not None:
        return code
    if click.confirm("The job is still running. Leave it running?", default=True):
        click.echo(f"job {job.pid} goes on; its output is in {path}")
        return 0
    # SIGINT lets the job finish its batch, save and mark itself stopped.
    job.send_signal(signal.SIGINT)
    return job.wait()
