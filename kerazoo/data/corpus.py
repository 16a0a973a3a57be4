"""Corpora, deterministic splits and the tf.data pipeline for causal LMs.

The flow, top to bottom:

    read_corpus(source)            -> list of documents (str)
    split_corpus(docs, ...)        -> train documents, validation documents
    tokenize_documents(tok, docs)  -> one int32 id stream, tokenized once
    lm_dataset(ids, seq_len, ...)  -> tf.data of (x, y) windows, y = x shifted by one
"""

import csv
import glob
import io
import json
import os

import numpy as np
import tensorflow as tf

BUILTIN_PREFIX = "builtin:"
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
MAX_CORPUS_BYTES = 1 << 30
# How much of a file we sniff for NUL bytes before calling it binary.
_SNIFF_BYTES = 8192


def _builtin_pydocs():
    """CPython's own documentation topics, shipped offline in ``pydoc_data``."""
    from pydoc_data import topics

    return [topics.topics[key] for key in sorted(topics.topics)]


BUILTIN_CORPORA = {"pydocs": _builtin_pydocs}


def _max_corpus_bytes():
    """The largest corpus file read (``KERAZOO_MAX_CORPUS_BYTES``, default 1 GiB).

    A corpus is read, decoded and tokenized in memory, several times its size;
    a file past the limit stops with a clear error instead of exhausting RAM.
    """
    return int(os.environ.get("KERAZOO_MAX_CORPUS_BYTES", MAX_CORPUS_BYTES))


def read_text_file(path):
    """Reads a UTF-8 text file, refusing binary, undecodable or huge content.

    Args:
        path: the file.

    Returns:
        Its text.
    """
    size, limit = os.path.getsize(path), _max_corpus_bytes()
    if size > limit:
        raise ValueError(f"corpus file {path} is too large ({size:,} bytes; the limit is {limit:,}, "
                         "set KERAZOO_MAX_CORPUS_BYTES to raise it)")
    with open(path, "rb") as f:
        raw = f.read()
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise ValueError(f"corpus file {path} looks binary (it contains NUL bytes), not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"corpus file {path} is not valid UTF-8 (bad byte at offset {e.start})") from None


def _read_jsonl(path, column):
    """One document per JSON line, taken from ``column``."""
    docs = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        if column not in record:
            raise ValueError(
                f"{path}:{lineno}: column '{column}' not found; columns: {', '.join(map(str, record)) or 'none'}"
            )
        docs.append(str(record[column]))
    return docs


def read_table(path, columns):
    """Reads named columns of a CSV / TSV file with a header row.

    Args:
        path: a ``.csv`` or ``.tsv`` file (tab-separated when ``.tsv``).
        columns: the column names to return.

    Returns:
        A list of rows, each a tuple of the requested columns' strings.

    Raises:
        ValueError: missing column, ragged row, or an unreadable file.
    """
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    text = read_text_file(path)
    # QUOTE_NONE for TSV: corpora such as SST-2 use bare quote characters.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    if not header:
        raise ValueError(f"{path} is empty: expected a header row naming the columns")
    for column in columns:
        if column not in header:
            raise ValueError(f"{path}: column '{column}' not found; columns: {', '.join(header)}")
    index = [header.index(c) for c in columns]
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{lineno}: row has {len(row)} fields, the header has {len(header)}")
        rows.append(tuple(row[i] for i in index))
    return rows


def _read_file(path, column):
    """Documents of one file, by its extension."""
    lower = path.lower()
    if lower.endswith((".jsonl", ".ndjson")):
        return _read_jsonl(path, column)
    if lower.endswith((".csv", ".tsv")):
        return [row[0] for row in read_table(path, [column])]
    return [read_text_file(path)]


def expand_source(source):
    """The files a source names: a file, a folder (recursively) or a glob.

    Args:
        source: a file, folder or glob pattern.

    Returns:
        The file paths.
    """
    if os.path.isdir(source):
        found = []
        for root, _, names in os.walk(source):
            found += [os.path.join(root, n) for n in names if n.lower().endswith(TEXT_SUFFIXES + (".jsonl", ".csv", ".tsv"))]
        if not found:
            raise ValueError(f"corpus folder {source} holds no text files ({', '.join(TEXT_SUFFIXES)}, .jsonl, .csv, .tsv)")
        return sorted(found)
    if any(ch in source for ch in "*?["):
        found = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not found:
            raise ValueError(f"corpus glob '{source}' matches no files")
        return found
    if not os.path.exists(source):
        raise ValueError(f"corpus file {source} does not exist")
    return [source]


def read_corpus(source, column="text"):
    """Reads a corpus into a list of documents.

    Args:
        source: ``builtin:pydocs``, a text file, a folder of text files, a glob
            (``data/*.txt``), a JSONL file, or a CSV/TSV file with a header.
        column: the field holding the text in JSONL / CSV / TSV sources.

    Returns:
        A list of non-empty document strings, in a deterministic order.

    Raises:
        ValueError: a missing, empty, binary or non-UTF-8 source, a missing
            column or a malformed row, naming the file and the problem.
    """
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_CORPORA:
            raise ValueError(f"unknown built-in corpus '{source}'; available: "
                             + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_CORPORA))
        docs = BUILTIN_CORPORA[name]()
    else:
        docs = []
        for path in expand_source(source):
            docs += _read_file(path, column)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ValueError(f"corpus {source} is empty: it holds no text")
    return docs


def _split_tail(docs, val_fraction):
    """Keeps order; the last ``val_fraction`` of the characters validates."""
    total = sum(len(d) for d in docs)
    cut = int(round(total * (1.0 - val_fraction)))
    train, val, seen = [], [], 0
    for doc in docs:
        if seen + len(doc) <= cut:
            train.append(doc)
        elif seen >= cut:
            val.append(doc)
        else:
            train.append(doc[: cut - seen])
            val.append(doc[cut - seen:])
        seen += len(doc)
    return train, val


def _split_shuffle(docs, val_fraction, seed):
    """Whole documents, shuffled by ``seed``, go to one side or the other."""
    order = np.random.default_rng(seed).permutation(len(docs))
    n_val = max(1, int(round(len(docs) * val_fraction)))
    val_idx = set(order[:n_val].tolist())
    train = [d for i, d in enumerate(docs) if i not in val_idx]
    val = [d for i, d in enumerate(docs) if i in val_idx]
    return train, val


SPLIT_MODES = ("auto", "shuffle", "tail")
# Below this many documents a shuffled split is too coarse; cut the text instead.
_MIN_DOCS_TO_SHUFFLE = 20


def split_corpus(docs, val_fraction=0.1, seed=0, mode="auto"):
    """Splits documents into train and validation, deterministically.

    Args:
        docs: list of document strings.
        val_fraction: share held out for validation, in (0, 1).
        seed: seed of the shuffled split.
        mode: ``"shuffle"`` holds out whole documents chosen by ``seed``;
            ``"tail"`` keeps the order and holds out the last ``val_fraction``
            of the characters (nanoGPT's split); ``"auto"`` shuffles when
            there are at least 20 documents and cuts the tail otherwise.

    Returns:
        ``(train_docs, val_docs)``, both non-empty.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode '{mode}'; valid: {', '.join(SPLIT_MODES)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if mode == "auto":
        mode = "shuffle" if len(docs) >= _MIN_DOCS_TO_SHUFFLE else "tail"
    if mode == "shuffle" and len(docs) < 2:
        raise ValueError(
            f"data.split = \"shuffle\" needs at least 2 documents, the corpus has {len(docs)}; "
            "use data.split = \"auto\" or \"tail\""
        )
    train, val = _split_shuffle(docs, val_fraction, seed) if mode == "shuffle" else _split_tail(docs, val_fraction)
    train, val = [d for d in train if d], [d for d in val if d]
    if not train or not val:
        raise ValueError("the corpus is too small to split into train and validation")
    return train, val


def as_id_lists(tokenized):
    """Turns a tokenizer's batch output (ragged tensor or lists) into lists.

    Args:
        tokenized: a ``tf.RaggedTensor``, dense tensor or nested lists of ids.

    Returns:
        A list of lists of ints.
    """
    if hasattr(tokenized, "to_list"):
        return tokenized.to_list()
    if hasattr(tokenized, "numpy"):
        return tokenized.numpy().tolist()
    return [list(np.asarray(row).tolist()) for row in tokenized]


def tokenize_documents(tokenizer, docs, batch_size=256):
    """Tokenizes documents once into a single id stream.

    Every document is preceded by the end-of-sequence id, which marks document
    boundaries and gives generation a start context even for an empty prompt.

    Args:
        tokenizer: a kerazoo tokenizer layer.
        docs: list of document strings.
        batch_size: documents tokenized per call.

    Returns:
        A 1-D int32 numpy array.
    """
    eos = int(tokenizer.eos_id)
    pieces = []
    for start in range(0, len(docs), batch_size):
        batch = tf.constant(docs[start:start + batch_size])
        for ids in as_id_lists(tokenizer.tokenize(batch)):
            pieces.append(np.asarray([eos] + list(ids), dtype=np.int32))
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


# ---------------------------------------------------------------------------
# Labelled text (classification) and masked-LM windows.
# ---------------------------------------------------------------------------

LABELLED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")


def read_labelled(path, text_column="text", label_column="label"):
    """Reads (text, label) pairs from a CSV / TSV / JSONL file.

    Args:
        path: a ``.csv``, ``.tsv`` (header row) or ``.jsonl`` file.
        text_column: the field holding the text.
        label_column: the field holding the label (any value; kept as a string).

    Returns:
        ``(texts, labels)``: two lists of strings, in file order.

    Raises:
        ValueError: a missing or empty file, a missing column, an empty label
            or a malformed row, naming the file.
    """
    if not os.path.isfile(path):
        raise ValueError(f"labelled data file {path} does not exist")
    lower = path.lower()
    if not lower.endswith(LABELLED_SUFFIXES):
        raise ValueError(f"labelled data file {path}: expected {', '.join(LABELLED_SUFFIXES)}")
    if lower.endswith((".csv", ".tsv")):
        rows = read_table(path, [text_column, label_column])
    else:
        rows = []
        for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            for column in (text_column, label_column):
                if column not in record:
                    raise ValueError(f"{path}:{lineno}: column '{column}' not found; "
                                     f"columns: {', '.join(map(str, record)) or 'none'}")
            rows.append((str(record[text_column]), str(record[label_column])))
    if not rows:
        raise ValueError(f"labelled data file {path} is empty: it holds no rows")
    for i, (_, label) in enumerate(rows):
        if not label.strip():
            raise ValueError(f"{path}: row {i + 1} has an empty label in column '{label_column}'")
    return [r[0] for r in rows], [r[1].strip() for r in rows]


def split_rows(n, val_fraction, seed):
    """Deterministic train / validation row indices of a labelled set.

    Returns:
        ``(train_idx, val_idx)``: sorted int arrays, both non-empty.
    """
    if n < 2:
        raise ValueError(f"{n} labelled row(s) cannot be split into train and validation")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


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


def mask_tokens(generator, windows):
    """Applies a ``keras_hub.layers.MaskedLMMaskGenerator`` to a batch of windows.

    Args:
        generator: the mask generator (built with ``mask_selection_length``
            equal to the window length, so its outputs are dense).
        windows: int ``(batch, seq_len)`` tensor of original ids.

    Returns:
        ``(masked_ids, original_ids, weights)``: the model input, the targets
        and float32 weights, 1.0 at the selected positions, else 0.0.
    """
    out = generator(windows)
    seq_len = tf.shape(windows)[1]
    hits = tf.one_hot(out["mask_positions"], seq_len) * tf.cast(out["mask_weights"], tf.float32)[..., None]
    weights = tf.minimum(tf.reduce_sum(hits, axis=1), 1.0)
    return tf.cast(out["token_ids"], tf.int32), windows, weights
