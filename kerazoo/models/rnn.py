"""The recurrent family: SimpleRNN, GRU and LSTM language models.

Each is a plain ``keras.Sequential`` stack, read top to bottom:

    token ids -> Embedding -> Dropout -> [RNN -> Dropout] x num_layers -> Dense -> logits

Dropout sits between layers rather than inside the cells (``recurrent_dropout``)
so that the TensorFlow and JAX backends can keep their fused cuDNN kernels.
"""

import dataclasses

import keras
from keras import ops

from kerazoo.decoding.protocol import CachedLM
from kerazoo.models.hparams import field, require_dropout, require_positive
from kerazoo.models.tokenizer_holder import TokenizerHolder

RECURRENT_LAYERS = {
    "rnn": keras.layers.SimpleRNN,
    "gru": keras.layers.GRU,
    "lstm": keras.layers.LSTM,
}


@dataclasses.dataclass
class RecurrentConfig:
    """Hyper-parameters of a recurrent language model."""

    embed_dim: int = field(256, "width of the token embedding")
    hidden_dim: int = field(512, "units in each recurrent layer")
    num_layers: int = field(2, "number of stacked recurrent layers")
    dropout: float = field(0.1, "dropout after the embedding and after each recurrent layer")

    def validate(self):
        """Raises ValueError on impossible values."""
        require_positive(self, "embed_dim", "hidden_dim", "num_layers")
        require_dropout(self)

    @property
    def max_length(self):
        """Recurrent models have no context limit."""
        return None


@keras.saving.register_keras_serializable(package="kerazoo")
class RecurrentLM(CachedLM, TokenizerHolder, keras.Sequential):
    """A stacked SimpleRNN / GRU / LSTM next-token model.

    Args:
        vocab_size: number of token ids (the tokenizer's vocabulary size).
        cell: ``"rnn"``, ``"gru"`` or ``"lstm"``.
        embed_dim: width of the token embedding.
        hidden_dim: units in each recurrent layer.
        num_layers: number of stacked recurrent layers.
        dropout: dropout rate between layers.
        tokenizer: optional tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids of shape ``(batch, length)``; it returns float
    logits of shape ``(batch, length, vocab_size)``.

    Example:
        >>> model = RecurrentLM(vocab_size=100, cell="gru", hidden_dim=32)
        >>> model.summary()
    """

    def __init__(
        self,
        vocab_size,
        cell="lstm",
        embed_dim=256,
        hidden_dim=512,
        num_layers=2,
        dropout=0.1,
        tokenizer=None,
        name=None,
        **kwargs,
    ):
        if cell not in RECURRENT_LAYERS:
            raise ValueError(f"unknown recurrent cell '{cell}'; valid: {', '.join(RECURRENT_LAYERS)}")
        layer_cls = RECURRENT_LAYERS[cell]
        layers = [
            keras.Input(shape=(None,), dtype="int32", name="token_ids"),
            keras.layers.Embedding(vocab_size, embed_dim, name="token_embedding"),
            keras.layers.Dropout(dropout, name="embedding_dropout"),
        ]
        for i in range(num_layers):
            layers.append(layer_cls(hidden_dim, return_sequences=True, name=f"{cell}_{i}"))
            layers.append(keras.layers.Dropout(dropout, name=f"{cell}_{i}_dropout"))
        # Logits stay float32 under mixed precision: softmax over a large
        # vocabulary in float16 loses the tail of the distribution.
        layers.append(keras.layers.Dense(vocab_size, name="lm_head", dtype="float32"))
        super().__init__(layers=layers, name=name or f"{cell}_lm", **kwargs)
        self.vocab_size = vocab_size
        self.cell = cell
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.tokenizer = tokenizer

    @property
    def max_length(self):
        """Recurrent models have no context limit."""
        return None

    # --- as an encoder (classifier heads pool these features) ------------

    def encode(self, token_ids):
        """Hidden states of the top recurrent layer, for heads that pool them.

        Padding (``PAD_ID``) is masked, so pooled features ignore it.

        Args:
            token_ids: int ids ``(batch, length)`` (symbolic or eager).

        Returns:
            ``(hidden, padding_mask)``: float ``(batch, length, hidden_dim)``
            and bool ``(batch, length)``, True on real tokens.
        """
        from kerazoo.text.special import PAD_ID

        padding_mask = ops.not_equal(token_ids, PAD_ID)
        x = self.get_layer("embedding_dropout")(self.get_layer("token_embedding")(token_ids))
        for i in range(self.num_layers):
            x = self.get_layer(f"{self.cell}_{i}")(x, mask=padding_mask)
            x = self.get_layer(f"{self.cell}_{i}_dropout")(x)
        return x, padding_mask

    @property
    def feature_dim(self):
        """Width of ``encode``'s hidden states."""
        return self.hidden_dim

    # --- cached decoding -------------------------------------------------
    # The "cache" of a recurrent model is its state: every layer's cell
    # state(s), stacked as (batch, num_layers, states per cell, hidden_dim).
    # LSTM cells carry two (h, c); SimpleRNN and GRU carry one. The state
    # must step through every prompt token: nothing to prefill.

    prefills_prompt = False

    @property
    def _states_per_cell(self):
        return 2 if self.cell == "lstm" else 1

    def _recurrent_layers(self):
        return [l for l in self.layers if isinstance(l, keras.layers.RNN)]

    def init_cache(self, batch_size, length=None):
        """Zero recurrent state for ``batch_size`` rows.

        Args:
            batch_size: rows decoded together.
            length: unused; recurrent state does not grow with the sequence.

        Returns:
            A float tensor ``(batch, num_layers, states_per_cell, hidden_dim)``.
        """
        shape = (batch_size, self.num_layers, self._states_per_cell, self.hidden_dim)
        return ops.zeros(shape, dtype=self.compute_dtype)

    def call_with_cache(self, token_ids, cache, index=None):
        """Advances the state by one token per row: one cell step per layer.

        Args:
            token_ids: int tensor ``(batch, 1)``.
            cache: the state from ``init_cache`` or a previous step.
            index: unused (recurrent models have no positions).

        Returns:
            ``(logits, cache)``: float32 logits ``(batch, 1, vocab)`` and the
            new state.
        """
        embedding = self.get_layer("token_embedding")
        x = embedding(token_ids)[:, 0, :]
        new_states = []
        for i, layer in enumerate(self._recurrent_layers()):
            states = [cache[:, i, j, :] for j in range(self._states_per_cell)]
            x, states = layer.cell(x, states, training=False)
            new_states.append(ops.stack(list(states), axis=1))
        logits = ops.cast(self.get_layer("lm_head")(x), "float32")
        return logits[:, None, :], ops.stack(new_states, axis=1)

    def prefill(self, token_ids, cache):
        """Recurrent models consume the prompt one cell step per token."""
        return cache

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocab_size": self.vocab_size,
            "cell": self.cell,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,  # mixed precision survives saving
        }
