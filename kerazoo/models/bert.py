"""The BERT family: a bidirectional, post-norm Transformer encoder.

    token ids -> token + learned position + segment embedding -> LayerNorm -> dropout
              -> [self-attention (no causal mask) -> add & norm -> MLP -> add & norm] x num_layers
              = hidden states (batch, length, hidden_dim)
              -> masked-LM head: Dense + activation -> LayerNorm -> tied token embedding

The blocks are ``keras_hub.layers.TransformerEncoder`` with
``normalize_first=False``: BERT normalises after each residual add. The
model's input is token ids alone; every position is in segment 0, which is
what a single-text task (masked LM, classification) uses. The segment table is
kept so that a Hugging Face checkpoint imports with its weights unchanged.
Padding (``PAD_ID``) positions are masked out of attention.
"""

import dataclasses
from typing import Optional

import keras
import keras_hub
from keras import ops

from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models.functional import FunctionalZooModel
from kerazoo.text.special import PAD_ID

# Activations a checkpoint may name; "gelu" is the exact (erf) GELU of BERT.
ACTIVATIONS = ("gelu", "gelu_approximate", "relu", "silu", "tanh")


def get_activation(name):
    """The Keras activation function of an ``ACTIVATIONS`` name."""
    if name == "gelu_approximate":
        return _gelu_tanh
    return keras.activations.get(name)


@keras.saving.register_keras_serializable(package="kerazoo")
def _gelu_tanh(x):
    """GELU's tanh approximation (GPT-2's and some BERT ports' ``gelu_new``)."""
    return keras.activations.gelu(x, approximate=True)


@dataclasses.dataclass
class BERTConfig:
    """Hyper-parameters of a BERT-style encoder."""

    max_length: int = field(128, "longest sequence (position embeddings)")
    num_layers: int = field(2, "number of Transformer encoder blocks")
    num_heads: int = field(4, "attention heads per block (must divide hidden_dim)")
    hidden_dim: int = field(128, "model width (embedding and residual stream)")
    intermediate_dim: Optional[int] = field(None, "MLP width; None means 4 * hidden_dim")
    dropout: float = field(0.1, "dropout on embeddings, attention and MLP outputs")
    num_segments: int = field(2, "segment (token type) embeddings; inputs use segment 0")
    activation: str = field("gelu", "MLP activation: gelu (exact), gelu_approximate, relu, silu, tanh")
    layer_norm_epsilon: float = field(1e-12, "LayerNorm epsilon (BERT uses 1e-12)")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(self, "max_length", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
                         "num_segments")
        require_dropout(self)
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hyper-parameter 'num_heads' ({self.num_heads}) must divide "
                f"'hidden_dim' ({self.hidden_dim})"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"hyper-parameter 'activation' must be one of {', '.join(ACTIVATIONS)}, "
                             f"got '{self.activation}'")
        if self.layer_norm_epsilon <= 0:
            raise ValueError(f"hyper-parameter 'layer_norm_epsilon' must be positive, got {self.layer_norm_epsilon}")


@keras.saving.register_keras_serializable(package="kerazoo")
class BERT(FunctionalZooModel, keras.Model):
    """A BERT-style encoder with a masked-LM head (functional).

    Args:
        vocab_size: number of token ids.
        max_length: longest input sequence.
        num_layers: number of encoder blocks.
        num_heads: attention heads per block.
        hidden_dim: model width.
        intermediate_dim: MLP width, ``4 * hidden_dim`` when None.
        dropout: dropout rate.
        num_segments: rows of the segment embedding (inputs use row 0).
        activation: MLP activation name (see ``ACTIVATIONS``).
        layer_norm_epsilon: LayerNorm epsilon.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids ``(batch, length)``, ``length <= max_length``,
    padded with ``PAD_ID``; it returns float32 masked-LM logits
    ``(batch, length, vocab_size)``. ``encode(token_ids)`` gives the hidden
    states that classifier heads pool.

    Example:
        >>> model = BERT(vocab_size=100, max_length=32, num_layers=2, hidden_dim=32, num_heads=2)
        >>> model.summary()
    """

    def __init__(
        self,
        vocab_size,
        max_length=128,
        num_layers=2,
        num_heads=4,
        hidden_dim=128,
        intermediate_dim=None,
        dropout=0.1,
        num_segments=2,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        tokenizer=None,
        name=None,
        **kwargs,
    ):
        intermediate_dim = intermediate_dim or 4 * hidden_dim
        # BERT's initialisation: truncated N(0, 0.02).
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        act = get_activation(activation)
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocab_size, hidden_dim, tie_weights=True, embeddings_initializer=init, name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_length, initializer=init, name="position_embedding"
        )
        self.segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=init, name="segment_embedding"
        )
        self.embeddings_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="embeddings_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout, name="embeddings_dropout")
        self.transformer_layers = [
            keras_hub.layers.TransformerEncoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout,
                activation=act,
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=init,
                normalize_first=False,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        # The masked-LM head of BERT: a transform, then the tied embedding.
        self.mlm_dense = keras.layers.Dense(hidden_dim, activation=act, kernel_initializer=init, name="mlm_dense")
        self.mlm_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="mlm_norm")
        # Logits stay float32 under mixed precision (see rnn.py).
        self.logits_cast = keras.layers.Activation("linear", dtype="float32", name="logits")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        hidden, _ = self._encode_layers(token_ids)
        logits = self.logits_cast(self.token_embedding(self.mlm_norm(self.mlm_dense(hidden)), reverse=True))
        super().__init__(inputs=token_ids, outputs=logits, name=name or "bert", **kwargs)

        self.vocab_size = vocab_size
        self.max_length = max_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.num_segments = num_segments
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.tokenizer = tokenizer
        self._register_torch_params()

    def _encode_layers(self, token_ids):
        """Hidden states and padding mask of ``token_ids`` through this model's layers."""
        padding_mask = ops.not_equal(token_ids, PAD_ID)
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(x)
        x = x + self.segment_embedding(ops.zeros_like(token_ids))
        x = self.embeddings_dropout(self.embeddings_norm(x))
        for block in self.transformer_layers:
            x = block(x, padding_mask=padding_mask)
        return x, padding_mask

    def encode(self, token_ids):
        """The encoder's hidden states, for heads that pool them.

        Args:
            token_ids: int ids ``(batch, length)`` (symbolic or eager),
                padded with ``PAD_ID``.

        Returns:
            ``(hidden, padding_mask)``: float ``(batch, length, hidden_dim)``
            and bool ``(batch, length)``, True on real tokens.
        """
        return self._encode_layers(token_ids)

    @property
    def feature_dim(self):
        """Width of ``encode``'s hidden states."""
        return self.hidden_dim

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
            "num_segments": self.num_segments,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,  # mixed precision survives saving
        }
