"""Streaming corpus readers: documents one piece at a time, in bounded memory.

A corpus is read as a stream of *pieces* ``(starts_document, text)``: the
first piece of every document has ``starts_document=True``; a long document
comes as several pieces, each at most ``PIECE_CHARS`` characters and cut after
a newline where there is one. Nothing here holds more than one piece (or one
JSONL line / CSV row) at a time, so a corpus of any size streams through.

Document boundaries of plain text (``data.boundary``):

- ``"file"``: each file is one document (the default, and how a folder of
  ``.txt`` files has always been read);
- ``"blank_line"``: documents are separated by one or more blank lines,
  which are dropped; each document keeps its lines' newlines;
- ``"line"``: every non-blank line is a document, without its newline.

JSONL and CSV/TSV rows are one document each, whatever the boundary.
Compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``) are decompressed as
they are read. Only regular files are read: a fifo, device or socket is
refused by name (``/dev/zero`` would otherwise never end).
"""

import bz2
import csv
import glob
import gzip
import io
import json
import lzma
import os
import re
import stat
import zlib

BOUNDARIES = ("file", "blank_line", "line")
TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
TABLE_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".tsv")
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
# A document longer than this comes in several pieces (cut after a newline
# where possible): tokenizers split at newlines anyway, so the ids are the same.
PIECE_CHARS = 1 << 20
# The longest line (JSONL record, CSV row, text line) read at once; longer
# lines are refused rather than read without bound.
MAX_LINE_CHARS = 1 << 26
# How much of a file is checked for NUL bytes before calling it binary.
SNIFF_BYTES = 8192


def base_suffix(path):
    """The suffix that says a file's format, under any compression suffix (``a.jsonl.gz`` -> ``.jsonl``)."""
    lower = path.lower()
    for comp in COMPRESSED_SUFFIXES:
        if lower.endswith(comp):
            lower = lower[: -len(comp)]
            break
    return os.path.splitext(lower)[1]


def check_regular(path):
    """Refuses anything but a regular file (a fifo, device, socket or folder).

    Raises:
        ValueError: naming the path and what it is.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ValueError(f"corpus file {path} does not exist") from None
    if not stat.S_ISREG(mode):
        what = ("a fifo" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        raise ValueError(f"corpus file {path} is {what}: only regular files are read")


def _open_binary(path):
    """A binary stream of a file's (decompressed) bytes."""
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.open(path, "rb")
    if lower.endswith(".bz2"):
        return bz2.open(path, "rb")
    if lower.endswith(".xz"):
        return lzma.open(path, "rb")
    if lower.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


def _decode_errors():
    """The exceptions a corrupt or truncated compressed stream raises."""
    errors = [OSError, EOFError, lzma.LZMAError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


class _Lines:
    """The lines of a text file, decoded as UTF-8, with the line number for errors."""

    def __init__(self, path):
        self.path, self.lineno = path, 0
        try:
            with _open_binary(path) as head:
                sniff = head.read(SNIFF_BYTES)
        except _decode_errors() as e:
            raise ValueError(f"corpus file {path} is corrupt or truncated ({type(e).__name__}: {e})") from None
        if b"\x00" in sniff:
            raise ValueError(f"corpus file {path} looks binary (it contains NUL bytes), not text")
        self._raw = _open_binary(path)
        # newline="": lines keep "\r\n" as written, as a whole-file read did.
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8", errors="strict", newline="")

    def __iter__(self):
        return self

    def _read(self, read):
        """Runs one read of the decoded text, turning decoding errors into one clear line."""
        try:
            return read()
        except UnicodeDecodeError as e:
            raise ValueError(f"corpus file {self.path} is not valid UTF-8 (bad byte {e.object[e.start:e.start + 1]!r} "
                             f"near line {self.lineno + 1})") from None
        except _decode_errors() as e:
            raise ValueError(f"corpus file {self.path} is corrupt or truncated ({type(e).__name__}: {e})") from None

    def __next__(self):
        line = self._read(lambda: self._text.readline(MAX_LINE_CHARS + 1))
        if not line:
            raise StopIteration
        self.lineno += 1
        if len(line) > MAX_LINE_CHARS:
            raise ValueError(f"{self.path}:{self.lineno}: line longer than {MAX_LINE_CHARS:,} characters")
        return line

    def piece(self):
        """The next ``PIECE_CHARS`` characters, completed to the end of their line ("" at the end).

        One read per piece instead of one per line: the fast path of a
        file that is one document.
        """
        text = self._read(lambda: self._text.read(PIECE_CHARS))
        if text and not text.endswith("\n"):
            text += self._read(lambda: self._text.readline(MAX_LINE_CHARS))
        self.lineno += text.count("\n")
        return text

    def close(self):
        self._text.close()


def _text_pieces(lines, boundary):
    """Pieces of a plain-text file under a boundary rule."""
    if boundary == "line":
        for line in lines:
            text = line.rstrip("\r\n")
            if text.strip():
                yield True, text
        return
    if boundary == "file" and hasattr(lines, "piece"):
        first = True
        while True:
            text = lines.piece()
            if not text:
                break
            yield first, text
            first = False
        if first:
            yield True, ""  # an empty file is still a document (skipped as blank later)
        return
    if boundary == "blank_line" and hasattr(lines, "piece"):
        yield from _paragraph_pieces(lines)
        return
    buffer, size, first = [], 0, True
    for line in lines:
        if boundary == "blank_line" and not line.strip():
            if buffer:
                yield first, "".join(buffer)
            buffer, size, first = [], 0, True
            continue
        buffer.append(line)
        size += len(line)
        if size >= PIECE_CHARS:
            yield first, "".join(buffer)
            buffer, size, first = [], 0, False
    if buffer:
        yield first, "".join(buffer)
    elif first and boundary == "file":
        yield True, ""  # an empty file is still a document (skipped as blank later)


# A blank line: only whitespace, then the newline (chunks always end at a line end).
_BLANK_LINE = re.compile(r"^[^\S\n]*\n", re.MULTILINE)


def _paragraph_pieces(lines):
    """``"blank_line"`` documents, a chunk at a time: split with one regex, not line by line.

    Gives the same documents as the line-by-line rule: blank lines are
    dropped and end the document before them.
    """
    first, open_doc = True, False
    while True:
        chunk = lines.piece()
        if not chunk:
            return
        for i, part in enumerate(_BLANK_LINE.split(chunk)):
            if i and open_doc:
                first, open_doc = True, False
            if part:
                yield first, part
                first, open_doc = False, True


def _check_value(path, lineno, column, value):
    """A table's text value must be a string: anything else names the line."""
    if not isinstance(value, str):
        shown = "null" if value is None else json.dumps(value)
        raise ValueError(f"{path}:{lineno}: column '{column}' holds {shown}, not a string")
    return value


def _jsonl_rows(lines, columns, as_text):
    """The ``columns`` fields of every JSON-lines record, each passed through ``as_text(lineno, column, value)``."""
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{lines.path}:{lines.lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{lines.path}:{lines.lineno}: expected a JSON object, got {type(record).__name__}")
        for column in columns:
            if column not in record:
                raise ValueError(f"{lines.path}:{lines.lineno}: column '{column}' not found; "
                                 f"columns: {', '.join(map(str, record)) or 'none'}")
        yield tuple(as_text(lines.lineno, c, record[c]) for c in columns)


def _table_rows(lines, columns, path, header=True):
    """The ``columns`` fields of every CSV/TSV row (named by the header row, or by 1-based position)."""
    tsv = base_suffix(path) == ".tsv"
    # QUOTE_NONE for TSV: corpora such as SST-2 use bare quote characters.
    # strict: a malformed quote is an error, not a row that swallows the file.
    reader = csv.reader(lines, delimiter="\t" if tsv else ",",
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL, strict=True)
    try:
        first = next(reader, None)
        if not first:
            raise ValueError(f"{path} is empty: expected a header row naming the columns" if header
                             else f"{path} is empty: it holds no rows")
        names = first if header else [str(i) for i in range(1, len(first) + 1)]
        for column in columns:
            if column not in names:
                raise ValueError(f"{path}: column '{column}' not found; columns: {', '.join(names)}" if header else
                                 f"{path}: column '{column}' not found; with data.header = false, columns are "
                                 f"named by position: {', '.join(names)}")
        index = [names.index(c) for c in columns]
        rows = reader if header else _chain_first(first, reader)
        for row in rows:
            if not row:
                continue
            if len(row) != len(names):
                raise ValueError(f"{path}:{reader.line_num}: row has {len(row)} fields, the "
                                 f"{'header' if header else 'first row'} has {len(names)}")
            yield tuple(row[i] for i in index)
    except csv.Error as e:
        raise ValueError(f"{path}:{reader.line_num}: malformed CSV ({e})") from None


def _chain_first(first, rest):
    yield first
    yield from rest


def file_rows(path, columns, header=True):
    """Streams named fields of a JSONL / CSV / TSV file (possibly compressed), one row at a time.

    Args:
        path: a regular ``.jsonl`` / ``.ndjson`` / ``.csv`` / ``.tsv`` file.
        columns: the field names to take (by position "1", "2", ... when
            ``header`` is False).
        header: whether a CSV / TSV file starts with a header row.

    Yields:
        One tuple of strings per row, in ``columns`` order (JSON values that
        are not strings are written as ``str`` gives them).

    Raises:
        ValueError: a missing column, a malformed row or an unreadable file, naming it.
    """
    check_regular(path)
    csv.field_size_limit(MAX_LINE_CHARS)
    lines = _Lines(path)
    try:
        if base_suffix(path) in (".jsonl", ".ndjson"):
            yield from _jsonl_rows(lines, columns, lambda lineno, column, value: str(value))
        else:
            yield from _table_rows(lines, columns, path, header)
    finally:
        lines.close()


def file_pieces(path, column="text", boundary="file"):
    """Streams the pieces of one corpus file.

    Args:
        path: a regular file, possibly compressed.
        column: the text field of JSONL / CSV / TSV files.
        boundary: the document rule of plain text, one of ``BOUNDARIES``.

    Yields:
        ``(starts_document, text)`` pairs.

    Raises:
        ValueError: a file that is not regular, binary, not UTF-8, corrupt
            when compressed, or a malformed row, naming the file (and line).
    """
    check_regular(path)
    csv.field_size_limit(MAX_LINE_CHARS)
    lines = _Lines(path)
    try:
        suffix = base_suffix(path)
        if suffix in (".jsonl", ".ndjson"):
            check = lambda lineno, col, value: _check_value(path, lineno, col, value)  # noqa: E731
            yield from ((True, text) for (text,) in _jsonl_rows(lines, [column], check))
        elif suffix in (".csv", ".tsv"):
            yield from ((True, text) for (text,) in _table_rows(lines, [column], path))
        else:
            yield from _text_pieces(lines, boundary)
    finally:
        lines.close()


def _is_corpus_file(name):
    return base_suffix(name) in TEXT_SUFFIXES + TABLE_SUFFIXES


def expand_source(source):
    """The files a source names: a file, a folder (recursively) or a glob.

    Args:
        source: a file path, a folder (its text, JSONL, CSV and TSV files,
            compressed or not, recursively) or a glob pattern.

    Returns:
        A sorted list of file paths, never empty.

    Raises:
        ValueError: a missing file, or a folder or glob that names no file.
    """
    if os.path.isdir(source):
        found = []
        for root, _, names in os.walk(source):
            found += [os.path.join(root, n) for n in names if _is_corpus_file(n)]
        if not found:
            raise ValueError(f"corpus folder {source} holds no text files ({', '.join(TEXT_SUFFIXES)}, .jsonl, .csv, "
                             f".tsv, optionally {', '.join(COMPRESSED_SUFFIXES)})")
        return sorted(found)
    if any(ch in source for ch in "*?["):
        found = sorted(p for p in glob.glob(source, recursive=True) if not os.path.isdir(p))
        if not found:
            raise ValueError(f"corpus glob '{source}' matches no files")
        return found
    if not os.path.lexists(source):
        raise ValueError(f"corpus file {source} does not exist")
    return [source]


def file_fingerprint(paths):
    """The size and modification time of each file: the corpus fingerprint rule.

    A corpus is identified by its files' paths, sizes and mtimes (not a
    content hash: hashing a 5 GB corpus on every run costs as much as reading
    it). Touching or rewriting a file changes its mtime and so the key.

    Args:
        paths: the corpus files.

    Returns:
        A list of ``[absolute path, size, mtime_ns]``.
    """
    out = []
    for path in paths:
        check_regular(path)
        st = os.stat(path)
        out.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    return out
