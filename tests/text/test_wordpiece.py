"""Tests of kerazoo.text.wordpiece: the WordPiece tokenizer."""


from kerazoo import text as tk
from tests.text.common import CHINESE, ENGLISH, ids_of, round_trip, squash


def test_wordpiece_round_trips_up_to_whitespace(trained):
    tokenizer = trained["wordpiece"]
    text = ENGLISH[2000:2600] + "\n" + CHINESE
    assert tk.UNK_ID not in ids_of(tokenizer, text)
    assert squash(round_trip(tokenizer, text)) == squash(text)


def test_wordpiece_uses_word_pieces(trained):
    tokenizer = trained["wordpiece"]
    assert any(token.startswith("##") for token in tokenizer.get_vocabulary())
    # Most words are single tokens: far fewer ids than characters.
    assert len(ids_of(tokenizer, ENGLISH[:3000])) < 3000 / 2
