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

Known cost: XLA (CPU) still copies each cache tensor once or twice per loop
iteration (``jax.jit(...).lower(...).compile().as_text()`` shows the copies
in the while body), so a step's cost grows with the cache length; reading the
cache before writing it removed half of those copies.
"""

import math

from keras import ops


def weight(variable):
    """A variable's current value (the traced one inside a StatelessScope)."""
    return None if variable is None else variable.value


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


def _attention(block, x, key_cache, value_cache, index):
    """Causal self-attention of ``x`` (positions ``index ...``) over the cache.

    The new positions attend to the cache as it was (positions before
    ``index``) and to each other, and only then are their keys and values
    written into the cache. Reading the cache before updating it lets XLA
    update it in place; attending to the freshly updated cache made XLA copy
    every cache tensor on every step.
    """
    attn = block._self_attention_layer
    # Heads-first layouts (batch, heads, positions, head_dim) let both
    # attention products run on the cache as stored, with no transpose of it.
    query, key, value = (
        ops.transpose(_einsum_dense(x, dense, "btd,dhk->bthk"), (0, 2, 1, 3))
        for dense in (attn._query_dense, attn._key_dense, attn._value_dense)
    )
    key, value = ops.cast(key, key_cache.dtype), ops.cast(value, value_cache.dtype)
    query = query / math.sqrt(query.shape[-1])
    # The cache width is static under XLA, dynamic in an exported graph.
    steps, length = x.shape[1], ops.shape(key_cache)[2]
    old_scores = ops.einsum("bhtk,bhsk->bhts", query, key_cache)
    old_visible = ops.arange(length)[None, :] < index
    new_scores = ops.einsum("bhtk,bhsk->bhts", query, key)
    new_visible = ops.arange(steps)[None, :] <= ops.arange(steps)[:, None]
    scores = ops.concatenate([
        ops.where(old_visible[None, None], old_scores, ops.cast(-1e9, old_scores.dtype)),
        ops.where(new_visible[None, None], new_scores, ops.cast(-1e9, new_scores.dtype)),
    ], axis=-1)
    probs = ops.softmax(scores, axis=-1)
    out = ops.einsum("bhts,bhsk->bhtk", probs[..., :length], value_cache)
    out = out + ops.einsum("bhts,bhsk->bhtk", probs[..., length:], value)
    key_cache = ops.slice_update(key_cache, [0, 0, index, 0], key)
    value_cache = ops.slice_update(value_cache, [0, 0, index, 0], value)
    return _einsum_dense(out, attn._output_dense, "bhtk,hkd->btd"), key_cache, value_cache


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
    x = x + attended
    h = _layer_norm(x, block._feedforward_layer_norm)
    h = block.activation(_dense(h, block._feedforward_intermediate_dense))
    x = x + _dense(h, block._feedforward_output_dense)
    return x, key_cache, value_cache
