"""``train_tokenizer``: a tokenizer of any kind, learned from a corpus.

The corpus and the size asked for are checked once here; each kind's trainer
then learns its vocabulary ("byte" learns nothing, "char" counts characters,
"wordpiece" uses keras_hub's trainer, "unigram"/"bpe" SentencePiece's, see
``kerazoo.text.sentencepiece_trainer``).
"""

import collections
import functools

import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.utils.tensor_utils import casefold_utf8

from kerazoo.text.byte import BYTE_VOCAB_SIZE, ByteTokenizer
from kerazoo.text.char import CharTokenizer
from kerazoo.text.sentencepiece_trainer import train_sentencepiece
from kerazoo.text.special import NUM_SPECIAL_TOKENS, SPECIAL_TOKENS
from kerazoo.text.wordpiece import WordPieceTokenizer

KINDS = ("byte", "char", "wordpiece", "unigram", "bpe")

# The smallest vocabulary that holds anything besides the special tokens.
MIN_VOCAB_SIZE = NUM_SPECIAL_TOKENS + 1


def train_tokenizer(texts, kind, vocab_size=None, lowercase=False, max_size=False):
    """Trains a tokenizer of the given kind on a corpus.

    Training is deterministic: the same texts and settings give the same
    vocabulary.

    Args:
        texts: an iterable (list, generator, ``ds.as_numpy_iterator()``) of
            document strings (str or UTF-8 bytes).
        kind: one of ``KINDS``.
        vocab_size: the number of token ids, the 5 special tokens included.
            "byte": None or 261. "char": None means every character of the
            corpus. "wordpiece", "unigram", "bpe": required. WordPiece's
            trainer may return up to 5% fewer tokens than asked.
        lowercase: case-fold text (Unicode NFKC_Casefold) in training and
            tokenizing.
        max_size: ``vocab_size`` is the largest size: "char", "unigram" and
            "bpe" train what the corpus supports when it supports fewer
            (``vocabulary_size()`` tells the achieved size). "wordpiece"
            keeps its error: its trainer's size is approximate.

    Returns:
        The trained tokenizer layer.

    Raises:
        ValueError: for an unknown kind, an empty corpus, or a vocab_size the
            kind or the corpus cannot support.
    """
    kind = _check_kind(kind)
    _check_vocab_size(kind, vocab_size)
    texts = _collect_texts(texts)
    if max_size and kind == "char":
        return _train_char(texts, vocab_size, lowercase, max_size=True)
    if max_size and kind in ("unigram", "bpe"):
        return train_sentencepiece(texts, vocab_size, lowercase, model_type=kind, max_size=True)
    return _TRAINERS[kind](texts, vocab_size, lowercase)


def _check_kind(kind):
    """Returns ``kind`` if it is one of ``KINDS``, else raises ValueError."""
    if kind not in KINDS:
        raise ValueError(
            f"unknown tokenizer kind {kind!r}; valid kinds: {', '.join(KINDS)}"
        )
    return kind


def _check_vocab_size(kind, vocab_size):
    """Raises ValueError for a vocab_size the kind can never support."""
    if vocab_size is None:
        if kind in ("wordpiece", "unigram", "bpe"):
            raise ValueError(f"vocab_size is required for {kind} tokenizers")
        return
    if isinstance(vocab_size, bool) or not isinstance(
        vocab_size, (int, np.integer)
    ):
        raise ValueError(
            f"vocab_size must be an integer; got {vocab_size!r}"
        )
    if kind == "byte" and vocab_size != BYTE_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is not possible for a byte tokenizer: "
            f"its vocabulary is always {BYTE_VOCAB_SIZE} (5 special tokens + "
            "256 bytes); pass None or 261"
        )
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must be at least "
            f"{MIN_VOCAB_SIZE} (the {NUM_SPECIAL_TOKENS} special tokens and "
            "at least one more)"
        )


def _collect_texts(texts):
    """Reads the corpus into a list of str.

    Args:
        texts: an iterable of str or UTF-8 bytes.

    Returns:
        The documents as a list of str.
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(
            "texts must be an iterable of document strings, not a single "
            "string (wrap it in a list)"
        )
    try:
        documents = [_as_str(text) for text in texts]
    except TypeError:
        raise ValueError(
            f"texts must be an iterable of strings; got {type(texts).__name__}"
        ) from None
    if not any(text.strip() for text in documents):
        raise ValueError(
            f"empty corpus: none of the {len(documents)} texts contains any "
            "non-whitespace character"
        )
    return documents


def _as_str(text):
    """Returns a document as str; bytes are decoded as UTF-8."""
    if isinstance(text, bytes):
        return text.decode("utf-8")
    if isinstance(text, str):
        return text
    raise ValueError(f"texts must hold strings; got {type(text).__name__}")


def _train_byte(texts, vocab_size, lowercase):
    """The byte tokenizer learns nothing: the corpus is only validated."""
    return ByteTokenizer(lowercase=lowercase)


def _train_char(texts, vocab_size, lowercase, max_size=False):
    """Keeps the most frequent characters (ties: lowest codepoint first)."""
    if lowercase:
        texts = [casefold_utf8(text) for text in texts]
    counts = collections.Counter()
    for text in texts:
        counts.update(text)
    ranked = sorted(counts, key=lambda char: (-counts[char], char))
    most = len(ranked) + NUM_SPECIAL_TOKENS
    if max_size and vocab_size is not None:
        vocab_size = min(vocab_size, most)
    if vocab_size is not None and vocab_size > most:
        raise ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: it has "
            f"only {len(ranked)} distinct characters, so at most {most} "
            "tokens with the special tokens"
        )
    if vocab_size is not None:
        ranked = ranked[: vocab_size - NUM_SPECIAL_TOKENS]
    return CharTokenizer(
        vocabulary=list(SPECIAL_TOKENS) + ranked, lowercase=lowercase
    )


def _train_wordpiece(texts, vocab_size, lowercase):
    """Learns a WordPiece vocabulary with keras_hub's trainer."""
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts),
        vocab_size,
        lowercase=lowercase,
        reserved_tokens=list(SPECIAL_TOKENS),
    )
    _check_wordpiece_size(vocabulary, vocab_size, texts, lowercase)
    return WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)


# keras_hub's WordPiece trainer binary-searches a frequency threshold and
# accepts any vocabulary from 95% to 100% of the size asked for.
_WORDPIECE_SLACK = 0.05


def _check_wordpiece_size(vocabulary, vocab_size, texts, lowercase):
    """Raises ValueError when the trained vocabulary is not usable.

    Args:
        vocabulary: the trainer's output.
        vocab_size: the size asked for.
        texts: the corpus, to count its characters for the error message.
        lowercase: whether the corpus was case-folded.
    """
    # The trainer keeps every character c as "c" and "##c"; when those alone
    # exceed vocab_size it truncates the list and words become "<unk>".
    tokens = set(vocabulary)
    chars = [t for t in vocabulary[NUM_SPECIAL_TOKENS:] if len(t) == 1]
    if any("##" + c not in tokens for c in chars):
        n = _count_word_chars(texts, lowercase)
        raise ValueError(
            f"vocab_size={vocab_size} is too small for this corpus: a "
            "wordpiece vocabulary needs the 5 special tokens, each of the "
            f"corpus's {n} characters alone and as a '##' suffix "
            f"({NUM_SPECIAL_TOKENS + 2 * n} tokens), and room for its most "
            "frequent words"
        )
    if len(vocabulary) < vocab_size * (1 - _WORDPIECE_SLACK):
        raise ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: the "
            f"wordpiece trainer found only {len(vocabulary)} tokens"
        )


def _count_word_chars(texts, lowercase):
    """Counts the distinct non-space characters the WordPiece trainer sees."""
    chars = set()
    for text in texts:
        chars.update(casefold_utf8(text) if lowercase else text)
    return sum(1 for c in chars if not c.isspace() and c.isprintable())


_TRAINERS = {
    "byte": _train_byte,
    "char": _train_char,
    "wordpiece": _train_wordpiece,
    "unigram": functools.partial(train_sentencepiece, model_type="unigram"),
    "bpe": functools.partial(train_sentencepiece, model_type="bpe"),
}
