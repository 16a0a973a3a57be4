"""The GPT family: a decoder-only, pre-norm Transformer language model.

    token ids -> token embedding + learned position embedding -> dropout
              -> [pre-norm self-attention (causal) + pre-norm MLP] x num_layers
              -> final LayerNorm -> output head (tied to the token embedding or not)

The blocks are ``keras_hub.layers.TransformerDecoder`` with
``normalize_first=True`` (GPT-2 style) and no encoder input, which keeps the
``self_attention_cache`` path that cached decoding uses; ``CausalDecoder``
subclasses it only to train through fused causal attention.
"""

import dataclasses
from typing import Optional

import keras
import keras_hub
from keras import ops

from kerazoo.decoding.protocol import ChunkedLM
from kerazoo.models.gpt import step as gpt_decode
from kerazoo.models.gpt.block import CausalDecoder
from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models import weights
from kerazoo.models.functional import FunctionalZooModel


def gelu_tanh(x):
    """GELU with the tanh approximation (GPT-2's ``gelu_new``)."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="kerazoo")
class LogitBias(keras.layers.Layer):
    """Adds a learned ``(vocab,)`` bias to logits (zeros at initialisation).

    Args:
        vocab_size: the logits' last dimension.
    """

    def __init__(self, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")

    def call(self, logits):
        return logits + ops.cast(self.bias, logits.dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


@dataclasses.dataclass
class GPTConfig:
    """Hyper-parameters of a GPT-style decoder."""

    max_length: int = field(256, "context length: the longest sequence the model attends over")
    num_layers: int = field(4, "number of Transformer decoder blocks")
    num_heads: int = field(4, "attention heads per block (must divide hidden_dim)")
    hidden_dim: int = field(256, "model width (embedding and residual stream)")
    intermediate_dim: Optional[int] = field(None, "MLP width; None means 4 * hidden_dim")
    dropout: float = field(0.1, "dropout on embeddings, attention and MLP outputs")
    tie_embeddings: bool = field(True, "share the token embedding matrix with the output head")
    layer_norm_epsilon: float = field(1e-5, "LayerNorm epsilon")
    gelu_approximate: bool = field(False, "tanh approximation of GELU in the MLP (GPT-2's); false: the exact erf form")
    logit_bias: bool = field(False, "a learned bias on the output logits (GPT-2 imports: keeps unused special ids out of reach)")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(self, "max_length", "num_layers", "num_heads", "hidden_dim", "intermediate_dim")
        require_dropout(self)
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hyper-parameter 'num_heads' ({self.num_heads}) must divide "
                f"'hidden_dim' ({self.hidden_dim})"
            )


@keras.saving.register_keras_serializable(package="kerazoo")
class GPT(ChunkedLM, FunctionalZooModel, keras.Model):
    """A GPT-style causal language model (functional).

    Args:
        vocab_size: number of token ids.
        max_length: context length.
        num_layers: number of decoder blocks.
        num_heads: attention heads per block.
        hidden_dim: model width.
        intermediate_dim: MLP width, ``4 * hidden_dim`` when None.
        dropout: dropout rate.
        tie_embeddings: reuse the token embedding as the output projection.
        layer_norm_epsilon: LayerNorm epsilon.
        gelu_approximate: use GELU's tanh approximation (GPT-2) in the MLP.
        logit_bias: add a learned bias to the output logits.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids of shape ``(batch, length)`` with
    ``length <= max_length``; it returns float32 logits of shape
    ``(batch, length, vocab_size)``.

    Example:
        >>> model = GPT(vocab_size=100, max_length=32, num_layers=2, hidden_dim=32, num_heads=2)
        >>> model.summary()
    """

    def __init__(
        self,
        vocab_size,
        max_length=256,
        num_layers=4,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=None,
        dropout=0.1,
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        gelu_approximate=False,
        logit_bias=False,
        tokenizer=None,
        name=None,
        **kwargs,
    ):
        intermediate_dim = intermediate_dim or 4 * hidden_dim
        # GPT-2's initialisation: N(0, 0.02) everywhere.
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=tie_embeddings,
            embeddings_initializer=init, name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_length, initializer=init, name="position_embedding"
        )
        self.embeddings_dropout = keras.layers.Dropout(dropout, name="embeddings_dropout")
        self.transformer_layers = [
            CausalDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout,
                activation=gelu_tanh if gelu_approximate else "gelu",
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=init,
                normalize_first=True,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")
        # Logits in float32 even under mixed precision (see rnn.py).
        self.logits_cast = keras.layers.Activation("linear", dtype="float32", name="logits")
        self.head_bias = LogitBias(vocab_size, name="logit_bias") if logit_bias else None

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(x)
        x = self.embeddings_dropout(x)
        for block in self.transformer_layers:
            x = block(x)  # causal mask is the default
        x = self.final_norm(x)
        logits = self.token_embedding(x, reverse=True)
        logits = self.logits_cast(self.head_bias(logits) if logit_bias else logits)
        super().__init__(inputs=token_ids, outputs=logits, name=name or "gpt", **kwargs)

        self.vocab_size = vocab_size
        self.max_length = max_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.layer_norm_epsilon = layer_norm_epsilon
        self.gelu_approximate = gelu_approximate
        self.logit_bias = logit_bias
        self.tokenizer = tokenizer
        self._register_torch_params()

    def call(self, inputs, training=None, mask=None):
        """The functional graph's logits; on PyTorch, through its plain-torch mirror where that applies.

        See ``kerazoo.models.gpt.train_torch`` for why, and when it applies.
        """
        if keras.config.backend() == "torch":
            from kerazoo.models.gpt import train_torch

            if train_torch.applies(self, training):
                return train_torch.forward(self, inputs)
        return super().call(inputs, training=training, mask=mask)

    # --- cached decoding -------------------------------------------------
    # The cache is a tuple (keys_0, values_0, keys_1, values_1, ...), one
    # (batch, num_heads, length, head_dim) tensor each, updated in place by
    # the decoding loop (see models/gpt/step.py for why not keras_hub's layout).

    def init_cache(self, batch_size, length):
        """An empty key/value cache for ``length`` positions.

        Args:
            batch_size: rows decoded together.
            length: positions the cache holds (at most ``max_length``).

        Returns:
            A tuple of ``2 * num_layers`` zero tensors
            ``(batch, num_heads, length, head_dim)``.
        """
        shape = (batch_size, self.num_heads, length, self.hidden_dim // self.num_heads)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in range(2 * self.num_layers))

    def call_with_cache(self, token_ids, cache, index):
        """Runs ``token_ids`` at positions ``index ...`` and updates the cache.

        Each block attends to the cached keys/values of earlier positions,
        so a new token costs one single-position pass.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the tuple from ``init_cache``.
            index: position of ``token_ids[:, 0]`` (int or scalar tensor).

        Returns:
            ``(logits, cache)``: float32 logits ``(batch, t, vocab)`` and the
            updated cache.
        """
        if keras.config.backend() == "torch":
            from kerazoo.models.gpt import step_torch as gpt_decode_torch

            return gpt_decode_torch.call_with_cache(self, token_ids, cache, index)
        x = self._embed_positions(token_ids, index)
        new_cache = []
        for i, block in enumerate(self.transformer_layers):
            # A whole-cache step: the block attends to the cache as it was and
            # returns the new positions' keys and values, written here.
            x, new = gpt_decode.block_step(block, x, cache[2 * i:2 * i + 2], index)
            new_cache += gpt_decode.write(cache[2 * i:2 * i + 2], new, index)
        return self._logits(x), tuple(new_cache)

    def _embed_positions(self, token_ids, index):
        """Token plus position embeddings of ``token_ids`` at positions ``index ...``."""
        x = weights.embed(self.token_embedding, token_ids)
        positions = gpt_decode.weight(self.position_embedding.position_embeddings)
        return x + ops.slice(positions, [index, 0], [token_ids.shape[1], positions.shape[1]])[None]

    def _logits(self, x):
        """Final norm and output head: float32 logits of hidden states ``x``."""
        x = gpt_decode.layer_norm(x, self.final_norm)
        embeddings = weights.embeddings(self.token_embedding)
        head = embeddings if self.tie_embeddings else ops.transpose(weights.reverse_embeddings(self.token_embedding))
        logits = gpt_decode.matmul_t(x, head)
        if self.logit_bias:
            logits = logits + ops.cast(gpt_decode.weight(self.head_bias.bias), logits.dtype)
        return ops.cast(logits, "float32")

    # A faster path for compiled loops (XLA): the loop carries a small chunk
    # of new keys/values and reads the big cache, which it writes once per
    # chunk (see gpt_decode.block_step). ``call_with_cache`` stays the
    # plain interface (TF Serving export uses it).

    def read_chunk(self, cache, start, size):
        """The cache's positions ``start ... start + size - 1``, to decode into.

        Args:
            cache: the tuple from ``init_cache``; ``start + size`` must not
                exceed its length.
            start: first position (int or scalar tensor).
            size: static chunk length.

        Returns:
            A tuple like the cache with ``size`` positions.
        """
        return tuple(ops.slice(c, [0, 0, start, 0], (c.shape[0], c.shape[1], size, c.shape[3])) for c in cache)

    def write_chunk(self, cache, chunk, start):
        """Writes a chunk from ``read_chunk`` back at position ``start``.

        Returns:
            The updated cache.
        """
        return tuple(ops.slice_update(c, [0, 0, start, 0], k) for c, k in zip(cache, chunk))

    def decode_weights(self):
        """Weights re-laid out for decoding, made once per decoding call.

        Returns:
            Per block, ``gpt_decode.fused_qkv``'s ``(kernel, bias)``.
        """
        return tuple(gpt_decode.fused_qkv(block) for block in self.transformer_layers)

    def call_with_chunk(self, token_ids, cache, chunk, index, start, weights=None):
        """``call_with_cache`` that writes into a chunk and only reads the cache.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the cache, valid for positions before ``start``.
            chunk: from ``read_chunk(cache, start, size)``, valid for
                positions ``start ... index - 1``.
            index: position of ``token_ids[:, 0]``; ``index + t <= start + size``.
            start: first position of the chunk.
            weights: ``decode_weights()``, made once outside the token loop
                (made here when None).

        Returns:
            ``(logits, chunk)``: float32 logits ``(batch, t, vocab)`` and the
            chunk with positions ``index ... index + t - 1`` written.
        """
        weights = weights or self.decode_weights()
        x = self._embed_positions(token_ids, index)
        new_chunk = []
        for i, block in enumerate(self.transformer_layers):
            x, written = gpt_decode.block_step(
                block, x, cache[2 * i:2 * i + 2], index, chunk[2 * i:2 * i + 2], start, weights[i]
            )
            new_chunk += written
        return self._logits(x), tuple(new_chunk)

    def torch_step(self, rows=1):
        """A plain-torch ``call_with_cache`` for eager PyTorch loops.

        Args:
            rows: the batch it will decode (its products are tuned for it).

        Returns:
            ``step(token_ids, cache, index) -> (logits, cache)`` on torch
            tensors, with ``index`` a Python int; it writes the cache in
            place (see ``gpt_decode_torch``). Weights are read when it is made.
        """
        from kerazoo.models.gpt import step_torch as gpt_decode_torch

        step = gpt_decode_torch.TorchStep(self, rows)
        return lambda token_ids, cache, index: (step(token_ids, cache, index), cache)

    def prefill(self, token_ids, cache):
        """Fills the cache for a whole (padded) prompt buffer in one pass.

        Positions past a row's prompt hold keys of padding; decoding rewrites
        each of them before any later position can attend to it.

        Returns:
            The filled cache.
        """
        _, cache = self.call_with_cache(token_ids, cache, 0)
        return cache

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocab_size": self.vocab_size,
            "max_length": self.max_length,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "gelu_approximate": self.gelu_approximate,
            "logit_bias": self.logit_bias,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,  # mixed precision survives saving
        }
