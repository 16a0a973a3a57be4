"""Token windows: documents tokenized once into one id stream, cut into examples.

The flow, top to bottom:

    tokenize_documents(tok, docs)  -> one int32 id stream, tokenized once
    lm_dataset(ids, seq_len, ...)  -> tf.data of (x, y) windows, y = x shifted by one
    lm_random_dataset(ids, ...)    -> the same, windows at random offsets
    mlm_windows(ids, seq_len)      -> windows for masked-LM training
"""

import numpy as np
import tensorflow as tf

from kerazoo.text import packing


def as_id_lists(tokenized):
    """Turns a tokenizer's batch output into lists of Python ints.

    Args:
        tokenized: a ``tf.RaggedTensor``, a dense tensor or a list of rows.

    Returns:
        A list of lists of ints, one per row.
    """
    if hasattr(tokenized, "to_list"):
        return tokenized.to_list()
    if hasattr(tokenized, "numpy"):
        return tokenized.numpy().tolist()
    return [list(np.asarray(row).tolist()) for row in tokenized]


def tokenize_documents(tokenizer, docs, batch_size=256):
    """Tokenizes documents once into a single id stream.

    Every document is preceded by the end-of-sequence id, which marks document
    boundaries and gives generation a start context even for an empty prompt
    (``kerazoo.text.packing.document_stream``).

    Args:
        tokenizer: a kerazoo tokenizer layer.
        docs: list of document strings.
        batch_size: documents tokenized per call.

    Returns:
        A 1-D int32 numpy array.
    """
    pieces = []
    for start in range(0, len(docs), batch_size):
        batch = tf.constant(docs[start:start + batch_size])
        pieces.append(packing.document_stream(as_id_lists(tokenizer.tokenize(batch))))
    return np.concatenate(pieces) if pieces else np.zeros((0,), np.int32)


def lm_windows(ids, seq_len):
    """Packs an id stream into non-overlapping next-token windows.

    Args:
        ids: 1-D int array.
        seq_len: window length.

    Returns:
        ``(x, y)`` int32 arrays of shape ``(n, seq_len)`` with
        ``y[i, t] == x[i, t + 1]`` in the stream; the tail that does not fill a
        window is dropped.
    """
    n = (len(ids) - 1) // seq_len
    x = np.asarray(ids[: n * seq_len], np.int32).reshape(n, seq_len)
    y = np.asarray(ids[1: n * seq_len + 1], np.int32).reshape(n, seq_len)
    return x, y


def lm_dataset(ids, seq_len, batch_size, shuffle=True, seed=0, repeat=False):
    """A causal-LM ``tf.data`` pipeline over ids tokenized once.

    Args:
        ids: 1-D int array from ``tokenize_documents`` (never re-tokenized).
        seq_len: tokens per example.
        batch_size: examples per batch; the last partial batch is dropped.
        shuffle: reshuffle windows every epoch, seeded.
        seed: shuffle seed.
        repeat: repeat forever (for step-based training).

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` int32 batches ``(batch, seq_len)``.

    Raises:
        ValueError: when the ids do not fill a single batch.
    """
    x, y = lm_windows(ids, seq_len)
    if len(x) < batch_size:
        raise ValueError(
            f"too little text: {len(ids)} tokens make {len(x)} windows of seq_len={seq_len}, "
            f"fewer than batch_size={batch_size}"
        )
    windows = tf.data.Dataset.from_tensor_slices((x, y))

    def stream(_):
        ds = windows.shuffle(len(x), seed=seed, reshuffle_each_iteration=True) if shuffle else windows
        return ds.repeat() if repeat else ds

    # Built inside flat_map, the shuffle's seed state is fresh for every
    # iterator, so each one replays the same seeded order (reshuffled every
    # epoch). Keras' fit under a tf.distribute strategy peeks a batch with one
    # iterator and trains with a second; with one shared state that second
    # iterator would see another order than a one-device run.
    ds = tf.data.Dataset.range(1).flat_map(stream)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# How a causal-LM recipe cuts training windows from the token stream.
WINDOW_MODES = ("packed", "random")


def lm_random_dataset(ids, seq_len, batch_size, seed=0):
    """Training windows that start at uniformly random offsets (nanoGPT's ``get_batch``).

    Packed windows (``lm_dataset``) cut a small corpus into a fixed set of
    examples: tinyshakespeare at 256 tokens is 3,921 windows, so nanoGPT's
    5,000 x 64 budget would replay each one 82 times at the same phase and
    the model memorises them. Drawing every window's start afresh shows the
    model every phase of the text, as nanoGPT does.

    Args:
        ids: 1-D int array from ``tokenize_documents``.
        seq_len: tokens per example.
        batch_size: examples per batch.
        seed: seed of the offsets; every iterator replays the same stream, so
            a resumed run can skip the batches it already trained on.

    Returns:
        An endless ``tf.data.Dataset`` of ``(x, y)`` int32 batches
        ``(batch, seq_len)`` with ``y[:, t] == x[:, t + 1]`` in the stream.

    Raises:
        ValueError: when the ids are too short for one window.
    """
    starts = len(ids) - seq_len  # a window needs seq_len + 1 ids from its start
    if starts < 1:
        raise ValueError(f"too little text: {len(ids)} tokens, a window of seq_len={seq_len} needs {seq_len + 1}")
    stream = tf.constant(np.asarray(ids, np.int32))
    span = tf.range(seq_len + 1, dtype=tf.int64)

    def cut(draws):
        first = tf.math.floormod(draws, starts)  # int64 draws: the modulo bias is nil
        window = tf.gather(stream, first[:, None] + span[None, :])
        return window[:, :-1], window[:, 1:]

    ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=False)
    return ds.batch(batch_size, drop_remainder=True).map(cut).prefetch(tf.data.AUTOTUNE)


def mlm_windows(ids, seq_len):
    """Packs an id stream into non-overlapping windows for masked-LM training.

    Args:
        ids: 1-D int array from ``tokenize_documents``.
        seq_len: window length.

    Returns:
        An int32 array ``(n, seq_len)``; the tail that does not fill a window is
        dropped.
    """
    n = len(ids) // seq_len
    return np.asarray(ids[: n * seq_len], np.int32).reshape(n, seq_len)


