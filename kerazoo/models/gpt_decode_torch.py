"""The GPT decoding step in plain PyTorch, for the torch backend.

On PyTorch, Keras runs eagerly and each ``keras.ops`` call costs tens of
microseconds of dispatch (dtype standardisation, tensor conversion); a
decoding step is ~150 tiny ops, so that dispatch, not arithmetic, set the
speed. This mirrors ``gpt_decode.block_step`` op for op on the same weights,
in torch, and attends only to the filled part of the cache (eager shapes can
vary at no cost). It runs under ``torch.no_grad`` and writes the cache in
place. Tested equal to the Keras forward pass.
"""

import math

import torch
import torch.nn.functional as F


def _v(variable):
    return None if variable is None else variable.value


def _dense(x, layer):
    y = x @ _v(layer.kernel)
    return y if layer.bias is None else y + _v(layer.bias)


def _layer_norm(x, layer):
    return F.layer_norm(x, (x.shape[-1],), _v(layer.gamma), _v(layer.beta), layer.epsilon)


def _heads(x, dense):
    """``EinsumDense`` "btd,dhk->bthk", returned heads-first (b, h, t, k)."""
    kernel = _v(dense.kernel)
    d, h, k = kernel.shape
    y = (x @ kernel.reshape(d, h * k)).reshape(x.shape[0], x.shape[1], h, k)
    if dense.bias is not None:
        y = y + _v(dense.bias)
    return y.transpose(1, 2)


def _activation(block, x):
    """The block's activation, in torch when it is GELU (the zoo's choice)."""
    if getattr(block.activation, "__name__", "") == "gelu":
        return F.gelu(x)  # keras' gelu defaults to the exact (erf) form
    return block.activation(x)


def block_step(block, x, key_cache, value_cache, index):
    """One pre-norm ``TransformerDecoder`` block (see ``gpt_decode.block_step``).

    Args:
        block: the keras_hub block.
        x: torch tensor ``(batch, t, dim)`` of positions ``index ...``.
        key_cache, value_cache: ``(batch, heads, length, head_dim)``; updated in place.
        index: int position of ``x[:, 0]``.

    Returns:
        ``(x, key_cache, value_cache)``.
    """
    attn = block._self_attention_layer
    steps = x.shape[1]
    h = _layer_norm(x, block._self_attention_layer_norm)
    query, key, value = (_heads(h, d) for d in (attn._query_dense, attn._key_dense, attn._value_dense))
    end = index + steps
    key_cache[:, :, index:end] = key
    value_cache[:, :, index:end] = value
    scores = query @ key_cache[:, :, :end].transpose(-1, -2) / math.sqrt(query.shape[-1])
    visible = torch.ones(steps, end, dtype=torch.bool, device=x.device).tril(diagonal=index)
    probs = torch.softmax(scores.masked_fill(~visible, -1e9), dim=-1)
    out = (probs @ value_cache[:, :, :end]).transpose(1, 2)
    out_kernel = _v(attn._output_dense.kernel)
    out = out.reshape(out.shape[0], steps, -1) @ out_kernel.reshape(-1, out_kernel.shape[-1])
    if attn._output_dense.bias is not None:
        out = out + _v(attn._output_dense.bias)
    x = x + out
    h = _layer_norm(x, block._feedforward_layer_norm)
    x = x + _dense(_activation(block, _dense(h, block._feedforward_intermediate_dense)), block._feedforward_output_dense)
    return x, key_cache, value_cache


def call_with_cache(model, token_ids, cache, index):
    """``GPT.call_with_cache`` in torch: embeddings, blocks, final norm, head."""
    index = int(index)
    cache = tuple(torch.as_tensor(c) for c in cache)
    embeddings = _v(model.token_embedding.embeddings)
    x = embeddings[torch.as_tensor(token_ids, device=embeddings.device).long()]
    x = x + _v(model.position_embedding.position_embeddings)[index:index + token_ids.shape[1]]
    new_cache = []
    for i, block in enumerate(model.transformer_layers):
        x, keys, values = block_step(block, x, cache[2 * i], cache[2 * i + 1], index)
        new_cache += [keys, values]
    x = _layer_norm(x, model.final_norm)
    head = embeddings if model.tie_embeddings else _v(model.token_embedding.reverse_embeddings).T
    return (x @ head.T).float(), tuple(new_cache)
