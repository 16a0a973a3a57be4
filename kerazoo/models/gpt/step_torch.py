"""A mirror, in plain PyTorch, of the ``keras.ops`` decoding step (``step.block_step``).

This is not a second definition of the GPT block: it is ``step.block_step``
(a whole-cache write) transcribed into torch for the torch backend, on the
same weights, and ``tests/models/test_gpt_step_torch.py`` holds it equal to
that step. Change the block's arithmetic in ``step.py`` first, then here.

Why it exists: on PyTorch, Keras runs eagerly and each ``keras.ops`` call
costs tens of microseconds of dispatch (dtype standardisation, tensor
conversion); a decoding step is ~150 tiny ops, so that dispatch, not
arithmetic, set the speed. ``TorchStep`` runs the block with the
query/key/value projections fused into one matmul and PyTorch's fused
``scaled_dot_product_attention``; it attends only to the filled part of the
cache (eager shapes can vary at no cost) and writes the cache in place. Its
products run on weights pre-packed for oneDNN when PyTorch has it (see
``_Linear``).
"""

import keras
import torch
import torch.nn.functional as F

from kerazoo.models import weights


def _v(variable, dtype=None):
    """A Keras variable's torch tensor, cast to ``dtype`` when given.

    Under a mixed policy the variables are float32 and the cache holds the
    16-bit compute dtype; Keras layers cast their weights to the compute
    dtype on every call, so the step does the same once, here.
    """
    if variable is None:
        return None
    value = variable.value
    return value if dtype is None else value.to(dtype)


def _t(tensor, dtype=None):
    """A torch tensor (a weight read through ``kerazoo.models.weights``), cast to ``dtype`` when given."""
    return tensor if dtype is None else tensor.to(dtype)


def _activation(block):
    """The block's activation, in torch when it is GELU (the zoo's choice)."""
    if getattr(block.activation, "__name__", "") == "gelu":
        return F.gelu  # keras' gelu defaults to the exact (erf) form
    return block.activation


class _Linear:
    """``x @ kernel + bias`` over the last axis, on a kernel pre-packed once when it pays.

    A step's products are small (rows = batch) and each reads its weight
    from memory once; ``torch.addmm`` repacks the weight into MKL's blocked
    layout on every call and gains little from a second thread at a few
    rows. oneDNN's linear on a weight packed once for the expected row count
    (the op PyTorch's own compiler emits for frozen CPU linears) skips the
    repacking and shares even small products between threads, so a step's
    products take less time from a few rows up, on one thread or two. At
    one row ``addmm``'s matrix-vector path is faster, so a single row keeps it. The packed
    path is used only for float32 on CPU with oneDNN available; anything
    else keeps ``addmm``.

    Args:
        kernel: ``(in, out)``.
        bias: ``(out,)`` or None.
        rows: the row count the packing is tuned for (the decoded batch).
        activation: applied to the result (None: none); fused into the
            packed product when it is the exact GELU.
    """

    def __init__(self, kernel, bias, rows, activation=None):
        self.kernel, self.bias, self.activation = kernel, bias, activation
        self.packed = _pack(kernel, rows)
        # On packed weights oneDNN applies the exact (erf) GELU to the
        # product's output as it writes it: one pass over the result fewer.
        self.post_op = ("gelu", "none") if activation is F.gelu else ("none", "")

    def __call__(self, x):
        flat = x.reshape(-1, x.shape[-1])
        activation = self.activation
        if self.packed is not None and flat.shape[0] > 1:
            attr, algorithm = self.post_op
            y = torch.ops.mkldnn._linear_pointwise(flat, self.packed, self.bias, attr, [], algorithm)
            activation = None if attr == "gelu" else activation
        elif self.bias is None:
            y = flat @ self.kernel
        else:
            y = torch.addmm(self.bias, flat, self.kernel)
        y = y.view(*x.shape[:-1], -1)
        return y if activation is None else activation(y)


def _pack(kernel, rows):
    """``kernel`` packed for oneDNN's linear, or None where that path does not apply."""
    if (
        rows < 2 or kernel.dtype != torch.float32 or kernel.device.type != "cpu"
        or not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
        or not hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    ):
        return None
    # oneDNN takes the weight as (out, in), like torch.nn.Linear.
    return torch.ops.mkldnn._reorder_linear_weight(kernel.t().contiguous(), rows)


class _Block:
    """One pre-norm ``TransformerDecoder`` block's weights, laid out for torch."""

    def __init__(self, block, dtype, rows):
        attn = block._self_attention_layer
        denses = (attn._query_dense, attn._key_dense, attn._value_dense)
        dim, self.heads, self.head_dim = denses[0].kernel.shape
        # One (dim, 3 * heads * head_dim) matmul instead of three.
        qkv_kernel = torch.cat([_t(weights.kernel(d), dtype).reshape(dim, -1) for d in denses], dim=1)
        qkv_bias = None if denses[0].bias is None else torch.cat([_v(d.bias, dtype).reshape(-1) for d in denses])
        self.qkv = _Linear(qkv_kernel, qkv_bias, rows)
        self.out = _Linear(_t(weights.kernel(attn._output_dense), dtype).reshape(-1, dim), _v(attn._output_dense.bias, dtype), rows)
        # Tensors read once here: a Keras variable's ``.value`` costs a few
        # microseconds of Python per access.
        self.norm1 = _norm(block._self_attention_layer_norm, dtype)
        self.norm2 = _norm(block._feedforward_layer_norm, dtype)
        ff1, ff2 = block._feedforward_intermediate_dense, block._feedforward_output_dense
        self.ff1 = _Linear(_t(weights.kernel(ff1), dtype), _v(ff1.bias, dtype), rows, _activation(block))
        self.ff2 = _Linear(_t(weights.kernel(ff2), dtype), _v(ff2.bias, dtype), rows)

    def __call__(self, x, key_cache, value_cache, index):
        """Runs the block on positions ``index ...``; writes their keys/values into the cache."""
        batch, steps, _ = x.shape
        h = F.layer_norm(x, *self.norm1)
        qkv = self.qkv(h).view(batch, steps, 3, self.heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        end = index + steps
        key_cache[:, :, index:end] = key
        value_cache[:, :, index:end] = value
        keys, values = key_cache[:, :, :end], value_cache[:, :, :end]
        if steps == 1:  # one new position sees every filled one: no mask
            out = F.scaled_dot_product_attention(query, keys, values)
        else:
            visible = torch.ones(steps, end, dtype=torch.bool, device=x.device).tril(diagonal=index)
            out = F.scaled_dot_product_attention(query, keys, values, attn_mask=visible)
        out = out.transpose(1, 2).reshape(batch, steps, -1)
        x = x + self.out(out)
        return x + self.ff2(self.ff1(F.layer_norm(x, *self.norm2)))


def _norm(layer, dtype):
    """``F.layer_norm``'s arguments after the input, for a Keras LayerNormalization."""
    gamma = _v(layer.gamma, dtype)
    return (gamma.shape[-1],), gamma, _v(layer.beta, dtype), layer.epsilon


class TorchStep:
    """``GPT.call_with_cache`` in plain torch, on a snapshot of the weights.

    Build it once per decoding call (the fused weights are copies), then
    call it once per position.

    Args:
        model: a ``kerazoo`` GPT on the torch backend.
        rows: the rows each step will run (the decoded batch), which the
            products' packed weights are tuned for; any count works.
    """

    def __init__(self, model, rows=1):
        # The compute dtype: float32, or bfloat16/float16 under a mixed policy.
        dtype = getattr(torch, keras.backend.standardize_dtype(model.compute_dtype))
        self.embeddings = _t(weights.embeddings(model.token_embedding), dtype)
        self.positions = _v(model.position_embedding.position_embeddings, dtype)
        self.blocks = [_Block(block, dtype, rows) for block in model.transformer_layers]
        self.final_norm = _norm(model.final_norm, dtype)
        head = self.embeddings if model.tie_embeddings else _t(weights.reverse_embeddings(model.token_embedding), dtype).T
        self.head = _Linear(head.T.contiguous(), None, rows)
        self.bias = _v(model.head_bias.bias) if getattr(model, "logit_bias", False) else None

    def __call__(self, token_ids, cache, index):
        """Logits of ``token_ids`` (int ``(batch, t)``) at positions ``index ...``.

        Args:
            token_ids: torch int tensor ``(batch, t)``.
            cache: tuple ``(keys_0, values_0, ...)`` of torch tensors; the
                positions ``index ... index + t - 1`` are written in place.
            index: Python int.

        Returns:
            float32 logits ``(batch, t, vocab)``.
        """
        steps = token_ids.shape[1]
        x = self.embeddings[token_ids] + self.positions[index:index + steps]
        for i, block in enumerate(self.blocks):
            x = block(x, cache[2 * i], cache[2 * i + 1], index)
        logits = self.head(F.layer_norm(x, *self.final_norm))
        return (logits if self.bias is None else logits + self.bias).float()


def call_with_cache(model, token_ids, cache, index):
    """``GPT.call_with_cache`` in torch: embeddings, blocks, final norm, head."""
    cache = tuple(torch.as_tensor(c) for c in cache)
    device = model.position_embedding.position_embeddings.value.device
    token_ids = torch.as_tensor(token_ids, device=device).long()
    with torch.no_grad():
        # One call: packing weights for it would cost more than it saves.
        logits = TorchStep(model)(token_ids, cache, int(index))
    return logits, cache


# Public names for the llama's mirror (kerazoo.models.llama.step_torch), which
# shares the packed products and the variable reading.
Linear = _Linear
tensor_of = _v
