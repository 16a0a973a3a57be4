"""A mirror, in plain PyTorch, of the GPT's forward pass for training on the torch backend.

This is not a second definition of the model: it is the functional graph of
``kerazoo.models.gpt.model.GPT`` (token + position embedding, the
``CausalDecoder`` blocks' fused-causal-attention path, the final norm and
the tied or untied head) transcribed into torch on the same variables, and
``tests/models/test_gpt_train_torch.py`` holds its logits and gradients
equal to the Keras layers'. Change the model in ``model.py`` / ``block.py``
first, then here.

Why it exists: on PyTorch, Keras runs eagerly and every layer call and
``keras.ops`` call pays Python dispatch (dtype standardisation, tensor
conversion, name scopes) of tens of microseconds. A small GPT's training
step is a few hundred of them, so that dispatch, not the arithmetic, set
the step's time (``kerazoo bench nanogpt``). Here the same products run as
direct ``torch.nn.functional`` calls on the variables' torch tensors, so
autograd sees the same graph and Keras' trainer, optimizer and callbacks
are unchanged.

It is used only where it computes exactly what the layers do: float32, no
dropout in training, no LoRA adapters, no quantized layer. Anything else
keeps the Keras layers.
"""

import keras
import torch
import torch.nn.functional as F


def _sublayers(model):
    """Every Dense / EinsumDense / embedding the forward pass reads."""
    for block in model.transformer_layers:
        attn = block._self_attention_layer
        yield from (attn._query_dense, attn._key_dense, attn._value_dense, attn._output_dense,
                    block._feedforward_intermediate_dense, block._feedforward_output_dense)
    yield model.token_embedding


def applies(model, training):
    """Whether ``forward`` computes what the model's layers would, for this call.

    Args:
        model: a built ``GPT``.
        training: the call's ``training`` flag.

    Returns:
        True on the torch backend for a float32 model without LoRA adapters
        or quantized layers, when dropout is off or the call is not training.
    """
    if keras.config.backend() != "torch" or model.dtype_policy.name != "float32":
        return False
    if training and model.dropout > 0:
        return False
    return not any(getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None)
                   for layer in _sublayers(model))


def _linear(x, layer, out_dim):
    """``x @ kernel + bias`` of a Dense or an EinsumDense whose kernel folds to ``(in, out_dim)``."""
    kernel = layer.kernel.value
    bias = None if layer.bias is None else layer.bias.value.reshape(-1)
    return F.linear(x, kernel.reshape(-1, out_dim).t(), bias)


def _norm(x, layer):
    """A Keras ``LayerNormalization`` over the last axis."""
    return F.layer_norm(x, (x.shape[-1],), layer.gamma.value, layer.beta.value, layer.epsilon)


def _block(x, block):
    """One pre-norm ``CausalDecoder`` block (its ``plain`` path: causality the only mask)."""
    attn = block._self_attention_layer
    dim, heads, head_dim = attn._query_dense.kernel.shape
    h = _norm(x, block._self_attention_layer_norm)
    batch, length = x.shape[0], x.shape[1]
    q, k, v = (_linear(h, dense, heads * head_dim).reshape(batch, length, heads, head_dim).transpose(1, 2)
               for dense in (attn._query_dense, attn._key_dense, attn._value_dense))
    # Keras' MultiHeadAttention scales the query by 1/sqrt(head_dim), as SDPA's default does.
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(batch, length, -1)
    x = x + _linear(out, attn._output_dense, dim)
    h = _linear(_norm(x, block._feedforward_layer_norm), block._feedforward_intermediate_dense,
                block._feedforward_intermediate_dense.kernel.shape[-1])
    h = block.activation(h)
    return x + _linear(h, block._feedforward_output_dense, dim)


def forward(model, token_ids):
    """The GPT's logits for ``token_ids``, as its functional graph computes them.

    Args:
        model: a ``GPT`` for which ``applies`` holds.
        token_ids: int tensor ``(batch, length)``, ``length <= max_length``.

    Returns:
        float32 logits ``(batch, length, vocab)``, differentiable in the
        model's variables.
    """
    token_ids = torch.as_tensor(token_ids)
    table = model.token_embedding.embeddings.value
    positions = model.position_embedding.position_embeddings.value
    x = F.embedding(token_ids.long(), table) + positions[: token_ids.shape[1]]
    for block in model.transformer_layers:
        x = _block(x, block)
    x = _norm(x, model.final_norm)
    head = table.t() if model.tie_embeddings else model.token_embedding.reverse_embeddings.value
    logits = x @ head
    if model.logit_bias:
        logits = logits + model.head_bias.bias.value
    return logits
