"""Tests of kerazoo.text.byte: the byte tokenizer."""


from kerazoo import text as tk
from tests.text.common import CHINESE, CORPUS, ENGLISH, MIXED, ids_of, round_trip


def test_byte_vocabulary():
    tokenizer = tk.train_tokenizer(CORPUS, "byte")
    assert tokenizer.vocabulary_size() == 261
    assert ids_of(tokenizer, "A") == [ord("A") + 5]
    assert ids_of(tokenizer, "é") == [0xC3 + 5, 0xA9 + 5]
    assert tokenizer.token_to_id("A") == ord("A") + 5


def test_byte_round_trips_any_text(trained):
    tokenizer = trained["byte"]
    for text in (MIXED, ENGLISH[:2000], CHINESE, "a\x00b", "", "\r\n  \t"):
        assert round_trip(tokenizer, text) == text
