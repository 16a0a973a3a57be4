"""Tests of kerazoo.text.sentencepiece: the unigram and bpe tokenizers."""

import keras
import pytest

from kerazoo import text as tk
from tests.text.common import CHINESE, ENGLISH, ENGLISH_DOCS, MIXED, ids_of, round_trip


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_round_trips_exactly_with_byte_fallback(trained, kind):
    tokenizer = trained[kind]
    assert "<0x0A>" in tokenizer.get_vocabulary()  # byte fallback is on
    for text in (MIXED, ENGLISH[10000:13000], CHINESE, "  lead and trail  "):
        assert round_trip(tokenizer, text) == text
    # Characters never seen in training still round-trip, as bytes.
    assert round_trip(tokenizer, "Ωμέγα ☃ 🎉") == "Ωμέγα ☃ 🎉"


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_sentencepiece_newlines_without_byte_fallback(kind):
    corpus = [ENGLISH[:6000]]
    tokenizer = tk.train_tokenizer(corpus, kind, 150)
    assert "<0x0A>" not in tokenizer.get_vocabulary()  # too small for bytes
    assert tokenizer.token_to_id("\n") == 5  # the user-defined newline piece
    text = ENGLISH[:400] + "\n\n" + ENGLISH[600:800] + "\n"
    assert round_trip(tokenizer, text) == text


def test_sentencepiece_mask_piece_is_id_4(trained):
    for kind in ("unigram", "bpe"):
        tokenizer = trained[kind]
        assert tokenizer.id_to_token(4) == "<mask>"
        assert tokenizer.id_to_token(5) == "\n"


def test_sentencepiece_reads_mask_written_in_text(trained):
    # "<mask>" is a user-defined piece, so SentencePiece matches it in raw
    # text; the other special tokens are plain text.
    tokenizer = trained["bpe"]
    assert tk.MASK_ID in ids_of(tokenizer, "a <mask> b")
    assert round_trip(tokenizer, "a <mask> b") == "a  b"
    assert round_trip(tokenizer, "<s> hi </s>") == "<s> hi </s>"


def test_sentencepiece_survives_set_random_seed():
    """keras.utils.set_random_seed clears TF's eager kernel cache, which held
    tf-text's SentencePiece resource; the tokenizer must keep working."""
    docs = ENGLISH_DOCS[:30]
    tok = tk.train_tokenizer(docs, "unigram", 600)
    before = tok.tokenize(["hello world"]).to_list()
    keras.utils.set_random_seed(1)
    assert tok.tokenize(["hello world"]).to_list() == before
    assert tok.detokenize(tok.tokenize(["hello world"])).numpy().tolist() == [b"hello world"]
