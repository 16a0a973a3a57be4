"""``tf.data`` pipelines over a row store (``kerazoo.data.rows``), row by row, in bounded memory.

Rows are fetched by index with ``os.pread`` (``RowField``), packed the way
the in-memory path packs them, and batched as it does: the same seeded
order (a shuffle of ``range(n)`` draws the same permutation as a shuffle of
``n`` rows in memory, up to ``MAX_SHUFFLE_BUFFER`` rows), the same padding.
Keras feeds the datasets to TensorFlow, JAX and PyTorch alike.
"""

import numpy as np
import tensorflow as tf

from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT
from kerazoo.text import packing
from kerazoo.text.special import BOS_ID, EOS_ID, PAD_ID

# The shuffle buffer holds row indices (about 100 bytes each in tf.data):
# past this many rows it stays this size, so memory does not grow with the
# corpus (the order is then a windowed shuffle, no longer a full permutation).
MAX_SHUFFLE_BUFFER = 1 << 20


# Rows read per call of the classifier's fetch (then unbatched): the order is unchanged.
FETCH_ROWS = 256


def row_indices(n, shuffle=False, seed=0, repeat=False):
    """Row indices ``0 .. n-1``, shuffled (seeded, afresh each pass) and repeated as asked."""
    def passes(_):
        ds = tf.data.Dataset.range(n)
        ds = ds.shuffle(min(n, MAX_SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True) if shuffle else ds
        return ds.repeat() if repeat else ds

    # Built inside flat_map, as windows.lm_dataset does: every iterator replays the same seeded order.
    return tf.data.Dataset.range(1).flat_map(passes)


def rows_within(field, limit, cost):
    """How many first rows of a field fit in ``limit`` tokens (the final evaluation's cap), at least 1.

    Args:
        field: a ``RowField``.
        limit: the most tokens (``train.eval_tokens``; 0: every row).
        cost: row lengths (an int array) -> the tokens each row counts for.

    Returns:
        The number of rows, read from the offsets index in bounded chunks.
    """
    if not limit:
        return len(field)
    seen_tokens, seen_rows = 0, 0
    for lengths in field.lengths():
        total = np.cumsum(cost(lengths)) + seen_tokens
        inside = int(np.searchsorted(total, limit, side="right"))
        if inside < len(lengths):
            return max(1, seen_rows + inside)
        seen_tokens, seen_rows = int(total[-1]), seen_rows + len(lengths)
    return len(field)


def classifier_row(ids, max_length):
    """One classifier row, ``<s> ids </s>`` cut to ``max_length`` (``packing.classifier_ids_tf`` for one row)."""
    return np.concatenate([[BOS_ID], ids[: max_length - 2], [EOS_ID]]).astype(np.int32)


def classifier_matrix(rows, max_length, width=None):
    """Raw id rows -> classifier inputs ``(n, width)`` padded with ``<pad>`` (width: the longest row)."""
    packed = [classifier_row(r, max_length) for r in rows]
    x = np.full((len(packed), width or max((len(p) for p in packed), default=2)), PAD_ID, np.int32)
    for r, row in enumerate(packed):
        x[r, :len(row)] = row
    return x


def classifier_rows(field, store, split, seq_len, shuffle=False, seed=0, repeat=False):
    """Unbatched ``(ids, label)`` rows of a classifier, ids ``<s> ids </s>`` unpadded.

    Args:
        field: the split's "text" ``RowField``.
        store: the ``RowStore`` (labels).
        split: "train" or "val".
        seq_len: tokens per row at most.
        shuffle, seed, repeat: see ``row_indices``.

    Returns:
        A ``tf.data.Dataset`` of ``(int32 [None], int32 [])``.
    """
    def fetch(indices):
        x = classifier_matrix([field.row(int(i)) for i in indices], seq_len, seq_len)
        labels = np.asarray([store.labels(split, int(i), int(i) + 1)[0] for i in indices], np.int32)
        return x, (x != PAD_ID).sum(axis=1).astype(np.int32), labels

    def read(indices):
        x, lengths, labels = tf.numpy_function(fetch, [indices], (tf.int32, tf.int32, tf.int32), stateful=False)
        return tf.ensure_shape(x, [None, seq_len]), tf.ensure_shape(lengths, [None]), tf.ensure_shape(labels, [None])

    # Rows are fetched FETCH_ROWS at a time and unbatched: one Python call per row costs more than the read.
    ds = row_indices(len(field), shuffle, seed, repeat).batch(FETCH_ROWS).map(read).unbatch()
    return ds.map(lambda ids, n, label: (ids[:n], label))


def classifier_batches(field, store, split, seq_len, batch_size, n_rows):
    """Batches of the first ``n_rows`` rows in order, padded to ``seq_len`` (validation during ``fit``)."""
    def fetch(start):
        start = int(start)
        x = classifier_matrix(field.rows(start, start + batch_size), seq_len, seq_len)
        return x, store.labels(split, start, start + batch_size)

    def read(start):
        x, y = tf.numpy_function(fetch, [start], (tf.int32, tf.int32), stateful=False)
        return tf.ensure_shape(x, [batch_size, seq_len]), tf.ensure_shape(y, [batch_size])

    return tf.data.Dataset.range(0, n_rows - n_rows % batch_size, batch_size).map(read)


def pair_widths(source, target, max_source_length, max_length):
    """The padded widths ``teacher_forcing_arrays`` gives a whole split: its longest packed source and target + 1.

    One bounded pass over the offsets index, no row read.
    """
    longest_source = max((int(n.max()) for n in source.lengths() if len(n)), default=0)
    longest_target = max((int(n.max()) for n in target.lengths() if len(n)), default=0)
    return min(longest_source, max_source_length - 1) + 1, min(longest_target, max_length - 1) + 1


def pair_arrays(source_rows, target_rows, max_source_length, max_length, source_width, target_width):
    """Stored pairs (raw ids) -> ``teacher_forcing_arrays``'s padded ``(x, y)`` at fixed widths."""
    sources = [packing.source_ids(s, max_source_length)[0] for s in source_rows]
    targets = [packing.target_ids(t, max_length)[0] for t in target_rows]
    n = len(sources)
    enc = np.full((n, source_width), PAD_ID, np.int32)
    dec = np.full((n, target_width), PAD_ID, np.int32)
    lab = np.full((n, target_width), PAD_ID, np.int32)
    for row, (s, t) in enumerate(zip(sources, targets)):
        enc[row, : len(s)] = s
        dec[row, : len(t) + 1] = packing.decoder_ids(t)
        lab[row, : len(t) + 1] = packing.decoder_labels(t)
    return enc, dec, lab


def pair_dataset(source, target, max_source_length, max_length, batch_size, shuffle=True, seed=0, repeat=False,
                 n_rows=None):
    """Teacher-forcing batches of stored pairs (``pairs.seq2seq_dataset`` over a row store).

    Every batch is padded to the same widths: the longest packed source and
    target of the split, found in one bounded pass over its offsets index.

    Args:
        source, target: the split's "source" and "target" ``RowField``.
        max_source_length, max_length: the model's cuts (``packing.source_ids`` / ``target_ids``).
        batch_size: pairs per batch (a last partial batch is dropped).
        shuffle, seed, repeat: see ``row_indices``.
        n_rows: use only the first ``n_rows`` pairs.

    Returns:
        A ``tf.data.Dataset`` of ``({encoder_token_ids, decoder_token_ids}, labels)``.
    """
    n = len(source) if n_rows is None else min(n_rows, len(source))
    if n < batch_size:
        raise ValueError(f"too few pairs: {n} do not fill one batch of {batch_size}")
    source_width, target_width = pair_widths(source, target, max_source_length, max_length)

    def fetch(rows):
        src = [source.row(int(i)) for i in rows]
        tgt = [target.row(int(i)) for i in rows]
        return pair_arrays(src, tgt, max_source_length, max_length, source_width, target_width)

    def read(rows):
        enc, dec, lab = tf.numpy_function(fetch, [rows], (tf.int32, tf.int32, tf.int32), stateful=False)
        return ({ENCODER_INPUT: tf.ensure_shape(enc, [batch_size, source_width]),
                 DECODER_INPUT: tf.ensure_shape(dec, [batch_size, target_width])},
                tf.ensure_shape(lab, [batch_size, target_width]))

    ds = row_indices(n, shuffle, seed, repeat).batch(batch_size, drop_remainder=True)
    return ds.map(read).prefetch(tf.data.AUTOTUNE)
