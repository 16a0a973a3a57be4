"""Tests of kerazoo.text.char: the char tokenizer."""


from kerazoo import text as tk
from tests.text.common import CHINESE, CORPUS, ENGLISH, ids_of, round_trip


def test_char_vocabulary_is_most_frequent_first():
    tokenizer = tk.train_tokenizer(["aab", "bbc", "d"], "char", 8)
    # b: 3, a: 2, then c and d tie at 1 and break by codepoint: c wins.
    assert tokenizer.get_vocabulary() == [*tk.SPECIAL_TOKENS, "b", "a", "c"]
    assert ids_of(tokenizer, "abcd") == [6, 5, 7, tk.UNK_ID]


def test_char_round_trips_text_within_its_vocabulary(trained):
    tokenizer = trained["char"]
    # Every character of the corpus is in the (unlimited) vocabulary.
    for text in (ENGLISH[5000:8000], CHINESE, ENGLISH[:300] + "\n\n" + CHINESE):
        assert round_trip(tokenizer, text) == text


def test_char_unknown_characters_become_unk(trained):
    tokenizer = trained["char"]
    assert ids_of(tokenizer, "😀")[0] == tk.UNK_ID
    assert round_trip(tokenizer, "a😀b") == "ab"


def test_char_vocab_size_keeps_the_most_frequent(trained):
    small = tk.train_tokenizer(CORPUS, "char", 30)
    assert small.vocabulary_size() == 30
    full = trained["char"].get_vocabulary()
    assert small.get_vocabulary() == full[:30]
