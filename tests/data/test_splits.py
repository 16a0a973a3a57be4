"""Tests of kerazoo.data.splits: deterministic train / validation splits."""

import numpy as np
import pytest

from kerazoo import data


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


def test_split_rows_is_deterministic_sorted_and_disjoint():
    train, val = data.split_rows(10, 0.2, seed=0)
    assert (train.tolist(), val.tolist()) == tuple(a.tolist() for a in data.split_rows(10, 0.2, seed=0))
    assert len(val) == 2 and sorted(train.tolist() + val.tolist()) == list(range(10))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # At least one row on each side, however small the fraction.
    assert [len(side) for side in data.split_rows(2, 0.01, seed=0)] == [1, 1]
    with pytest.raises(ValueError, match="cannot be split"):
        data.split_rows(1, 0.5, seed=0)
