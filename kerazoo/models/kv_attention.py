"""Attention over a key/value view: the cached-attention arithmetic every decoder shares.

``gpt`` (and ``seq2seq``'s decoder blocks, which are gpt blocks with
cross-attention) and ``llama`` differ in how they make queries, keys and
values (learned positions or rotary ones, one key/value head per query
head or grouped) but not in what happens next: the new keys and values go
into a chunk of the cache, and the new positions attend causally to the
cache before the chunk and to the chunk, through one softmax. That part is
written once, here; see ``kerazoo.models.gpt.step`` for the view (cache,
chunk) and why it is laid out heads first.
"""

import keras
from keras import ops

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


def probabilities(query, parts):
    """One softmax of ``query``'s scores over several key sources.

    Args:
        query: ``(batch, heads, t, head_dim)``, already scaled.
        parts: ``(keys, values, visible)`` triples; keys ``(batch, heads,
            s, head_dim)`` (values are not read here), ``visible`` a bool
            mask that broadcasts to ``(batch, heads, t, s)``, e.g. ``(t, s)``.

    Returns:
        ``(batch, heads, t, s_total)`` probabilities over the parts' keys in
        order. A large negative score, not -inf, masks a key: every row sees
        at least one key, and -inf would turn ``0 * -inf`` into NaN in float16.
    """
    scores = [
        ops.where(visible, matmul_t(query, keys), ops.cast(-1e9, query.dtype))
        for keys, _, visible in parts
    ]
    return ops.softmax(scores[0] if len(scores) == 1 else ops.concatenate(scores, axis=-1), axis=-1)


def attend(query, parts):
    """Attention of ``query`` over several key/value sources, through one softmax.

    Args:
        query: ``(batch, heads, t, head_dim)``, already scaled.
        parts: ``(keys, values, visible)`` triples, as for ``probabilities``.

    Returns:
        ``(batch, heads, t, head_dim)``.
    """
    probs = probabilities(query, parts)
    if len(parts) == 1:
        return ops.matmul(probs, parts[0][1])
    out, offset = None, 0
    for keys, values, _ in parts:
        # ops.shape: static under XLA, a tensor in an exported graph, whose
        # cache width is dynamic.
        width = ops.shape(keys)[2]
        part = ops.matmul(probs[..., offset:offset + width], values)
        out, offset = part if out is None else out + part, offset + width
    return out


def causal(steps):
    """Position ``i`` of ``steps`` new positions sees new positions ``<= i``: bool ``(steps, steps)``."""
    return ops.arange(steps)[None, :] <= ops.arange(steps)[:, None]

def attend_view(query, key, value, cache, index, chunk=None, start=None, groups=1):
    """Causal attention of new positions over a key/value view, writing their keys and values.

    Args:
        query: ``(batch, kv_heads, groups * t, head_dim)``, already scaled.
            With ``groups > 1`` (grouped-query attention: ``groups`` query
            heads share each key/value head) row ``j * t + i`` is new
            position ``i`` of the ``j``-th query head of the group.
        key, value: ``(batch, kv_heads, t, head_dim)`` of the new positions.
        cache: ``(keys, values)``, ``(batch, kv_heads, length, head_dim)``,
            only read; positions before ``start`` are visible.
        index: position of the first new position (int or scalar tensor).
        chunk: ``(keys, values)`` for positions ``start ...``, valid before
            ``index``; the new keys and values are written into it at slot
            ``index - start`` before attending (copying a small chunk is
            cheap), so attention has two sources, not three. None: the
            chunk is the new positions themselves (``start = index``).
        start: first position held by ``chunk`` (``start <= index``).
        groups: query heads per key/value head.

    Returns:
        ``(out, chunk)``: ``(batch, kv_heads, groups * t, head_dim)`` and the
        chunk with the new positions written.
    """
    key_cache, value_cache = cache
    steps = key.shape[2]
    if chunk is None:
        start, chunk, visible = index, (key, value), causal(steps)
    else:
        slot = index - start
        chunk = tuple(ops.slice_update(c, [0, 0, slot, 0], new) for c, new in zip(chunk, (key, value)))
        # New position slot + i sees chunk slots <= slot + i.
        visible = ops.arange(ops.shape(chunk[0])[2])[None, :] <= slot + ops.arange(steps)[:, None]
    if groups > 1:
        visible = ops.tile(visible, (groups, 1))
    parts = [(chunk[0], chunk[1], visible)]
    # A view that starts at 0 (a Python int: the prefill) has nothing cached
    # to attend to. Masking the empty cache out instead made XLA
    # constant-fold a softmax over the whole (batch, heads, prompt, cache)
    # block of masked scores, which lengthened compilation of every prompt
    # bucket.
    if not (isinstance(start, int) and start == 0):
        parts.insert(0, (key_cache, value_cache, ops.arange(ops.shape(key_cache)[2])[None, :] < start))
    return attend(query, parts), chunk


def write(cache, chunk, start):
    """Writes ``chunk``'s tensors into ``cache``'s at position ``start``.

    Args:
        cache: tensors ``(batch, heads, length, head_dim)``.
        chunk: as many tensors ``(batch, heads, size, head_dim)``.
        start: int or scalar tensor, ``start + size <= length``.

    Returns:
        A tuple of the updated cache tensors.
    """
    return tuple(ops.slice_update(c, [0, 0, start, 0], k) for c, k in zip(cache, chunk))
