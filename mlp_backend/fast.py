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
  matrix, so with a column of ones beside the activations one product adds
  the bias and one product gives ``[dW; db]``, written into a view of the
  flat gradient buffer ``grad`` by ``matmul(..., out=)``;
  activations and deltas go into buffers allocated once per batch size; and
  the optimizer updates all parameters with a handful of in-place operations
  on ``(m, P)`` arrays, with the per-member learning rate, momentum and weight
  decay as ``(m, 1)`` columns.

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

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from mlp_backend.backend import Backend
from mlp_backend.model import Stack
from mlp_backend.optim import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, SLOTS, Optimizer

Array = Any


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


#: Rows per block of FastStep.logits: small enough that a block's activations
#: stay in cache, large enough that per-call overhead does not show.
BLOCK_ROWS = 1024

# The output delta is (output(z) - y) divided by the batch size, or for the
# mean squared error multiplied by 2 / (batch * outputs): see losses.py.
_MEAN_OVER_ROWS = ("binary_cross_entropy", "softmax_cross_entropy")


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
        # W^T of each layer as views, for the backward pass.
        self.W_T = [W.transpose(0, 2, 1) for W in stack.params[0::2]]
        self.inputs = stack.shape.sizes[0] + 1
        self.state = self._flat_state(optimizer, m, dtype)
        optimizer.state = [self.views(flat) for flat in self.state]

        # Per-member hyperparameters as (m, 1) columns over the flat layout.
        self.lr = np.reshape(optimizer.lr, (m, 1))
        self.momentum = np.reshape(optimizer.momentum, (m, 1))
        # The learning rate times the schedule's factor, remade when it changes.
        self._factor = 1.0
        self._lr = self.lr
        self.decay = None
        if optimizer.decays:
            weights = np.zeros((1, self.size), dtype=dtype)
            for lo, hi, _ in self.bounds[0::2]:
                weights[:, lo:hi] = 1.0
            self.decay = np.reshape(optimizer.weight_decay, (m, 1)) * weights
        self.work = np.empty((2, m, self.size), dtype=dtype)
        self._buffers: dict[int, dict[str, list[Array]]] = {}
        self._logits: Array | None = None
        self._logits_T: Array | None = None
        self._epoch_X: Array | None = None
        self._epoch_A: Array | None = None
        self._epoch_T: Array | None = None
        self._epoch_U: Array | None = None
        # The rows logits() is asked about (the validation set), with ones.
        self._fixed_X: Array | None = None
        self._fixed_A: Array | None = None
        self._fixed_z: Array | None = None
        # The last forward's input, logits and buffers, for loss and backward.
        self._A: Array | None = None
        self._z: Array | None = None
        self._current: dict[str, Any] = {}
        self._row = self._row_views()

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
        """``[X, 1]`` ``(m, n, n_features + 1)``, made once per epoch's ``X``.

        With a column of ones beside the activations, one matrix product with
        ``[W; b]`` adds the bias, and in the backward pass one product with
        ``delta`` gives ``[dW; db]``: two operations fewer per layer and step.
        """
        if X is not self._epoch_X:
            self._epoch_X, self._epoch_A = X, self._with_ones(X)
        return self._epoch_A

    def _with_ones(self, X: Array) -> Array:
        np = self.np
        A = np.empty((*X.shape[:-1], X.shape[-1] + 1), dtype=self.theta.dtype)
        A[..., :-1] = X
        A[..., -1] = 1.0
        return A

    def snapshot(self) -> list[Array]:
        """A copy of the parameters now, which later steps leave unchanged."""
        return self.views(self.theta.copy())

    def logits(self, X: Array) -> Array:
        """The stack's output ``z`` on ``X`` ``(m or 1, rows, n_features)``.

        For rows asked about every epoch (the validation set): their column of
        ones is added once, and the forward pass runs over blocks of
        :data:`BLOCK_ROWS` rows into buffers that are kept, which bounds its
        memory whatever the rows and makes it 2.7 times faster than the
        generic forward for 4 members of 128 units on MAGIC's validation set
        (measured; 1.1 times for 4 of 16).

        Returns:
            ``(m, rows, n_outputs)``, a buffer the next call overwrites.
        """
        np = self.np
        if X is not self._fixed_X:
            self._fixed_X, self._fixed_A = X, self._with_ones(X)
        A = self._fixed_A
        rows = int(A.shape[1])
        shape = (self.stack.members, rows, self.stack.shape.n_outputs)
        if self._fixed_z is None or self._fixed_z.shape != shape:
            self._fixed_z = np.empty(shape, dtype=self.theta.dtype)
        for start in range(0, rows, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, rows)
            self.forward(A[:, start:stop, :], out=self._fixed_z[:, start:stop, :])
        return self._fixed_z

    def _buffers_for(self, rows: int) -> dict[str, Any]:
        """Activation and delta buffers for batches of ``rows``, made once."""
        buffers = self._buffers.get(rows)
        if buffers is None:
            np = self.np
            m = self.stack.members
            dtype = self.theta.dtype
            widths = self.stack.shape.sizes[1:]
            # Hidden activations carry a last column of ones (see augmented).
            hidden = [np.ones((m, rows, w + 1), dtype=dtype) for w in widths[:-1]]
            buffers = {
                "z": [np.empty((m, rows, w), dtype=dtype) for w in widths],
                "a": hidden,
                "a_view": [a[..., :-1] for a in hidden],
                "delta": [np.empty((m, rows, w), dtype=dtype) for w in widths],
                "scratch": [np.empty((m, rows, w), dtype=dtype) for w in widths[:-1]],
                # relu's derivative, 0 or 1 in the float dtype: multiplying by
                # a bool array casts it on every use (15 us against 33 us
                # for 4 x 256 x 128 in place).
                "flag": [np.empty((m, rows, w), dtype=dtype) for w in widths[:-1]],
                # The input rows times the output delta, transposed (see
                # _input_layer_grads).
                "weighted": np.empty((m, self.inputs, rows), dtype),
            }
            self._buffers[rows] = buffers
        return buffers

    def forward(self, A: Array, out: Array | None = None) -> Array:
        """Runs the stack on a batch into the buffers; returns the logits.

        Args:
            A: The batch with a column of ones, ``(m, rows, n_features + 1)``
                (rows of :meth:`augmented`).
            out: Where to write the logits ``(m, rows, n_outputs)``; a buffer
                reused by the next batch of the same size when None.

        Returns:
            The output ``z`` ``(m, rows, n_outputs)``.
        """
        np = self.np
        masks = self.stack.masks
        buffers = self._buffers_for(int(A.shape[1]))
        layers = len(self.blocks)
        a = A
        for l in range(layers):
            last = l == layers - 1
            z = out if last and out is not None else buffers["z"][l]
            np.matmul(a, self.blocks[l], out=z)
            if last:
                break
            a = buffers["a_view"][l]
            self._activate(z, a, buffers["flag"][l])
            if masks[l] is not None:
                a *= masks[l]
            a = buffers["a"][l]
        self._A, self._z, self._current = A, z, buffers
        return z

    def _activate(self, z: Array, a: Array, flag: Array) -> None:
        np = self.np
        name = self.stack.activation.name
        if name == "relu":
            # z * (z > 0): the flag is kept for the backward pass, and this is
            # faster than maximum(z, 0) (53 us against 79 us for 4 x 256 x 128).
            np.greater(z, 0.0, out=flag)
            np.multiply(z, flag, out=a)
        elif name == "tanh":
            np.tanh(z, out=a)
        else:
            a[...] = self.stack.activation.f(self.stack.backend.xp, z)

    def _derivative(self, l: int) -> Array:
        """``f'(z)`` of hidden layer ``l`` for the last forward's batch."""
        np = self.np
        buffers = self._current
        z, a = buffers["z"][l], buffers["a_view"][l]
        name = self.stack.activation.name
        if name == "relu":
            return buffers["flag"][l]
        if name == "tanh":
            scratch = buffers["scratch"][l]
            np.multiply(a, a, out=scratch)
            np.subtract(1.0, scratch, out=scratch)
            return scratch
        return self.stack.activation.df(self.stack.backend.xp, z, a)

    def loss(self, T: Array, start: int, stop: int) -> Array:
        """The output delta dL/dz of the last forward's batch, rows ``start:stop``.

        Args:
            T: The epoch's targets in batch order ``(m or 1, n, n_outputs)``.
            start: The batch's first row.
            stop: One past its last row.

        Returns:
            ``delta`` ``(m, rows, n_outputs)``, a reused buffer.
        """
        np = self.np
        stack = self.stack
        rows, k = stop - start, int(T.shape[2])
        z, delta = self._z, self._current["delta"][-1]
        name = stack.loss.name
        if name == "binary_cross_entropy":
            # sigmoid(z) - y = (tanh(z / 2) + 1 - 2 y) / 2: four in-place
            # operations with 1 - 2y made once per epoch, and as stable as the
            # two-branch sigmoid for any finite z.
            if self._on_host and delta.size == 1:
                delta[0, 0, 0] = self._one_delta(z.item(), T, start)
                return delta
            np.multiply(z, 0.5, out=delta)
            np.tanh(delta, out=delta)
            delta += self._shifted(T)[:, start:stop, :]
            # A ufunc call, not `*=`: NumPy's operator path is slower with a
            # Python scalar, which shows in batch-1 steps (0.9 us against 1.7).
            np.multiply(delta, 0.5 / rows, out=delta)
            return delta
        np.subtract(
            stack.loss.output(stack.backend.xp, z), T[:, start:stop, :], out=delta
        )
        if name in _MEAN_OVER_ROWS:
            np.divide(delta, rows, out=delta)
        else:
            np.multiply(2.0 / (rows * k), delta, out=delta)
        return delta

    def _one_delta(self, logit: float, T: Array, start: int) -> float:
        """The output delta of one member's one row ``start``, as loss()
        computes it, in Python floats: 0.7 us against 7.2 for four ufunc calls
        on one value, which was a quarter of a batch-1 step (and rounded once,
        not four times)."""
        u = self._shifted(T)[0, start, 0].item()
        return (math.tanh(0.5 * logit) + u) * 0.5

    def _shifted(self, T: Array) -> Array:
        """``1 - 2 T`` for the binary cross-entropy, made once per epoch's ``T``."""
        if T is not self._epoch_T:
            self._epoch_T, self._epoch_U = T, 1.0 - 2.0 * T
        return self._epoch_U

    def backward(self) -> None:
        """Backpropagates the last :meth:`loss` delta into ``grad``'s views."""
        np = self.np
        stack = self.stack
        layers = len(self.blocks)
        buffers = self._current
        delta = buffers["delta"][-1]
        for l in range(layers - 1, -1, -1):
            # [a, 1]^T @ delta = [dW; db]: the batch sum of delta comes with dW.
            # One row makes it an outer product, which an element-wise multiply
            # computes exactly without a matrix-product call.
            a = self._A if l == 0 else buffers["a"][l - 1]
            product = np.multiply if delta.shape[1] == 1 else np.matmul
            product(a.transpose(0, 2, 1), delta, out=self.grad_blocks[l])
            if l == 0:
                break
            if l == 1 and delta.shape[2] == 1 and delta.shape[1] > self.inputs:
                # One hidden layer, one output, more rows than inputs.
                self._input_layer_grads(delta)
                break

            # Hidden layer: back through W, then through the activation. With
            # one output unit the product is an outer product, which an
            # element-wise multiply does without a matrix-product call.
            below = buffers["delta"][l - 1]
            W_T = self.W_T[l]
            if delta.shape[2] == 1:
                np.multiply(delta, W_T, out=below)
            else:
                np.matmul(delta, W_T, out=below)
            below *= self._derivative(l - 1)
            if stack.masks[l - 1] is not None:
                below *= stack.masks[l - 1]
            delta = below

    def _input_layer_grads(self, delta: Array) -> None:
        """``[dW0; db0]`` of a network of one hidden layer and one output.

        The hidden delta ``delta W1^T * f'(z)`` has the entries
        ``delta_r W1_j D_rj`` (``D = f'(z)``), so

            [dW0; db0]_ij = sum_r A_ri delta_r W1_j D_rj
                          = W1_j [(A * delta)^T D]_ij:

        the product takes the derivative itself, and the two element-wise
        passes over ``(m, rows, width)`` that the hidden delta costs become
        one over ``(m, rows, features + 1)`` and one over ``(m, features + 1,
        width)``: a saving when there are more rows than inputs (55 us of 378
        per step for 4 members of 128 relu units at batch 256; at batch 1 it
        would cost more than it saves). Most sweeps on a binary task have
        this shape.
        """
        np = self.np
        stack = self.stack
        # (A * delta)^T directly: the multiply's inner loop then runs along
        # the rows rather than along the few inputs, 13 us against 22 for 4
        # members at batch 256 (measured), and the product reads it as is.
        weighted = self._current["weighted"]
        np.multiply(self._A.transpose(0, 2, 1), delta.transpose(0, 2, 1), out=weighted)
        grads = self.grad_blocks[0]
        np.matmul(weighted, self._derivative(0), out=grads)
        grads *= self.W_T[1]
        if stack.masks[0] is not None:
            grads *= stack.masks[0]

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

        The same operations on the same numbers as :meth:`forward`,
        :meth:`loss` and :meth:`backward` at batch 1 (so the same rounding),
        on 1-D views: a batch-1 step's time is mostly per-call overhead,
        which the (1, 1, width) broadcasts of the general path double (13.6
        us against 24.5 for a step of 100 tanh units, measured).
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
        d = self._one_delta(logit, T, start)
        np.multiply(a, d, out=row["dW1"])
        delta = row["delta"]
        np.multiply(row["W1"][:-1], d, out=delta)
        np.multiply(delta, slope, out=delta)
        np.multiply(x[:, None], delta, out=row["dW0"])
        return logit

    def update(self, factor: float) -> None:
        """Applies the optimizer to ``theta`` with ``grad``, in place.

        Each line matches :meth:`Optimizer.step`'s formula operation for
        operation, so both paths round alike.
        """
        np = self.np
        opt = self.optimizer
        opt.t += 1
        if factor != self._factor:
            self._lr, self._factor = self.lr * float(factor), factor
        lr = self._lr
        g, tmp, out = self.grad, self.work[0], self.work[1]
        if self.decay is not None:
            np.multiply(self.decay, self.theta, out=tmp)
            g += tmp
        if opt.kind == "sgd":
            np.multiply(lr, g, out=out)
        elif opt.kind in ("momentum", "nesterov"):
            v = self.state[0]
            v *= self.momentum
            v += g
            if opt.kind == "nesterov":
                np.multiply(self.momentum, v, out=tmp)
                np.add(g, tmp, out=tmp)
                np.multiply(lr, tmp, out=out)
            else:
                np.multiply(lr, v, out=out)
        else:
            self._adam(g, lr, tmp, out)
        self.theta -= out

    def _adam(self, g: Array, lr: Array, tmp: Array, out: Array) -> None:
        np = self.np
        m1, m2 = self.state
        t = self.optimizer.t

        # Moment estimates, bias-corrected for the first steps.
        # Scalars go through ufunc calls rather than `*=` (see loss()).
        np.multiply(m1, ADAM_BETA1, out=m1)
        np.multiply(1.0 - ADAM_BETA1, g, out=tmp)
        m1 += tmp
        np.multiply(m2, ADAM_BETA2, out=m2)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1.0 - ADAM_BETA2, out=tmp)
        m2 += tmp
        c1 = 1.0 - ADAM_BETA1**t
        c2 = 1.0 - ADAM_BETA2**t
        np.divide(m2, c2, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.add(tmp, ADAM_EPS, out=tmp)
        np.multiply(lr / c1, m1, out=out)
        out /= tmp

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
            shape = (self.stack.members, *T.shape[1:])
            if self._logits is None or self._logits.shape != shape:
                self._logits = self.np.empty(shape, dtype=self.theta.dtype)
            self._logits_T = T
        if self._row is not None and stop - start == 1:
            x = self.augmented(X)[0, start]
            self._logits[0, start, 0] = self._row_step(x, T, start)
        else:
            A = self.augmented(X)[:, start:stop, :]
            self.forward(A, out=self._logits[:, start:stop, :])
            self.loss(T, start, stop)
            self.backward()
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
        xp = self.stack.backend.xp
        loss = self.stack.loss.value
        Z = self._logits
        m, n, k = (int(s) for s in Z.shape)
        # Targets shared by all members (one batch order) are broadcast.
        T = np.broadcast_to(T, Z.shape)
        rows = min(done * batch_size, n)
        full = rows // batch_size
        parts = []
        if full:
            cut = full * batch_size
            shape = (m * full, batch_size, k)
            value = loss(
                xp, np.reshape(Z[:, :cut], shape), np.reshape(T[:, :cut], shape)
            )
            parts.append(np.reshape(value, (m, full)).T)
        if rows > full * batch_size:
            cut = full * batch_size
            value = loss(xp, Z[:, cut:rows], T[:, cut:rows])
            parts.append(value[None, :])
        return np.concatenate(parts, axis=0)


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
