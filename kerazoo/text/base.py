"""The shared behaviour of the zoo's tokenizer layers: ``ZooTokenizer``.

Every model in the zoo tokenizes with one of five kinds of tokenizer, all of
which agree on the special tokens and their ids:

    id 0 "<pad>", 1 "<unk>", 2 "<s>", 3 "</s>", 4 "<mask>"

The tokenizers are Keras layers following the keras_hub pattern:
``get_config()`` holds no vocabulary; the vocabulary travels as an asset
through ``save_assets(dir)`` / ``load_assets(dir)``. A model that holds a
tokenizer as an attribute therefore saves it inside its ``.keras`` file.

All of them run on TensorFlow ops on every Keras backend (tf-text has no
JAX/torch counterpart), so they also work inside ``tf.data.Dataset.map``:
``tokenize`` returns ``tf.Tensor``/``tf.RaggedTensor`` of int32 and
``detokenize`` returns string tensors.

This module holds the mixin every kind inherits and the small checks their
constructors share; each kind lives in its own module (``byte``, ``char``,
``wordpiece``, ``sentencepiece``).
"""

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.src.utils.tensor_utils import convert_to_numpy
from keras_hub.src.utils.tensor_utils import no_convert_scope

from kerazoo.text.special import BOS_ID, EOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID

# The attribute names keras_hub's own preprocessors read (``start_token_id``,
# ``end_token_id``, ...), so that our tokenizers plug into them.
_KERAS_HUB_SPECIAL_ATTRS = (
    "pad_token",
    "unk_token",
    "start_token",
    "end_token",
    "mask_token",
)


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


def require_dtype_int32(kwargs):
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


def require_fixed_options(kwargs, **fixed):
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


