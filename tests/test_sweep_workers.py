"""How local workers start: forked from the sweep where that is safe, else not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlp_backend.sweep import processes
from mlp_backend.sweep.driver import run_sweep
from tests.test_sweep import options

# What the sweep command does before and after it imports NumPy, in a fresh
# process: pytest's own has threads (NumPy's BLAS pool among them).
CHOICE = """
import json, sys, threading
from mlp_backend.sweep import processes
processes.prepare_local_workers(None)
import numpy as np
np.ones((300, 300)) @ np.ones((300, 300))  # BLAS at work, as training would
choices = {"numpy": processes.worker_context("numpy").get_start_method()}
choices["cupy"] = processes.worker_context("cupy").get_start_method()
stop = threading.Event()
thread = threading.Thread(target=stop.wait)
thread.start()
choices["numpy, with a thread"] = processes.worker_context("numpy").get_start_method()
stop.set()
thread.join()
print(json.dumps(choices))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_a_numpy_sweep_of_one_thread_forks_its_workers_and_nothing_else_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHOICE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    choices = json.loads(done.stdout)
    assert choices["numpy"] == "fork"
    # CUDA does not survive a fork, and another thread's locks would not.
    assert choices["cupy"] in ("forkserver", "spawn")
    assert choices["numpy, with a thread"] in ("forkserver", "spawn")


def test_without_the_preparation_numpy_threads_rule_out_a_fork() -> None:
    # This process imported NumPy with its default BLAS pool of threads.
    assert processes.worker_context("numpy").get_start_method() != "fork"


def test_workers_from_the_fork_server_train_as_this_process_does(
    small_magic: Path, tmp_path: Path
) -> None:
    """In this process of several threads the workers come from the fork
    server (the command line's sweeps fork theirs): same results."""
    extra = {"lr": "0.1,0.03,0.01", "hidden": "4,8"}
    _, alone = run_sweep(options(small_magic, tmp_path / "a", **extra))
    _, pooled = run_sweep(options(small_magic, tmp_path / "b", workers=2, **extra))
    assert len(alone) == len(pooled) == 6
    for a, b in zip(alone, pooled, strict=True):
        assert b["state"] == a["state"] == "finished"
        assert b["val_loss"] == a["val_loss"]
        assert b["test_f1"] == a["test_f1"]
