"""Training of "unigram" and "bpe" tokenizers with SentencePiece's trainer.

The corpus is cut into the lines SentencePiece trains on, the options follow
from the corpus (character coverage, byte fallback) and the zoo's special
pieces, and the trainer's vocabulary-size errors come back as ValueErrors.
"""

import collections
import io
import re

import sentencepiece as spm
from keras_hub.src.utils.tensor_utils import casefold_utf8

from kerazoo.text.sentencepiece import SentencePieceTokenizer
from kerazoo.text.special import BOS_ID, EOS_ID, NUM_SPECIAL_TOKENS, PAD_ID, SPECIAL_TOKENS, UNK_ID

# SentencePiece: "\n" is a user-defined piece (id 5) because training reads
# one line at a time and so never sees a newline; the piece keeps newlines in
# multi-line text exact even when the vocabulary is too small for byte
# fallback.
_SENTENCEPIECE_USER_SYMBOLS = ("<mask>", "\n")
# SentencePiece silently skips training sentences longer than 4192 bytes,
# so longer lines are cut into chunks of at most 1000 characters (<= 4000
# bytes of UTF-8).
_SENTENCEPIECE_MAX_CHUNK_CHARS = 1000
# Alphabetic scripts have far fewer distinct characters than this and all
# of them should be pieces; corpora with more (CJK) have a long tail of rare
# characters that is better left to byte fallback or "<unk>".
_SMALL_CHARSET = 1000
_BYTE_FALLBACK_MIN_VOCAB = 512


def train_sentencepiece(texts, vocab_size, lowercase, model_type, max_size=False):
    """Trains a SentencePiece tokenizer of one model type.

    Args:
        texts: the documents (a list of str).
        vocab_size: the number of pieces, special tokens included.
        lowercase: case-fold text in training and tokenizing.
        model_type: "unigram" or "bpe".
        max_size: ``vocab_size`` is the largest size: when the corpus
            supports fewer pieces, train the size SentencePiece reports it
            can build instead of failing.

    Returns:
        A ``SentencePieceTokenizer``.
    """
    if lowercase:
        texts = [casefold_utf8(text) for text in texts]
    try:
        proto = _train_sentencepiece_proto(texts, vocab_size, model_type)
    except ValueError as error:
        # SentencePiece names the largest size it can build ("<= N"); its
        # hard_vocab_limit=false would only soften unigram, not bpe.
        supported = re.search(r"can build at most (\d+) tokens", str(error))
        if not (max_size and supported):
            raise
        proto = _train_sentencepiece_proto(texts, int(supported.group(1)), model_type)
    return SentencePieceTokenizer(proto=proto, lowercase=lowercase)


def _sentencepiece_lines(texts):
    """Splits documents into the non-empty lines SentencePiece trains on.

    Each training "sentence" must be one line (newlines are represented by
    the "\\n" user piece instead) no longer than the trainer's limit.
    """
    for text in texts:
        for line in text.split("\n"):
            for start in range(0, len(line), _SENTENCEPIECE_MAX_CHUNK_CHARS):
                yield line[start : start + _SENTENCEPIECE_MAX_CHUNK_CHARS]


def _sentencepiece_options(lines, vocab_size, model_type):
    """Chooses the SentencePiece trainer options for a corpus.

    Args:
        lines: the training lines.
        vocab_size: the number of pieces to learn.
        model_type: "unigram" or "bpe".

    Returns:
        A dict of keyword arguments for ``SentencePieceTrainer.train``.
    """
    char_counts = collections.Counter()
    for line in lines:
        char_counts.update(line)
    coverage = 1.0 if len(char_counts) <= _SMALL_CHARSET else 0.9995
    reserved = NUM_SPECIAL_TOKENS - 1 + len(_SENTENCEPIECE_USER_SYMBOLS)
    needed = _covered_char_count(char_counts, coverage) + reserved
    return dict(
        model_type=model_type,
        vocab_size=vocab_size,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_piece=SPECIAL_TOKENS[PAD_ID],
        unk_piece=SPECIAL_TOKENS[UNK_ID],
        bos_piece=SPECIAL_TOKENS[BOS_ID],
        eos_piece=SPECIAL_TOKENS[EOS_ID],
        user_defined_symbols=list(_SENTENCEPIECE_USER_SYMBOLS),
        # Byte fallback makes every text round-trip exactly, but its 256
        # pieces only fit a vocabulary that also holds the characters.
        byte_fallback=vocab_size >= max(_BYTE_FALLBACK_MIN_VOCAB, needed + 256),
        character_coverage=coverage,
        # No normalization and no dummy "▁" prefix: decode(encode(text))
        # must give back the text. (tf-text's decoder also drops a leading
        # space after a dummy prefix: " a" came back as "a".)
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        # Runs of spaces (code indentation) may become single pieces.
        allow_whitespace_only_pieces=True,
        split_digits=True,
        # One thread and no sentence sampling: the same corpus always gives
        # the same model.
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )


def _covered_char_count(char_counts, coverage):
    """How many of the most frequent characters cover ``coverage`` of text."""
    total = sum(char_counts.values())
    covered = 0
    for n, (_, count) in enumerate(char_counts.most_common(), start=1):
        covered += count
        if covered >= coverage * total:
            return n
    return len(char_counts)


def _train_sentencepiece_proto(texts, vocab_size, model_type):
    """Trains a SentencePiece model with the zoo's special pieces.

    keras_hub's ``compute_sentence_piece_proto`` wraps this same
    ``SentencePieceTrainer.train(sentence_iterator=..., model_writer=...)``
    call, but it cannot set the pad/unk/bos/eos ids' pieces, user-defined
    symbols or the normalization we need, so we call SentencePiece directly.

    Args:
        texts: the documents.
        vocab_size: the number of pieces.
        model_type: "unigram" or "bpe".

    Returns:
        The serialized model proto (bytes).
    """
    lines = list(_sentencepiece_lines(texts))
    options = _sentencepiece_options(lines, vocab_size, model_type)
    writer = io.BytesIO()
    spm.set_random_generator_seed(0)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=writer, **options
        )
    except RuntimeError as error:
        raise _explain_sentencepiece_error(error, vocab_size, options) from None
    return writer.getvalue()


def _explain_sentencepiece_error(error, vocab_size, options):
    """Rephrases SentencePiece's vocabulary-size errors as ValueErrors.

    Args:
        error: the RuntimeError raised by the trainer.
        vocab_size: the size asked for.
        options: the trainer options used.

    Returns:
        A ValueError for a vocabulary-size problem, else ``error`` itself.
    """
    message = str(error)
    kind = options["model_type"]
    too_high = re.search(r"Vocabulary size too high.*<= (\d+)", message)
    if too_high:
        return ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: the "
            f"{kind} trainer can build at most {too_high.group(1)} tokens"
        )
    too_low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if too_low:
        fallback = ", 256 byte-fallback pieces" if options["byte_fallback"] else ""
        return ValueError(
            f"vocab_size={vocab_size} is too small for this corpus: the "
            f"{kind} trainer needs at least {too_low.group(1)} tokens (special "
            f"tokens{fallback} and the corpus's characters)"
        )
    return error
