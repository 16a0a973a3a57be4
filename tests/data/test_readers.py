"""Tests of kerazoo.data.readers: corpora from files, folders, globs, JSONL, CSV/TSV."""

import json

import pytest

from kerazoo import data
from kerazoo.data import readers


def test_builtin_pydocs_is_offline_and_stable():
    docs = data.read_corpus("builtin:pydocs")
    assert len(docs) > 50
    assert docs == data.read_corpus("builtin:pydocs")
    assert any("for" in d for d in docs)


def test_text_file_folder_and_glob(tmp_path):
    (tmp_path / "a.txt").write_text("alpha text", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("beta 中文", encoding="utf-8")
    assert data.read_corpus(str(tmp_path / "a.txt")) == ["alpha text"]
    assert data.read_corpus(str(tmp_path)) == ["alpha text", "beta 中文"]
    assert data.read_corpus(str(tmp_path / "**" / "*.md")) == ["beta 中文"]


def test_jsonl_and_csv_columns(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(["one", "two"])) + "\n")
    assert data.read_corpus(str(jsonl), column="body") == ["one", "two"]
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('id,text\n1,"hello, world"\n2,second\n')
    assert data.read_corpus(str(csv_file)) == ["hello, world", "second"]
    tsv = tmp_path / "c.tsv"
    tsv.write_text('label\tsentence\n1\tit\'s "great"\n')
    assert data.read_corpus(str(tsv), column="sentence") == ['it\'s "great"']


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "does not exist"),
        ("empty.txt", b"", "is empty"),
        ("blank.txt", b"  \n\n", "is empty"),
        ("binary.txt", b"\x89PNG\r\n\x00\x00\x00", "looks binary"),
        ("latin1.txt", "café".encode("latin-1"), "not valid UTF-8"),
        ("nocol.csv", b"a,b\n1,2\n", "column 'text' not found; columns: a, b"),
        ("ragged.csv", b"text,b\nx,1\ny\n", "row has 1 fields, the header has 2"),
        ("bad.jsonl", b'{"text": "a"}\n{oops\n', "bad.jsonl:2: invalid JSON"),
    ],
)
def test_bad_corpora_name_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        data.read_corpus(str(path))


def test_unknown_builtin_and_empty_glob(tmp_path):
    with pytest.raises(ValueError, match="unknown built-in corpus"):
        data.read_corpus("builtin:wikipedia")
    with pytest.raises(ValueError, match="matches no files"):
        data.read_corpus(str(tmp_path / "*.nothing"))


def test_expand_source_lists_the_text_files_of_a_folder_sorted(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    (tmp_path / "a.jsonl").write_text("{}")
    (tmp_path / "skip.bin").write_bytes(b"x")
    assert readers.expand_source(str(tmp_path)) == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.txt")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no text files"):
        readers.expand_source(str(tmp_path / "empty"))


def test_oversized_corpus_files_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    path.write_text("x" * 100)
    monkeypatch.setenv("KERAZOO_MAX_CORPUS_BYTES", "99")
    with pytest.raises(ValueError, match="too large .100 bytes; the limit is 99"):
        readers.read_text_file(str(path))
    monkeypatch.setenv("KERAZOO_MAX_CORPUS_BYTES", "100")
    assert readers.read_text_file(str(path)) == "x" * 100
