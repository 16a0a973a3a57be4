"""Text → ids and back: the zoo's tokenizer layers, their training, folder I/O
and the packing conventions.

One tokenizer, trained once on a corpus, is shared by every architecture; the
special tokens and their ids (``kerazoo.text.special``) are the same for all.
Five kinds, one module each:

- ``"byte"`` (``byte``): the UTF-8 bytes of the text, id = byte + 5 (261 ids).
- ``"char"`` (``char``): unicode characters, the vocabulary learned from a corpus.
- ``"wordpiece"`` (``wordpiece``): a WordPiece vocabulary learned by keras_hub's trainer.
- ``"unigram"`` / ``"bpe"`` (``sentencepiece``): SentencePiece models.

``base`` holds the behaviour they share (``ZooTokenizer``), ``training`` the
``train_tokenizer`` dispatch, ``storage`` the tokenizer folder, ``packing``
where the special ids go around a text's ids (document start, seq2seq
source/target, classifier rows). GPT-2's byte-level BPE, which is imported and
never trained, lives with its importer in ``kerazoo.interop.hf.gpt2_tokenizer``;
its names are still reachable here for code written before the split.
"""

import importlib

from kerazoo.text.base import ZooTokenizer
from kerazoo.text.byte import BYTE_VOCAB_SIZE, ByteTokenizer
from kerazoo.text.char import CHARS_FILENAME, CharTokenizer
from kerazoo.text.sentencepiece import SENTENCEPIECE_FILENAME, SentencePieceTokenizer
from kerazoo.text.special import BOS_ID, EOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID
from kerazoo.text.storage import ASSETS_DIRNAME, CONFIG_FILENAME, load_tokenizer, save_tokenizer
from kerazoo.text.training import KINDS, MIN_VOCAB_SIZE, train_tokenizer
from kerazoo.text.wordpiece import WORDPIECE_FILENAME, WordPieceTokenizer

# Names that moved to ``kerazoo.interop.hf.gpt2_tokenizer``. They resolve on
# first use, not at import: the interop package imports the models, which
# import this package, so an eager import here would be a cycle.
_GPT2_NAMES = (
    "GPT2Tokenizer",
    "GPT2_END_OF_TEXT",
    "GPT2_MERGES_FILENAME",
    "GPT2_VOCAB_FILENAME",
    "gpt2_zoo_vocabulary",
)


def __getattr__(name):
    """Resolves the GPT-2 tokenizer's names, kept here for compatibility."""
    if name in _GPT2_NAMES:
        return getattr(importlib.import_module("kerazoo.interop.hf.gpt2_tokenizer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ASSETS_DIRNAME",
    "BOS_ID",
    "BYTE_VOCAB_SIZE",
    "CHARS_FILENAME",
    "CONFIG_FILENAME",
    "EOS_ID",
    "KINDS",
    "MASK_ID",
    "MIN_VOCAB_SIZE",
    "NUM_SPECIAL_TOKENS",
    "PAD_ID",
    "SENTENCEPIECE_FILENAME",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "WORDPIECE_FILENAME",
    "ByteTokenizer",
    "CharTokenizer",
    "SentencePieceTokenizer",
    "WordPieceTokenizer",
    "ZooTokenizer",
    "load_tokenizer",
    "save_tokenizer",
    "train_tokenizer",
    *_GPT2_NAMES,
]
