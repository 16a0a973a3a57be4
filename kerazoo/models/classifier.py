"""Classifier heads on any encoder of the zoo: text -> one of N labels.

    token ids -> encoder.encode (bert, bilstm, or the rnn/gru/lstm stack)
              -> pool over real tokens (cls | mean | last) -> dropout -> Dense -> label logits

The classifier builds its encoder from the encoder's arch name and
hyper-parameters (keras_hub's Backbone pattern), so it saves and reloads in
safe mode from its config alone; the label names travel in the config too, so
a reloaded model predicts names, not indices. Pre-trained encoder weights are
copied in by layer name (``load_encoder_weights``); the encoder's own output
head (masked-LM or next-token) is not part of the classifier.
"""

import keras
from keras import ops

from kerazoo.models.functional import FunctionalZooModel

POOLINGS = ("cls", "mean", "last")


def pool(hidden, padding_mask, pooling):
    """Pools hidden states over each row's real tokens.

    Args:
        hidden: float ``(batch, length, dim)``.
        padding_mask: bool ``(batch, length)``, True on real tokens; rows are
            right-padded.
        pooling: ``"cls"`` (the first position, where ``<s>`` sits),
            ``"mean"`` (average of real positions) or ``"last"`` (the last
            real position: the whole text for a left-to-right RNN).

    Returns:
        Float ``(batch, dim)``.
    """
    if pooling == "cls":
        return hidden[:, 0, :]
    mask = ops.cast(padding_mask, hidden.dtype)
    if pooling == "mean":
        total = ops.sum(hidden * mask[:, :, None], axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)
    if pooling == "last":
        last = ops.maximum(ops.sum(ops.cast(padding_mask, "int32"), axis=1) - 1, 0)
        return ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0, :]
    raise ValueError(f"unknown pooling '{pooling}'; valid: {', '.join(POOLINGS)}")


@keras.saving.register_keras_serializable(package="kerazoo")
class Classifier(FunctionalZooModel, keras.Model):
    """A text classifier: an encoder of the zoo plus a pooled linear head.

    Args:
        encoder_arch: the encoder's arch (``bert``, ``bilstm``, ``rnn``,
            ``gru``, ``lstm``).
        encoder_config: the encoder's ``vocab_size`` and hyper-parameters.
        label_names: the class names, in logit order.
        pooling: ``cls``, ``mean`` or ``last`` (see ``pool``).
        dropout: dropout before the output layer.
        max_length: tokens per text, ``<s>`` and ``</s>`` included; longer
            texts are cut (``kerazoo.classify`` and the export pack this way).
        tokenizer: the tokenizer layer, saved with the model.
        name: model name.

    Call it on int token ids ``(batch, length)`` packed by
    ``kerazoo.training.tasks.classify.pack``; it returns float32 logits
    ``(batch, len(label_names))``.
    """

    def __init__(self, encoder_arch, encoder_config, label_names, pooling="cls", dropout=0.1, max_length=128,
                 tokenizer=None, name=None, **kwargs):
        from kerazoo.models.registry import build, get_arch

        if not get_arch(encoder_arch).encoder:
            raise ValueError(f"arch '{encoder_arch}' is not an encoder; classifier heads sit on "
                             "bert, bilstm, rnn, gru or lstm")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; valid: {', '.join(POOLINGS)}")
        if pooling == "cls" and encoder_arch != "bert":
            raise ValueError(f"pooling 'cls' needs a bert encoder (an RNN's first position has seen one "
                             f"token); use 'mean' or 'last' for '{encoder_arch}'")
        label_names = [str(n) for n in label_names]
        if len(label_names) < 2 or len(set(label_names)) != len(label_names):
            raise ValueError(f"a classifier needs at least 2 distinct labels, got {label_names}")
        encoder_config = dict(encoder_config)
        encoder = build(encoder_arch, **encoder_config)
        context = getattr(encoder, "max_length", None)
        if context is not None and max_length > context:
            raise ValueError(f"max_length {max_length} exceeds the encoder's context ({context})")
        self.head_dropout = keras.layers.Dropout(dropout, name="classifier_dropout")
        # Logits in float32 even under mixed precision (see rnn.py).
        self.head = keras.layers.Dense(len(label_names), name="classifier_head", dtype="float32")

        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        hidden, padding_mask = encoder.encode(token_ids)
        logits = self.head(self.head_dropout(pool(hidden, padding_mask, pooling)))
        super().__init__(inputs=token_ids, outputs=logits, name=name or f"{encoder_arch}_classifier", **kwargs)
        self.encoder_arch = encoder_arch
        self.encoder_config = encoder_config
        self.label_names = label_names
        self.pooling = pooling
        self.dropout = dropout
        self.max_length = max_length
        self.tokenizer = tokenizer
        self._register_torch_params()

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder_arch": self.encoder_arch,
            "encoder_config": dict(self.encoder_config),
            "label_names": list(self.label_names),
            "pooling": self.pooling,
            "dropout": self.dropout,
            "max_length": self.max_length,
            "tokenizer": self._tokenizer_config(),
            "dtype": self.dtype_policy.name,
        }


def arch_of(model):
    """The registry arch name of a zoo model."""
    from kerazoo.models.registry import ARCHS

    cell = getattr(model, "cell", None)
    if cell is not None:
        return cell
    for arch in ARCHS.values():
        if arch.model_cls is not None and type(model) is arch.model_cls:
            return arch.name
    raise ValueError(f"a {type(model).__name__} is not a model of the zoo's registry")


def encoder_config_of(model):
    """``vocab_size`` and hyper-parameters of a zoo encoder, to rebuild it."""
    skip = {"name", "trainable", "tokenizer", "dtype", "cell"}
    return {k: v for k, v in model.get_config().items() if k not in skip}


def load_encoder_weights(classifier, encoder):
    """Copies a pre-trained encoder's weights into a classifier, by layer name.

    Args:
        classifier: a ``Classifier`` built with the same encoder arch and
            hyper-parameters.
        encoder: the pre-trained encoder model.

    Returns:
        The names of the layers copied.

    Raises:
        ValueError: when the architectures differ.
    """
    if classifier.encoder_arch != arch_of(encoder) or classifier.encoder_config != encoder_config_of(encoder):
        raise ValueError("the pre-trained encoder's arch or hyper-parameters differ from the classifier's encoder")
    copied = []
    for layer in encoder.layers:
        if not layer.weights:
            continue
        try:
            target = classifier.get_layer(layer.name)
        except ValueError:
            continue  # the encoder's own output head: not part of a classifier
        target.set_weights(layer.get_weights())
        copied.append(layer.name)
    if not copied:
        raise ValueError("no encoder layer matched the classifier's; nothing was loaded")
    return copied
