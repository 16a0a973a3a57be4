"""The bidirectional LSTM encoder.

    token ids -> Embedding -> Dropout -> [Bidirectional(LSTM) -> Dropout] x num_layers
              = hidden states (batch, length, 2 * hidden_dim)
              -> Dense -> per-token logits (a masked-LM head)

Each position sees the whole text, left and right, so the model cannot be a
next-token LM; it is pre-trained as a masked LM or trained straight away as a
classifier (its default task). Padding (``PAD_ID``) is masked, so the
backward direction starts at each row's last real token.
"""

import dataclasses

import keras
from keras import ops

from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models.functional import FunctionalZooModel
from kerazoo.text.special import PAD_ID


@dataclasses.dataclass
class BiLSTMConfig:
    """Hyper-parameters of a bidirectional LSTM encoder."""

    embed_dim: int = field(128, "width of the token embedding")
    hidden_dim: int = field(128, "units of each direction's LSTM (features are 2 * hidden_dim)")
    num_layers: int = field(1, "number of stacked bidirectional layers")
    dropout: float = field(0.2, "dropout after the embedding and after each layer")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(self, "embed_dim", "hidden_dim", "num_layers")
        require_dropout(self)

    @property
    def max_length(self):
        """Recurrent models have no context limit."""
        return None


@keras.saving.register_keras_serializable(package="kerazoo")
class BiLSTM(FunctionalZooModel, keras.Model):
    """A bidirectional LSTM encoder with a per-token output head (functional).

    Args:
        vocab_size: number of token ids.
        embed_dim: width of the token embedding.
        hidden_dim: units per direction.
        num_layers: stacked bidirectional layers.
        dropout: dropout rate between layers.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids ``(batch, length)`` padded with ``PAD_ID``; it
    returns float32 logits ``(batch, length, vocab_size)`` (masked-LM head).
    ``encode(token_ids)`` gives the hidden states that classifier heads pool.

    Example:
        >>> model = BiLSTM(vocab_size=100, hidden_dim=16)
    """

    def __init__(self, vocab_size, embed_dim=128, hidden_dim=128, num_layers=1, dropout=0.2,
                 tokenizer=None, name=None, **kwargs):
        self.token_embedding = keras.layers.Embedding(vocab_size, embed_dim, name="token_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.recurrent_layers = [
            keras.layers.Bidirectional(keras.layers.LSTM(hidden_dim, return_sequences=True), name=f"bilstm_{i}")
            for i in range(num_layers)
        ]
        self.layer_dropouts = [keras.layers.Dropout(dropout, name=f"bilstm_{i}_dropout") for i in range(num_layers)]
        self.lm_head = keras.layers.Dense(vocab_size, name="lm_head", dtype="float32")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        hidden, _ = self._encode_layers(token_ids)
        super().__init__(inputs=token_ids, outputs=self.lm_head(hidden), name=name or "bilstm", **kwargs)
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.tokenizer = tokenizer
        self._register_torch_params()

    def _encode_layers(self, token_ids):
        padding_mask = ops.not_equal(token_ids, PAD_ID)
        x = self.embedding_dropout(self.token_embedding(token_ids))
        for layer, drop in zip(self.recurrent_layers, self.layer_dropouts):
            x = drop(layer(x, mask=padding_mask))
        return x, padding_mask

    def encode(self, token_ids):
        """The encoder's hidden states, for heads that pool them.

        Args:
            token_ids: int ids ``(batch, length)``, padded with ``PAD_ID``.

        Returns:
            ``(hidden, padding_mask)``: float ``(batch, length, 2 * hidden_dim)``
            and bool ``(batch, length)``, True on real tokens.
        """
        return self._encode_layers(token_ids)

    @property
    def feature_dim(self):
        """Width of ``encode``'s hidden states."""
        return 2 * self.hidden_dim

    @property
    def max_length(self):
        """Recurrent models have no context limit."""
        return None

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,
        }
