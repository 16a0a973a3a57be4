"""Corpora, splits and the causal-LM tf.data pipeline."""

import json

import numpy as np
import pytest

from kerazoo import data as data


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


def test_shuffle_split_is_deterministic_and_disjoint():
    docs = [f"doc {i}" for i in range(50)]
    a = data.split_corpus(docs, 0.2, seed=3, mode="shuffle")
    assert a == data.split_corpus(docs, 0.2, seed=3, mode="shuffle")
    assert a != data.split_corpus(docs, 0.2, seed=4, mode="shuffle")
    train, val = a
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 50


def test_tail_split_keeps_order_like_nanogpt():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val = data.split_corpus([text], 0.1, mode="tail")
    assert train == [text[:900]] and val == [text[900:]]


def test_auto_split_chooses_by_document_count():
    few = ["x" * 100] * 3
    assert data.split_corpus(few, 0.1, mode="auto")[1] == ["x" * 30]  # last 10% of 300 chars
    many = [f"d{i}" for i in range(40)]
    assert len(data.split_corpus(many, 0.1, mode="auto")[1]) == 4


class _CountingTokenizer:
    """A stand-in tokenizer (bytes + 5) that counts how often it is called."""

    eos_id = 3

    def __init__(self):
        self.calls = 0

    def tokenize(self, batch):
        self.calls += 1
        return [[b + 5 for b in s] for s in batch.numpy()]


def test_tokenize_once_and_windows_shift_by_one():
    tok = _CountingTokenizer()
    ids = data.tokenize_documents(tok, ["abc", "de"])
    np.testing.assert_array_equal(ids, [3, 102, 103, 104, 3, 105, 106])
    assert tok.calls == 1
    ds = data.lm_dataset(np.arange(100, dtype=np.int32), seq_len=8, batch_size=4, shuffle=True, seed=0)
    for epoch in range(2):
        for x, y in ds:
            assert x.shape == (4, 8)
            np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
            np.testing.assert_array_equal(x.numpy() + 1, y.numpy())
    assert tok.calls == 1, "iterating epochs must not re-tokenize"


def test_dataset_shuffle_is_seeded():
    ids = np.arange(400, dtype=np.int32)
    first = lambda seed: next(iter(data.lm_dataset(ids, 4, 8, seed=seed)))[0].numpy()
    np.testing.assert_array_equal(first(1), first(1))
    assert not np.array_equal(first(1), first(2))


def test_random_windows_start_anywhere_and_shift_by_one():
    ids = np.arange(1000, dtype=np.int32)  # id == position, so x[:, 0] is each window's offset
    ds = data.lm_random_dataset(ids, seq_len=8, batch_size=16, seed=3)
    starts = []
    for x, y in ds.take(64):
        x, y = x.numpy(), y.numpy()
        assert x.shape == y.shape == (16, 8) and x.dtype == np.int32
        np.testing.assert_array_equal(x + 1, y)  # the next token of the same stretch of text
        np.testing.assert_array_equal(x, x[:, :1] + np.arange(8))  # contiguous windows
        starts.extend(x[:, 0])
    starts = np.asarray(starts)
    assert starts.min() >= 0 and starts.max() + 8 < 1000, "every target id exists"
    assert len(set(starts % 8)) == 8, "windows start at every phase, not only multiples of seq_len"
    assert starts.min() < 50 and starts.max() > 940, "the whole stream is drawn from"


def test_random_windows_are_seeded():
    first = lambda seed: [x.numpy() for x, _ in data.lm_random_dataset(np.arange(400, dtype=np.int32), 4, 8, seed=seed).take(3)]
    np.testing.assert_array_equal(first(1), first(1))  # a resumed run skips to the same batches
    assert not np.array_equal(first(1), first(2))


def test_random_windows_need_one_window_of_text():
    data.lm_random_dataset(np.arange(9, dtype=np.int32), seq_len=8, batch_size=2)  # exactly one window
    with pytest.raises(ValueError, match="8 tokens, a window of seq_len=8 needs 9"):
        data.lm_random_dataset(np.arange(8, dtype=np.int32), seq_len=8, batch_size=2)


def test_too_little_text_for_a_batch():
    with pytest.raises(ValueError, match="fewer than batch_size=8"):
        data.lm_dataset(np.arange(20, dtype=np.int32), seq_len=8, batch_size=8)
