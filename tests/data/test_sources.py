"""Tests of kerazoo.data.sources: streaming readers, compression, boundaries, bad input."""

import bz2
import gzip
import json
import lzma
import os

import pytest
import zstandard

from kerazoo.data import readers, sources

TEXT = "first line\nsecond 中文 line\n\nnext document\n"


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_compressed_files_read_as_the_plain_file(tmp_path, suffix, compress):
    (tmp_path / "plain.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / ("c.txt" + suffix)).write_bytes(compress(TEXT.encode()))
    rows = "".join(json.dumps({"text": t}) + "\n" for t in ["a", "b"]).encode()
    (tmp_path / ("r.jsonl" + suffix)).write_bytes(compress(rows))
    assert readers.read_corpus(str(tmp_path / ("c.txt" + suffix))) == [TEXT]
    assert readers.read_corpus(str(tmp_path / ("r.jsonl" + suffix))) == ["a", "b"]
    assert readers.read_corpus(str(tmp_path)) == [TEXT, TEXT, "a", "b"]  # c.txt.*, plain.txt, r.jsonl.*


def test_boundary_rules():
    lines = iter_lines(TEXT)
    assert [t for _, t in sources._text_pieces(lines, "file")] == [TEXT]
    assert list(sources._text_pieces(iter_lines(TEXT), "blank_line")) == [
        (True, "first line\nsecond 中文 line\n"), (True, "next document\n")]
    assert [t for _, t in sources._text_pieces(iter_lines(TEXT), "line")] == [
        "first line", "second 中文 line", "next document"]


def iter_lines(text):
    return iter(text.splitlines(keepends=True))


def test_a_long_document_streams_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PIECE_CHARS", 64)
    text = "".join(f"line {i}\n" for i in range(100))
    (tmp_path / "long.txt").write_text(text)
    pieces = list(sources.file_pieces(str(tmp_path / "long.txt")))
    assert len(pieces) > 5 and pieces[0][0] and not any(first for first, _ in pieces[1:])
    assert all(len(t) < 80 and t.endswith("\n") for _, t in pieces)
    assert "".join(t for _, t in pieces) == text
    assert readers.read_corpus(str(tmp_path / "long.txt")) == [text]


def test_corrupt_compressed_file_is_one_line_naming_it(tmp_path):
    good = gzip.compress(("hello world\n" * 5000).encode())
    (tmp_path / "cut.txt.gz").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.txt.gz").write_bytes(b"\x1f\x8b" + b"junk" * 100)
    for name in ("cut.txt.gz", "junk.txt.gz"):
        with pytest.raises(ValueError, match=rf"{name} is corrupt or truncated") as e:
            readers.read_corpus(str(tmp_path / name))
        assert "\n" not in str(e.value)


def test_a_fifo_is_refused_by_name(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe.txt is a fifo: only regular files"):
        readers.read_corpus(str(fifo))
    with pytest.raises(ValueError, match=r"is a device"):
        list(sources.file_pieces("/dev/zero"))


def test_malformed_csv_quote_names_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('text,label\n"fine",1\n"broken"x,2\n')
    with pytest.raises(ValueError, match=r"bad.csv:3: malformed CSV"):
        readers.read_corpus(str(path))
    path.write_text('text\nok\n"never closed\nmore\n')
    with pytest.raises(ValueError, match=r"bad.csv:\d+: malformed CSV"):
        readers.read_corpus(str(path))


@pytest.mark.parametrize("value", ["null", "3", "NaN", "1e400", "true", '["a"]'])
def test_non_string_json_values_name_the_line(tmp_path, value):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": ' + value + "}\n")
    with pytest.raises(ValueError, match=r"rows.jsonl:3: column 'text' holds .*, not a string"):
        readers.read_corpus(str(path))


class ChunkedLines:
    """``_Lines.piece`` over a string, in chunks of ``n`` characters completed to a line end."""

    def __init__(self, text, n):
        self.text, self.pos, self.n = text, 0, n

    def piece(self):
        end = self.pos + self.n
        if end < len(self.text) and self.text[end - 1] != "\n":
            newline = self.text.find("\n", end)
            end = len(self.text) if newline < 0 else newline + 1
        piece, self.pos = self.text[self.pos:end], min(end, len(self.text))
        return piece


def documents(pieces):
    docs = []
    for first, text in pieces:
        if first:
            docs.append(text)
        else:
            docs[-1] += text
    return docs


def test_blank_line_chunked_reader_equals_the_line_rule():
    rng = __import__("random").Random(0)
    for _ in range(200):
        text = "".join(rng.choice(["a b\n", "\n", "  \n", "x\r\n", "\t\n", "word word\n"]) for _ in range(rng.randint(0, 30)))
        want = documents(sources._text_pieces(iter_lines(text), "blank_line"))
        assert documents(sources._paragraph_pieces(ChunkedLines(text, rng.randint(1, 20)))) == want, text
