"""Tests of kerazoo.text.training: train_tokenizer and its errors."""

import pytest

from kerazoo import text as tk
from tests.text.common import CORPUS, ENGLISH, MIXED, TRAINED_KINDS, VOCAB_SIZES, ids_of


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_training_is_deterministic(trained, kind):
    again = tk.train_tokenizer(list(CORPUS), kind, VOCAB_SIZES[kind])
    assert again.get_vocabulary() == trained[kind].get_vocabulary()
    assert ids_of(again, MIXED) == ids_of(trained[kind], MIXED)


def test_training_accepts_generators_and_bytes():
    from_list = tk.train_tokenizer(CORPUS, "char")
    from_bytes = tk.train_tokenizer((t.encode("utf-8") for t in CORPUS), "char")
    assert from_bytes.get_vocabulary() == from_list.get_vocabulary()


SMALL_CORPUS = [ENGLISH[:4000]]


@pytest.mark.parametrize(
    "texts, kind, vocab_size, message",
    [
        (SMALL_CORPUS, "sentencepiece", 100, "unknown tokenizer kind.*byte, char"),
        (SMALL_CORPUS, "byte", 300, "vocab_size=300.*byte.*261"),
        (SMALL_CORPUS, "char", 5, "vocab_size=5 is too small"),
        (SMALL_CORPUS, "char", 10_000, "vocab_size=10000 is too large.*distinct"),
        (SMALL_CORPUS, "char", "100", "vocab_size must be an integer"),
        (SMALL_CORPUS, "wordpiece", None, "vocab_size is required"),
        (SMALL_CORPUS, "unigram", None, "vocab_size is required"),
        (SMALL_CORPUS, "wordpiece", 50_000, "too large.*found only \\d+ tokens"),
        (SMALL_CORPUS, "wordpiece", 40, "vocab_size=40 is too small.*##"),
        (SMALL_CORPUS, "unigram", 50_000, "too large.*at most \\d+ tokens"),
        (SMALL_CORPUS, "bpe", 50_000, "too large.*at most \\d+ tokens"),
        (SMALL_CORPUS, "unigram", 30, "vocab_size=30 is too small.*at least"),
        (SMALL_CORPUS, "bpe", 30, "vocab_size=30 is too small.*at least"),
        ([], "char", None, "empty corpus"),
        (["", "  \n"], "unigram", 100, "empty corpus"),
        ("one document", "char", None, "not a single string"),
        ([1, 2], "char", None, "strings"),
    ],
)
def test_training_mistakes(texts, kind, vocab_size, message):
    with pytest.raises(ValueError, match=message):
        tk.train_tokenizer(texts, kind, vocab_size)


@pytest.mark.parametrize("kind", ["unigram", "bpe", "char"])
def test_max_size_trains_what_the_corpus_supports(kind):
    asked = 50_000
    with pytest.raises(ValueError, match="too large"):
        tk.train_tokenizer(SMALL_CORPUS, kind, asked)
    tokenizer = tk.train_tokenizer(SMALL_CORPUS, kind, asked, max_size=True)
    assert 5 < tokenizer.vocabulary_size() < asked
    text = SMALL_CORPUS[0][:200]
    assert tokenizer.detokenize(tokenizer.tokenize(text)) == text
