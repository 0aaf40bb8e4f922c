"""Where one training step's time goes: a per-phase breakdown on MAGIC.

Times each phase of one step of the (64, 32) relu network with Adam at batch
256 in float32 on NumPy (other shapes, activations and optimizers by option),
for the generic path (functional updates through the array API) and, where
the backend has one, the in-place fast path: forward, loss, backward,
optimizer, the whole step, and the per-epoch work (batch order and gather,
end-of-epoch finite check, validation). Phases are timed in interleaved rounds
and the median of the rounds is printed, so a burst of load from other
processes moves one round, not the figure.

    MLP_BACKEND_DATA=../shared/data/magic04.data python benchmarks/profile_step.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from mlp_backend.backend import get_backend
from mlp_backend.fast import FastStep, GenericStep
from mlp_backend.job import load_dataset
from mlp_backend.model import Shape, Stack
from mlp_backend.optim import Optimizer
from mlp_backend.train import to_device, validation_metrics


def timed(fn: Callable[[], object], calls: int) -> float:
    """Microseconds per call of ``fn`` over ``calls`` calls."""
    tick = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - tick) / calls * 1e6


def phases(
    hidden: tuple[int, ...], batch: int, activation: str, kind: str
) -> dict[str, Callable[[], object]]:
    """The phases to time, each a closure over prepared inputs."""
    backend = get_backend("numpy", "float32")
    xp = backend.xp
    data = load_dataset(None)
    device = to_device(backend, data.task, 2, data.parts["train"], data.parts["val"])
    n, d = device.X_train.shape
    shape = Shape(int(d), hidden, 1, activation, "binary_cross_entropy")
    stack = Stack.initialise(backend, shape, [hidden], [np.random.default_rng(0)])
    optimizer = Optimizer(backend, kind, [1e-3], [0.9], [0.0])
    rng = np.random.default_rng(1)
    Xb = xp.reshape(device.X_train[:batch], (1, batch, -1))
    Tb = xp.reshape(device.T_train[:batch], (1, batch, -1))
    z, cache = stack.forward(Xb)
    _, delta = stack.loss.value_and_delta(xp, z, Tb)
    grads = stack.backward(cache, delta)

    def gather() -> object:
        index = backend.asarray(rng.permutation(n))
        return xp.take(device.X_train, index, axis=0), xp.take(
            device.T_train, index, axis=0
        )

    def finite_check() -> object:
        ok = xp.ones(1, dtype=xp.bool)
        for p in stack.params:
            ok = ok & xp.all(xp.isfinite(p), axis=(1, 2))
        return backend.to_host(ok)

    def validation() -> object:
        out = logits(device.X_val)
        loss = stack.loss.value(xp, out, device.T_val)
        proba = stack.loss.output(xp, out)
        return backend.to_host(loss), validation_metrics(
            backend, device.task, device.y_val, proba, [0], out
        )

    def generic_step() -> None:
        loss, g = stack.loss_and_grads(Xb, Tb)
        optimizer.step(stack.params, g, 1.0)

    table: dict[str, Callable[[], object]] = {
        "generic forward": lambda: stack.forward(Xb),
        "generic loss": lambda: stack.loss.value_and_delta(xp, z, Tb),
        "generic backward": lambda: stack.backward(cache, delta),
        "generic optimizer": lambda: optimizer.step(stack.params, grads, 1.0),
        "generic step": generic_step,
    }
    # What the trainer runs validation through (see Trainer._run).
    logits = GenericStep(stack, optimizer).logits
    if FastStep.supported(backend):
        fast = FastStep(stack, optimizer)
        logits = fast.logits
        Ab = fast.augmented(Xb)
        fast.forward(Ab)
        fast.loss(Tb, 0, batch)
        fast.backward()
        table.update(
            {
                "fast forward": lambda: fast.forward(Ab),
                "fast loss": lambda: fast.loss(Tb, 0, batch),
                "fast backward": fast.backward,
                "fast optimizer": lambda: fast.update(1.0),
                "fast step": lambda: fast.step(Xb, Tb, 0, batch, 1.0),
            }
        )
    table.update(
        {
            "epoch: order + gather": gather,
            "epoch: finite check": finite_check,
            "epoch: validation": validation,
        }
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="64,32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    hidden = tuple(int(w) for w in args.hidden.split(","))
    backend = get_backend("numpy", "float32")
    table = phases(hidden, args.batch, args.activation, args.optimizer)
    samples: dict[str, list[float]] = {name: [] for name in table}
    with backend.training_scope(args.batch * 64 * 32):
        for _ in range(args.rounds):
            for name, fn in table.items():
                calls = (
                    max(1, args.calls // 20) if name.startswith("epoch") else args.calls
                )
                samples[name].append(timed(fn, calls))
    print(f"load average {os.getloadavg()[0]:.2f}; hidden {hidden}, batch {args.batch}")
    print(f"{'phase':24} {'us/call':>9} {'min':>9} {'max':>9}")
    for name, values in samples.items():
        print(
            f"{name:24} {statistics.median(values):9.1f} {min(values):9.1f}"
            f" {max(values):9.1f}"
        )


if __name__ == "__main__":
    main()
