"""The seq2seq family: a Transformer encoder–decoder with cross-attention.

    source ids -> token embedding + source positions -> dropout
               -> [pre-norm self-attention (bidirectional) + MLP] x num_encoder_layers -> LayerNorm
                                                                                          |
    target ids -> token embedding + target positions -> dropout                           v
               -> [pre-norm causal self-attention + cross-attention + MLP] x num_decoder_layers
               -> final LayerNorm -> output head (tied to the one shared token embedding)

The blocks are ``keras_hub.layers.TransformerEncoder`` and
``keras_hub.layers.TransformerDecoder`` called with an encoder sequence (so
they build their cross-attention). Source and target share the zoo's one
tokenizer, so one embedding matrix serves the encoder, the decoder and the
output head (as in T5 and BART).

Teacher forcing: the decoder reads ``<s> y_1 ... y_n`` and is trained to
predict ``y_1 ... y_n </s>``; padding (id 0) is ignored by the loss and is
masked out of cross-attention. Sources end with ``</s>``.

Cached decoding: ``start_cache`` runs the encoder once and projects its
output into every decoder block's cross-attention keys and values; the
decoder then runs one position per step over its self-attention cache
(``call_with_cache``), each block through the GPT block's one decoding
step (``kerazoo.models.gpt.step.block_step``, with its cross-attention), so
the loops of ``kerazoo.decoding.loop`` and ``kerazoo.decoding.beam`` decode it
exactly as they decode a GPT.
"""

import dataclasses
from typing import Optional

import keras
import keras_hub
from keras import ops

from kerazoo.decoding.protocol import CachedLM
from kerazoo.models.gpt import step as gpt_step
from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models.functional import FunctionalZooModel
from kerazoo.text.special import PAD_ID

ENCODER_INPUT = "encoder_token_ids"
DECODER_INPUT = "decoder_token_ids"


@dataclasses.dataclass
class Seq2SeqConfig:
    """Hyper-parameters of a Transformer encoder–decoder."""

    max_source_length: int = field(128, "longest source (tokens, end token included) the encoder reads")
    max_length: int = field(128, "target context: the longest output the decoder attends over (start token included)")
    num_encoder_layers: int = field(3, "number of Transformer encoder blocks")
    num_decoder_layers: int = field(3, "number of Transformer decoder blocks (with cross-attention)")
    num_heads: int = field(4, "attention heads per block (must divide hidden_dim)")
    hidden_dim: int = field(256, "model width (embedding and residual stream)")
    intermediate_dim: Optional[int] = field(None, "MLP width; None means 4 * hidden_dim")
    dropout: float = field(0.1, "dropout on embeddings, attention and MLP outputs")
    layer_norm_epsilon: float = field(1e-5, "LayerNorm epsilon")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(
            self, "max_source_length", "max_length", "num_encoder_layers", "num_decoder_layers",
            "num_heads", "hidden_dim", "intermediate_dim",
        )
        require_dropout(self)
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hyper-parameter 'num_heads' ({self.num_heads}) must divide "
                f"'hidden_dim' ({self.hidden_dim})"
            )
        if self.max_length < 2:
            raise ValueError(f"hyper-parameter 'max_length' must be at least 2 (start token + one output), got {self.max_length}")


@keras.saving.register_keras_serializable(package="kerazoo")
class Seq2Seq(CachedLM, FunctionalZooModel, keras.Model):
    """A Transformer encoder–decoder (functional) for sequence-to-sequence tasks.

    Args:
        vocab_size: number of token ids (shared by source and target).
        max_source_length: longest source the encoder reads.
        max_length: target context of the decoder.
        num_encoder_layers: encoder blocks.
        num_decoder_layers: decoder blocks.
        num_heads: attention heads per block.
        hidden_dim: model width.
        intermediate_dim: MLP width, ``4 * hidden_dim`` when None.
        dropout: dropout rate.
        layer_norm_epsilon: LayerNorm epsilon.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on ``{"encoder_token_ids": (batch, s), "decoder_token_ids":
    (batch, t)}`` int ids (0 is padding) with ``s <= max_source_length`` and
    ``t <= max_length``; it returns float32 logits ``(batch, t, vocab_size)``
    for the next target token at every decoder position.

    Example:
        >>> model = Seq2Seq(vocab_size=100, max_source_length=32, max_length=32,
        ...                 num_encoder_layers=1, num_decoder_layers=1, hidden_dim=32, num_heads=2)
        >>> logits = model({"encoder_token_ids": src, "decoder_token_ids": tgt})
    """

    def __init__(
        self,
        vocab_size,
        max_source_length=128,
        max_length=128,
        num_encoder_layers=3,
        num_decoder_layers=3,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=None,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        tokenizer=None,
        name=None,
        **kwargs,
    ):
        intermediate_dim = intermediate_dim or 4 * hidden_dim
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=True, embeddings_initializer=init, name="token_embedding"
        )
        self.source_position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_source_length, initializer=init, name="source_position_embedding"
        )
        self.target_position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_length, initializer=init, name="target_position_embedding"
        )
        self.source_dropout = keras.layers.Dropout(dropout, name="source_dropout")
        self.target_dropout = keras.layers.Dropout(dropout, name="target_dropout")
        self.encoder_layers = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout, activation="gelu",
                layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init, normalize_first=True,
                name=f"encoder_layer_{i}",
            )
            for i in range(num_encoder_layers)
        ]
        # Pre-norm stacks leave the residual stream un-normalised: one final
        # LayerNorm per stack (as GPT-2 and T5 do).
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="encoder_norm")
        self.decoder_layers = [
            keras_hub.layers.TransformerDecoder(
                intermediate_dim=intermediate_dim, num_heads=num_heads, dropout=dropout, activation="gelu",
                layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=init, normalize_first=True,
                name=f"decoder_layer_{i}",
            )
            for i in range(num_decoder_layers)
        ]
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="decoder_norm")
        self.logits_cast = keras.layers.Activation("linear", dtype="float32", name="logits")

        source = keras.Input(shape=(None,), dtype="int32", name=ENCODER_INPUT)
        target = keras.Input(shape=(None,), dtype="int32", name=DECODER_INPUT)
        encoded, source_mask = self._encode_layers(source)
        x = self.token_embedding(target)
        x = self.target_dropout(x + self.target_position_embedding(x))
        for block in self.decoder_layers:
            # Causal self-attention is the default; target padding sits after
            # the real tokens, so it never influences them and the loss skips it.
            x = block(x, encoder_sequence=encoded, encoder_padding_mask=source_mask)
        logits = self.logits_cast(self.token_embedding(self.decoder_norm(x), reverse=True))
        super().__init__(inputs={ENCODER_INPUT: source, DECODER_INPUT: target}, outputs=logits,
                         name=name or "seq2seq", **kwargs)

        self.vocab_size = vocab_size
        self.max_source_length = max_source_length
        self.max_length = max_length
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.tokenizer = tokenizer
        self._register_torch_params()

    def _encode_layers(self, source_ids, training=None):
        """The encoder stack on source ids (symbolic or real); returns (states, padding mask)."""
        mask = ops.not_equal(source_ids, PAD_ID)
        x = self.token_embedding(source_ids)
        x = self.source_dropout(x + self.source_position_embedding(x), training=training)
        for block in self.encoder_layers:
            x = block(x, padding_mask=mask, training=training)
        return self.encoder_norm(x), mask

    # --- cached decoding -------------------------------------------------
    # The cache is a tuple:
    #   (self_keys_0, self_values_0, ..., self_keys_{N-1}, self_values_{N-1},   # (batch, heads, length, head_dim)
    #    cross_keys_0, cross_values_0, ...,                                     # (batch, heads, source, head_dim)
    #    source_visible)                                                        # (batch, source) bool
    # Every entry has the batch first, so keras_hub's BeamSampler can repeat
    # and reorder it by beam. The cross-attention keys and values are computed
    # once from the encoder output (start_cache) and only read afterwards.

    def start_cache(self, source_ids, length):
        """Encodes the sources once and makes the decoding cache.

        Args:
            source_ids: int tensor ``(batch, s)``, right-padded with 0; each
                row should end with the end token.
            length: target positions the self-attention cache holds (at
                most ``max_length``).

        Returns:
            The cache tuple (see above), ready for ``prefill``.
        """
        encoded, visible = self._encode_layers(source_ids, training=False)
        dtype = self.compute_dtype
        cross = []
        for block in self.decoder_layers:
            attn = block._cross_attention_layer
            for dense in (attn._key_dense, attn._value_dense):
                cross.append(ops.cast(gpt_step.heads(encoded, dense), dtype))
        batch = ops.shape(source_ids)[0]
        shape = (batch, self.num_heads, length, self.hidden_dim // self.num_heads)
        self_cache = [ops.zeros(shape, dtype=dtype) for _ in range(2 * self.num_decoder_layers)]
        return tuple(self_cache) + tuple(cross) + (visible,)

    def call_with_cache(self, token_ids, cache, index):
        """Runs target ``token_ids`` at positions ``index ...`` and updates the cache.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the tuple from ``start_cache``.
            index: position of ``token_ids[:, 0]`` (int or scalar tensor).

        Returns:
            ``(logits, cache)``: float32 logits ``(batch, t, vocab)`` and the
            cache with positions ``index ... index + t - 1`` written.
        """
        n = self.num_decoder_layers
        self_cache, cross, visible = cache[: 2 * n], cache[2 * n: 4 * n], cache[4 * n]
        embeddings = gpt_step.weight(self.token_embedding.embeddings)
        positions = gpt_step.weight(self.target_position_embedding.position_embeddings)
        x = ops.take(embeddings, token_ids, axis=0)
        x = x + ops.slice(positions, [index, 0], [token_ids.shape[1], positions.shape[1]])[None]
        new_cache = []
        for i, block in enumerate(self.decoder_layers):
            # The GPT block's step (a whole-cache write) plus the block's
            # cross-attention over the encoded source.
            x, new = gpt_step.block_step(
                block, x, self_cache[2 * i:2 * i + 2], index, cross=(cross[2 * i], cross[2 * i + 1], visible)
            )
            new_cache += gpt_step.write(self_cache[2 * i:2 * i + 2], new, index)
        x = gpt_step.layer_norm(x, self.decoder_norm)
        logits = ops.cast(ops.einsum("btd,vd->btv", x, embeddings), "float32")
        return logits, tuple(new_cache) + tuple(cross) + (visible,)

    def prefill(self, token_ids, cache):
        """Fills the self-attention cache for the (padded) decoder prompt buffer.

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
            "max_source_length": self.max_source_length,
            "max_length": self.max_length,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,
        }
