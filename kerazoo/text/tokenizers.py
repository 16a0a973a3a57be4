"""The zoo's shared tokenizers: Keras layers built on `keras_hub.tokenizers`.

Every model in the zoo tokenizes with one of five kinds of tokenizer, all of
which agree on the special tokens and their ids:

    id 0 "<pad>", 1 "<unk>", 2 "<s>", 3 "</s>", 4 "<mask>"

- ``"byte"``: the UTF-8 bytes of the text, id = byte + 5 (261 ids).
- ``"char"``: unicode characters, the vocabulary learned from a corpus.
- ``"wordpiece"``: a WordPiece vocabulary learned by keras_hub's trainer.
- ``"unigram"`` / ``"bpe"``: SentencePiece models learned by SentencePiece.

The tokenizers are Keras layers following the keras_hub pattern:
``get_config()`` holds no vocabulary; the vocabulary travels as an asset
through ``save_assets(dir)`` / ``load_assets(dir)``. A model that holds a
tokenizer as an attribute therefore saves it inside its ``.keras`` file.

All of them run on TensorFlow ops on every Keras backend (tf-text has no
JAX/torch counterpart), so they also work inside ``tf.data.Dataset.map``:
``tokenize`` returns ``tf.Tensor``/``tf.RaggedTensor`` of int32 and
``detokenize`` returns string tensors.
"""

import collections
import io
import json
import os
import re
import shutil
import uuid

import keras
import keras_hub
import numpy as np
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.utils.tensor_utils import casefold_utf8
from keras_hub.src.utils.tensor_utils import convert_to_numpy
from keras_hub.src.utils.tensor_utils import no_convert_scope
from sentencepiece import sentencepiece_model_pb2

from kerazoo.text.special import BOS_ID, EOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID

KINDS = ("byte", "char", "wordpiece", "unigram", "bpe")

BYTE_VOCAB_SIZE = NUM_SPECIAL_TOKENS + 256
# The smallest vocabulary that holds anything besides the special tokens.
MIN_VOCAB_SIZE = NUM_SPECIAL_TOKENS + 1

CONFIG_FILENAME = "config.json"
ASSETS_DIRNAME = "assets"
CHARS_FILENAME = "characters.txt"
WORDPIECE_FILENAME = "vocabulary.txt"
SENTENCEPIECE_FILENAME = "vocabulary.spm"

# The attribute names keras_hub's own preprocessors read (``start_token_id``,
# ``end_token_id``, ...), so that our tokenizers plug into them.
_KERAS_HUB_SPECIAL_ATTRS = (
    "pad_token",
    "unk_token",
    "start_token",
    "end_token",
    "mask_token",
)

# SentencePiece: "\n" is a user-defined piece (id 5) because training reads
# one line at a time and so never sees a newline; the piece keeps newlines in
# multi-line text exact even when the vocabulary is too small for byte
# fallback.
_SENTENCEPIECE_USER_SYMBOLS = ("<mask>", "\n")
_SENTENCEPIECE_MODEL_TYPES = {"unigram": 1, "bpe": 2}
# SentencePiece silently skips training sentences longer than 4192 bytes,
# so longer lines are cut into chunks of at most 1000 characters (<= 4000
# bytes of UTF-8).
_SENTENCEPIECE_MAX_CHUNK_CHARS = 1000
# Alphabetic scripts have far fewer distinct characters than this and all
# of them should be pieces; corpora with more (CJK) have a long tail of rare
# characters that is better left to byte fallback or "<unk>".
_SMALL_CHARSET = 1000
_BYTE_FALLBACK_MIN_VOCAB = 512


# ---------------------------------------------------------------------------
# Tensor conversion helpers.
# ---------------------------------------------------------------------------


def _to_string_tensor(inputs):
    """Converts text input to a rank 0 or rank 1 `tf.string` tensor.

    Args:
        inputs: a str/bytes, a list of them, a NumPy array or a string tensor.

    Returns:
        A `tf.Tensor` of dtype string and rank 0 or 1.
    """
    if not isinstance(inputs, (tf.Tensor, tf.RaggedTensor)):
        try:
            inputs = tf.convert_to_tensor(inputs, dtype=tf.string)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"tokenize() expects a string or a list of strings; got "
                f"{type(inputs).__name__}: {error}"
            ) from None
    if inputs.dtype != tf.string:
        raise ValueError(
            f"tokenize() expects string input; got dtype {inputs.dtype.name}"
        )
    if isinstance(inputs, tf.RaggedTensor) or inputs.shape.rank not in (0, 1):
        raise ValueError(
            "tokenize() expects a single string or a 1-D batch of strings; "
            f"got shape {inputs.shape}"
        )
    return inputs


def _to_id_tensor(inputs):
    """Converts token ids to an int32 `tf.Tensor` or `tf.RaggedTensor`.

    Args:
        inputs: ids as a (nested, possibly ragged) list, NumPy array, backend
            tensor, `tf.Tensor` or `tf.RaggedTensor`.

    Returns:
        An int32 tensor of rank 1 or 2 (ragged or dense).
    """
    if isinstance(inputs, (tf.Tensor, tf.RaggedTensor)):
        ids = inputs
    elif isinstance(inputs, (list, tuple)):
        try:
            ids = tf.constant(inputs)
        except ValueError:
            # Rows of different lengths.
            ids = tf.ragged.constant(inputs)
    else:
        # Backend tensors (JAX, torch) are not tf-convertible directly.
        ids = tf.convert_to_tensor(convert_to_numpy(inputs))
    if ids.shape.rank not in (1, 2):
        raise ValueError(
            "detokenize() expects a 1-D sequence of ids or a 2-D batch; got "
            f"shape {ids.shape}"
        )
    return tf.cast(ids, tf.int32)


def _require_dtype_int32(kwargs):
    """Rejects any layer dtype other than int32 (the ids' dtype).

    Args:
        kwargs: the layer's keyword arguments; "dtype" is set to "int32".
    """
    dtype = kwargs.get("dtype")
    if dtype is not None:
        policy = keras.dtype_policies.get(dtype)
        if policy.compute_dtype != "int32":
            raise ValueError(
                f"kerazoo tokenizers output int32 ids; dtype={dtype!r} is not "
                "supported"
            )
    kwargs["dtype"] = "int32"


def _require_fixed_options(kwargs, **fixed):
    """Removes options that must keep one value, rejecting any other value.

    keras_hub base classes put these options in their configs, so they come
    back through ``from_config``; any other value would break the shared
    special-token layout.

    Args:
        kwargs: the layer's keyword arguments, modified in place.
        **fixed: option name -> the only accepted value.
    """
    for name, value in fixed.items():
        given = kwargs.pop(name, value)
        if given != value:
            raise ValueError(
                f"{name}={given!r} is not supported: kerazoo tokenizers "
                f"need {name}={value!r}"
            )


# ---------------------------------------------------------------------------
# The shared behaviour of every tokenizer.
# ---------------------------------------------------------------------------


class ZooTokenizer:
    """Mixin for the zoo's tokenizers: special ids and the TF-only API.

    keras_hub tokenizers run a pure-Python path in eager mode and return
    backend tensors or Python lists. The zoo wants one behaviour everywhere
    (eager, `tf.data`, every Keras backend), so ``tokenize``/``detokenize``
    always take the TensorFlow path and return TF tensors.

    Subclasses implement ``_tokenize_batch`` (1-D strings -> ragged ids) and
    ``_detokenize_batch`` (ragged ids without specials -> 1-D strings).
    """

    kind = None
    pad_id = PAD_ID
    unk_id = UNK_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    mask_id = MASK_ID

    def _register_special_tokens(self):
        """Declares the special tokens the keras_hub way.

        This gives ``special_tokens``, ``special_token_ids`` and the
        ``*_token_id`` attributes keras_hub preprocessors read.
        """
        for token, attr in zip(SPECIAL_TOKENS, _KERAS_HUB_SPECIAL_ATTRS):
            self._add_special_token(token, attr)

    def _check_special_tokens(self):
        """Raises ValueError unless ids 0..4 are the special tokens."""
        head = list(self.get_vocabulary()[:NUM_SPECIAL_TOKENS])
        if head != list(SPECIAL_TOKENS):
            raise ValueError(
                f"the vocabulary must start with {list(SPECIAL_TOKENS)} (ids "
                f"0..{NUM_SPECIAL_TOKENS - 1}); it starts with {head}"
            )

    def _case_fold(self, batch):
        """Applies Unicode case folding (NFKC_Casefold) when ``lowercase``."""
        if self.lowercase:
            return tf_text.case_fold_utf8(batch)
        return batch

    def tokenize(self, inputs):
        """Converts text to token ids.

        Args:
            inputs: a string, or a list / 1-D tensor of strings. Symbolic
                tensors (inside `tf.data.Dataset.map`) work too.

        Returns:
            For a single string, a 1-D int32 `tf.Tensor`; for a batch, an
            int32 `tf.RaggedTensor` of shape ``[batch, None]``. When
            ``sequence_length`` is set, outputs are dense, truncated or
            padded with ``pad_id`` to that length.
        """
        text = _to_string_tensor(inputs)
        unbatched = text.shape.rank == 0
        batch = tf.expand_dims(text, 0) if unbatched else text
        # The no-convert scope stops keras_hub from turning our TF outputs
        # into Python lists / backend tensors. Nothing is pinned to a device:
        # tf-text ops only have CPU kernels and TF places them there itself,
        # so a graph that contains them (an export) stays device-agnostic.
        with no_convert_scope():
            ids = self._tokenize_batch(batch)
        ids = self._to_sequence_length(tf.cast(ids, tf.int32))
        return ids[0] if unbatched else ids

    def _to_sequence_length(self, ids):
        """Pads/truncates ragged ids to a dense ``sequence_length`` batch."""
        if not self.sequence_length or not isinstance(ids, tf.RaggedTensor):
            return ids
        return ids.to_tensor(
            default_value=PAD_ID, shape=[None, self.sequence_length]
        )

    def detokenize(self, inputs):
        """Converts token ids back to text.

        Special ids (0..4) and ids outside the vocabulary (e.g. from an
        output layer padded past ``vocabulary_size()``) are dropped.

        Args:
            inputs: a 1-D sequence of ids, or a 2-D batch (dense, padded, or
                ragged; list, NumPy array, backend or TF tensor).

        Returns:
            A scalar string `tf.Tensor` for 1-D input, a 1-D string
            `tf.Tensor` for a batch.
        """
        ids = _to_id_tensor(inputs)
        unbatched = ids.shape.rank == 1
        if unbatched:
            ids = tf.expand_dims(ids, 0)
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        keep = (ids >= NUM_SPECIAL_TOKENS) & (ids < self.vocabulary_size())
        ids = tf.ragged.boolean_mask(ids, keep)
        with no_convert_scope():
            text = self._detokenize_batch(ids)
        return text[0] if unbatched else text

    def call(self, inputs):
        """Calling the layer tokenizes (see ``tokenize``)."""
        return self.tokenize(inputs)

    def save_assets(self, dir_path):
        """Writes the vocabulary files into ``dir_path`` (none by default)."""

    def load_assets(self, dir_path):
        """Reads the vocabulary files from ``dir_path`` (none by default)."""

    def _check_id(self, id):
        """Raises ValueError unless ``id`` is a valid token id."""
        if not 0 <= id < self.vocabulary_size():
            raise ValueError(
                f"id must be in range [0, {self.vocabulary_size() - 1}]; "
                f"got {id}"
            )


# ---------------------------------------------------------------------------
# "byte"
# ---------------------------------------------------------------------------

# Byte value -> the one-byte string, for detokenizing by gather + join.
_BYTE_STRINGS = np.array([bytes([b]) for b in range(256)], dtype=object)


@keras.saving.register_keras_serializable(package="kerazoo")
class ByteTokenizer(ZooTokenizer, keras_hub.tokenizers.ByteTokenizer):
    """UTF-8 bytes as tokens: id = byte + 5, after the 5 special tokens.

    Needs no training and round-trips any text exactly.

    Args:
        lowercase: case-fold text (Unicode NFKC_Casefold) before tokenizing.
        sequence_length: if set, outputs are dense and padded/truncated.
        normalization_form: None or "NFC", "NFKC", "NFD", "NFKD".
        errors: how detokenize treats invalid UTF-8: "replace", "ignore" or
            "strict".
        replacement_char: the codepoint used by ``errors="replace"``.
    """

    kind = "byte"

    def __init__(
        self,
        lowercase=False,
        sequence_length=None,
        normalization_form=None,
        errors="replace",
        replacement_char=65533,
        **kwargs,
    ):
        _require_dtype_int32(kwargs)
        self._register_special_tokens()
        super().__init__(
            lowercase=lowercase,
            sequence_length=sequence_length,
            normalization_form=normalization_form,
            errors=errors,
            replacement_char=replacement_char,
            **kwargs,
        )

    def vocabulary_size(self):
        """Returns 261: 5 special tokens and 256 byte values."""
        return BYTE_VOCAB_SIZE

    def get_vocabulary(self):
        """Returns the tokens; byte b is ``chr(b)`` (keras_hub's naming)."""
        return list(SPECIAL_TOKENS) + [chr(b) for b in range(256)]

    def id_to_token(self, id):
        """Converts an id to its token string."""
        self._check_id(id)
        if id < NUM_SPECIAL_TOKENS:
            return SPECIAL_TOKENS[id]
        return chr(id - NUM_SPECIAL_TOKENS)

    def token_to_id(self, token):
        """Converts a special token or a one-character byte token to an id."""
        if token in SPECIAL_TOKENS:
            return SPECIAL_TOKENS.index(token)
        if len(token) != 1 or ord(token) > 255:
            raise ValueError(f"token {token!r} is not in the byte vocabulary")
        return ord(token) + NUM_SPECIAL_TOKENS

    def _tokenize_batch(self, batch):
        batch = self._case_fold(batch)
        if self.normalization_form is not None:
            batch = tf_text.normalize_utf8(batch, self.normalization_form)
        pieces = tf.strings.bytes_split(batch)
        # One byte per piece; reshape (not [:, 0]) so empty batches work.
        values = tf.reshape(tf.io.decode_raw(pieces.flat_values, tf.uint8), [-1])
        byte_ids = tf.cast(values, tf.int32) + NUM_SPECIAL_TOKENS
        return pieces.with_flat_values(byte_ids)

    def _detokenize_batch(self, ids):
        pieces = tf.gather(tf.constant(_BYTE_STRINGS), ids - NUM_SPECIAL_TOKENS)
        text = tf.strings.reduce_join(pieces, axis=-1)
        # Generated byte sequences need not be valid UTF-8.
        return tf.strings.unicode_transcode(
            text,
            "UTF-8",
            "UTF-8",
            errors=self.errors,
            replacement_char=self.replacement_char,
        )


# ---------------------------------------------------------------------------
# "char"
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerazoo")
class CharTokenizer(ZooTokenizer, keras_hub.tokenizers.Tokenizer):
    """Unicode characters as tokens, from a vocabulary learned on a corpus.

    Characters missing from the vocabulary become ``"<unk>"``.

    Args:
        vocabulary: the full token list: the 5 special tokens, then single
            characters (id = position). None until ``load_assets``.
        lowercase: case-fold text (Unicode NFKC_Casefold) before tokenizing.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "char"

    def __init__(
        self, vocabulary=None, lowercase=False, sequence_length=None, **kwargs
    ):
        _require_dtype_int32(kwargs)
        self._register_special_tokens()
        super().__init__(**kwargs)
        self.lowercase = lowercase
        self.sequence_length = sequence_length
        self.file_assets = [CHARS_FILENAME]
        self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary and builds the lookup tables.

        Args:
            vocabulary: the 5 special tokens followed by distinct single
                characters, or None to unset.
        """
        if vocabulary is None:
            self._vocabulary = None
            return
        if isinstance(vocabulary, str):
            raise ValueError(
                "vocabulary must be a list of tokens, not a string"
            )
        vocabulary = list(vocabulary)
        self._vocabulary = vocabulary
        self._check_special_tokens()
        _check_characters(vocabulary[NUM_SPECIAL_TOKENS:])
        self._token_to_id_map = {t: i for i, t in enumerate(vocabulary)}
        self._build_tables(vocabulary[NUM_SPECIAL_TOKENS:])
        self._update_special_token_ids()

    def _build_tables(self, chars):
        """Builds the char -> id hash table and the id -> char array."""
        # Lookup tables are resources: create them eagerly, never inside a
        # tf.data/tf.function graph that would own (and then drop) them.
        with tf.init_scope():
            initializer = tf.lookup.KeyValueTensorInitializer(
                keys=tf.constant(chars, dtype=tf.string),
                values=tf.range(
                    NUM_SPECIAL_TOKENS,
                    NUM_SPECIAL_TOKENS + len(chars),
                    dtype=tf.int32,
                ),
            )
            self._char_to_id = tf.lookup.StaticHashTable(
                initializer, default_value=UNK_ID
            )
        # Specials map to "" (they are masked out before detokenizing anyway).
        self._id_to_char = np.array(
            [b""] * NUM_SPECIAL_TOKENS + [c.encode("utf-8") for c in chars],
            dtype=object,
        )

    def _check_vocabulary(self):
        if self._vocabulary is None:
            raise ValueError(
                "CharTokenizer has no vocabulary: pass `vocabulary` or call "
                "load_assets()"
            )

    def get_vocabulary(self):
        """Returns the list of tokens (id = position)."""
        self._check_vocabulary()
        return list(self._vocabulary)

    def vocabulary_size(self):
        """Returns the number of ids, special tokens included."""
        self._check_vocabulary()
        return len(self._vocabulary)

    def id_to_token(self, id):
        """Converts an id to its token string."""
        self._check_vocabulary()
        self._check_id(id)
        return self._vocabulary[id]

    def token_to_id(self, token):
        """Converts a token (a special token or one character) to its id."""
        self._check_vocabulary()
        if token not in self._token_to_id_map:
            raise ValueError(f"token {token!r} is not in the vocabulary")
        return self._token_to_id_map[token]

    def _tokenize_batch(self, batch):
        self._check_vocabulary()
        chars = tf.strings.unicode_split(self._case_fold(batch), "UTF-8")
        return tf.ragged.map_flat_values(self._char_to_id.lookup, chars)

    def _detokenize_batch(self, ids):
        self._check_vocabulary()
        chars = tf.gather(tf.constant(self._id_to_char), ids)
        return tf.strings.reduce_join(chars, axis=-1)

    def save_assets(self, dir_path):
        """Writes the characters (ids 5..) as one decimal codepoint a line.

        Codepoints, not the characters themselves, so that newline, tab,
        space and other separators survive the text file.
        """
        self._check_vocabulary()
        chars = self._vocabulary[NUM_SPECIAL_TOKENS:]
        with open(os.path.join(dir_path, CHARS_FILENAME), "w") as file:
            file.writelines(f"{ord(c)}\n" for c in chars)

    def load_assets(self, dir_path):
        """Reads the characters written by ``save_assets``."""
        with open(os.path.join(dir_path, CHARS_FILENAME)) as file:
            chars = [chr(int(line)) for line in file if line.strip()]
        self.set_vocabulary(list(SPECIAL_TOKENS) + chars)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary": None,  # Saved as an asset.
                "lowercase": self.lowercase,
                "sequence_length": self.sequence_length,
            }
        )
        return config


def _check_characters(chars):
    """Raises ValueError unless ``chars`` are distinct single characters."""
    bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
    if bad:
        raise ValueError(
            f"a char vocabulary holds single characters; got {bad[:5]}"
        )
    duplicated = [c for c, n in collections.Counter(chars).items() if n > 1]
    if duplicated or set(chars) & set(SPECIAL_TOKENS):
        raise ValueError(
            f"the char vocabulary repeats tokens: {duplicated[:5]}"
        )


# ---------------------------------------------------------------------------
# "wordpiece"
# ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerazoo")
class WordPieceTokenizer(ZooTokenizer, keras_hub.tokenizers.WordPieceTokenizer):
    """keras_hub's WordPiece tokenizer with the zoo's special tokens.

    Text is split on whitespace and punctuation (and around CJK characters)
    before WordPiece, so detokenizing rejoins words with single spaces: the
    round trip is exact up to whitespace.

    Args:
        vocabulary: the token list, starting with the 5 special tokens.
            None until ``load_assets``.
        lowercase: case-fold text before tokenizing.
        strip_accents: remove accents before tokenizing.
        split_on_cjk: make every CJK character its own word.
        suffix_indicator: the prefix of word-continuation pieces.
        special_tokens_in_strings: map special tokens written in the text
            (e.g. "<mask>") to their ids instead of splitting them.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "wordpiece"

    def __init__(
        self,
        vocabulary=None,
        lowercase=False,
        strip_accents=False,
        split_on_cjk=True,
        suffix_indicator="##",
        special_tokens_in_strings=False,
        sequence_length=None,
        **kwargs,
    ):
        _require_dtype_int32(kwargs)
        _require_fixed_options(kwargs, split=True, oov_token=SPECIAL_TOKENS[1])
        self._register_special_tokens()
        super().__init__(
            vocabulary=vocabulary,
            sequence_length=sequence_length,
            lowercase=lowercase,
            strip_accents=strip_accents,
            split=True,
            split_on_cjk=split_on_cjk,
            suffix_indicator=suffix_indicator,
            oov_token=SPECIAL_TOKENS[1],
            special_tokens_in_strings=special_tokens_in_strings,
            **kwargs,
        )

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary (a list of tokens); checks the special ids."""
        if isinstance(vocabulary, str):
            # keras_hub would read a file here; assets are loaded by
            # load_assets, and a path in a config is a safe-mode hazard.
            raise ValueError("vocabulary must be a list of tokens, not a path")
        super().set_vocabulary(vocabulary)
        if vocabulary is not None:
            self._check_special_tokens()

    def _tokenize_batch(self, batch):
        # keras_hub's TF path: pretokenize + tf-text FastWordpiece.
        return self._tokenize_tf(batch)

    def _detokenize_batch(self, ids):
        return self._detokenize_tf(ids)

    def save_assets(self, dir_path):
        """Writes the vocabulary, one token a line (keras_hub's format)."""
        keras_hub.tokenizers.WordPieceTokenizer.save_assets(self, dir_path)

    def load_assets(self, dir_path):
        """Reads the vocabulary written by ``save_assets``."""
        path = os.path.join(dir_path, WORDPIECE_FILENAME)
        with open(path, encoding="utf-8", newline="\n") as file:
            tokens = file.read().split("\n")[:-1]
        self.set_vocabulary(tokens)


# ---------------------------------------------------------------------------
# "unigram" and "bpe"
# ---------------------------------------------------------------------------


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
        _require_dtype_int32(kwargs)
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


# ---------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------


def train_tokenizer(texts, kind, vocab_size=None, lowercase=False):
    """Trains a tokenizer of the given kind on a corpus.

    Training is deterministic: the same texts and settings give the same
    vocabulary.

    Args:
        texts: an iterable (list, generator, ``ds.as_numpy_iterator()``) of
            document strings (str or UTF-8 bytes).
        kind: one of ``KINDS``.
        vocab_size: the number of token ids, the 5 special tokens included.
            "byte": None or 261. "char": None means every character of the
            corpus. "wordpiece", "unigram", "bpe": required. WordPiece's
            trainer may return up to 5% fewer tokens than asked.
        lowercase: case-fold text (Unicode NFKC_Casefold) in training and
            tokenizing.

    Returns:
        The trained tokenizer layer.

    Raises:
        ValueError: for an unknown kind, an empty corpus, or a vocab_size the
            kind or the corpus cannot support.
    """
    kind = _check_kind(kind)
    _check_vocab_size(kind, vocab_size)
    texts = _collect_texts(texts)
    return _TRAINERS[kind](texts, vocab_size, lowercase)


def _check_kind(kind):
    """Returns ``kind`` if it is one of ``KINDS``, else raises ValueError."""
    if kind not in KINDS:
        raise ValueError(
            f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(KINDS)}"
        )
    return kind


def _check_vocab_size(kind, vocab_size):
    """Raises ValueError for a vocab_size the kind can never support."""
    if vocab_size is None:
        if kind in ("wordpiece", "unigram", "bpe"):
            raise ValueError(f"vocab_size is required for {kind} tokenizers")
        return
    if isinstance(vocab_size, bool) or not isinstance(
        vocab_size, (int, np.integer)
    ):
        raise ValueError(
            f"vocab_size must be an integer; got {vocab_size!r}"
        )
    if kind == "byte" and vocab_size != BYTE_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is not possible for a byte tokenizer: "
            f"its vocabulary is always {BYTE_VOCAB_SIZE} (5 special tokens + "
            "256 bytes); pass None or 261"
        )
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must be at least "
            f"{MIN_VOCAB_SIZE} (the {NUM_SPECIAL_TOKENS} special tokens and "
            "at least one more)"
        )


def _collect_texts(texts):
    """Reads the corpus into a list of str.

    Args:
        texts: an iterable of str or UTF-8 bytes.

    Returns:
        The documents as a list of str.
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(
            "texts must be an iterable of document strings, not a single "
            "string (wrap it in a list)"
        )
    try:
        documents = [_as_str(text) for text in texts]
    except TypeError:
        raise ValueError(
            f"texts must be an iterable of strings; got {type(texts).__name__}"
        ) from None
    if not any(text.strip() for text in documents):
        raise ValueError(
            f"empty corpus: none of the {len(documents)} texts contains any "
            "non-whitespace character"
        )
    return documents


def _as_str(text):
    """Returns a document as str; bytes are decoded as UTF-8."""
    if isinstance(text, bytes):
        return text.decode("utf-8")
    if isinstance(text, str):
        return text
    raise ValueError(f"texts must hold strings; got {type(text).__name__}")


def _train_byte(texts, vocab_size, lowercase):
    """The byte tokenizer learns nothing: the corpus is only validated."""
    return ByteTokenizer(lowercase=lowercase)


def _train_char(texts, vocab_size, lowercase):
    """Keeps the most frequent characters (ties: lowest codepoint first)."""
    if lowercase:
        texts = [casefold_utf8(text) for text in texts]
    counts = collections.Counter()
    for text in texts:
        counts.update(text)
    ranked = sorted(counts, key=lambda char: (-counts[char], char))
    most = len(ranked) + NUM_SPECIAL_TOKENS
    if vocab_size is not None and vocab_size > most:
        raise ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: it has "
            f"only {len(ranked)} distinct characters, so at most {most} "
            "tokens with the special tokens"
        )
    if vocab_size is not None:
        ranked = ranked[: vocab_size - NUM_SPECIAL_TOKENS]
    return CharTokenizer(
        vocabulary=list(SPECIAL_TOKENS) + ranked, lowercase=lowercase
    )


def _train_wordpiece(texts, vocab_size, lowercase):
    """Learns a WordPiece vocabulary with keras_hub's trainer."""
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts),
        vocab_size,
        lowercase=lowercase,
        reserved_tokens=list(SPECIAL_TOKENS),
    )
    _check_wordpiece_size(vocabulary, vocab_size, texts, lowercase)
    return WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)


# keras_hub's WordPiece trainer binary-searches a frequency threshold and
# accepts any vocabulary from 95% to 100% of the size asked for.
_WORDPIECE_SLACK = 0.05


def _check_wordpiece_size(vocabulary, vocab_size, texts, lowercase):
    """Raises ValueError when the trained vocabulary is not usable.

    Args:
        vocabulary: the trainer's output.
        vocab_size: the size asked for.
        texts: the corpus, to count its characters for the error message.
        lowercase: whether the corpus was case-folded.
    """
    # The trainer keeps every character c as "c" and "##c"; when those alone
    # exceed vocab_size it truncates the list and words become "<unk>".
    tokens = set(vocabulary)
    chars = [t for t in vocabulary[NUM_SPECIAL_TOKENS:] if len(t) == 1]
    if any("##" + c not in tokens for c in chars):
        n = _count_word_chars(texts, lowercase)
        raise ValueError(
            f"vocab_size={vocab_size} is too small for this corpus: a "
            "wordpiece vocabulary needs the 5 special tokens, each of the "
            f"corpus's {n} characters alone and as a '##' suffix "
            f"({NUM_SPECIAL_TOKENS + 2 * n} tokens), and room for its most "
            "frequent words"
        )
    if len(vocabulary) < vocab_size * (1 - _WORDPIECE_SLACK):
        raise ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: the "
            f"wordpiece trainer found only {len(vocabulary)} tokens"
        )


def _count_word_chars(texts, lowercase):
    """Counts the distinct non-space characters the WordPiece trainer sees."""
    chars = set()
    for text in texts:
        chars.update(casefold_utf8(text) if lowercase else text)
    return sum(1 for c in chars if not c.isspace() and c.isprintable())


def _make_sentencepiece_trainer(model_type):
    """Returns the trainer function of one SentencePiece model type."""

    def train(texts, vocab_size, lowercase):
        if lowercase:
            texts = [casefold_utf8(text) for text in texts]
        proto = _train_sentencepiece_proto(texts, vocab_size, model_type)
        return SentencePieceTokenizer(proto=proto, lowercase=lowercase)

    return train


def _sentencepiece_lines(texts):
    """Splits documents into the non-empty lines SentencePiece trains on.

    Each training "sentence" must be one line (newlines are represented by
    the "\\n" user piece instead) no longer than the trainer's limit.
    """
    for text in texts:
        for line in text.split("\n"):
            for start in range(0, len(line), _SENTENCEPIECE_MAX_CHUNK_CHARS):
                yield line[start : start + _SENTENCEPIECE_MAX_CHUNK_CHARS]


def _sentencepiece_options(lines, vocab_size, model_type):
    """Chooses the SentencePiece trainer options for a corpus.

    Args:
        lines: the training lines.
        vocab_size: the number of pieces to learn.
        model_type: "unigram" or "bpe".

    Returns:
        A dict of keyword arguments for ``SentencePieceTrainer.train``.
    """
    char_counts = collections.Counter()
    for line in lines:
        char_counts.update(line)
    coverage = 1.0 if len(char_counts) <= _SMALL_CHARSET else 0.9995
    reserved = NUM_SPECIAL_TOKENS - 1 + len(_SENTENCEPIECE_USER_SYMBOLS)
    needed = _covered_char_count(char_counts, coverage) + reserved
    return dict(
        model_type=model_type,
        vocab_size=vocab_size,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=SPECIAL_TOKENS[PAD_ID],
        unk_piece=SPECIAL_TOKENS[UNK_ID],
        bos_piece=SPECIAL_TOKENS[BOS_ID],
        eos_piece=SPECIAL_TOKENS[EOS_ID],
        user_defined_symbols=list(_SENTENCEPIECE_USER_SYMBOLS),
        # Byte fallback makes every text round-trip exactly, but its 256
        # pieces only fit a vocabulary that also holds the characters.
        byte_fallback=vocab_size >= max(_BYTE_FALLBACK_MIN_VOCAB, needed + 256),
        character_coverage=coverage,
        # No normalization and no dummy "▁" prefix: decode(encode(text))
        # must give back the text. (tf-text's decoder also drops a leading
        # space after a dummy prefix: " a" came back as "a".)
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        # Runs of spaces (code indentation) may become single pieces.
        allow_whitespace_only_pieces=True,
        split_digits=True,
        # One thread and no sentence sampling: the same corpus always gives
        # the same model.
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )


def _covered_char_count(char_counts, coverage):
    """How many of the most frequent characters cover ``coverage`` of text."""
    total = sum(char_counts.values())
    covered = 0
    for n, (_, count) in enumerate(char_counts.most_common(), start=1):
        covered += count
        if covered >= coverage * total:
            return n
    return len(char_counts)


def _train_sentencepiece_proto(texts, vocab_size, model_type):
    """Trains a SentencePiece model with the zoo's special pieces.

    keras_hub's ``compute_sentence_piece_proto`` wraps this same
    ``SentencePieceTrainer.train(sentence_iterator=..., model_writer=...)``
    call, but it cannot set the pad/unk/bos/eos ids' pieces, user-defined
    symbols or the normalization we need, so we call SentencePiece directly.

    Args:
        texts: the documents.
        vocab_size: the number of pieces.
        model_type: "unigram" or "bpe".

    Returns:
        The serialized model proto (bytes).
    """
    lines = list(_sentencepiece_lines(texts))
    options = _sentencepiece_options(lines, vocab_size, model_type)
    writer = io.BytesIO()
    spm.set_random_generator_seed(0)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=writer, **options
        )
    except RuntimeError as error:
        raise _explain_sentencepiece_error(error, vocab_size, options) from None
    return writer.getvalue()


def _explain_sentencepiece_error(error, vocab_size, options):
    """Rephrases SentencePiece's vocabulary-size errors as ValueErrors.

    Args:
        error: the RuntimeError raised by the trainer.
        vocab_size: the size asked for.
        options: the trainer options used.

    Returns:
        A ValueError for a vocabulary-size problem, else ``error`` itself.
    """
    message = str(error)
    kind = options["model_type"]
    too_high = re.search(r"Vocabulary size too high.*<= (\d+)", message)
    if too_high:
        return ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: the "
            f"{kind} trainer can build at most {too_high.group(1)} tokens"
        )
    too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if too_low:
        fallback = ", 256 byte-fallback pieces" if options["byte_fallback"] else ""
        return ValueError(
            f"vocab_size={vocab_size} is too small for this corpus: the "
            f"{kind} trainer needs at least {too_low.group(1)} tokens (special "
            f"tokens{fallback} and the corpus's characters)"
        )
    return error


_TRAINERS = {
    "byte": _train_byte,
    "char": _train_char,
    "wordpiece": _train_wordpiece,
    "unigram": _make_sentencepiece_trainer("unigram"),
    "bpe": _make_sentencepiece_trainer("bpe"),
}


# ---------------------------------------------------------------------------
# "gpt2": GPT-2's byte-level BPE (imported, never trained here)
# ---------------------------------------------------------------------------

GPT2_VOCAB_FILENAME = "vocabulary.json"
GPT2_MERGES_FILENAME = "merges.txt"
GPT2_END_OF_TEXT = "<|endoftext|>"


def gpt2_zoo_vocabulary(hf_vocabulary, end_of_text=GPT2_END_OF_TEXT):
    """Maps a GPT-2 vocabulary onto the zoo's id layout.

    The zoo's special tokens take ids 0..4; GPT-2's one special token,
    ``<|endoftext|>``, becomes the zoo's ``</s>`` (id 3: GPT-2 ends and
    separates documents with it, which is what the zoo's end token does);
    every other GPT-2 token keeps its order, shifted past the specials (for
    GPT-2's own vocabulary: zoo id = GPT-2 id + 5).

    Args:
        hf_vocabulary: ``{token: GPT-2 id}`` (``vocab.json``).
        end_of_text: GPT-2's end token.

    Returns:
        ``(vocabulary, source_ids)``: the zoo's ``{token: id}``, and for each
        zoo id the GPT-2 id it stands for (-1 for ``<pad>``, ``<unk>``,
        ``<s>``, ``<mask>``, which GPT-2 lacks).
    """
    if end_of_text not in hf_vocabulary:
        raise ValueError(f"the GPT-2 vocabulary has no '{end_of_text}' token")
    vocabulary = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    source_ids = [-1] * NUM_SPECIAL_TOKENS
    source_ids[EOS_ID] = int(hf_vocabulary[end_of_text])
    for token, hf_id in sorted(hf_vocabulary.items(), key=lambda item: item[1]):
        if token == end_of_text:
            continue
        if token in vocabulary:
            raise ValueError(f"the GPT-2 vocabulary holds the zoo's special token '{token}'")
        vocabulary[token] = len(source_ids)
        source_ids.append(int(hf_id))
    return vocabulary, source_ids


@keras.saving.register_keras_serializable(package="kerazoo")
class GPT2Tokenizer(ZooTokenizer, keras_hub.tokenizers.BytePairTokenizer):
    """GPT-2's byte-level BPE (keras_hub's ``BytePairTokenizer``) on the zoo's ids.

    Built by ``kerazoo.interop.hf.gpt2.import_gpt2`` from a checkpoint's
    ``vocab.json`` and ``merges.txt`` (see ``gpt2_zoo_vocabulary`` for the id
    layout: ``<|endoftext|>`` is the zoo's ``</s>``, GPT-2 id ``i`` is zoo id
    ``i + 5``). Text round-trips exactly (byte-level); no string in the text
    is special, as with Hugging Face's GPT-2 tokenizer.

    Args:
        vocabulary: ``{token: zoo id}``, starting with the 5 special tokens.
            None until ``load_assets``.
        merges: the BPE merge rules, ``"a b"`` strings in rank order.
        sequence_length: if set, outputs are dense and padded/truncated.
    """

    kind = "gpt2"

    def __init__(self, vocabulary=None, merges=None, sequence_length=None, **kwargs):
        _require_dtype_int32(kwargs)
        kwargs.pop("add_prefix_space", None)
        kwargs.pop("unsplittable_tokens", None)
        self.lowercase = False
        self._register_special_tokens()
        super().__init__(
            vocabulary=vocabulary, merges=merges, sequence_length=sequence_length,
            add_prefix_space=False, unsplittable_tokens=[], **kwargs,
        )

    def set_vocabulary_and_merges(self, vocabulary, merges):
        """Sets the vocabulary (a dict) and merges (a list); checks the special ids."""
        if isinstance(vocabulary, str) or isinstance(merges, str):
            raise ValueError("vocabulary and merges must be data, not paths (assets are read by load_assets)")
        super().set_vocabulary_and_merges(vocabulary, merges)
        if vocabulary is not None:
            self._check_special_tokens()

    def get_vocabulary(self):
        """The tokens as a list, in id order."""
        self._check_vocabulary()
        return [token for token, _ in sorted(self.vocabulary.items(), key=lambda item: item[1])]

    def _tokenize_batch(self, batch):
        return self._tokenize_tf(batch)

    def _detokenize_batch(self, ids):
        return self._detokenize_tf(ids)

    def save_assets(self, dir_path):
        """Writes ``vocabulary.json`` (token -> zoo id) and ``merges.txt``."""
        with open(os.path.join(dir_path, GPT2_VOCAB_FILENAME), "w", encoding="utf-8") as file:
            json.dump(dict(self.vocabulary), file, ensure_ascii=False)
        with open(os.path.join(dir_path, GPT2_MERGES_FILENAME), "w", encoding="utf-8") as file:
            file.writelines(f"{merge}\n" for merge in self.merges)

    def load_assets(self, dir_path):
        """Reads the files written by ``save_assets``."""
        with open(os.path.join(dir_path, GPT2_VOCAB_FILENAME), encoding="utf-8") as file:
            vocabulary = json.load(file)
        with open(os.path.join(dir_path, GPT2_MERGES_FILENAME), encoding="utf-8") as file:
            merges = [line.rstrip("\n") for line in file if line.strip()]
        self.set_vocabulary_and_merges(vocabulary, merges)

    def get_config(self):
        config = super().get_config()
        for key in ("vocabulary", "merges", "add_prefix_space", "unsplittable_tokens"):
            config.pop(key, None)
        return config


# ---------------------------------------------------------------------------
# Saving and loading a tokenizer on its own.
# ---------------------------------------------------------------------------


def save_tokenizer(tokenizer, path):
    """Saves a tokenizer as a folder: ``config.json`` and ``assets/``.

    The folder is written next to ``path`` under a temporary name and then
    renamed into place, so ``path`` never holds a half-written tokenizer. An
    existing folder at ``path`` is replaced.

    Args:
        tokenizer: a tokenizer from this module.
        path: the folder to write.
    """
    if not isinstance(tokenizer, ZooTokenizer):
        raise ValueError(
            "save_tokenizer() takes a kerazoo tokenizer; got "
            f"{type(tokenizer).__name__}"
        )
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"cannot save a tokenizer to {path}: it is a file")
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
    os.mkdir(staging)
    try:
        _write_tokenizer_folder(tokenizer, staging)
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_tokenizer_folder(tokenizer, folder):
    """Writes the config and the assets of ``tokenizer`` into ``folder``."""
    config = keras.saving.serialize_keras_object(tokenizer)
    with open(os.path.join(folder, CONFIG_FILENAME), "w") as file:
        json.dump(config, file, indent=2)
    assets = os.path.join(folder, ASSETS_DIRNAME)
    os.mkdir(assets)
    tokenizer.save_assets(assets)


def _replace_folder(new, path):
    """Renames folder ``new`` to ``path``, replacing any folder there.

    The old folder is first renamed aside, and restored if the swap fails.
    """
    if not os.path.exists(path):
        os.rename(new, path)
        return
    old = f"{new}.old"
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_tokenizer(path):
    """Loads a tokenizer saved by ``save_tokenizer``.

    Deserialization runs in Keras safe mode.

    Args:
        path: the tokenizer folder.

    Returns:
        The tokenizer layer.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"no tokenizer folder at {path}")
    config = _read_tokenizer_config(path)
    try:
        tokenizer = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a kerazoo tokenizer folder: {error}"
        ) from None
    if not isinstance(tokenizer, ZooTokenizer):
        raise ValueError(
            f"{path} is not a kerazoo tokenizer folder: its config describes "
            f"a {type(tokenizer).__name__}"
        )
    try:
        tokenizer.load_assets(os.path.join(path, ASSETS_DIRNAME))
    except OSError as error:
        raise ValueError(
            f"the tokenizer folder {path} is incomplete: {error}"
        ) from None
    return tokenizer


def _read_tokenizer_config(path):
    """Reads and returns the config dict of a tokenizer folder."""
    config_path = os.path.join(path, CONFIG_FILENAME)
    if not os.path.isfile(config_path):
        raise ValueError(
            f"{path} is not a tokenizer folder: it has no {CONFIG_FILENAME}"
        )
    try:
        with open(config_path) as file:
            config = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"{path} is not a tokenizer folder: {CONFIG_FILENAME} holds no "
            "serialized Keras object"
        )
    return config
