"""Text → ids and back: the zoo's tokenizer layers, their training and folder I/O.

One tokenizer, trained once on a corpus, is shared by every architecture; the
special tokens and their ids (``kerazoo.text.special``) are the same for all.
"""

from kerazoo.text.special import BOS_ID, EOS_ID, MASK_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID
from kerazoo.text.tokenizers import (
    ASSETS_DIRNAME,
    BYTE_VOCAB_SIZE,
    CHARS_FILENAME,
    CONFIG_FILENAME,
    GPT2_END_OF_TEXT,
    GPT2_MERGES_FILENAME,
    GPT2_VOCAB_FILENAME,
    KINDS,
    MIN_VOCAB_SIZE,
    SENTENCEPIECE_FILENAME,
    WORDPIECE_FILENAME,
    ByteTokenizer,
    CharTokenizer,
    GPT2Tokenizer,
    SentencePieceTokenizer,
    WordPieceTokenizer,
    ZooTokenizer,
    gpt2_zoo_vocabulary,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
