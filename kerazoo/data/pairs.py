"""Source/target pairs for sequence-to-sequence training.

The flow, top to bottom:

    read_pairs(source, source_column, target_column)  -> list of (source, target) strings
    split_pairs(pairs, val_fraction, seed)             -> train pairs, held-out pairs
    tokenize_pairs(tokenizer, pairs, ...)              -> id lists, tokenized once
    seq2seq_dataset(sources, targets, ...)             -> tf.data of teacher-forcing batches

That is the in-memory path (``sft`` and small tools use it). The seq2seq
task streams instead: ``pair_rows`` -> a row store (``kerazoo.data.rows``:
split by a seeded hash per row, tokenized once) -> ``row_datasets.pair_dataset``.

Teacher forcing: the encoder reads ``source </s>``, the decoder reads
``<s> target`` and learns to predict ``target </s>``; batches are padded with
id 0, which the loss ignores (``SparseCategoricalCrossentropy(ignore_class=0)``).
"""

import csv
import io
import json
import re

import numpy as np
import tensorflow as tf

from kerazoo.data import docstrings, readers, windows
from kerazoo.data import sources as sources_lib
from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT
from kerazoo.text import packing
from kerazoo.text.special import PAD_ID

# The built-in pair corpus: word windows of CPython's documentation and the
# same words in reverse order (see ``_pydocs_reverse``).
# builtin:docstrings: the standard library's docstrings, body -> summary line (``docstrings``).
BUILTIN_PAIRS = ("pydocs-reverse", "docstrings")
_REVERSE_PAIRS = 4000
_REVERSE_WORDS = (3, 6)
_REVERSE_VOCABULARY = 200


def _pydocs_reverse(seed=0):
    """A tiny offline seq2seq task: reverse the word order of a phrase.

    The text of CPython's own documentation (``builtin:pydocs``) is
    lowercased and cut into words (letters only); only its 200 most frequent
    words are kept, in text order, and cut into phrases of 3 to 6 words. Each
    target is the same words in reverse order. The model has to read the
    whole source and attend back to it word by word, which is what
    cross-attention is for, and a correct answer is unambiguous, so BLEU
    near 100 is reachable.
    """
    words = [w for doc in readers.read_corpus("builtin:pydocs") for w in re.findall(r"[a-z]+", doc.lower())]
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    frequent = set(sorted(counts, key=lambda w: (-counts[w], w))[:_REVERSE_VOCABULARY])
    words = [w for w in words if w in frequent]
    rng = np.random.default_rng(seed)
    pairs, at = [], 0
    while len(pairs) < _REVERSE_PAIRS and at < len(words):
        n = int(rng.integers(_REVERSE_WORDS[0], _REVERSE_WORDS[1] + 1))
        phrase = words[at:at + n]
        at += n
        pairs.append((" ".join(phrase), " ".join(reversed(phrase))))
    return pairs


def _read_headerless_table(path, columns):
    """Columns of a CSV / TSV file without a header, named by 1-based position ("1", "2", ...)."""
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(readers.read_text_file(path)), delimiter=delimiter, quoting=quoting)
    rows, width = [], None
    for lineno, row in enumerate(reader, start=1):
        if not row:
            continue
        width = width or len(row)
        if len(row) != width:
            raise ValueError(f"{path}:{lineno}: row has {len(row)} fields, the first row has {width}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} is empty: it holds no rows")
    index = []
    for column in columns:
        if not column.isdigit() or not 1 <= int(column) <= width:
            raise ValueError(
                f"{path}: column '{column}' not found; with data.header = false, columns are "
                f"named by position: {', '.join(str(i) for i in range(1, width + 1))}"
            )
        index.append(int(column) - 1)
    return [tuple(row[i] for i in index) for row in rows]


def read_pairs(source, source_column="source", target_column="target", header=True):
    """Reads (source, target) text pairs.

    Args:
        source: a ``.tsv`` / ``.csv`` file, a ``.jsonl`` file, or
            ``builtin:pydocs-reverse`` (see ``_pydocs_reverse``).
        source_column: the column (or JSON field) of the source text.
        target_column: the column (or JSON field) of the target text.
        header: whether a CSV / TSV file starts with a header row naming its
            columns; without one, columns are named "1", "2", ... by position.

    Returns:
        A list of ``(source, target)`` string pairs, in file order; pairs
        with an empty side are dropped.

    Raises:
        ValueError: missing file or column, malformed row, or no pairs left.
    """
    if source.startswith(readers.BUILTIN_PREFIX):
        name = source[len(readers.BUILTIN_PREFIX):]
        if name not in BUILTIN_PAIRS:
            raise ValueError(f"unknown built-in pair corpus '{source}'; available: "
                             + ", ".join(readers.BUILTIN_PREFIX + n for n in BUILTIN_PAIRS))
        pairs = _pydocs_reverse() if name == "pydocs-reverse" else docstrings.docstring_pairs()
    else:
        paths = readers.expand_source(source)
        pairs = []
        for path in paths:
            lower = path.lower()
            if lower.endswith((".jsonl", ".ndjson")):
                pairs += readers.read_jsonl(path, [source_column, target_column])
            elif lower.endswith((".csv", ".tsv")):
                columns = [source_column, target_column]
                pairs += readers.read_table(path, columns) if header else _read_headerless_table(path, columns)
            else:
                raise ValueError(f"{path}: pairs come from .tsv, .csv or .jsonl files, not '{path.rsplit('.', 1)[-1]}'")
    pairs = [(s.strip(), t.strip()) for s, t in pairs]
    pairs = [(s, t) for s, t in pairs if s and t]
    if not pairs:
        raise ValueError(f"{source} holds no (source, target) pairs with text on both sides")
    return pairs


def pair_rows(source, source_column="source", target_column="target", header=True):
    """Streams (source, target) pairs, one row at a time (``read_pairs`` without the list).

    Args:
        source: ``.tsv`` / ``.csv`` / ``.jsonl`` files (a file, folder or glob,
            each possibly compressed), or a built-in pair corpus (small,
            generated in memory).
        source_column, target_column, header: as ``read_pairs``.

    Yields:
        ``(source, target)`` stripped strings; rows with an empty side are skipped.

    Raises:
        ValueError: a missing file or column, another format or a malformed row, naming the file.
    """
    if source.startswith(readers.BUILTIN_PREFIX):
        rows = iter(read_pairs(source))
    else:
        rows = _file_pair_rows(readers.expand_source(source), [source_column, target_column], header)
    for s, t in rows:
        s, t = s.strip(), t.strip()
        if s and t:
            yield s, t


def _file_pair_rows(paths, columns, header):
    for path in paths:
        if sources_lib.base_suffix(path) not in (".jsonl", ".ndjson", ".csv", ".tsv"):
            raise ValueError(f"{path}: pairs come from .tsv, .csv or .jsonl files, not '{path.rsplit('.', 1)[-1]}'")
        yield from sources_lib.file_rows(path, columns, header)


def split_pairs(pairs, val_fraction=0.1, seed=0):
    """Holds out a seeded random ``val_fraction`` of the pairs.

    Returns:
        ``(train_pairs, val_pairs)``, both non-empty.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(pairs) < 2:
        raise ValueError(f"{len(pairs)} pair(s) cannot be split into train and validation")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_val = min(len(pairs) - 1, max(1, int(round(len(pairs) * val_fraction))))
    held = set(order[:n_val].tolist())
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def tokenize_pairs(tokenizer, pairs, max_source_length, max_length, batch_size=256):
    """Tokenizes pairs once, into encoder inputs and decoder targets.

    Sources become ``ids </s>`` cut to ``max_source_length``; targets become
    ``ids`` cut to ``max_length - 1`` (room for ``<s>`` in front and
    ``</s>`` behind).

    Returns:
        ``(sources, targets, truncated)``: two lists of id lists, and how
        many pairs had a side cut.
    """
    sources, targets, truncated = [], [], 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        src = windows.as_id_lists(tokenizer.tokenize(tf.constant([s for s, _ in chunk])))
        tgt = windows.as_id_lists(tokenizer.tokenize(tf.constant([t for _, t in chunk])))
        for s, t in zip(src, tgt):
            source, source_cut = packing.source_ids(s, max_source_length)
            target, target_cut = packing.target_ids(t, max_length)
            truncated += source_cut or target_cut
            sources.append(source)
            targets.append(target)
    return sources, targets, truncated


def teacher_forcing_arrays(sources, targets, source_width=None, target_width=None):
    """Pads tokenized pairs into the model's inputs and labels.

    Args:
        sources: id lists from ``tokenize_pairs`` (ending with ``</s>``).
        targets: id lists from ``tokenize_pairs``.
        source_width: padded source length (default: the longest).
        target_width: padded decoder length (default: the longest target + 1).

    Returns:
        ``(x, y)``: ``x`` a dict of int32 ``encoder_token_ids (n, source_width)``
        and ``decoder_token_ids (n, target_width)`` (``<s> target``), ``y``
        int32 ``(n, target_width)`` (``target </s>``), padded with 0.
    """
    source_width = source_width or max(len(s) for s in sources)
    target_width = target_width or max(len(t) for t in targets) + 1
    enc = np.full((len(sources), source_width), PAD_ID, np.int32)
    dec = np.full((len(sources), target_width), PAD_ID, np.int32)
    lab = np.full((len(sources), target_width), PAD_ID, np.int32)
    for row, (s, t) in enumerate(zip(sources, targets)):
        enc[row, : len(s)] = s
        dec[row, : len(t) + 1] = packing.decoder_ids(t)
        lab[row, : len(t) + 1] = packing.decoder_labels(t)
    return {ENCODER_INPUT: enc, DECODER_INPUT: dec}, lab


def seq2seq_dataset(sources, targets, batch_size, shuffle=True, seed=0, repeat=False, drop_remainder=True):
    """A teacher-forcing ``tf.data`` pipeline over pairs tokenized once.

    Every batch is padded to the same widths (the longest source and target
    of the whole set), so a compiled train step is traced once.

    Args:
        sources, targets: id lists from ``tokenize_pairs``.
        batch_size: pairs per batch.
        shuffle: reshuffle every epoch, seeded.
        seed: shuffle seed.
        repeat: repeat forever (for step-based training).
        drop_remainder: drop a last partial batch.

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` batches (see ``teacher_forcing_arrays``).

    Raises:
        ValueError: fewer pairs than one batch when dropping the remainder.
    """
    if drop_remainder and len(sources) < batch_size:
        raise ValueError(f"too few pairs: {len(sources)} do not fill one batch of {batch_size}")
    x, y = teacher_forcing_arrays(sources, targets)
    pairs = tf.data.Dataset.from_tensor_slices((x, y))

    def stream(_):
        ds = pairs.shuffle(len(sources), seed=seed, reshuffle_each_iteration=True) if shuffle else pairs
        return ds.repeat() if repeat else ds

    # flat_map: a fresh seeded order per iterator (see data.lm_dataset).
    ds = tf.data.Dataset.range(1).flat_map(stream)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
