"""A mirror, in plain PyTorch, of the llama's ``keras.ops`` decoding step (``step.block_step``).

This is not a second definition of the llama block: it is ``step.block_step``
(a whole-cache write) transcribed into torch for the torch backend, on the
same weights, and ``tests/models/test_llama_step_torch.py`` holds it equal
to that step. Change the block's arithmetic in ``step.py`` first, then here.

Why it exists, as for gpt's ``kerazoo.models.gpt.step_torch``: Keras on
PyTorch runs eagerly and each ``keras.ops`` call pays tens of microseconds
of dispatch, so the ``keras.ops`` step (about 40 calls per block) spends
more time dispatching than multiplying; its whole-cache write also copies
every cache tensor on every token. ``TorchStep`` runs each block with the
query/key/value and the gate/up projections fused into one product each
(gpt's oneDNN-packed ``Linear``), a rotary table made once for the whole
context (rows sliced per step, instead of powers, cosines and sines per
token), ``F.rms_norm``, and PyTorch's fused ``scaled_dot_product_attention``
with ``enable_gqa`` (the ``num_kv_heads`` cached heads are read as stored,
never repeated); it attends only to the filled part of the cache and
writes the cache in place.
"""

import keras
import torch
import torch.nn.functional as F

from kerazoo.models import weights as layer_weights
from kerazoo.models.gpt.step_torch import Linear, tensor_of
from kerazoo.models.llama import step as llama_step


def _rms_norm(layer):
    """``(scale, epsilon)`` of a Keras ``RMSNormalization``, the scale in float32 (as ``step.rms_norm``)."""
    return tensor_of(layer.scale).float(), layer.epsilon


def rms_norm(x, norm):
    """``step.rms_norm`` in torch: normalised and scaled in float32, cast back to ``x``'s dtype.

    Args:
        x: ``(..., dim)``.
        norm: ``(scale, epsilon)``.

    Returns:
        The normalised ``x``.
    """
    scale, epsilon = norm
    return F.rms_norm(x.float(), scale.shape, scale, epsilon).to(x.dtype)


def rotate(x, cos, sin):
    """``step.rotate`` in torch: ``x * cos + rotate_half(x) * sin`` (cos/sin broadcast over heads)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def _torch(tensor, dtype):
    """A weight read through ``kerazoo.models.weights`` as a torch tensor of ``dtype``."""
    return torch.as_tensor(keras.ops.convert_to_tensor(tensor)).to(dtype)


class _Block:
    """One ``LlamaBlock``'s weights, laid out for torch."""

    @torch.no_grad()
    def __init__(self, block, dtype, rows):
        self.heads, self.kv_heads, self.head_dim = block.num_heads, block.num_kv_heads, block.head_dim
        kernel, gate_up, bias = (None if w is None else torch.as_tensor(keras.ops.convert_to_tensor(w)).to(dtype)
                                 for w in llama_step.decode_weights(block))
        # The fused kernels of the keras.ops step: the query part already
        # carries 1 / sqrt(head_dim), so attention runs with scale 1.
        self.qkv = Linear(kernel.contiguous(), bias, rows)
        self.gate_up = Linear(gate_up.contiguous(), None, rows)
        self.intermediate = block.intermediate_dim
        # Kernels through kerazoo.models.weights: an int8 layer's float weights.
        self.out = Linear(_torch(layer_weights.kernel(block.output_dense), dtype).reshape(-1, block.hidden_dim), None, rows)
        self.down = Linear(_torch(layer_weights.kernel(block.down_dense), dtype), None, rows)
        self.norm1, self.norm2 = _rms_norm(block.attention_norm), _rms_norm(block.mlp_norm)

    def __call__(self, x, key_cache, value_cache, index, cos, sin):
        """Runs the block on positions ``index ...``; writes their keys/values into the cache."""
        batch, steps, _ = x.shape
        qkv = self.qkv(rms_norm(x, self.norm1)).view(batch, steps, self.heads + 2 * self.kv_heads, self.head_dim)
        qkv = qkv.transpose(1, 2)
        query = rotate(qkv[:, :self.heads], cos, sin)
        key = rotate(qkv[:, self.heads:self.heads + self.kv_heads], cos, sin)
        end = index + steps
        key_cache[:, :, index:end] = key
        value_cache[:, :, index:end] = qkv[:, self.heads + self.kv_heads:]
        keys, values = key_cache[:, :, :end], value_cache[:, :, :end]
        gqa = self.heads != self.kv_heads
        if steps == 1:  # one new position sees every filled one: no mask
            out = F.scaled_dot_product_attention(query, keys, values, scale=1.0, enable_gqa=gqa)
        else:
            visible = torch.ones(steps, end, dtype=torch.bool, device=x.device).tril(diagonal=index)
            out = F.scaled_dot_product_attention(query, keys, values, attn_mask=visible, scale=1.0, enable_gqa=gqa)
        x = x + self.out(out.transpose(1, 2).reshape(batch, steps, -1))
        both = self.gate_up(rms_norm(x, self.norm2))
        return x + self.down(F.silu(both[..., :self.intermediate]) * both[..., self.intermediate:])


class TorchStep:
    """``Llama.call_with_cache`` in plain torch, on a snapshot of the weights.

    Build it once per decoding call (the fused weights are copies), then
    call it once per position.

    Args:
        model: a kerazoo ``Llama`` on the torch backend.
        rows: the rows each step will run (the decoded batch), which the
            products' packed weights are tuned for; any count works.
    """

    @torch.no_grad()
    def __init__(self, model, rows=1):
        # The compute dtype: float32, or bfloat16/float16 under a mixed policy.
        dtype = getattr(torch, keras.backend.standardize_dtype(model.compute_dtype))
        self.embeddings = _torch(layer_weights.embeddings(model.token_embedding), dtype)
        self.blocks = [_Block(block, dtype, rows) for block in model.transformer_layers]
        self.final_norm = _rms_norm(model.final_norm)
        head = (self.embeddings.T if model.tie_embeddings
                else _torch(layer_weights.reverse_embeddings(model.token_embedding), dtype))
        self.head = Linear(head.contiguous(), None, rows)
        self.bias = tensor_of(model.head_bias.bias) if model.logit_bias else None
        # The rotary table of every position, made once with the keras.ops
        # step's own rule (``rope_tables``), in the compute dtype as
        # ``step.rotate`` casts it.
        cos, sin = llama_step.rope_tables(keras.ops.arange(model.max_length), model.head_dim, model.rope_theta)
        self.cos, self.sin = (torch.as_tensor(keras.ops.convert_to_tensor(t)).to(dtype) for t in (cos, sin))

    def __call__(self, token_ids, cache, index):
        """Logits of ``token_ids`` (int ``(batch, t)``) at positions ``index ...``.

        Args:
            token_ids: torch int tensor ``(batch, t)``.
            cache: tuple ``(keys_0, values_0, ...)`` of torch tensors
                ``(batch, num_kv_heads, length, head_dim)``; positions
                ``index ... index + t - 1`` are written in place.
            index: Python int.

        Returns:
            float32 logits ``(batch, t, vocab)``.
        """
        steps = token_ids.shape[1]
        cos, sin = self.cos[index:index + steps], self.sin[index:index + steps]
        x = self.embeddings[token_ids]
        for i, block in enumerate(self.blocks):
            x = block(x, cache[2 * i], cache[2 * i + 1], index, cos, sin)
        logits = self.head(rms_norm(x, self.final_norm))
        return (logits if self.bias is None else logits + self.bias).float()
