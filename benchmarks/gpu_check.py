"""One call that checks and times mlp-backend on a CUDA GPU (about five minutes).

Needs only NumPy, CuPy, pytest and this package (no PyTorch, no Textual):

1. runs the backend-facing tests with the CuPy backend
   (``MLP_TEST_BACKENDS=cupy pytest tests/test_gradients.py ...``);
2. trains the same float32 network on NumPy and on CuPy and compares the
   per-epoch losses and the final weights within float32 tolerance;
3. times epochs of (64, 32) relu Adam at batch 256, 4096 and full batch,
   synchronised with the device (each epoch ends with a device-to-host copy
   of its figures, so the epoch time includes all queued work);
4. times the fused sweep with 1, 8, 64 and 256 members per member-epoch;
5. counts host-device copies through ``Backend.asarray`` and
   ``Backend.to_host`` at two batch sizes: equal counts mean none per batch;

and prints one table, with the GPU targets of the performance issue judged
in it: the stack of 256 members at least 10 times one member's throughput,
and an epoch at batch 4096 faster than on NumPy. Exits 2 with "no CUDA
device" where CuPy cannot run, and 1 when a check or a target fails.

    MLP_BACKEND_DATA=../shared/data/magic04.data python benchmarks/gpu_check.py

``--backend numpy --skip-tests --members 1,2`` runs the same steps on the
CPU in seconds: how the script is checked where there is no GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlp_backend.backend import Backend, cupy_problem, get_backend
from mlp_backend.job import Dataset, load_dataset
from mlp_backend.train import (
    DeviceData,
    Member,
    MemberResult,
    TrainConfig,
    Trainer,
    to_device,
)

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_gradients.py",
    "tests/test_training.py",
    "tests/test_sweep_fused.py",
    "tests/test_fast_path.py",
    "tests/test_backend.py",
]
HIDDEN = (64, 32)
SWEEP_MEMBERS = (1, 8, 64, 256)
#: The issue's GPU targets: the widest stack's throughput against one member's.
STACK_GAIN = 10.0
# Float32 runs on two devices differ in summation order only.
RTOL, ATOL = 1e-3, 1e-4


@dataclass
class Row:
    """One line of the closing table."""

    check: str
    value: str
    ok: bool | None = None


def run_tests(backend_name: str = "cupy") -> Row:
    """The backend-facing test files on ``backend_name``, in a child pytest."""
    env = dict(os.environ, MLP_TEST_BACKENDS=backend_name)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else done.stderr.strip()[-200:]
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return Row(f"tests ({backend_name})", summary, done.returncode == 0)


def train(
    backend: Backend, data: DeviceData, batch: int, epochs: int, members: int = 1
) -> list[MemberResult]:
    """Trains ``members`` (64, 32) relu Adam members with spread learning rates."""
    config = TrainConfig(batch_size=batch, epochs=epochs, patience=0)
    stack = [Member(HIDDEN, 1e-3 * (1.0 + 0.01 * j), seed=j) for j in range(members)]
    return Trainer(backend, config, stack, data).run()


def device_data(backend: Backend, dataset: Dataset) -> DeviceData:
    parts = dataset.parts
    return to_device(backend, dataset.task, 2, parts["train"], parts["val"])


def epoch_seconds(results: list[MemberResult]) -> float:
    """Median epoch time, past the first epoch (kernel compilation, caches)."""
    times = [r["seconds"] for r in results[0].history[1:]]
    return statistics.median(times or [results[0].history[0]["seconds"]])


def compare(dataset: Dataset, gpu: Backend, cpu: Backend, epochs: int = 3) -> Row:
    """Float32 training on the GPU against the same run on NumPy."""
    runs = [train(b, device_data(b, dataset), 256, epochs)[0] for b in (cpu, gpu)]
    worst = 0.0
    ok = True
    for a, b in zip(runs[0].history, runs[1].history, strict=True):
        for key in ("train_loss", "val_loss"):
            ok &= bool(np.isclose(a[key], b[key], rtol=RTOL, atol=ATOL))
            worst = max(worst, abs(a[key] - b[key]) / max(abs(a[key]), 1e-12))
    for pa, pb in zip(runs[0].params, runs[1].params, strict=True):
        ok &= bool(np.allclose(pa, pb, rtol=RTOL, atol=ATOL))
    label = f"{gpu.name} = {cpu.name}, float32, {epochs} epochs"
    return Row(label, f"loss rel {worst:.1e}", ok)


def time_epochs(
    backend: Backend, data: DeviceData, label: str
) -> tuple[list[Row], dict[int, float]]:
    """Epoch times at batch 256, 4096 and the full training set: the rows,
    and the seconds by batch size."""
    n = int(data.X_train.shape[0])
    rows, seconds = [], {}
    for batch, epochs in ((256, 4), (4096, 6), (n, 6)):
        seconds[batch] = epoch_seconds(train(backend, data, batch, epochs))
        name = "full" if batch == n else str(batch)
        value = f"{seconds[batch] * 1e3:.2f} ms"
        rows.append(Row(f"epoch {label} batch {name}", value))
    return rows, seconds


def time_sweep(
    backend: Backend, data: DeviceData, members: tuple[int, ...]
) -> tuple[list[Row], float]:
    """Seconds per member-epoch of a fused stack, and its gain over one
    member; and the gain of the widest stack."""
    rows = []
    single = None
    gain = 1.0
    for m in members:
        per = epoch_seconds(train(backend, data, 256, 3, members=m)) / m
        single = per if single is None else single
        gain = single / per
        value = f"{per * 1e3:.3f} ms/member-epoch, x{gain:.1f} one member's rate"
        rows.append(Row(f"sweep {m} members", value))
    return rows, gain


def targets(
    device: float, host: float, stack_gain: float, widest: int, label: str
) -> list[Row]:
    """The issue's GPU targets, judged on this run's figures: ``device`` and
    ``host`` are the seconds of an epoch at batch 4096 on each."""
    return [
        Row(
            f"target: {widest} members >= {STACK_GAIN:g}x one member",
            f"x{stack_gain:.1f}",
            stack_gain >= STACK_GAIN,
        ),
        Row(
            f"target: batch 4096 epoch, {label} < numpy",
            f"{device * 1e3:.2f} ms against {host * 1e3:.2f} ms",
            device < host,
        ),
    ]


@contextmanager
def counting_transfers() -> Iterator[dict[str, int]]:
    """Counts ``Backend.asarray`` and ``Backend.to_host`` calls while open."""
    counts = {"to_device": 0, "to_host": 0}
    saved = Backend.asarray, Backend.to_host

    def counted(name: str, method: Callable) -> Callable:
        def wrapper(self: Backend, *args, **kwargs):
            counts[name] += 1
            return method(self, *args, **kwargs)

        return wrapper

    Backend.asarray = counted("to_device", saved[0])
    Backend.to_host = counted("to_host", saved[1])
    try:
        yield counts
    finally:
        Backend.asarray, Backend.to_host = saved


def transfers(
    backend: Backend,
    data: DeviceData,
    batches: tuple[int, int] = (256, 4096),
    epochs: int = 3,
) -> Row:
    """Copies per epoch at two batch sizes; equal counts: none per batch."""
    per_epoch = []
    for batch in batches:
        with counting_transfers() as counts:
            train(backend, data, batch, epochs)
        per_epoch.append({k: v / epochs for k, v in counts.items()})
    small, large = per_epoch
    value = ", ".join(f"{k} {v:.1f}" for k, v in small.items()) + " per epoch"
    label = f"transfers (batch {batches[0]} = {batches[1]})"
    return Row(label, value, small == large)


def print_table(rows: list[Row], device: str) -> None:
    print(f"\nmlp-backend GPU check on {device}")
    width = max(len(r.check) for r in rows)
    for r in rows:
        mark = "" if r.ok is None else ("  ok" if r.ok else "  FAILED")
        print(f"{r.check:{width}}  {r.value}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument(
        "--backend",
        choices=("cupy", "numpy"),
        default="cupy",
        help="numpy: the same steps on the CPU, a dry run of this script",
    )
    parser.add_argument(
        "--members",
        default=",".join(map(str, SWEEP_MEMBERS)),
        help="stack sizes to time, comma-separated, one first",
    )
    args = parser.parse_args(argv)
    members = tuple(int(m) for m in args.members.split(","))
    if args.backend == "cupy":
        problem = cupy_problem()
        if problem is not None:
            print(f"gpu_check: no CUDA device: {problem}", file=sys.stderr)
            return 2
    gpu = get_backend(args.backend, "float32")
    cpu = get_backend("numpy", "float32")
    dataset = load_dataset(None)
    rows = [] if args.skip_tests else [run_tests(args.backend)]
    rows.append(compare(dataset, gpu, cpu))
    data = device_data(gpu, dataset)
    label = "cupy" if args.backend == "cupy" else "numpy (dry run)"
    device_rows, device = time_epochs(gpu, data, label)
    host_rows, host = time_epochs(cpu, device_data(cpu, dataset), "numpy")
    rows += device_rows + host_rows
    sweep_rows, gain = time_sweep(gpu, data, members)
    rows += sweep_rows
    rows.append(transfers(gpu, data))
    rows += targets(device[4096], host[4096], gain, members[-1], label)
    print_table(rows, gpu.device_name)
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
