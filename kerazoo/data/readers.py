"""Corpus readers: text files, folders, globs, JSONL, CSV/TSV and built-in corpora.

``read_corpus`` gives the documents a causal or masked LM trains on,
``read_labelled`` the (text, label) rows of a classifier, ``read_table`` the
named columns of a table. Corpora stream through ``kerazoo.data.sources``; the
whole-file readers of labelled rows refuse binary, non-UTF-8 or oversized
files with an error naming the file.
"""

import csv
import io
import json
import os

from kerazoo.data import sources
from kerazoo.data.sources import TEXT_SUFFIXES, expand_source

BUILTIN_PREFIX = "builtin:"
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
        The file's text.

    Raises:
        ValueError: a file over ``KERAZOO_MAX_CORPUS_BYTES``, with NUL bytes
            or not valid UTF-8, naming the file.
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


def read_jsonl(path, columns):
    """Reads named fields of a JSON-lines file, one row per non-blank line.

    Args:
        path: the ``.jsonl`` file.
        columns: the field names to take from every record.

    Returns:
        A list of tuples of strings, one per record, in ``columns`` order.

    Raises:
        ValueError: naming the file and line of invalid JSON, a record that is
            not an object, or a missing field.
    """
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
        for column in columns:
            if column not in record:
                raise ValueError(
                    f"{path}:{lineno}: column '{column}' not found; columns: {', '.join(map(str, record)) or 'none'}"
                )
        rows.append(tuple(str(record[c]) for c in columns))
    return rows


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


def corpus_pieces(source, column="text", boundary="file"):
    """Streams a corpus as ``(starts_document, text)`` pieces (``kerazoo.data.sources``).

    Args:
        source: ``builtin:pydocs``, a file, a folder, a glob, JSONL or CSV/TSV,
            each possibly compressed.
        column: the text field of JSONL / CSV / TSV sources.
        boundary: the document rule of plain text (``sources.BOUNDARIES``).

    Yields:
        ``(starts_document, text)``; a document is the text of its pieces joined.
    """
    if boundary not in sources.BOUNDARIES:
        raise ValueError(f"unknown data.boundary '{boundary}'; valid: {', '.join(sources.BOUNDARIES)}")
    if source.startswith(BUILTIN_PREFIX):
        name = source[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_CORPORA:
            raise ValueError(f"unknown built-in corpus '{source}'; available: "
                             + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_CORPORA))
        for doc in BUILTIN_CORPORA[name]():
            yield True, doc
        return
    for path in expand_source(source):
        yield from sources.file_pieces(path, column, boundary)


def corpus_files(source):
    """The files of a source ([] for a built-in corpus)."""
    return [] if source.startswith(BUILTIN_PREFIX) else expand_source(source)


def read_corpus(source, column="text", boundary="file"):
    """Reads a corpus into a list of documents (the in-memory path; see ``kerazoo.data.store`` for large corpora).

    Args:
        source: ``builtin:pydocs``, a text file, a folder of text files, a glob
            (``data/*.txt``), a JSONL file, or a CSV/TSV file with a header;
            each may be compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``).
        column: the field holding the text in JSONL / CSV / TSV sources.
        boundary: the document rule of plain text (``sources.BOUNDARIES``).

    Returns:
        A list of non-empty document strings, in a deterministic order.

    Raises:
        ValueError: a missing, empty, binary or non-UTF-8 source, a missing
            column or a malformed row, naming the file and the problem.
    """
    docs = []
    for first, text in corpus_pieces(source, column, boundary):
        if first or not docs:
            docs.append(text)
        else:
            docs[-1] += text
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise ValueError(f"corpus {source} is empty: it holds no text")
    return docs


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
        rows = read_jsonl(path, [text_column, label_column])
    if not rows:
        raise ValueError(f"labelled data file {path} is empty: it holds no rows")
    for i, (_, label) in enumerate(rows):
        if not label.strip():
            raise ValueError(f"{path}: row {i + 1} has an empty label in column '{label_column}'")
    return [r[0] for r in rows], [r[1].strip() for r in rows]



def labelled_rows(source, text_column="text", label_column="label"):
    """Streams (text, label) rows of CSV / TSV / JSONL files, possibly compressed, in bounded memory.

    Args:
        source: a file, a folder or a glob of ``.csv``, ``.tsv`` (header row)
            or ``.jsonl`` files (each may end in ``.gz``, ``.bz2``, ``.xz``, ``.zst``).
        text_column: the field holding the text.
        label_column: the field holding the label (any value; kept as a stripped string).

    Yields:
        ``(text, label)`` string pairs, in file order.

    Raises:
        ValueError: a missing file or column, another format, an empty label
            or a malformed row, naming the file.
    """
    if not any(ch in source for ch in "*?[") and not os.path.exists(source):
        raise ValueError(f"labelled data file {source} does not exist")
    for path in expand_source(source):
        if sources.base_suffix(path) not in LABELLED_SUFFIXES:
            raise ValueError(f"labelled data file {path}: expected {', '.join(LABELLED_SUFFIXES)}")
        for i, (text, label) in enumerate(sources.file_rows(path, [text_column, label_column]), start=1):
            label = label.strip()
            if not label:
                raise ValueError(f"{path}: row {i} has an empty label in column '{label_column}'")
            yield text, label
