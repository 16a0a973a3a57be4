"""What a model costs and what the machine can do: FLOPs per token, the
float32 matmul peak, and the time floor of a model's matmuls.

**FLOPs per token** are counted as matmul FLOPs, the convention of PaLM
(appendix B) and nanoGPT's ``estimate_mfu``: a multiply-accumulate is 2
FLOPs, the backward pass costs twice the forward, so a training token costs
``3 x forward``. Forward, per token:

- gpt: ``L * (8 d^2 + 4 d f + 4 T d) + 2 d V`` (Q, K, V and output
  projections; the two MLP matmuls; attention scores and the weighted sum over
  the whole context T, not halved for the causal mask; the output head);
- lstm: ``sum over layers of 8 h (in + h) + 2 h V`` (the four gates' input and
  recurrent matmuls; the output head).

Embedding look-ups, layer norms, softmax and element-wise work are not
counted. **MFU** is achieved FLOP/s divided by the float32 matmul peak of the
same backend, measured in the same process as the best FLOP/s of a square
``keras.ops.matmul`` (1024 to 3072).
"""

import time

import numpy as np

PEAK_SIZES = (1024, 2048, 3072)


def gpt_flops_per_token(num_layers, hidden_dim, seq_len, vocab_size, intermediate_dim=None):
    """Training FLOPs per token of a GPT (see the module docstring).

    Args:
        num_layers: L.
        hidden_dim: d.
        seq_len: T, the training context.
        vocab_size: V.
        intermediate_dim: f (default ``4 d``).

    Returns:
        FLOPs (float).
    """
    d, f = hidden_dim, intermediate_dim or 4 * hidden_dim
    forward = num_layers * (8 * d * d + 4 * d * f + 4 * seq_len * d) + 2 * d * vocab_size
    return 3.0 * forward


def lstm_flops_per_token(embed_dim, hidden_dim, num_layers, vocab_size):
    """Training FLOPs per token of a stacked LSTM LM (see the module docstring).

    Returns:
        FLOPs (float).
    """
    forward, width = 0, embed_dim
    for _ in range(num_layers):
        forward += 8 * hidden_dim * (width + hidden_dim)
        width = hidden_dim
    return 3.0 * (forward + 2 * hidden_dim * vocab_size)


def matmul_peak(sizes=None, repeats=5):
    """The float32 matmul peak of the current backend, in FLOP/s.

    Args:
        sizes: square matrix sizes to try (default ``PEAK_SIZES``).
        repeats: timed products per size (the best is kept).

    Returns:
        The best FLOP/s over sizes.
    """
    from keras import ops

    sizes = PEAK_SIZES if sizes is None else sizes
    rng = np.random.default_rng(0)
    best = 0.0
    for n in sizes:
        a = ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
        b = ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
        ops.convert_to_numpy(ops.matmul(a, b))  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            ops.convert_to_numpy(ops.matmul(a, b)[0, 0])  # waits for the product; copies one number
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - started))
    return best


def gpt_matmul_shapes(num_layers, hidden_dim, num_heads, batch, seq_len, vocab_size, intermediate_dim=None):
    """The ``(lhs, rhs)`` shapes of every matmul in one forward pass of a GPT step.

    The products ``gpt_flops_per_token`` counts, with the batch folded into
    rows: per layer the query/key/value projection, the attention scores
    and weighted sum (one product per row and head), the attention output
    and the two MLP matmuls; then the output head.

    Returns:
        A list of ``(lhs_shape, rhs_shape)``; batched products have a
        leading ``batch * heads`` axis on both sides.
    """
    d, f, n = hidden_dim, intermediate_dim or 4 * hidden_dim, batch * seq_len
    heads = batch * num_heads
    head_dim = d // num_heads
    layer = [
        ((n, d), (d, 3 * d)),
        ((heads, seq_len, head_dim), (heads, head_dim, seq_len)),
        ((heads, seq_len, seq_len), (heads, seq_len, head_dim)),
        ((n, d), (d, d)),
        ((n, d), (d, f)),
        ((n, f), (f, d)),
    ]
    return layer * num_layers + [((n, d), (d, vocab_size))]


def matmul_floor_seconds(shapes, repeats=3, jit_compile=True):
    """Time of a training step's matmuls alone: the fastest any step of the model could go.

    For every forward product ``C = A @ B`` of ``shapes`` it also does the
    two backward products, ``dC @ B^T`` and ``A^T @ dC`` (transposes read
    as stored, as each backend's autodiff does: ``gpt_decode.matmul``), on
    random float32 operands, in one compiled function of the current backend (``jax.jit``;
    a ``tf.function``, under XLA when ``jit_compile``, as the trainer it
    bounds runs; eager PyTorch). Their FLOPs are exactly ``3 x`` the forward count of
    ``gpt_flops_per_token``, so ``flops / time / peak`` is the MFU a step
    would reach if it did nothing but its matmuls, at the speed this
    backend multiplies these shapes: the ceiling for the MFU target.

    Args:
        shapes: ``gpt_matmul_shapes`` output.
        repeats: timed calls (the best is kept).
        jit_compile: on TensorFlow, whether the trainer (so the floor) runs under XLA.

    Returns:
        Seconds per step.
    """
    import keras
    from keras import ops

    from kerazoo.models.gpt.step import matmul

    rng = np.random.default_rng(0)

    def tensor(shape):
        return ops.convert_to_tensor(rng.standard_normal(shape, dtype=np.float32))

    operands = []
    for lhs, rhs in shapes:
        out = lhs[:-1] + rhs[-1:]
        operands.append((tensor(lhs), tensor(rhs), tensor(out)))

    backend = keras.backend.backend()

    def step(operands):
        products = []
        for a, b, grad in operands:
            products += [matmul(a, b), matmul(grad, b, transpose_b=True), matmul(a, grad, transpose_a=True)]
        return products

    if backend == "jax":
        import jax

        step = jax.jit(step)
    elif backend == "tensorflow":
        import tensorflow as tf

        step = tf.function(step, jit_compile=bool(jit_compile))

    def wait(products):
        for p in products:
            ops.convert_to_numpy(ops.reshape(p, (-1,))[:1])

    wait(step(operands))  # compiles
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        wait(step(operands))
        best = min(best, time.perf_counter() - started)
    return best
