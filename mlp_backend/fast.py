"""Training steps: the generic functional step and the in-place fast step.

The trainer drives either through the same three calls (``step``,
``epoch_losses`` and ``snapshot``) and reads the parameters from the stack:

- :class:`GenericStep` runs :meth:`Stack.loss_and_grads` and
  :meth:`Optimizer.step` through the array API, creating new arrays on every
  operation. Every backend can run it; array-api-strict can run nothing else.
- :class:`FastStep` runs the same mathematics with the in-place semantics of
  NumPy and CuPy (``Backend.native``): all parameters of a stack live in one
  flat buffer ``theta`` of shape ``(m, P)`` and the ``W``/``b`` arrays of
  :attr:`Stack.params` are views into it; each layer's ``[W; b]`` is one
  matrix, so with a row of ones below the activations one product adds
  the bias and one product gives ``[dW; db]``, written into a view of the
  flat gradient buffer ``grad`` by ``matmul(..., out=)``;
  activations and deltas go into buffers allocated once per batch size, unit
  by unit ``(m, units, rows)`` (see :meth:`FastStep.augmented`); and
  the optimizer updates all parameters with a handful of in-place operations
  on ``(m, P)`` arrays, with the per-member learning rate, momentum and weight
  decay as ``(m, 1)`` columns. For each batch size the step's operations are
  bound once, buffers and all, into a program of calls without arguments
  (:meth:`FastStep._program`), so that a step runs them in a row.

A small network's step is dominated by per-operation overhead rather than by
arithmetic (``benchmarks/RESULTS.md``), so the fast step's gain is in the
number of operations, not in their speed. It also leaves the loss value out of
the step: the output logits of every step are written into an epoch buffer,
and :meth:`FastStep.epoch_losses` evaluates the loss of all steps at once.

Weight decay applies to weights only: ``decay`` is the per-member coefficient
times a 0/1 row that is 1 on the weight entries of the flat layout and 0 on
the biases.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NamedTuple

from mlp_backend.backend import Backend
from mlp_backend.model import Stack
from mlp_backend.optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, SLOTS, Optimizer

Array = Any
#: One operation of a step's program: a call without arguments.
Op = Callable[[], object]


class GenericStep:
    """The functional step: new arrays for every result, any backend.

    Args:
        stack: The stack to train; its ``params`` are replaced every step.
        optimizer: Its optimizer.
    """

    def __init__(self, stack: Stack, optimizer: Optimizer) -> None:
        self.stack = stack
        self.optimizer = optimizer
        self._losses: list[Array] = []

    def step(self, X: Array, T: Array, start: int, stop: int, factor: float) -> None:
        """One update on rows ``start:stop`` of the epoch's batch order.

        Args:
            X: The epoch's inputs in batch order ``(m, n, n_features)``, or
                ``(1, n, n_features)`` when all members share the order.
            T: The epoch's targets in batch order ``(m, n, n_outputs)``, or
                ``(1, n, n_outputs)`` likewise.
            start: The batch's first row.
            stop: One past its last row.
            factor: The schedule's learning-rate multiplier.
        """
        loss, grads = self.stack.loss_and_grads(
            X[:, start:stop, :], T[:, start:stop, :]
        )
        self.stack.params = self.optimizer.step(self.stack.params, grads, factor)
        self._losses.append(loss)

    def epoch_losses(self, T: Array, batch_size: int, done: int) -> Array:
        """The mean loss of each of the epoch's ``done`` steps, ``(done, m)``."""
        losses = self.stack.backend.xp.stack(self._losses)
        self._losses = []
        return losses

    def snapshot(self) -> list[Array]:
        """The parameters as they are now; later steps never change them."""
        return self.stack.params

    def logits(self, X: Array) -> Array:
        """The stack's output ``z`` on ``X`` ``(m or 1, rows, n_features)``."""
        return self.stack.forward(X)[0]


#: Rows per block of FastStep.logits: at most BLOCK_ROWS, and fewer where one
#: activation of the widest layer would pass BLOCK_BYTES (half a megabyte, a
#: core's L2 cache here), so that a block's activations stay in cache; at
#: least MIN_BLOCK_ROWS, so that per-call overhead does not show. In a sweep,
#: 4 members of 128 units on MAGIC's validation rows took 1.6 ms an epoch in
#: blocks of 256 rows against 2.8 in blocks of 1024; small stacks were alike.
BLOCK_ROWS = 1024
MIN_BLOCK_ROWS = 256
BLOCK_BYTES = 1 << 19

# The output delta is (output(z) - y) divided by the batch size, or for the
# mean squared error multiplied by 2 / (batch * outputs): see losses.py.
_MEAN_OVER_ROWS = ("binary_cross_entropy", "softmax_cross_entropy")


class _Batch:
    """The arrays of the batch that a program's operations read and write,
    set before each run, unit by unit: the rows with their row of ones
    ``A``, where the logits go ``out``, and the targets as the loss reads
    them ``target`` (see :meth:`FastStep._targets`)."""

    __slots__ = ("A", "out", "target")

    def __init__(self) -> None:
        self.A: Array = None
        self.out: Array = None
        self.target: Array = None


class _Program(NamedTuple):
    """A step's operations for batches of one size, with their buffers."""

    buffers: dict[str, Any]
    forward: list[Op]
    loss: list[Op]
    backward: list[Op]
    #: The three in a row.
    step: list[Op]


class FastStep:
    """The in-place step over one flat parameter buffer (NumPy and CuPy).

    Building one moves the stack's parameters and the optimizer's state into
    flat buffers and leaves views of them in ``stack.params`` and
    ``optimizer.state``, so everything that reads those (validation,
    ``member_to_host``, ``select``) sees the current values. After a
    compaction (``stack.select`` and ``optimizer.select``) build a new one.

    Args:
        stack: The stack to train; ``stack.params`` become views of ``theta``.
        optimizer: Its optimizer; its state becomes views of flat buffers and
            its step count ``t`` advances with every step.
    """

    @staticmethod
    def supported(backend: Backend) -> bool:
        """Whether ``backend`` has the in-place semantics this step needs."""
        return backend.native is not None

    def __init__(self, stack: Stack, optimizer: Optimizer) -> None:
        backend = stack.backend
        assert backend.native is not None, f"{backend.name} has no in-place fast path"
        self.np: ModuleType = backend.native
        # Host arrays can be read as Python numbers without a device sync.
        self._on_host = backend.name == "numpy"
        self.stack = stack
        self.optimizer = optimizer
        np = self.np
        m = stack.members
        dtype = stack.params[0].dtype
        self.bounds, self.size = _layout(stack.shape.sizes)

        # Parameters and optimizer state move into flat buffers, once.
        self.theta = self._flat(stack.params, dtype)
        stack.params = self.views(self.theta)
        self.grad = np.zeros((m, self.size), dtype=dtype)
        self.blocks = self._blocks(self.theta)
        self.grad_blocks = self._blocks(self.grad)
        # Each layer's W as a view, for the backward pass.
        self.W = stack.params[0::2]
        self.inputs = stack.shape.sizes[0] + 1
        self.state = self._flat_state(optimizer, m, dtype)
        optimizer.state = [self.views(flat) for flat in self.state]

        # Per-member hyperparameters as (m, 1) columns over the flat layout.
        self.lr = np.reshape(optimizer.lr, (m, 1))
        self.momentum = np.reshape(optimizer.momentum, (m, 1))
        # The learning rate times the schedule's factor, remade when it changes.
        self._factor = 1.0
        self._lr = self.lr.copy()
        # Adam's bias corrections of the current step.
        self._bias = (1.0, 1.0)
        self.decay = None
        if optimizer.decays:
            weights = np.zeros((1, self.size), dtype=dtype)
            for lo, hi, _ in self.bounds[0::2]:
                weights[:, lo:hi] = 1.0
            self.decay = np.reshape(optimizer.weight_decay, (m, 1)) * weights
        self.work = np.empty((2, m, self.size), dtype=dtype)
        self._batch = _Batch()
        self._programs: dict[int, _Program] = {}
        # The program of the last forward, which loss() and backward() go on.
        self._last: _Program | None = None
        self._logits: Array | None = None
        self._logits_T: Array | None = None
        # Two arrays like the epoch's logits, for its binary cross-entropy.
        self._loss_work: Array | None = None
        self._epoch_X: Array | None = None
        self._epoch_A: Array | None = None
        self._epoch_T: Array | None = None
        self._epoch_U: Array | None = None
        # The rows logits() is asked about (the validation set), with ones.
        self._fixed_X: Array | None = None
        self._fixed_A: Array | None = None
        self._fixed_z: Array | None = None
        self._row = self._row_views()
        self._update = self._update_ops()

    def _flat_state(self, optimizer: Optimizer, m: int, dtype: Any) -> list[Array]:
        """The optimizer's moment buffers as flat ``(m, P)`` arrays.

        They start at zero, or hold the optimizer's state when it has some (a
        stack rebuilt after a compaction keeps its moments).
        """
        count = SLOTS[optimizer.kind]
        if optimizer.state:
            return [self._flat(optimizer.state[g], dtype) for g in range(count)]
        return [self.np.zeros((m, self.size), dtype=dtype) for _ in range(count)]

    def _flat(self, arrays: Sequence[Array], dtype: Any) -> Array:
        """Copies ``[W0, b0, ...]`` (member axis first) into a new ``(m, P)`` buffer."""
        np = self.np
        flat = np.empty((int(arrays[0].shape[0]), self.size), dtype=dtype)
        for view, array in zip(self.views(flat), arrays, strict=True):
            view[...] = array
        return flat

    def views(self, flat: Array) -> list[Array]:
        """``[W0, b0, ...]`` as views of ``flat`` ``(m, P)``: no copies."""
        m = flat.shape[0]
        return [flat[:, lo:hi].reshape(m, *shape) for lo, hi, shape in self.bounds]

    def _blocks(self, flat: Array) -> list[Array]:
        """Per layer, ``[W; b]`` ``(m, fan_in + 1, fan_out)`` as one view of ``flat``.

        The flat layout stores each ``b`` right after its ``W``, so the pair is
        one matrix whose last row is the bias.
        """
        m = flat.shape[0]
        pairs = zip(self.bounds[0::2], self.bounds[1::2], strict=True)
        return [flat[:, W[0] : b[1]].reshape(m, W[2][0] + 1, W[2][1]) for W, b in pairs]

    def augmented(self, X: Array) -> Array:
        """``[X, 1]^T`` ``(m, n_features + 1, n)``, made once per epoch's ``X``.

        With a row of ones below the features, one matrix product with
        ``[W; b]^T`` adds the bias, and in the backward pass one product with
        ``delta`` gives ``[dW; db]``: two operations fewer per layer and step.

        The fast step keeps every batch array unit by unit, ``(m, units,
        rows)``, the transpose of the generic step's ``(m, rows, units)``: its
        element-wise operations then run over whole contiguous buffers,
        where the column of ones that rows carry made the activations' view
        strided and its writes twice as slow, and the products it needs are
        as fast or faster. A step of (64, 32) relu units at batch 256 took
        130 us against 141, of 4 x 16 units 70.5 against 80 (medians of five
        interleaved runs).
        """
        if X is not self._epoch_X:
            self._epoch_X, self._epoch_A = X, self._with_ones(X)
        return self._epoch_A

    def _with_ones(self, X: Array) -> Array:
        """``X`` ``(m, n, features)`` unit by unit, ``(m, features + 1, n)``,
        with a last unit of ones."""
        np = self.np
        m, n, features = (int(s) for s in X.shape)
        A = np.empty((m, features + 1, n), dtype=self.theta.dtype)
        A[:, :-1, :] = X.transpose(0, 2, 1)
        A[:, -1, :] = 1.0
        return A

    def snapshot(self) -> list[Array]:
        """A copy of the parameters now, which later steps leave unchanged."""
        return self.views(self.theta.copy())

    def logits(self, X: Array) -> Array:
        """The stack's output ``z`` on ``X`` ``(m or 1, rows, n_features)``.

        For rows asked about every epoch (the validation set): their row of
        ones is added once, and the forward pass runs over blocks of rows
        (see :data:`BLOCK_BYTES`) into buffers that are kept, which bounds its
        memory whatever the rows and makes it 2.7 times faster than the
        generic forward for 4 members of 128 units on MAGIC's validation set
        (measured; 1.1 times for 4 of 16).

        Returns:
            ``(m, rows, n_outputs)``, a view of a buffer the next call
            overwrites.
        """
        np = self.np
        if X is not self._fixed_X:
            self._fixed_X, self._fixed_A = X, self._with_ones(X)
        A = self._fixed_A
        rows = int(A.shape[2])
        shape = (self.stack.members, self.stack.shape.n_outputs, rows)
        if self._fixed_z is None or self._fixed_z.shape != shape:
            self._fixed_z = np.empty(shape, dtype=self.theta.dtype)
        block = self._block_rows()
        for start in range(0, rows, block):
            stop = min(start + block, rows)
            self.forward(A[:, :, start:stop], out=self._fixed_z[:, :, start:stop])
        return self._fixed_z.transpose(0, 2, 1)

    def _block_rows(self) -> int:
        """Rows per block of :meth:`logits` (see :data:`BLOCK_BYTES`)."""
        widest = max(self.stack.shape.sizes[1:])
        row_bytes = self.stack.members * widest * self.theta.dtype.itemsize
        return max(MIN_BLOCK_ROWS, min(BLOCK_ROWS, BLOCK_BYTES // row_bytes))

    def _buffers(self, rows: int) -> dict[str, Any]:
        """Activation and delta buffers for batches of ``rows``, ``(m, units,
        rows)`` like the batch itself (see :meth:`augmented`)."""
        np = self.np
        m = self.stack.members
        dtype = self.theta.dtype
        widths = self.stack.shape.sizes[1:]
        # Hidden activations carry a last unit of ones (see augmented).
        hidden = [np.ones((m, w + 1, rows), dtype=dtype) for w in widths[:-1]]
        return {
            "z": [np.empty((m, w, rows), dtype=dtype) for w in widths],
            "a": hidden,
            "a_view": [a[:, :-1, :] for a in hidden],
            "delta": [np.empty((m, w, rows), dtype=dtype) for w in widths],
            "scratch": [np.empty((m, w, rows), dtype=dtype) for w in widths[:-1]],
            # relu's derivative, 0 or 1 in the float dtype: multiplying by
            # a bool array casts it on every use (15 us against 33 us
            # for 4 x 256 x 128 in place).
            "flag": [np.empty((m, w, rows), dtype=dtype) for w in widths[:-1]],
            # The input rows times the output delta, and the input layer's
            # gradient the other way round (see _input_layer_grads).
            "weighted": np.empty((m, self.inputs, rows), dtype),
            "input_grads_T": np.empty((m, widths[0], self.inputs), dtype),
        }

    def _program(self, rows: int) -> _Program:
        """The operations of a step on batches of ``rows``, built once per size.

        A small network's step is mostly the Python around its array
        operations: the loop over layers, its branches, the buffer lookups
        and the views made anew on every step. Bound once into calls without
        arguments, a step of (64, 32) relu units at batch 256 took 139.5 us
        against 154.3 (median of 15 rounds, measured in a prototype).
        """
        program = self._programs.get(rows)
        if program is None:
            buffers = self._buffers(rows)
            forward = self._forward_ops(buffers)
            loss = self._loss_ops(buffers, rows)
            backward = self._backward_ops(buffers, rows)
            program = _Program(
                buffers, forward, loss, backward, forward + loss + backward
            )
            self._programs[rows] = program
        return program

    def forward(self, A: Array, out: Array | None = None) -> Array:
        """Runs the stack on a batch into the buffers; returns the logits.

        Args:
            A: The batch with a row of ones, ``(m, n_features + 1, rows)``
                (columns of :meth:`augmented`).
            out: Where to write the logits ``(m, n_outputs, rows)``; a buffer
                reused by the next batch of the same size when None.

        Returns:
            The output ``z`` ``(m, n_outputs, rows)``.
        """
        program = self._program(int(A.shape[2]))
        batch = self._batch
        batch.A = A
        batch.out = program.buffers["z"][-1] if out is None else out
        for op in program.forward:
            op()
        self._last = program
        return batch.out

    def loss(self, T: Array, start: int, stop: int) -> Array:
        """The output delta dL/dz of the last forward's batch, rows ``start:stop``.

        Args:
            T: The epoch's targets in batch order ``(m or 1, n, n_outputs)``.
            start: The batch's first row.
            stop: One past its last row.

        Returns:
            ``delta`` ``(m, n_outputs, rows)``, a reused buffer.
        """
        self._batch.target = self._targets(T)[:, :, start:stop]
        for op in self._last.loss:
            op()
        return self._last.buffers["delta"][-1]

    def backward(self) -> None:
        """Backpropagates the last :meth:`loss` delta into ``grad``'s views."""
        for op in self._last.backward:
            op()

    def _forward_ops(self, buffers: dict[str, Any]) -> list[Op]:
        """Per layer ``z = [W; b]^T @ [a; 1]``, then the activation into ``a``."""
        P = functools.partial
        masks = self.stack.masks
        ops: list[Op] = []
        for l in range(len(self.blocks)):
            ops.append(self._layer_product(l, buffers))
            if l == len(self.blocks) - 1:
                break
            a = buffers["a_view"][l]
            ops += self._activation_ops(buffers["z"][l], a, buffers["flag"][l])
            if masks[l] is not None:
                mask = masks[l].transpose(0, 2, 1)
                ops.append(P(self.np.multiply, a, mask, out=a))
        return ops

    def _layer_product(self, l: int, buffers: dict[str, Any]) -> Op:
        """``[W; b]^T @ [a; 1]`` of layer ``l``: the first reads the batch's
        rows, the last writes where the batch's logits go."""
        np, batch, block = self.np, self._batch, self.blocks[l].transpose(0, 2, 1)
        last = l == len(self.blocks) - 1
        if l == 0 and last:
            return lambda: np.matmul(block, batch.A, out=batch.out)
        if l == 0:
            z = buffers["z"][0]
            return lambda: np.matmul(block, batch.A, out=z)
        a = buffers["a"][l - 1]
        if last:
            return lambda: np.matmul(block, a, out=batch.out)
        return functools.partial(np.matmul, block, a, out=buffers["z"][l])

    def _activation_ops(self, z: Array, a: Array, flag: Array) -> list[Op]:
        np, P = self.np, functools.partial
        activation = self.stack.activation
        if activation.name == "relu":
            # z * (z > 0): the flag is kept for the backward pass, and this is
            # faster than maximum(z, 0) (53 us against 79 us for 4 x 256 x 128).
            return [P(np.greater, z, 0.0, out=flag), P(np.multiply, z, flag, out=a)]
        if activation.name == "tanh":
            return [P(np.tanh, z, out=a)]
        f, xp = activation.f, self.stack.backend.xp

        def other() -> None:
            a[...] = f(xp, z)

        return [other]

    def _derivative_ops(
        self, l: int, buffers: dict[str, Any]
    ) -> tuple[list[Op], Array]:
        """Operations that leave ``f'(z)`` of hidden layer ``l`` in an array,
        and that array."""
        np, P = self.np, functools.partial
        activation = self.stack.activation
        if activation.name == "relu":
            return [], buffers["flag"][l]
        z, a, scratch = buffers["z"][l], buffers["a_view"][l], buffers["scratch"][l]
        if activation.name == "tanh":
            return [
                P(np.multiply, a, a, out=scratch),
                P(np.subtract, 1.0, scratch, out=scratch),
            ], scratch
        df, xp = activation.df, self.stack.backend.xp

        def other() -> None:
            scratch[...] = df(xp, z, a)

        return [other], scratch

    def _loss_ops(self, buffers: dict[str, Any], rows: int) -> list[Op]:
        """The output delta: ``(output(z) - y)`` over the batch (see losses.py)."""
        np, batch, P = self.np, self._batch, functools.partial
        stack = self.stack
        delta = buffers["delta"][-1]
        name = stack.loss.name
        if name == "binary_cross_entropy":
            # sigmoid(z) - y = (tanh(z / 2) + 1 - 2 y) / 2: four in-place
            # operations with 1 - 2y made once per epoch, and as stable as the
            # two-branch sigmoid for any finite z.
            if self._on_host and delta.size == 1:

                def one() -> None:
                    delta[0, 0, 0] = self._one_delta(
                        batch.out.item(), batch.target.item()
                    )

                return [one]
            return [
                lambda: np.multiply(batch.out, 0.5, out=delta),
                P(np.tanh, delta, out=delta),
                lambda: np.add(delta, batch.target, out=delta),
                # A ufunc call, not `*=`: NumPy's operator path is slower with
                # a Python scalar, which shows in batch-1 steps (0.9 us
                # against 1.7).
                P(np.multiply, delta, 0.5 / rows, out=delta),
            ]
        # The loss's own functions take (m, rows, outputs), as the generic
        # step's arrays are: a softmax runs along the last axis.
        output, xp = stack.loss.output, stack.backend.xp
        by_rows = delta.transpose(0, 2, 1)

        def difference() -> None:
            z, target = batch.out.transpose(0, 2, 1), batch.target.transpose(0, 2, 1)
            np.subtract(output(xp, z), target, out=by_rows)

        ops: list[Op] = [difference]
        if name in _MEAN_OVER_ROWS:
            ops.append(P(np.divide, delta, rows, out=delta))
        else:
            k = stack.shape.n_outputs
            ops.append(P(np.multiply, 2.0 / (rows * k), delta, out=delta))
        return ops

    def _one_delta(self, logit: float, shifted: float) -> float:
        """The output delta of one member's one row with target ``(1 -
        shifted) / 2``, as the loss's operations compute it, in Python floats:
        0.7 us against 7.2 for four ufunc calls on one value, which was a
        quarter of a batch-1 step (and rounded once, not four times)."""
        return (math.tanh(0.5 * logit) + shifted) * 0.5

    def _targets(self, T: Array) -> Array:
        """What the loss's operations read of the epoch's targets ``T``, unit
        by unit ``(m, n_outputs, n)`` like the logits: ``1 - 2 T`` for the
        binary cross-entropy, ``T`` itself otherwise. Made once per epoch's
        ``T``, not on every step."""
        if T is not self._epoch_T:
            if self.stack.loss.name == "binary_cross_entropy":
                U = 1.0 - 2.0 * T
            else:
                U = T
            self._epoch_T, self._epoch_U = T, U.transpose(0, 2, 1)
        return self._epoch_U

    def _backward_ops(self, buffers: dict[str, Any], rows: int) -> list[Op]:
        """From the output delta to every layer's ``[dW; db]`` in ``grad``."""
        np, P = self.np, functools.partial
        masks = self.stack.masks
        # [a; 1] @ delta^T = [dW; db]: the batch sum of delta comes with dW.
        # One row makes it an outer product, which an element-wise multiply
        # computes exactly without a matrix-product call.
        product = np.multiply if rows == 1 else np.matmul
        delta = buffers["delta"][-1]
        ops: list[Op] = []
        for l in range(len(self.blocks) - 1, -1, -1):
            delta_T = delta.transpose(0, 2, 1)
            if l == 0:
                ops.append(self._first_layer_grads(product, delta_T))
                break
            a = buffers["a"][l - 1]
            ops.append(P(product, a, delta_T, out=self.grad_blocks[l]))
            if l == 1 and delta.shape[1] == 1 and rows > self.inputs:
                # One hidden layer, one output, more rows than inputs.
                ops += self._input_layer_grads(delta, buffers)
                break

            # Hidden layer: back through W, then through the activation. With
            # one output unit the product is an outer product, which an
            # element-wise multiply does without a matrix-product call.
            below = buffers["delta"][l - 1]
            through = np.multiply if delta.shape[1] == 1 else np.matmul
            ops.append(P(through, self.W[l], delta, out=below))
            derivative_ops, derivative = self._derivative_ops(l - 1, buffers)
            ops += derivative_ops
            ops.append(P(np.multiply, below, derivative, out=below))
            if masks[l - 1] is not None:
                mask = masks[l - 1].transpose(0, 2, 1)
                ops.append(P(np.multiply, below, mask, out=below))
            delta = below
        return ops

    def _first_layer_grads(self, product: Callable[..., Any], delta_T: Array) -> Op:
        """``[A; 1] @ delta^T`` into the first layer's ``[dW; db]``."""
        batch, grads = self._batch, self.grad_blocks[0]
        return lambda: product(batch.A, delta_T, out=grads)

    def _input_layer_grads(self, delta: Array, buffers: dict[str, Any]) -> list[Op]:
        """``[dW0; db0]`` of a network of one hidden layer and one output.

        The hidden delta ``delta W1^T * f'(z)`` has the entries
        ``delta_r W1_j D_rj`` (``D = f'(z)``), so

            [dW0; db0]_ij = sum_r A_ri delta_r W1_j D_rj
                          = W1_j [(A * delta)^T D]_ij:

        the product takes the derivative itself, and the two element-wise
        passes over ``(m, width, rows)`` that the hidden delta costs become
        one over ``(m, features + 1, rows)`` and one over ``(m, features + 1,
        width)``: a saving when there are more rows than inputs (55 us of 378
        per step for 4 members of 128 relu units at batch 256; at batch 1 it
        would cost more than it saves). Most sweeps on a binary task have
        this shape.

        The product runs the other way round, ``D^T (A * delta)^T``, with the
        long side first, and the multiply by ``W1`` writes its transpose into
        the gradient: the same sums, though BLAS may round them in another
        order, 81 us against 96 for 4 members of 128 units at batch 256, 12.7
        against 13.8 for one of 64.
        """
        np, batch, P = self.np, self._batch, functools.partial
        masks = self.stack.masks
        weighted = buffers["weighted"]
        grads_T = buffers["input_grads_T"]
        grads = self.grad_blocks[0]
        derivative_ops, derivative = self._derivative_ops(0, buffers)
        ops: list[Op] = [
            lambda: np.multiply(batch.A, delta, out=weighted),
            *derivative_ops,
            P(np.matmul, derivative, weighted.transpose(0, 2, 1), out=grads_T),
            P(np.multiply, grads_T, self.W[1], out=grads.transpose(0, 2, 1)),
        ]
        if masks[0] is not None:
            ops.append(P(np.multiply, grads, masks[0], out=grads))
        return ops

    def _row_views(self) -> dict[str, Array] | None:
        """1-D views and buffers for :meth:`_row_step`, where it applies.

        It applies to one member on the host with one hidden layer of tanh
        or relu units and one output under the binary cross-entropy: the
        reference experiment's networks trained one at a time.
        """
        stack = self.stack
        if not (
            self._on_host
            and stack.members == 1
            and len(self.blocks) == 2
            and stack.shape.n_outputs == 1
            and stack.loss.name == "binary_cross_entropy"
            and stack.activation.name in ("tanh", "relu")
            and stack.masks[0] is None
        ):
            return None
        np = self.np
        width = stack.shape.sizes[1]
        dtype = self.theta.dtype
        a = np.ones(width + 1, dtype=dtype)
        return {
            "W0": self.blocks[0][0],
            "W1": self.blocks[1][0][:, 0],
            "dW0": self.grad_blocks[0][0],
            "dW1": self.grad_blocks[1][0][:, 0],
            "z": np.empty(width, dtype=dtype),
            "a": a,
            "a_view": a[:-1],
            "slope": np.empty(width, dtype=dtype),
            "delta": np.empty(width, dtype=dtype),
        }

    def _row_step(self, x: Array, T: Array, start: int) -> float:
        """Forward and backward of row ``start`` (``x``, ``(n_features + 1,)``)
        into ``grad``; returns the logit.

        The same operations on the same numbers as the batch path's program
        at batch 1 (so the same rounding), on 1-D views: a batch-1 step's
        time is mostly per-call overhead, which the general path's 3-D
        broadcasts double (13.6 us against 24.5 for a step of 100 tanh
        units, measured).
        """
        np = self.np
        row = self._row
        z, a, a_view, slope = row["z"], row["a"], row["a_view"], row["slope"]
        np.matmul(x, row["W0"], out=z)
        if self.stack.activation.name == "tanh":
            np.tanh(z, out=a_view)
            np.multiply(a_view, a_view, out=slope)
            np.subtract(1.0, slope, out=slope)
        else:
            np.greater(z, 0.0, out=slope)
            np.multiply(z, slope, out=a_view)
        logit = float(np.dot(a, row["W1"]))
        d = self._one_delta(logit, self._targets(T)[0, 0, start].item())
        np.multiply(a, d, out=row["dW1"])
        delta = row["delta"]
        np.multiply(row["W1"][:-1], d, out=delta)
        np.multiply(delta, slope, out=delta)
        np.multiply(x[:, None], delta, out=row["dW0"])
        return logit

    def update(self, factor: float) -> None:
        """Applies the optimizer to ``theta`` with ``grad``, in place."""
        opt = self.optimizer
        opt.t += 1
        if factor != self._factor:
            self.np.multiply(self.lr, float(factor), out=self._lr)
            self._factor = factor
        if opt.kind == "adam":
            self._bias = (1.0 - ADAM_BETA1**opt.t, 1.0 - ADAM_BETA2**opt.t)
        for op in self._update:
            op()

    def _update_ops(self) -> list[Op]:
        """The optimizer's operations on ``(m, P)`` arrays, bound once (as a
        step's program is, see :meth:`_program`).

        Each matches :meth:`Optimizer.step`'s formula operation for
        operation, so both paths round alike. Scalars go through ufunc calls
        rather than `*=` (see the loss's operations).
        """
        np, P = self.np, functools.partial
        kind = self.optimizer.kind
        theta, g, lr = self.theta, self.grad, self._lr
        tmp, out = self.work[0], self.work[1]
        ops: list[Op] = []
        if self.decay is not None:
            ops += [
                P(np.multiply, self.decay, theta, out=tmp),
                P(np.add, g, tmp, out=g),
            ]
        if kind == "sgd":
            ops.append(P(np.multiply, lr, g, out=out))
        elif kind in ("momentum", "nesterov"):
            v, momentum = self.state[0], self.momentum
            ops += [P(np.multiply, v, momentum, out=v), P(np.add, v, g, out=v)]
            if kind == "nesterov":
                ops += [
                    P(np.multiply, momentum, v, out=tmp),
                    P(np.add, g, tmp, out=tmp),
                    P(np.multiply, lr, tmp, out=out),
                ]
            else:
                ops.append(P(np.multiply, lr, v, out=out))
        else:
            m1, m2 = self.state
            # Moment estimates, bias-corrected for the first steps by the
            # step's (1 - beta1^t, 1 - beta2^t) in self._bias.
            ops += [
                P(np.multiply, m1, ADAM_BETA1, out=m1),
                P(np.multiply, 1.0 - ADAM_BETA1, g, out=tmp),
                P(np.add, m1, tmp, out=m1),
                P(np.multiply, m2, ADAM_BETA2, out=m2),
                P(np.multiply, g, g, out=tmp),
                P(np.multiply, tmp, 1.0 - ADAM_BETA2, out=tmp),
                P(np.add, m2, tmp, out=m2),
                lambda: np.divide(m2, self._bias[1], out=tmp),
                P(np.sqrt, tmp, out=tmp),
                P(np.add, tmp, ADAM_EPS, out=tmp),
                lambda: np.multiply(lr / self._bias[0], m1, out=out),
                P(np.divide, out, tmp, out=out),
            ]
        ops.append(P(np.subtract, theta, out, out=theta))
        return ops

    def step(self, X: Array, T: Array, start: int, stop: int, factor: float) -> None:
        """One update on rows ``start:stop``, keeping its logits for the epoch.

        Args:
            X: The epoch's inputs in batch order ``(m, n, n_features)``, or
                ``(1, n, n_features)`` when all members share the order.
            T: The epoch's targets in batch order ``(m, n, n_outputs)``, or
                ``(1, n, n_outputs)`` likewise.
            start: The batch's first row.
            stop: One past its last row.
            factor: The schedule's learning-rate multiplier.
        """
        if T is not self._logits_T:
            # A new epoch: the buffer is kept when the epoch has its shape.
            shape = (self.stack.members, int(T.shape[2]), int(T.shape[1]))
            if self._logits is None or self._logits.shape != shape:
                self._logits = self.np.empty(shape, dtype=self.theta.dtype)
            self._logits_T = T
        if self._row is not None and stop - start == 1:
            x = self.augmented(X)[0, :, start]
            self._logits[0, 0, start] = self._row_step(x, T, start)
        else:
            batch = self._batch
            batch.A = self.augmented(X)[:, :, start:stop]
            batch.out = self._logits[:, :, start:stop]
            batch.target = self._targets(T)[:, :, start:stop]
            for op in self._program(stop - start).step:
                op()
        self.update(factor)

    def epoch_losses(self, T: Array, batch_size: int, done: int) -> Array:
        """The mean loss of each of the epoch's ``done`` steps, ``(done, m)``.

        One evaluation of the loss over all kept logits: the full batches are
        folded into the member axis, so each row of the result is the loss of
        one step, the same mean the generic step takes.

        Args:
            T: The epoch's targets in batch order ``(m or 1, n, n_outputs)``.
            batch_size: Rows per full batch.
            done: How many steps ran this epoch.
        """
        np = self.np
        m, k, n = (int(s) for s in self._logits.shape)
        rows = min(done * batch_size, n)
        full = rows // batch_size
        cut = full * batch_size
        if self.stack.loss.name == "binary_cross_entropy":
            per_row = self._cross_entropy_rows(T, rows)[:, 0, :]
            # Each row divided by its batch's size before the sum, as the
            # loss functions take their means.
            np.divide(per_row[:, :cut], batch_size, out=per_row[:, :cut])
            means = np.sum(np.reshape(per_row[:, :cut], (m, full, batch_size)), axis=2)
            parts = [means.T]
            if rows > cut:
                rest = per_row[:, cut:]
                np.divide(rest, rows - cut, out=rest)
                parts.append(np.sum(rest, axis=1)[None, :])
            return np.concatenate(parts, axis=0)
        xp = self.stack.backend.xp
        loss = self.stack.loss.value
        Z = self._logits.transpose(0, 2, 1)
        # Targets shared by all members (one batch order) are broadcast.
        T = np.broadcast_to(T, Z.shape)
        parts = []
        if full:
            shape = (m * full, batch_size, k)
            value = loss(
                xp, np.reshape(Z[:, :cut], shape), np.reshape(T[:, :cut], shape)
            )
            parts.append(np.reshape(value, (m, full)).T)
        if rows > cut:
            value = loss(xp, Z[:, cut:rows], T[:, cut:rows])
            parts.append(value[None, :])
        return np.concatenate(parts, axis=0)

    def _cross_entropy_rows(self, T: Array, rows: int) -> Array:
        """The binary cross-entropy of each of the epoch's first ``rows``
        logits, ``(m, 1, rows)``, in place over two kept buffers.

        With the targets as ``u = 1 - 2 y`` (see :meth:`_targets`), the loss
        of a 0/1 target is ``softplus(u z) = max(u z, 0) + log(1 + exp(-|z|))``:
        term by term the numbers of :func:`losses.binary_cross_entropy_value`
        (``max(z, 0) - z y`` is ``max(-z, 0)`` exactly when ``y`` is 1), in
        seven operations that allocate nothing, against ten that each
        allocate: 0.53 ms against 0.98 for an epoch of 4 members on MAGIC.
        """
        np = self.np
        shape = self._logits.shape
        if self._loss_work is None or self._loss_work.shape[1:] != shape:
            self._loss_work = np.empty((2, *shape), dtype=self.theta.dtype)
        s, soft = (w[:, :, :rows] for w in self._loss_work)
        np.multiply(self._logits[:, :, :rows], self._targets(T)[:, :, :rows], out=s)
        np.abs(s, out=soft)
        np.negative(soft, out=soft)
        np.exp(soft, out=soft)
        np.log1p(soft, out=soft)
        np.maximum(s, 0.0, out=s)
        np.add(s, soft, out=s)
        return s


def _layout(sizes: Sequence[int]) -> tuple[list[tuple[int, int, tuple[int, ...]]], int]:
    """Where each of ``[W0, b0, W1, b1, ...]`` lies in a member's flat row.

    Returns:
        Per array ``(start, stop, shape)`` without the member axis, ``b`` right
        after its ``W``; and the row length ``P``.
    """
    bounds = []
    offset = 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        for shape in ((fan_in, fan_out), (1, fan_out)):
            count = shape[0] * shape[1]
            bounds.append((offset, offset + count, shape))
            offset += count
    return bounds, offset


def make_step(stack: Stack, optimizer: Optimizer) -> GenericStep | FastStep:
    """The fast step where the backend has in-place semantics, else the generic one."""
    if FastStep.supported(stack.backend):
        return FastStep(stack, optimizer)
    return GenericStep(stack, optimizer)
