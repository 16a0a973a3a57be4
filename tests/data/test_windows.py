"""Tests of kerazoo.data.windows: documents tokenized once, and the causal-LM tf.data pipelines."""

import numpy as np
import pytest
import tensorflow as tf

from kerazoo import data
from kerazoo.data import windows


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


def test_documents_open_with_the_end_token_across_batches():
    """The stream is the same whatever the tokenization batch size."""
    docs = ["abc", "", "de", "f"]
    expected = [3, 102, 103, 104, 3, 3, 105, 106, 3, 107]
    for batch_size in (1, 3, 256):
        ids = data.tokenize_documents(_CountingTokenizer(), docs, batch_size=batch_size)
        assert ids.dtype == np.int32 and ids.tolist() == expected
    assert data.tokenize_documents(_CountingTokenizer(), []).shape == (0,)


def test_as_id_lists_takes_ragged_dense_and_lists():
    assert windows.as_id_lists(tf.ragged.constant([[5, 6], [7]])) == [[5, 6], [7]]
    assert windows.as_id_lists(tf.constant([[5, 6], [7, 8]])) == [[5, 6], [7, 8]]
    assert windows.as_id_lists([np.array([5, 6]), [7]]) == [[5, 6], [7]]
