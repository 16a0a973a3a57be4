"""The pre-norm Transformer block's decoding arithmetic, written once in ``keras.ops``.

keras_hub's ``CachedMultiHeadAttention`` keeps keys and values stacked in one
``(batch, 2, length, heads, head_dim)`` tensor per block, and its GPT-2 stacks
those again across blocks: every decoded token rewrites (copies) the whole
cache several times, which is most of the cost of a step on CPU. Here each
block's keys and values are separate tensors, and the block's arithmetic is
spelled out with ``keras.ops`` on the weights of the very same keras_hub
sub-layers, so no layer-call overhead is paid per token (that overhead
dominates eager PyTorch). The result equals the training graph's forward
pass (tested in ``tests/models/test_gpt_step.py``).

One function, ``block_step``, runs a block on new positions ``index ...``
over a key/value view:

* ``cache``: the block's ``(keys, values)``, only read; its positions before
  ``start`` are visible;
* ``chunk``: ``(keys, values)`` for positions ``start ...``, which receives
  the new keys and values at slot ``index - start`` and is returned.

A whole-cache write is the chunk that starts at ``index`` and holds exactly
the new positions (``chunk=None``): the new positions attend to the cache as
it was and to each other, and the caller then writes the returned chunk into
the cache (``write``). Reading the cache before writing it lets XLA update it
in place; attending to the freshly updated cache made XLA copy every cache
tensor on every step. ``GPT.call_with_cache`` (the generic XLA loop, the
exported TF graph loop, beam search, the prefill) takes that path.

Even so, a loop that carries the whole cache makes XLA (CPU) copy each cache
tensor once per iteration (``jax.jit(...).lower(...).compile().as_text()``
shows the copies in the while body). The chunked loop
(``kerazoo.decoding.loop._chunked_loop_fn``, through ``GPT.call_with_chunk``)
therefore carries a small chunk of ``CHUNK`` positions and only reads the big
cache: XLA copies the chunk per iteration, not the cache.

The same pieces serve the seq2seq decoder blocks (``block_step(...,
cross=...)`` adds their cross-attention) and the attention maps
(``probabilities``); ``step_torch`` mirrors ``block_step`` in plain PyTorch.
"""

import math

from keras import ops

from kerazoo.models import weights
# Re-exported: the attention over a key/value view is shared with llama
# (kerazoo.models.kv_attention); callers keep reading it here.
from kerazoo.models.kv_attention import attend, attend_view, causal, matmul, matmul_t, probabilities, write  # noqa: F401


def weight(variable):
    """A variable's current value (the traced one inside a StatelessScope)."""
    return None if variable is None else variable.value


def dense(x, layer):
    """``keras.layers.Dense`` on ``x`` without the call machinery.

    Args:
        x: ``(..., in)``.
        layer: a built ``Dense`` (its activation is not applied).

    Returns:
        ``(..., out)``.
    """
    y = ops.matmul(x, weights.kernel(layer))
    return y if layer.bias is None else y + weight(layer.bias)


def einsum_dense(x, layer, equation):
    """``keras.layers.EinsumDense`` on ``x`` without the call machinery.

    Args:
        x: the input.
        layer: a built ``EinsumDense``.
        equation: the einsum of ``x`` and the layer's kernel, which may lay
            the result out differently from the layer's own equation.

    Returns:
        The product plus the layer's bias.
    """
    y = ops.einsum(equation, x, weights.kernel(layer))
    return y if layer.bias is None else y + weight(layer.bias)


def layer_norm(x, layer):
    """``keras.layers.LayerNormalization`` over the last axis, in ``x``'s dtype.

    Args:
        x: ``(..., dim)``.
        layer: a built ``LayerNormalization`` (its epsilon, gamma and beta).

    Returns:
        The normalised ``x``.
    """
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * ops.rsqrt(var + layer.epsilon) * weight(layer.gamma) + weight(layer.beta)


def heads(x, dense):
    """A keras_hub attention projection of ``x``, heads first.

    Heads-first layouts ``(batch, heads, positions, head_dim)`` let both
    attention products run on a cache as stored, with no transpose of it.

    Args:
        x: ``(batch, t, dim)``.
        dense: the attention layer's query, key or value ``EinsumDense``.

    Returns:
        ``(batch, heads, t, head_dim)``.
    """
    return ops.transpose(einsum_dense(x, dense, "btd,dhk->bthk"), (0, 2, 1, 3))


def fused_qkv(block):
    """One ``(dim, 3 * dim)`` kernel and ``(3 * dim,)`` bias for the block's query, key and value.

    Made once per decoding call, outside the token loop: one matmul per
    block and token instead of three, which at batch 1 on CPU is mostly
    saved per-kernel overhead (XLA runs each op of the loop body as its own
    kernel).

    Args:
        block: a keras_hub ``TransformerDecoder``.

    Returns:
        ``(kernel, bias)``; the query part is pre-scaled by ``1 / sqrt(head_dim)``.
    """
    attn = block._self_attention_layer
    denses = (attn._query_dense, attn._key_dense, attn._value_dense)
    head_dim = denses[0].kernel.shape[-1]
    scales = (1.0 / math.sqrt(head_dim), 1.0, 1.0)
    kernels = [ops.reshape(weights.kernel(d), (d.kernel.shape[0], -1)) * s for d, s in zip(denses, scales)]
    biases = [ops.reshape(weight(d.bias), (-1,)) * s for d, s in zip(denses, scales)]
    return ops.concatenate(kernels, axis=1), ops.concatenate(biases, axis=0)


def projections(block, x, dtype, qkv=None):
    """The block's self-attention query (pre-scaled), key and value of ``x``, heads first.

    Args:
        block: a keras_hub ``TransformerDecoder``.
        x: normalised hidden states ``(batch, t, dim)``.
        dtype: the cache's dtype, which keys and values are cast to.
        qkv: ``fused_qkv(block)``: one product instead of three (the
            chunked loop makes it once per decoding call). None: the three
            projections, each on its own weights (no re-laid-out copy to
            make on every call, as an exported graph would).

    Returns:
        ``(query, key, value)``, each ``(batch, heads, t, head_dim)``.
    """
    attn = block._self_attention_layer
    if qkv is None:
        query, key, value = (heads(x, d) for d in (attn._query_dense, attn._key_dense, attn._value_dense))
        query = query / math.sqrt(query.shape[-1])
    else:
        kernel, bias = qkv
        y = ops.matmul(x, kernel) + bias
        # ops.shape: the batch is dynamic in an exported graph.
        y = ops.reshape(y, (ops.shape(x)[0], x.shape[1], 3, attn._num_heads, -1))
        y = ops.transpose(y, (2, 0, 3, 1, 4))
        query, key, value = y[0], y[1], y[2]
    return query, ops.cast(key, dtype), ops.cast(value, dtype)


def self_attention(block, x, cache, index, chunk=None, start=None, qkv=None):
    """Causal self-attention of ``x`` (positions ``index ...``) over a key/value view.

    Args:
        block: a keras_hub ``TransformerDecoder``.
        x: normalised hidden states ``(batch, t, dim)``.
        cache: ``(keys, values)``, ``(batch, heads, length, head_dim)``,
            only read; positions before ``start`` are visible.
        index: position of ``x[:, 0]`` (int or scalar tensor).
        chunk: ``(keys, values)`` for positions ``start ...``, valid before
            ``index``; the new keys and values are written into it at slot
            ``index - start`` before attending (copying a small chunk is
            cheap), so attention has two sources, not three. None: the
            chunk is the new positions themselves (``start = index``).
        start: first position held by ``chunk`` (``start <= index``).
        qkv: ``fused_qkv(block)`` or None (see ``projections``).

    Returns:
        ``(out, chunk)``: the attention output ``(batch, t, dim)`` before the
        residual, and the chunk with the new positions written.
    """
    query, key, value = projections(block, x, cache[0].dtype, qkv)
    out, chunk = attend_view(query, key, value, cache, index, chunk, start)
    return einsum_dense(out, block._self_attention_layer._output_dense, "bhtk,hkd->btd"), chunk


def cross_attention(block, x, keys, values, visible):
    """The block's cross-attention of ``x`` over precomputed source keys and values.

    Args:
        block: a keras_hub ``TransformerDecoder`` built with cross-attention.
        x: normalised decoder states ``(batch, t, dim)``.
        keys, values: ``(batch, heads, s, head_dim)``, ``heads`` of the
            encoder output through the cross-attention's key and value.
        visible: bool ``(batch, s)``, False on source padding.

    Returns:
        ``(batch, t, dim)``, before the residual.
    """
    attn = block._cross_attention_layer
    query = heads(x, attn._query_dense)
    query = ops.cast(query / math.sqrt(query.shape[-1]), keys.dtype)
    out = attend(query, [(keys, values, visible[:, None, None, :])])
    return einsum_dense(out, attn._output_dense, "bhtk,hkd->btd")


def feedforward(block, x):
    """The block's pre-norm MLP with its residual: ``x + W2 act(W1 LayerNorm(x))``."""
    h = layer_norm(x, block._feedforward_layer_norm)
    h = block.activation(dense(h, block._feedforward_intermediate_dense))
    return x + dense(h, block._feedforward_output_dense)


def block_step(block, x, cache, index, chunk=None, start=None, qkv=None, cross=None):
    """One pre-norm ``TransformerDecoder`` block on new positions over a key/value view.

    Args:
        block: a ``keras_hub.layers.TransformerDecoder`` built with
            ``normalize_first=True``.
        x: hidden states ``(batch, t, dim)`` of positions ``index ...``.
        cache: this block's ``(keys, values)``, ``(batch, heads, length,
            head_dim)``, only read: positions before ``start`` are visible.
        index: position of ``x[:, 0]`` (int or scalar tensor).
        chunk: this block's ``(keys, values)`` for positions ``start ...``
            (``(batch, heads, size, head_dim)``, valid before ``index``,
            ``index + t <= start + size``), written at ``index - start``.
            None: a whole-cache step; the returned chunk holds the new
            positions, for ``write(cache, chunk, index)``.
        start: first position held by ``chunk`` (with ``chunk`` only).
        qkv: ``fused_qkv(block)``, made once per decoding call, or None
            for the three separate projections.
        cross: ``(keys, values, visible)`` of the block's cross-attention
            (see ``cross_attention``), for encoder-decoder blocks.

    Returns:
        ``(x, chunk)``: the hidden states after the block and the chunk
        with positions ``index ... index + t - 1`` written.
    """
    h = layer_norm(x, block._self_attention_layer_norm)
    attended, chunk = self_attention(block, h, cache, index, chunk, start, qkv)
    x = x + attended
    if cross is not None:
        x = x + cross_attention(block, layer_norm(x, block._cross_attention_layer_norm), *cross)
    return feedforward(block, x), chunk
