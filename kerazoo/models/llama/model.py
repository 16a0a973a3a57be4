"""The llama family: a decoder-only Transformer as Llama, Qwen2, Mistral and SmolLM build them.

    token ids -> token embedding (no position embedding: rotary positions in attention)
              -> [RMSNorm -> grouped-query self-attention with RoPE (causal)
                  + RMSNorm -> SwiGLU MLP] x num_layers, pre-norm residuals
              -> final RMSNorm -> output head (tied to the token embedding or not)

No biases by default (``qkv_bias`` adds Qwen2's on the query, key and value
projections). The model decodes through the shared cached-LM protocol
(``kerazoo.decoding.protocol.ChunkedLM``): its cache holds ``num_kv_heads``
heads per block, and one ``keras.ops`` step (``step.block_step``) serves the
compiled TensorFlow and JAX loops, the exported TF graph's loop and eager
PyTorch.
"""

import dataclasses
from typing import Optional

import keras
import keras_hub
from keras import ops

from kerazoo.decoding.protocol import ChunkedLM
from kerazoo.models.functional import FunctionalZooModel
from kerazoo.models.gpt.model import LogitBias
from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models import weights as layer_weights
from kerazoo.models.kv_attention import matmul, matmul_t, write
from kerazoo.models.llama import step as llama_step
from kerazoo.models.llama.block import LlamaBlock


def default_intermediate_dim(hidden_dim):
    """SwiGLU's width for as many MLP parameters as a 4x GELU MLP: 8/3 of the width, a multiple of 16."""
    return -(-8 * hidden_dim // 3 // 16) * 16


@dataclasses.dataclass
class LlamaConfig:
    """Hyper-parameters of a llama-style decoder."""

    max_length: int = field(256, "context length: the longest sequence the model attends over")
    num_layers: int = field(4, "number of decoder blocks")
    num_heads: int = field(4, "query heads per block")
    num_kv_heads: Optional[int] = field(None, "key/value heads (grouped-query attention; must divide num_heads); None: num_heads")
    hidden_dim: int = field(256, "model width (embedding and residual stream)")
    head_dim: Optional[int] = field(None, "width of one head; None: hidden_dim // num_heads")
    intermediate_dim: Optional[int] = field(None, "SwiGLU MLP width; None: 8/3 * hidden_dim rounded up to a multiple of 16")
    rope_theta: float = field(10000.0, "base of the rotary position frequencies")
    rms_norm_epsilon: float = field(1e-6, "RMSNorm epsilon")
    qkv_bias: bool = field(False, "biases on the query, key and value projections (Qwen2)")
    dropout: float = field(0.0, "dropout on the attention and MLP outputs")
    tie_embeddings: bool = field(True, "share the token embedding matrix with the output head")
    logit_bias: bool = field(False, "a learned bias on the output logits (imports: keeps ids the checkpoint lacks out of reach)")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(self, "max_length", "num_layers", "num_heads", "num_kv_heads", "hidden_dim", "head_dim",
                         "intermediate_dim", "rope_theta", "rms_norm_epsilon")
        require_dropout(self)
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"hyper-parameter 'num_kv_heads' ({self.num_kv_heads}) must divide "
                             f"'num_heads' ({self.num_heads})")
        if self.head_dim is None and self.hidden_dim % self.num_heads:
            raise ValueError(f"hyper-parameter 'num_heads' ({self.num_heads}) must divide "
                             f"'hidden_dim' ({self.hidden_dim}) unless head_dim is given")
        head_dim = self.head_dim or self.hidden_dim // self.num_heads
        if head_dim % 2:
            raise ValueError(f"the head width ({head_dim}) must be even: rotary embeddings rotate pairs")


@keras.saving.register_keras_serializable(package="kerazoo")
class Llama(ChunkedLM, FunctionalZooModel, keras.Model):
    """A llama-style causal language model (functional).

    Args:
        vocab_size: number of token ids.
        max_length: context length.
        num_layers: number of decoder blocks.
        num_heads: query heads per block.
        num_kv_heads: key/value heads per block (None: ``num_heads``).
        hidden_dim: model width.
        head_dim: width of a head (None: ``hidden_dim // num_heads``).
        intermediate_dim: SwiGLU width (None: ``default_intermediate_dim``).
        rope_theta: base of the rotary frequencies.
        rms_norm_epsilon: RMSNorm epsilon.
        qkv_bias: biases on the query, key and value projections.
        dropout: dropout rate.
        tie_embeddings: reuse the token embedding as the output projection.
        logit_bias: add a learned bias to the output logits.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids ``(batch, length)``, ``length <= max_length``;
    it returns float32 logits ``(batch, length, vocab_size)``.

    Example:
        >>> model = Llama(vocab_size=100, max_length=32, num_layers=2, hidden_dim=32, num_heads=4, num_kv_heads=2)
    """

    def __init__(self, vocab_size, max_length=256, num_layers=4, num_heads=4, num_kv_heads=None, hidden_dim=256,
                 head_dim=None, intermediate_dim=None, rope_theta=10000.0, rms_norm_epsilon=1e-6, qkv_bias=False,
                 dropout=0.0, tie_embeddings=True, logit_bias=False, tokenizer=None, name=None, **kwargs):
        num_kv_heads = num_kv_heads or num_heads
        head_dim = head_dim or hidden_dim // num_heads
        intermediate_dim = intermediate_dim or default_intermediate_dim(hidden_dim)
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=tie_embeddings, embeddings_initializer=init, name="token_embedding")
        self.transformer_layers = [
            LlamaBlock(hidden_dim, num_heads, num_kv_heads, head_dim, intermediate_dim, rope_theta, rms_norm_epsilon,
                       qkv_bias, dropout, kernel_initializer=init, name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.RMSNormalization(epsilon=rms_norm_epsilon, name="final_norm")
        # Logits in float32 even under mixed precision (see rnn.py).
        self.logits_cast = keras.layers.Activation("linear", dtype="float32", name="logits")
        self.head_bias = LogitBias(vocab_size, name="logit_bias") if logit_bias else None

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = self.token_embedding(token_ids)
        for block in self.transformer_layers:
            x = block(x)
        logits = self.token_embedding(self.final_norm(x), reverse=True)
        logits = self.logits_cast(self.head_bias(logits) if logit_bias else logits)
        super().__init__(inputs=token_ids, outputs=logits, name=name or "llama", **kwargs)

        self.vocab_size, self.max_length, self.num_layers = vocab_size, max_length, num_layers
        self.num_heads, self.num_kv_heads, self.hidden_dim, self.head_dim = num_heads, num_kv_heads, hidden_dim, head_dim
        self.intermediate_dim, self.rope_theta, self.rms_norm_epsilon = intermediate_dim, rope_theta, rms_norm_epsilon
        self.qkv_bias, self.dropout, self.tie_embeddings = qkv_bias, dropout, tie_embeddings
        self.logit_bias = logit_bias
        self.tokenizer = tokenizer
        self._register_torch_params()

    # --- cached decoding -------------------------------------------------
    # The cache is (keys_0, values_0, keys_1, values_1, ...), one
    # (batch, num_kv_heads, length, head_dim) tensor each, laid out as gpt's
    # (see models/gpt/step.py for why).

    def init_cache(self, batch_size, length):
        """An empty key/value cache for ``length`` positions.

        Args:
            batch_size: rows decoded together.
            length: positions the cache holds (at most ``max_length``).

        Returns:
            A tuple of ``2 * num_layers`` zero tensors
            ``(batch, num_kv_heads, length, head_dim)``.
        """
        shape = (batch_size, self.num_kv_heads, length, self.head_dim)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in range(2 * self.num_layers))

    def _step(self, token_ids, cache, index, chunk=None, start=None, weights=None):
        """The step over a view: whole-cache (``chunk`` None) or chunked; ``(logits, new keys and values)``."""
        x = layer_weights.embed(self.token_embedding, token_ids)
        rope = llama_step.rope_tables(index + ops.arange(ops.shape(token_ids)[1]), self.head_dim, self.rope_theta)
        written = []
        for i, block in enumerate(self.transformer_layers):
            view = None if chunk is None else chunk[2 * i:2 * i + 2]
            x, new = llama_step.block_step(block, x, cache[2 * i:2 * i + 2], index, rope, view, start,
                                           None if weights is None else weights[i])
            written += new
        return self._logits(x), tuple(written)

    def _logits(self, x):
        """Final norm and output head: float32 logits of hidden states ``x``."""
        x = llama_step.rms_norm(x, self.final_norm)
        if self.tie_embeddings:
            logits = matmul_t(x, layer_weights.embeddings(self.token_embedding))
        else:
            logits = matmul(x, layer_weights.reverse_embeddings(self.token_embedding))
        if self.logit_bias:
            logits = logits + ops.cast(llama_step.value(self.head_bias.bias), logits.dtype)
        return ops.cast(logits, "float32")

    def call_with_cache(self, token_ids, cache, index):
        """Runs ``token_ids`` at positions ``index ...`` and updates the cache.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the tuple from ``init_cache``.
            index: position of ``token_ids[:, 0]`` (int or scalar tensor).

        Returns:
            ``(logits, cache)``: float32 ``(batch, t, vocab)`` and the cache
            with positions ``index ... index + t - 1`` written.
        """
        return self._whole_cache_step(token_ids, cache, index)

    def _whole_cache_step(self, token_ids, cache, index):
        logits, new = self._step(token_ids, cache, index)
        return logits, tuple(c for i in range(self.num_layers)
                             for c in write(cache[2 * i:2 * i + 2], new[2 * i:2 * i + 2], index))

    def read_chunk(self, cache, start, size):
        """The cache's positions ``start ... start + size - 1`` (a cache of ``size`` positions)."""
        return tuple(ops.slice(c, [0, 0, start, 0], (c.shape[0], c.shape[1], size, c.shape[3])) for c in cache)

    def write_chunk(self, cache, chunk, start):
        """The cache with ``chunk`` written back at position ``start``."""
        return write(cache, chunk, start)

    def decode_weights(self):
        """Per block, ``llama_step.decode_weights``: fused kernels, made once per decoding call."""
        return tuple(llama_step.decode_weights(block) for block in self.transformer_layers)

    def call_with_chunk(self, token_ids, cache, chunk, index, start, weights=None):
        """``call_with_cache`` that writes into a chunk and only reads the cache.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the cache, valid for positions before ``start``.
            chunk: from ``read_chunk(cache, start, size)``, valid for
                positions ``start ... index - 1``.
            index: position of ``token_ids[:, 0]``; ``index + t <= start + size``.
            start: first position of the chunk.
            weights: ``decode_weights()`` (made here when None).

        Returns:
            ``(logits, chunk)``.
        """
        return self._step(token_ids, cache, index, chunk, start, weights or self.decode_weights())

    def torch_step(self, rows=1):
        """A plain-torch ``call_with_cache`` for the eager PyTorch loop (``step_torch.TorchStep``).

        Args:
            rows: the batch it will decode (its products are tuned for it).

        Returns:
            ``step(token_ids, cache, index) -> (logits, cache)`` on torch
            tensors, with ``index`` a Python int; it writes the cache in
            place. Weights are read when it is made.
        """
        from kerazoo.models.llama import step_torch as llama_step_torch

        step = llama_step_torch.TorchStep(self, rows)
        return lambda token_ids, cache, index: (step(token_ids, cache, index), cache)

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable, "vocab_size": self.vocab_size,
            "max_length": self.max_length, "num_layers": self.num_layers, "num_heads": self.num_heads,
            "num_kv_heads": self.num_kv_heads, "hidden_dim": self.hidden_dim, "head_dim": self.head_dim,
            "intermediate_dim": self.intermediate_dim, "rope_theta": self.rope_theta,
            "rms_norm_epsilon": self.rms_norm_epsilon, "qkv_bias": self.qkv_bias, "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings, "logit_bias": self.logit_bias, "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,  # mixed precision survives saving
        }
