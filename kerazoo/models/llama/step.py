"""The llama block's arithmetic in ``keras.ops``: rotary positions, RMSNorm, the decoding step.

Two things are written once here and used by both the training forward
pass (``block.LlamaBlock.call``) and the decoding step (``block_step``):

* ``rope_tables`` / ``rotate``: rotary position embeddings in the
  "rotate half" layout of Hugging Face's Llama (the layout its checkpoints'
  query and key weights are stored in). Positions are a tensor, so decoding
  rotates at the cache index (``index + arange(t)``) with the very rule
  training uses at ``arange(t)``: one position rule. keras_hub's
  ``RotaryEmbedding`` layer would be the library choice for training, but
  its per-call layer overhead is paid on every decoded token, and the
  step needs the tables on a heads-first layout.
* the MLP, SwiGLU: ``down(silu(gate(x)) * up(x))``.

``block_step`` runs one block on new positions ``index ...`` over a
key/value view exactly as ``kerazoo.models.gpt.step.block_step`` does (the
attention over the view is shared: ``kerazoo.models.kv_attention``); the
cache holds ``num_kv_heads`` heads, and the ``num_heads // num_kv_heads``
query heads of a group are folded into the query's position axis, so
grouped-query attention reads each cached key once, never repeated.
The weights are read from the block's Keras layers (``Dense`` /
``EinsumDense``), merged LoRA kernels included. ``tests/models/test_llama.py``
holds the step equal to the forward pass at every position.
"""

import math

import keras
from keras import ops

from kerazoo.models.kv_attention import attend_view, matmul
from kerazoo.models import weights as layer_weights


def value(tensor):
    """A variable's current value (the traced one inside a StatelessScope), or the tensor itself.

    A LoRA-enabled ``Dense`` returns its merged kernel as a tensor, not a variable.
    """
    if tensor is None:
        return None
    return tensor.value if isinstance(tensor, keras.Variable) else tensor


def rope_tables(positions, head_dim, theta):
    """Cosines and sines of the rotary angles of ``positions``.

    Args:
        positions: int tensor ``(t,)``.
        head_dim: the rotated width (even).
        theta: the base of the frequencies (``rope_theta``).

    Returns:
        ``(cos, sin)``, float32 ``(t, head_dim)``, each half repeating the
        ``head_dim // 2`` frequencies (Hugging Face's layout).
    """
    exponents = ops.arange(0, head_dim, 2, dtype="float32") / head_dim
    inverse = 1.0 / ops.power(ops.cast(theta, "float32"), exponents)
    angles = ops.cast(positions, "float32")[:, None] * inverse[None, :]
    angles = ops.concatenate([angles, angles], axis=-1)
    return ops.cos(angles), ops.sin(angles)


def rotate(x, cos, sin):
    """Applies rotary embeddings: ``x * cos + rotate_half(x) * sin``.

    Args:
        x: ``(..., head_dim)`` whose positions axis lines up with ``cos``'s
            first axis by broadcasting (pass ``cos[:, None]`` for a
            ``(batch, t, heads, head_dim)`` layout).
        cos, sin: from ``rope_tables``.

    Returns:
        ``x`` rotated, in ``x``'s dtype.
    """
    half = x.shape[-1] // 2
    rotated = ops.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * ops.cast(cos, x.dtype) + rotated * ops.cast(sin, x.dtype)


def rms_norm(x, layer):
    """``keras.layers.RMSNormalization`` over the last axis without the call machinery.

    Args:
        x: ``(..., dim)``.
        layer: a built ``RMSNormalization`` (its epsilon and scale).

    Returns:
        The normalised ``x``, in ``x``'s dtype.
    """
    x32 = ops.cast(x, "float32")
    y = x32 * ops.rsqrt(ops.mean(ops.square(x32), axis=-1, keepdims=True) + layer.epsilon)
    # Scaled in float32, then cast, as Keras' layer does.
    return ops.cast(y * ops.cast(value(layer.scale), "float32"), x.dtype)


def swiglu(block, x, weights=None):
    """The block's MLP ``down(silu(gate(x)) * up(x))``, without the call machinery.

    Args:
        block: a ``LlamaBlock``.
        x: normalised hidden states ``(batch, t, dim)``.
        weights: ``decode_weights(block)`` (one product for gate and up) or None.

    Returns:
        ``(batch, t, dim)``, before the residual.
    """
    if weights is None:
        gate, up = (matmul(x, layer_weights.kernel(d)) for d in (block.gate_dense, block.up_dense))
    else:
        both = matmul(x, weights[1])
        gate, up = both[..., :block.intermediate_dim], both[..., block.intermediate_dim:]
    return matmul(ops.silu(gate) * up, layer_weights.kernel(block.down_dense))


def decode_weights(block):
    """The block's weights re-laid out for decoding, made once per decoding call.

    Args:
        block: a ``LlamaBlock``.

    Returns:
        ``(qkv_kernel, gate_up_kernel, qkv_bias)``: one ``(dim, (heads + 2 *
        kv_heads) * head_dim)`` kernel for the query (pre-scaled by
        ``1 / sqrt(head_dim)``, which commutes with the rotation), key and
        value, one ``(dim, 2 * intermediate_dim)`` kernel for gate and up,
        and the concatenated bias (None without one): one product where
        there were three and two, which at batch 1 is mostly saved
        per-kernel overhead.
    """
    denses = (block.query_dense, block.key_dense, block.value_dense)
    scales = (1.0 / math.sqrt(block.head_dim), 1.0, 1.0)
    kernel = ops.concatenate(
        [ops.reshape(layer_weights.kernel(d), (block.hidden_dim, -1)) * s for d, s in zip(denses, scales)], axis=1)
    bias = None
    if block.qkv_bias:
        bias = ops.concatenate([ops.reshape(value(d.bias), (-1,)) * s for d, s in zip(denses, scales)], axis=0)
    gate_up = ops.concatenate([layer_weights.kernel(block.gate_dense), layer_weights.kernel(block.up_dense)], axis=1)
    return kernel, gate_up, bias


def projections(block, x, dtype, rope, weights=None):
    """The block's rotated query (pre-scaled, groups folded), key and value of ``x``.

    Args:
        block: a ``LlamaBlock``.
        x: normalised hidden states ``(batch, t, dim)``.
        dtype: the cache's dtype, which keys and values are cast to.
        rope: ``rope_tables`` of the new positions.
        weights: ``decode_weights(block)`` or None for the three separate
            projections (no re-laid-out copy to make on every call, as an
            exported graph would).

    Returns:
        ``(query, key, value)``: ``(batch, kv_heads, groups * t, head_dim)``
        and twice ``(batch, kv_heads, t, head_dim)``.
    """
    heads, kv_heads = block.num_heads, block.num_kv_heads
    if weights is None:
        query, key, val = (
            ops.einsum("btd,dhk->bhtk", x, layer_weights.kernel(d)) for d in (block.query_dense, block.key_dense,
                                                                      block.value_dense))
        if block.qkv_bias:
            query, key, val = (
                y + value(d.bias)[None, :, None, :]
                for y, d in ((query, block.query_dense), (key, block.key_dense), (val, block.value_dense)))
        query = query / math.sqrt(block.head_dim)
    else:
        kernel, _, bias = weights
        y = ops.matmul(x, kernel)
        y = y if bias is None else y + bias
        # ops.shape: the batch is dynamic in an exported graph.
        y = ops.transpose(ops.reshape(y, (ops.shape(x)[0], x.shape[1], heads + 2 * kv_heads, block.head_dim)),
                          (0, 2, 1, 3))
        query, key, val = y[:, :heads], y[:, heads:heads + kv_heads], y[:, heads + kv_heads:]
    cos, sin = rope
    query, key = rotate(query, cos, sin), rotate(key, cos, sin)
    groups = heads // kv_heads
    if groups > 1:
        # Query head h uses key/value head h // groups (Hugging Face's repeat_kv).
        steps = ops.shape(query)[2]
        query = ops.reshape(query, (-1, kv_heads, groups * steps, block.head_dim))
    return query, ops.cast(key, dtype), ops.cast(val, dtype)


def block_step(block, x, cache, index, rope, chunk=None, start=None, weights=None):
    """One llama block on new positions over a key/value view.

    Args:
        block: a ``LlamaBlock``.
        x: hidden states ``(batch, t, dim)`` of positions ``index ...``.
        cache: this block's ``(keys, values)``, ``(batch, kv_heads, length,
            head_dim)``, only read: positions before ``start`` are visible.
        index: position of ``x[:, 0]`` (int or scalar tensor).
        rope: ``rope_tables`` of positions ``index ... index + t - 1``
            (made once per step, shared by the blocks).
        chunk: this block's ``(keys, values)`` for positions ``start ...``,
            written at ``index - start``; None: a whole-cache step whose
            returned chunk holds the new positions (see
            ``kv_attention.attend_view``).
        start: first position held by ``chunk`` (with ``chunk`` only).
        weights: ``decode_weights(block)`` or None.

    Returns:
        ``(x, chunk)``: the hidden states after the block and the chunk with
        positions ``index ... index + t - 1`` written.
    """
    h = rms_norm(x, block.attention_norm)
    query, key, val = projections(block, h, cache[0].dtype, rope, weights)
    groups = block.num_heads // block.num_kv_heads
    out, chunk = attend_view(query, key, val, cache, index, chunk, start, groups)
    if groups > 1:
        out = ops.reshape(out, (-1, block.num_heads, ops.shape(out)[2] // groups, block.head_dim))
    x = x + ops.einsum("bhtk,hkd->btd", out, layer_weights.kernel(block.output_dense))
    return x + swiglu(block, rms_norm(x, block.mlp_norm), weights), chunk
