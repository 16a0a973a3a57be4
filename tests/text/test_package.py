"""kerazoo.text keeps the names it had before the split, and ``kz.tokenizers`` is still it."""

import keras
import pytest

import kerazoo as kz
from kerazoo import text
from kerazoo.interop.hf import gpt2_tokenizer

# The names of ``kerazoo.text`` when one module held every tokenizer.
PUBLIC_NAMES = (
    "ASSETS_DIRNAME", "BOS_ID", "BYTE_VOCAB_SIZE", "CHARS_FILENAME", "CONFIG_FILENAME", "EOS_ID", "GPT2_END_OF_TEXT",
    "GPT2_MERGES_FILENAME", "GPT2_VOCAB_FILENAME", "KINDS", "MASK_ID", "MIN_VOCAB_SIZE", "NUM_SPECIAL_TOKENS",
    "PAD_ID", "SENTENCEPIECE_FILENAME", "SPECIAL_TOKENS", "UNK_ID", "WORDPIECE_FILENAME", "ByteTokenizer",
    "CharTokenizer", "GPT2Tokenizer", "SentencePieceTokenizer", "WordPieceTokenizer", "ZooTokenizer",
    "gpt2_zoo_vocabulary", "load_tokenizer", "save_tokenizer", "train_tokenizer",
)
CLASSES = ("ByteTokenizer", "CharTokenizer", "WordPieceTokenizer", "SentencePieceTokenizer", "GPT2Tokenizer")


def test_every_public_name_is_still_in_kerazoo_text():
    assert [name for name in PUBLIC_NAMES if not hasattr(text, name)] == []
    assert set(PUBLIC_NAMES) <= set(text.__all__)
    assert kz.tokenizers is text
    assert kz.tokenizers.GPT2Tokenizer is gpt2_tokenizer.GPT2Tokenizer


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        text.Nope  # noqa: B018


@pytest.mark.parametrize("name", CLASSES)
def test_classes_keep_their_registered_names(name):
    """``.keras`` files name a tokenizer by its registered name; it must not change."""
    cls = getattr(text, name)
    assert keras.saving.get_registered_name(cls) == f"kerazoo>{name}"
    assert keras.saving.get_registered_object(f"kerazoo>{name}") is cls
