"""Fused sweeps against one configuration at a time: prints times and ratios.

Usage::

    MLP_BACKEND_DATA=path/to/magic04.data python benchmarks/sweep.py [--reference]

1. The 16-configuration grid (hidden 16, 32, 64, 128 x lr 0.1, 0.03, 0.01,
   0.003; one relu layer; SGD with momentum; batch 256; 20 epochs on MAGIC):
   the whole ``mlp-backend sweep`` command, fused with the default workers,
   against ``--no-fuse --workers 1``.
2. Time per member-epoch of the Trainer for 1, 8, 64 and 256 stacked members.
3. One-at-a-time PyTorch on the same grid, when torch is installed, with
   PyTorch's default threads and with one: its training loops only (with a
   validation pass per epoch), timed in this process, against our whole
   command with its start-up, data loading and run files; and, like for
   like, the same loops as a whole process of their own (Python, ``import
   torch``, reading the data with this package's loader for the same split).
   Each PyTorch figure is divided by the fused command timed right before
   and after it, since the machine's speed drifts over a minute; and the
   loops against the sweep's own work in a process past its imports (see
   :func:`sweep_span`).
4. With ``--reference``: ``--preset reference`` fused and with ``--no-fuse``.

The package's bytecode is compiled first (see :func:`compile_package`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The folder the timed commands run in: ``python -m`` and ``-c`` put the
#: working directory first on ``sys.path``, where a stray ``grp.py`` once
#: shadowed the standard library's and ran inside a timed PyTorch process.
HERE = Path(__file__).resolve().parent

GRID = [
    "--hidden",
    "16,32,64,128",
    "--lr",
    "0.1,0.03,0.01,0.003",
    "--activation",
    "relu",
    "--optimizer",
    "momentum",
    "--batch-size",
    "256",
    "--epochs",
    "20",
    "--patience",
    "0",
    "--backend",
    "numpy",
]


def data_path() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "magic04.data"
    path = Path(os.environ.get("MLP_BACKEND_DATA", default))
    if not path.is_file():
        sys.exit(f"MAGIC not found at {path}; set MLP_BACKEND_DATA")
    # Absolute: the timed commands run in another folder (see HERE).
    return path.resolve()


def compile_package() -> None:
    """Writes the package's bytecode in advance, as ``pip install`` does.

    An editable install leaves that to the first import, and where
    ``PYTHONDONTWRITEBYTECODE`` is set (it is on these machines) every
    process compiles the package again: about 0.1 s of each command's
    start-up, which an installed package, PyTorch among them, never pays.
    """
    import compileall

    import mlp_backend

    compileall.compile_dir(Path(mlp_backend.__file__).parent, quiet=1)


def spread(times: list[float]) -> str:
    return f"{min(times):.2f}-{max(times):.2f}"


def time_command(args: list[str], runs: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlp_backend",
            "-q",
            "sweep",
            *args,
            "--runs-dir",
            str(runs),
        ],
        check=True,
        cwd=HERE,
    )
    return time.perf_counter() - start


def sweep_span(args: list[str], runs: Path) -> float:
    """Seconds of the sweep's own work in a fresh process, past its imports.

    Like for like with PyTorch's timed loops: Python's start-up and the
    imports are left out, as ``import torch`` is there; what is timed is
    :func:`~mlp_backend.sweep.driver.run_sweep` as the command calls it:
    reading the data (which the PyTorch loops do not include), planning, the
    workers' training and every run file. The child prints the seconds.
    """
    argv = [*args, "--runs-dir", str(runs)]
    code = (
        "import time\n"
        "from mlp_backend.sweep_command import sweep\n"
        "from mlp_backend.sweep.processes import prepare_local_workers\n"
        f"options = dict(sweep.make_context('sweep', {argv!r}).params)\n"
        "del options['open_monitor']\n"
        "prepare_local_workers('numpy')\n"
        "from mlp_backend.sweep.driver import run_sweep\n"
        "start = time.perf_counter()\n"
        "run_sweep(options)\n"
        "print(time.perf_counter() - start)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=HERE,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.split()[-1])


def member_epoch_times(
    data: Path, counts: list[int], epochs: int = 2
) -> dict[int, float]:
    from mlp_backend.backend import get_backend
    from mlp_backend.job import load_dataset
    from mlp_backend.train import Member, TrainConfig, Trainer, to_device

    dataset = load_dataset(str(data))
    backend = get_backend("numpy", "float32")
    device = to_device(
        backend,
        dataset.task,
        dataset.n_classes,
        dataset.parts["train"],
        dataset.parts["val"],
    )
    config = TrainConfig(
        activation="relu",
        optimizer="momentum",
        batch_size=256,
        epochs=epochs,
        patience=0,
    )
    # A first run pays for what a process does once (NumPy's random module,
    # BLAS's first calls): 10 ms per member-epoch against 6 after it, which
    # flattered every ratio to one member, the first count timed.
    Trainer(backend, config, [Member(hidden=(64,), lr=0.01)], device).run()
    times = {}
    for m in counts:
        members = [Member(hidden=(64,), lr=0.01, seed=s) for s in range(m)]
        start = time.perf_counter()
        Trainer(backend, config, members, device).run()
        times[m] = (time.perf_counter() - start) / (m * epochs)
    return times


def torch_grid(torch, data: Path, threads: int | None = None) -> float:
    """The same 16 configurations as a plain PyTorch loop, one after another.

    Each epoch ends with a validation pass (loss and accuracy), as the
    tutorials' loops do and as the sweep does for every member; ``threads``
    sets PyTorch's intra-op pool (None keeps its default).
    """
    from mlp_backend.job import load_dataset

    dataset = load_dataset(str(data))
    X, y = (torch.tensor(a) for a in dataset.parts["train"])
    X, y = X.float(), y.float().reshape(-1, 1)
    Xv, yv = (torch.tensor(a) for a in dataset.parts["val"])
    Xv, yv = Xv.float(), yv.float().reshape(-1, 1)
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    start = time.perf_counter()
    for hidden in (16, 32, 64, 128):
        for lr in (0.1, 0.03, 0.01, 0.003):
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                torch.nn.Linear(X.shape[1], hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 1),
            )
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            for _ in range(20):
                model.train()
                order = torch.randperm(X.shape[0])
                for s in range(0, X.shape[0], 256):
                    rows = order[s : s + 256]
                    optimizer.zero_grad()
                    loss_fn(model(X[rows]), y[rows]).backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    logits = model(Xv)
                    loss_fn(logits, yv).item()
                    ((logits > 0).float() == yv).float().mean().item()
    seconds = time.perf_counter() - start
    torch.set_num_threads(default)
    return seconds


def torch_process(data: Path, threads: int | None) -> float:
    """Seconds of a fresh process that imports torch and runs :func:`torch_grid`."""
    code = (
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "import torch, sweep\n"
        f"sweep.torch_grid(torch, Path({str(data)!r}), {threads!r})\n"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference",
        action="store_true",
        help="Also time --preset reference (minutes on a CPU).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Runs of each grid command, interleaved (default 3).",
    )
    args = parser.parse_args()
    data = data_path()
    print(f"data {data}, {os.cpu_count()} cores")
    compile_package()
    print("mlp_backend's bytecode compiled before timing, as pip install does")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        grid = [*GRID, "--data", str(data)]
        fused_runs, alone_runs = [], []
        for r in range(args.repeats):
            fused_runs.append(time_command([*grid, "--name", f"fused-{r}"], runs))
            alone_runs.append(
                time_command(
                    [*grid, "--name", f"alone-{r}", "--no-fuse", "--workers", "1"],
                    runs,
                )
            )
        fused = statistics.median(fused_runs)
        alone = statistics.median(alone_runs)
        print(
            f"16-config grid, whole command, median of {args.repeats}: "
            f"fused {fused:.2f}s ({spread(fused_runs)}), --no-fuse --workers 1 "
            f"{alone:.2f}s ({spread(alone_runs)}), ratio {alone / fused:.2f}x"
        )

        times = member_epoch_times(data, [1, 8, 64, 256])
        for m, t in times.items():
            print(
                f"{m:4d} members: {1e3 * t:7.2f} ms per member-epoch, "
                f"{times[1] / t:5.2f}x of one member"
            )

        try:
            import torch
        except ImportError:
            print("PyTorch comparison skipped: torch is not installed")
        else:
            for label, threads in (("default threads", None), ("1 thread", 1)):
                # The machine's speed drifts over the minute PyTorch takes, so
                # each PyTorch figure is divided by fused runs timed just
                # before and after it rather than by the median above.
                name = f"beside-{threads}"
                before = time_command([*grid, "--name", f"{name}-0"], runs)
                # The peer's training loops only, against our whole command.
                seconds = torch_grid(torch, data, threads)
                between = time_command([*grid, "--name", f"{name}-1"], runs)
                # Like for like: a whole PyTorch process against ours, and
                # the loops against the sweep's work without its start-up.
                whole = torch_process(data, threads)
                after = time_command([*grid, "--name", f"{name}-2"], runs)
                span = sweep_span([*grid, "--name", f"{name}-3"], runs)
                loops_ours = (before + between) / 2
                whole_ours = (between + after) / 2
                print(
                    f"16-config grid, one-at-a-time PyTorch {torch.__version__} "
                    f"({label}): loops {seconds:.1f}s, ratio "
                    f"{seconds / loops_ours:.2f}x to the fused sweep beside it "
                    f"({loops_ours:.2f}s), {seconds / span:.2f}x to its work "
                    f"past the imports ({span:.2f}s); whole "
                    f"process {whole:.1f}s, ratio {whole / whole_ours:.2f}x "
                    f"({whole_ours:.2f}s)"
                )

        if args.reference:
            reference = [
                "--preset",
                "reference",
                "--data",
                str(data),
                "--backend",
                "numpy",
            ]
            fused = time_command([*reference, "--name", "ref-fused"], runs)
            alone = time_command([*reference, "--name", "ref-alone", "--no-fuse"], runs)
            print(
                f"--preset reference: fused {fused:.1f}s, --no-fuse {alone:.1f}s, "
                f"ratio {alone / fused:.2f}x"
            )


if __name__ == "__main__":
    main()
