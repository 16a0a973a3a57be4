"""Packing conventions: where the special ids go around a text's token ids.

Written once here and used by the training data, inference and the exported
serving graph, so that a model reads at inference exactly what it read in
training:

- a document (causal LMs): ``</s> ids``. The end-of-sequence id opens every
  document: in the training stream it marks the boundary with the document
  before, and it gives generation and scoring a start context even for an
  empty prompt.
- a seq2seq pair: the encoder reads ``source </s>``; the decoder reads
  ``<s> target`` and learns to predict ``target </s>``.
- a classifier row: ``<s> ids </s>``, padded with ``<pad>``.

Each convention has a list/NumPy form (ids as any sequence of ints: a list, a
NumPy array, an eager tensor) and, where the TF graph of an export needs it,
a ``*_tf`` form on TensorFlow (ragged) tensors that also runs inside a
``tf.function`` or ``tf.data`` map.

Example:
    >>> document_ids([10, 11]).tolist()
    [3, 10, 11]
    >>> source_ids([10, 11, 12], max_length=3)
    ([10, 11, 3], True)
"""

import numpy as np
import tensorflow as tf

from kerazoo.text.special import BOS_ID, EOS_ID, PAD_ID

# The id in front of every document: the end-of-sequence id.
DOCUMENT_START_ID = EOS_ID
# The id behind every seq2seq source.
SOURCE_END_ID = EOS_ID
# The decoder's first input, before any target token.
DECODER_START_ID = BOS_ID


# ---------------------------------------------------------------------------
# Documents (causal LMs): </s> ids
# ---------------------------------------------------------------------------


def document_ids(ids, max_length=None):
    """One document as a model reads it: ``</s>`` then its ids.

    Args:
        ids: the text's token ids (1-D).
        max_length: if set, the most ids returned, ``</s>`` included: the text
            keeps its first ``max_length - 1`` ids.

    Returns:
        A 1-D int32 NumPy array.
    """
    ids = np.asarray(ids, np.int32).reshape(-1)
    if max_length is not None:
        ids = ids[: max_length - 1]
    return np.concatenate([[DOCUMENT_START_ID], ids]).astype(np.int32)


def document_rows(rows):
    """Documents as lists of Python ints, each opened by ``</s>``.

    Args:
        rows: the texts' token ids, one sequence per text.

    Returns:
        A list of lists of ints.
    """
    return [[DOCUMENT_START_ID] + [int(i) for i in row] for row in rows]


def document_stream(rows):
    """Documents concatenated into one id stream, each opened by ``</s>``.

    Args:
        rows: the texts' token ids, one sequence per text.

    Returns:
        A 1-D int32 NumPy array (empty when there are no rows).
    """
    pieces = [document_ids(row) for row in rows]
    return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)


def document_ids_tf(ids):
    """``document_ids`` for a batch of TensorFlow ids (graph-friendly).

    Args:
        ids: int ``tf.RaggedTensor`` or dense ``tf.Tensor`` ``(batch, None)``.

    Returns:
        An int32 ``tf.RaggedTensor`` ``(batch, None)``, every row opened by
        ``</s>``.
    """
    ids = _ragged_int32(ids)
    start = tf.fill(tf.stack([ids.nrows(out_type=tf.int32), 1]), tf.constant(DOCUMENT_START_ID, tf.int32))
    return tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)


# ---------------------------------------------------------------------------
# Seq2seq pairs: source </s>; <s> target -> target </s>
# ---------------------------------------------------------------------------


def source_ids(ids, max_length):
    """An encoder input: the source's ids, cut to fit, then ``</s>``.

    Args:
        ids: the source's token ids (1-D).
        max_length: the encoder's longest input, ``</s>`` included.

    Returns:
        ``(ids, cut)``: a list of ints of at most ``max_length`` ids, and
        whether source ids were dropped to fit.
    """
    keep = max_length - 1
    return [int(i) for i in ids[:keep]] + [SOURCE_END_ID], len(ids) > keep


def source_ids_tf(ids, max_length):
    """``source_ids`` for a batch of TensorFlow ids (graph-friendly).

    Args:
        ids: int ``tf.RaggedTensor`` or dense ``tf.Tensor`` ``(batch, None)``.
        max_length: the encoder's longest input, ``</s>`` included.

    Returns:
        An int32 ``tf.RaggedTensor`` ``(batch, None)``: each row's first
        ``max_length - 1`` ids, then ``</s>``.
    """
    ids = _ragged_int32(ids)[:, : max_length - 1]
    end = tf.fill(tf.stack([ids.nrows(out_type=tf.int32), 1]), tf.constant(SOURCE_END_ID, tf.int32))
    return tf.concat([ids, tf.RaggedTensor.from_tensor(end)], axis=1)


def target_ids(ids, max_length):
    """A target's ids cut to leave room for ``<s>`` in front (``decoder_ids``)
    or ``</s>`` behind (``decoder_labels``).

    Args:
        ids: the target's token ids (1-D).
        max_length: the decoder's longest input.

    Returns:
        ``(ids, cut)``: a list of at most ``max_length - 1`` ints, and whether
        target ids were dropped to fit.
    """
    keep = max_length - 1
    return [int(i) for i in ids[:keep]], len(ids) > keep


def decoder_ids(target):
    """The decoder's input under teacher forcing: ``<s> target``.

    Args:
        target: the target's ids (from ``target_ids``); empty for the start
            of decoding.

    Returns:
        A list of ints, one longer than ``target``.
    """
    return [DECODER_START_ID] + [int(i) for i in target]


def decoder_labels(target):
    """What the decoder learns to predict: ``target </s>``.

    Args:
        target: the target's ids (from ``target_ids``).

    Returns:
        A list of ints, one longer than ``target``.
    """
    return [int(i) for i in target] + [EOS_ID]


# ---------------------------------------------------------------------------
# Classifier rows: <s> ids </s> <pad>...
# ---------------------------------------------------------------------------


def classifier_ids_tf(ids, max_length, pad_to=None):
    """Classifier inputs: ``<s> ids </s>`` per row, padded with ``<pad>``.

    Args:
        ids: int ``tf.RaggedTensor`` or dense ``tf.Tensor`` ``(batch, None)``
            of the texts' token ids.
        max_length: ids per row, ``<s>`` and ``</s>`` included; longer texts
            keep their first ``max_length - 2`` ids.
        pad_to: pad every row to this length; None pads to the longest row.

    Returns:
        A dense int32 ``tf.Tensor`` ``(batch, length)``.
    """
    ids = _ragged_int32(ids)[:, : max_length - 2]
    column = tf.stack([ids.nrows(out_type=tf.int32), 1])
    start = tf.fill(column, tf.constant(BOS_ID, tf.int32))
    end = tf.fill(column, tf.constant(EOS_ID, tf.int32))
    ids = tf.concat([start, ids, end], axis=1)
    shape = None if pad_to is None else [None, pad_to]
    return ids.to_tensor(PAD_ID, shape=shape)


def _ragged_int32(ids):
    """Token ids as an int32 ``tf.RaggedTensor`` (a dense batch becomes ragged)."""
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
    return tf.cast(ids, tf.int32)
