"""The GPT's single-position decoding step, written on the raw weights.

keras_hub's ``CachedMultiHeadAttention`` keeps keys and values stacked in one
``(batch, 2, length, heads, head_dim)`` tensor per block, and its GPT-2 stacks
those again across blocks: every decoded token rewrites (copies) the whole
cache several times, which is most of the cost of a step on CPU. Here each
block's keys and values are separate loop-carried tensors updated in place
(``slice_update``), and the block's arithmetic is spelled out with
``keras.ops`` on the weights of the very same keras_hub sub-layers, so no
layer-call overhead is paid per token (that overhead dominates eager PyTorch).
The result equals the training graph's forward pass (tested).

Known cost: a loop that carries the cache and updates it with ``block_step``
makes XLA (CPU) copy each cache tensor once or twice per iteration
(``jax.jit(...).lower(...).compile().as_text()`` shows the copies in the
while body); reading the cache before writing it removed half of them. The
decoding loop therefore uses ``chunk_block_step``, which reads the cache and
writes a small chunk (see ``kerazoo.decoding.loop._chunked_loop_fn``); XLA still
copies the chunk (``CHUNK`` positions) per iteration, not the cache.
"""

import math

import keras
from keras import ops


def weight(variable):
    """A variable's current value (the traced one inside a StatelessScope)."""
    return None if variable is None else variable.value


def matmul_t(a, b):
    """``a @ b^T`` over the last two axes: ``(..., m, k) x (..., n, k) -> (..., m, n)``.

    Keras' TensorFlow ``einsum`` and ``matmul`` transpose ``b`` explicitly,
    which XLA (CPU) compiles to a physical copy of ``b`` on every decoding
    step: the whole 1000 x 256 output embedding, and every cached key.
    JAX's ``jnp.matmul`` of a swapped operand is a copy too (inside a loop,
    once per iteration, a cost that grows with the context). ``matmul`` reads ``b``
    as stored on both.
    """
    return matmul(a, b, transpose_b=True)


def matmul(a, b, transpose_a=False, transpose_b=False):
    """``a @ b`` over the last two axes, either side transposed as stored, not copied.

    The transposes go to each backend's product: TensorFlow's
    ``transpose_a`` / ``transpose_b``, JAX's ``lax.dot_general`` dimensions;
    PyTorch multiplies strided views without a copy anyway. A 2-D ``b``
    (a weight) broadcasts over ``a``'s leading axes when ``a`` is not
    transposed. Mixed dtypes (bfloat16 activations, float32 weights)
    promote as ``keras.ops`` do.

    Returns:
        ``(..., m, n)``.
    """
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        a = ops.swapaxes(a, -1, -2) if transpose_a else a
        return ops.matmul(a, ops.swapaxes(b, -1, -2) if transpose_b else b)
    dtype = keras.backend.result_type(a.dtype, b.dtype)
    a, b = ops.cast(a, dtype), ops.cast(b, dtype)
    weight_b = len(b.shape) == 2 and len(a.shape) > 2 and not transpose_a
    if backend == "tensorflow":
        import tensorflow as tf

        if weight_b:
            flat = tf.linalg.matmul(tf.reshape(a, (-1, a.shape[-1])), b, transpose_b=transpose_b)
            return tf.reshape(flat, tf.concat([tf.shape(a)[:-1], tf.shape(flat)[1:]], 0))
        return tf.linalg.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    import jax

    contract = ((a.ndim - 2 if transpose_a else a.ndim - 1,), (b.ndim - 1 if transpose_b else b.ndim - 2,))
    batch = () if weight_b else tuple(range(a.ndim - 2))
    # The free axes come out batch, a's, b's: (..., m, n) whichever side is transposed.
    return jax.lax.dot_general(a, b, (contract, (batch, batch)))


def _dense(x, layer):
    """``keras.layers.Dense`` without the call machinery."""
    y = ops.matmul(x, weight(layer.kernel))
    return y if layer.bias is None else y + weight(layer.bias)


def _einsum_dense(x, layer, equation):
    """``keras.layers.EinsumDense`` without the call machinery."""
    y = ops.einsum(equation, x, weight(layer.kernel))
    return y if layer.bias is None else y + weight(layer.bias)


def _layer_norm(x, layer):
    """``keras.layers.LayerNormalization`` over the last axis."""
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * ops.rsqrt(var + layer.epsilon) * weight(layer.gamma) + weight(layer.beta)


def _projections(block, x, dtype):
    """Heads-first ``(batch, heads, t, head_dim)`` query (pre-scaled), key and value of ``x``."""
    attn = block._self_attention_layer
    # Heads-first layouts (batch, heads, positions, head_dim) let both
    # attention products run on the cache as stored, with no transpose of it.
    query, key, value = (
        ops.transpose(_einsum_dense(x, dense, "btd,dhk->bthk"), (0, 2, 1, 3))
        for dense in (attn._query_dense, attn._key_dense, attn._value_dense)
    )
    return query / math.sqrt(query.shape[-1]), ops.cast(key, dtype), ops.cast(value, dtype)


def _attend(query, parts):
    """One softmax of ``query`` over several key/value sources.

    Args:
        query: ``(batch, heads, t, head_dim)``, already scaled.
        parts: ``(keys, values, visible)`` triples; keys and values
            ``(batch, heads, s, head_dim)``, ``visible`` a bool mask that
            broadcasts to ``(t, s)``.

    Returns:
        ``(batch, heads, t, head_dim)``.
    """
    scores = [
        ops.where(visible[None, None], matmul_t(query, keys), ops.cast(-1e9, query.dtype))
        for keys, _, visible in parts
    ]
    probs = ops.softmax(ops.concatenate(scores, axis=-1), axis=-1)
    out, offset = None, 0
    for keys, values, _ in parts:
        # ops.shape: static under XLA, a tensor in an exported graph, whose
        # cache width is dynamic.
        width = ops.shape(keys)[2]
        part = ops.matmul(probs[..., offset:offset + width], values)
        out, offset = part if out is None else out + part, offset + width
    return out


def _causal(steps):
    """Position ``i`` of ``steps`` new positions sees new positions ``<= i``."""
    return ops.arange(steps)[None, :] <= ops.arange(steps)[:, None]


def _attention(block, x, key_cache, value_cache, index):
    """Causal self-attention of ``x`` (positions ``index ...``) over the cache.

    The new positions attend to the cache as it was (positions before
    ``index``) and to each other, and only then are their keys and values
    written into the cache. Reading the cache before updating it lets XLA
    update it in place; attending to the freshly updated cache made XLA copy
    every cache tensor on every step.
    """
    query, key, value = _projections(block, x, key_cache.dtype)
    parts = [(key, value, _causal(x.shape[1]))]
    # A prefill (index 0, a Python int) has nothing cached to attend to.
    # Masking the empty cache out instead made XLA constant-fold a softmax
    # over the whole (batch, heads, prompt, cache) block of masked scores,
    # which lengthened compilation of every prompt bucket.
    if not (isinstance(index, int) and index == 0):
        old_visible = ops.arange(ops.shape(key_cache)[2])[None, :] < index
        parts.insert(0, (key_cache, value_cache, old_visible))
    out = _attend(query, parts)
    key_cache = ops.slice_update(key_cache, [0, 0, index, 0], key)
    value_cache = ops.slice_update(value_cache, [0, 0, index, 0], value)
    return _einsum_dense(out, block._self_attention_layer._output_dense, "bhtk,hkd->btd"), key_cache, value_cache


def fused_qkv(block):
    """One ``(dim, 3 * dim)`` kernel and ``(3 * dim,)`` bias for the block's query, key and value.

    Made once per decoding call, outside the token loop: one matmul per
    block and token instead of three, which at batch 1 on CPU is mostly
    saved per-kernel overhead (XLA runs each op of the loop body as its own
    kernel).

    Returns:
        ``(kernel, bias)``; the query part is pre-scaled by ``1 / sqrt(head_dim)``.
    """
    attn = block._self_attention_layer
    dense = (attn._query_dense, attn._key_dense, attn._value_dense)
    head_dim = weight(dense[0].kernel).shape[-1]
    scales = (1.0 / math.sqrt(head_dim), 1.0, 1.0)
    kernels = [ops.reshape(weight(d.kernel), (weight(d.kernel).shape[0], -1)) * s for d, s in zip(dense, scales)]
    biases = [ops.reshape(weight(d.bias), (-1,)) * s for d, s in zip(dense, scales)]
    return ops.concatenate(kernels, axis=1), ops.concatenate(biases, axis=0)


def _fused_projections(x, qkv, heads, dtype):
    """Heads-first query (pre-scaled), key and value of ``x`` from ``fused_qkv``'s weights."""
    kernel, bias = qkv
    batch, steps = x.shape[0], x.shape[1]
    y = ops.matmul(x, kernel) + bias
    y = ops.transpose(ops.reshape(y, (batch, steps, 3, heads, -1)), (2, 0, 3, 1, 4))
    return y[0], ops.cast(y[1], dtype), ops.cast(y[2], dtype)


def _chunk_attention(block, x, cache, chunk, index, start, qkv=None):
    """Self-attention of ``x`` at ``index`` over a read-only cache plus a small chunk.

    The chunk holds cache positions ``start ... start + C - 1`` (slot ``i``
    is position ``start + i``) and receives the new keys and values; the big
    cache is only read, for the positions before ``start``. A loop that
    carries only the chunk updates a few kilobytes per token instead of
    rewriting (copying) the whole cache, which XLA on CPU did every step.
    The new keys and values are written into the chunk before attending
    (copying a chunk is cheap), so attention has two sources, not three.

    Args:
        qkv: ``fused_qkv(block)``, made once per decoding call; made here
            when None.
    """
    (key_cache, value_cache), (key_chunk, value_chunk) = cache, chunk
    heads = block._self_attention_layer._num_heads
    query, key, value = _fused_projections(x, qkv or fused_qkv(block), heads, key_chunk.dtype)
    slot = index - start
    key_chunk = ops.slice_update(key_chunk, [0, 0, slot, 0], key)
    value_chunk = ops.slice_update(value_chunk, [0, 0, slot, 0], value)
    # New position slot + i sees chunk slots <= slot + i.
    chunk_visible = ops.arange(key_chunk.shape[2])[None, :] <= slot + ops.arange(x.shape[1])[:, None]
    parts = [
        (key_cache, value_cache, ops.arange(key_cache.shape[2])[None, :] < start),
        (key_chunk, value_chunk, chunk_visible),
    ]
    out = _attend(query, parts)
    return _einsum_dense(out, block._self_attention_layer._output_dense, "bhtk,hkd->btd"), (key_chunk, value_chunk)


def block_step(block, x, key_cache, value_cache, index):
    """One pre-norm ``TransformerDecoder`` block on cached positions.

    Args:
        block: a ``keras_hub.layers.TransformerDecoder`` built with
            ``normalize_first=True`` and no cross-attention.
        x: hidden states ``(batch, t, dim)`` of positions ``index ...``.
        key_cache, value_cache: ``(batch, heads, length, head_dim)``.
        index: position of ``x[:, 0]``.

    Returns:
        ``(x, key_cache, value_cache)`` after the block.
    """
    h = _layer_norm(x, block._self_attention_layer_norm)
    attended, key_cache, value_cache = _attention(block, h, key_cache, value_cache, index)
    return _feedforward(block, x + attended), key_cache, value_cache


def _feedforward(block, x):
    """The block's pre-norm MLP with its residual."""
    h = _layer_norm(x, block._feedforward_layer_norm)
    h = block.activation(_dense(h, block._feedforward_intermediate_dense))
    return x + _dense(h, block._feedforward_output_dense)


def chunk_block_step(block, x, cache, chunk, index, start, qkv=None):
    """``block_step`` writing into a small chunk; the cache is only read.

    Args:
        block: the keras_hub block.
        x: hidden states ``(batch, t, dim)`` of positions ``index ...``.
        cache: this block's ``(keys, values)``, ``(batch, heads, length, head_dim)``,
            valid before position ``start``.
        chunk: this block's ``(keys, values)`` for positions ``start ...``,
            ``(batch, heads, chunk_size, head_dim)``, valid before ``index``.
        index: position of ``x[:, 0]`` (``start <= index < start + chunk_size``).
        start: first position held by the chunk.
        qkv: ``fused_qkv(block)``, made once per decoding call (optional).

    Returns:
        ``(x, chunk)`` after the block.
    """
    h = _layer_norm(x, block._self_attention_layer_norm)
    attended, chunk = _chunk_attention(block, h, cache, chunk, index, start, qkv)
    return _feedforward(block, x + attended), chunk
