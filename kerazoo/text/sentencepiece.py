"""``SentencePieceTokenizer``: "unigram" and "bpe" models learned by SentencePiece.

The trainer that builds these models is ``kerazoo.text.sentencepiece_trainer``.
"""

import os

import keras
import keras_hub
import tensorflow as tf
from sentencepiece import sentencepiece_model_pb2

from kerazoo.text.base import ZooTokenizer, require_dtype_int32

SENTENCEPIECE_FILENAME = "vocabulary.spm"
# SentencePiece's ``trainer_spec.model_type`` of each kind.
_SENTENCEPIECE_MODEL_TYPES = {"unigram": 1, "bpe": 2}


@keras.saving.register_keras_serializable(package="kerazoo")
class SentencePieceTokenizer(
    ZooTokenizer, keras_hub.tokenizers.SentencePieceTokenizer
):
    """keras_hub's SentencePiece tokenizer with the zoo's special tokens.

    ``kind`` is "unigram" or "bpe", read from the model proto. Models from
    ``train_tokenizer`` round-trip text exactly when byte fallback is on
    (vocab_size >= 512), with two SentencePiece quirks: the literal text
    "<mask>" is the mask piece (so detokenizing drops it), and the character
    "▁" (U+2581, SentencePiece's space marker) comes back as a space.

    Args:
        proto: a serialized SentencePiece model (bytes) whose pieces 0..4
            are the 5 special tokens. None until ``load_assets``.
        lowercase: case-fold text (Unicode NFKC_Casefold) before tokenizing;
            the model should have been trained on case-folded text.
        sequence_length: if set, outputs are dense and padded/truncated.
        add_bos: prepend ``bos_id`` to every sequence.
        add_eos: append ``eos_id`` to every sequence.
    """

    def __init__(
        self,
        proto=None,
        lowercase=False,
        sequence_length=None,
        add_bos=False,
        add_eos=False,
        **kwargs,
    ):
        require_dtype_int32(kwargs)
        self.lowercase = lowercase
        self._register_special_tokens()
        super().__init__(
            proto=proto,
            sequence_length=sequence_length,
            add_bos=add_bos,
            add_eos=add_eos,
            **kwargs,
        )

    @property
    def kind(self):
        """The model type, "unigram" or "bpe" (None before a proto is set)."""
        return self._kind

    def set_proto(self, proto):
        """Sets the SentencePiece model; checks its special pieces.

        Args:
            proto: the serialized model as bytes, or None to unset.
        """
        if isinstance(proto, str):
            # keras_hub would read a file (or base64) here; assets are loaded
            # by load_assets, and a path in a config is a safe-mode hazard.
            raise ValueError("proto must be the serialized model as bytes")
        super().set_proto(proto)
        self._kind = None if proto is None else _sentencepiece_kind(proto)
        if proto is not None:
            self._check_special_tokens()

    def _tokenize_batch(self, batch):
        return self._with_live_op(lambda: self._tokenize_tf(self._case_fold(batch)))

    def _detokenize_batch(self, ids):
        return self._with_live_op(lambda: self._detokenize_tf(ids))

    def _with_live_op(self, run):
        """Runs a tf-text SentencePiece op, rebuilding it if TF dropped it.

        tf-text keeps the SentencePiece model in a resource owned by a cached
        eager kernel; ``tf.random.set_seed`` (hence
        ``keras.utils.set_random_seed``) clears that cache and the resource
        with it. Rebuilding from our own copy of the proto restores it.
        """
        try:
            return run()
        except tf.errors.NotFoundError:
            if not tf.executing_eagerly():
                raise
            self._set_proto_tf(self.proto)
            return run()

    def save_assets(self, dir_path):
        """Writes the model proto (keras_hub's format)."""
        keras_hub.tokenizers.SentencePieceTokenizer.save_assets(self, dir_path)

    def load_assets(self, dir_path):
        """Reads the model proto written by ``save_assets``."""
        with open(os.path.join(dir_path, SENTENCEPIECE_FILENAME), "rb") as f:
            self.set_proto(f.read())

    def get_config(self):
        config = super().get_config()
        config["lowercase"] = self.lowercase
        return config


def _sentencepiece_kind(proto):
    """Returns "unigram" or "bpe" for a serialized SentencePiece model."""
    model = sentencepiece_model_pb2.ModelProto.FromString(proto)
    for kind, model_type in _SENTENCEPIECE_MODEL_TYPES.items():
        if model.trainer_spec.model_type == model_type:
            return kind
    raise ValueError(
        "only unigram and bpe SentencePiece models are supported; got model "
        f"type {model.trainer_spec.model_type}"
    )

