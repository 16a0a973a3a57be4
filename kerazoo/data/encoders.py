"""Batch encoders for ``prepare``: text pieces -> token ids, on every core, in order.

Two engines give the ids:

- ``"sentencepiece"``: the ``sentencepiece`` library's own encoder with a
  thread per core (``SentencePieceProcessor.encode(..., num_threads=N)``),
  for the zoo's ``bpe`` tokenizers. It holds the GIL while it encodes, so a
  call takes a whole batch of pieces and the library spreads it over its
  threads.
- ``"tf_text"``: the tokenizer layer's own TensorFlow op, for every other kind
  (``unigram`` included). TensorFlow releases the GIL, so one Python thread
  per core runs a batch each.

Why only ``bpe`` uses the library: the store must hold the ids the layer (and
so the exported graph) gives. TF Text bundles its own copy of SentencePiece.
For BPE the two give the same ids (``tests/data/test_encoders.py``). For unigram they break ties between segmentations
of equal score differently: on CPython's docs, "*" x 19 is 10 + 9 stars for
the op and 9 + 10 for the library (both sums -17.39), so some ids differ
there. Unigram therefore keeps the op.
"""

import collections
import concurrent.futures
import itertools

import numpy as np

# Pieces per tokenizer call.
TF_BATCH_PIECES = 2048
TF_BATCH_CHARS = 1 << 20
# The op encodes pieces of tens of thousands of characters about twice as fast
# as pieces of 1 M (the library's BPE about 1.5x), so longer pieces are cut
# after a newline into parts of about this size for the kinds whose pieces
# never cross a newline (``CUT_KINDS``). bpe, char, byte and wordpiece ids are
# unchanged; unigram's are the layer's ids of each part, which differ from the
# layer on the whole text only where two segmentations score the same
# (tests/data/test_encoders.py, docs/data.md).
CUT_CHARS = 1 << 15
CUT_KINDS = ("unigram", "bpe", "char", "byte", "wordpiece")
# The library spreads one call over its threads: a call needs several pieces
# per thread, and its Python lists of ids bound how large it may be.
SP_BATCH_PIECES = 8192
SP_BATCH_CHARS_PER_THREAD = 2 << 20


class Encoder:
    """Encodes batches of texts for one tokenizer.

    Attributes:
        engine: "sentencepiece" or "tf_text" (reported in the log and the manifest).
        workers: threads encoding.
    """

    def __init__(self, tokenizer, workers):
        self.tokenizer, self.workers = tokenizer, max(1, workers)
        self.processor = sentencepiece_processor(tokenizer)
        self.engine = "sentencepiece" if self.processor is not None else "tf_text"
        self.cut_chars = CUT_CHARS if _kind(tokenizer) in CUT_KINDS else 0
        if self.processor is not None:
            self.batch_pieces, self.batch_chars = SP_BATCH_PIECES, SP_BATCH_CHARS_PER_THREAD * self.workers
        else:
            self.batch_pieces, self.batch_chars = TF_BATCH_PIECES, TF_BATCH_CHARS

    def encode(self, texts):
        """Token ids of a list of texts as ``(flat int32 ids, row lengths)``.

        Args:
            texts: a list of str.

        Returns:
            ``(flat, lengths)``: NumPy arrays; text ``i``'s ids are
            ``flat[sum(lengths[:i]):sum(lengths[:i + 1])]``.
        """
        if not self.cut_chars:
            return self._encode(texts)
        parts, owners = [], []
        for i, text in enumerate(texts):
            for part in cut_after_newlines(text, self.cut_chars):
                parts.append(part)
                owners.append(i)
        flat, part_lengths = self._encode(parts)
        return flat, np.bincount(owners, part_lengths, len(texts)).astype(np.int64)

    def _encode(self, texts):
        if self.processor is None:
            return _encode_tf(self.tokenizer, texts)
        if self.tokenizer.lowercase:
            texts = [t.decode("utf-8") for t in _case_fold(texts)]
        out = self.processor.encode(texts, num_threads=self.workers)
        lengths = np.fromiter(map(len, out), np.int64, len(out))
        return np.fromiter(itertools.chain.from_iterable(out), np.int32, int(lengths.sum())), lengths


def _kind(tokenizer):
    """The zoo kind of a tokenizer layer ("unigram", "bpe", "char", ...), or None for others."""
    from kerazoo import text

    if isinstance(tokenizer, text.SentencePieceTokenizer):
        return tokenizer.kind
    for kind, cls in (("char", text.CharTokenizer), ("byte", text.ByteTokenizer),
                      ("wordpiece", text.WordPieceTokenizer)):
        if type(tokenizer) is cls:
            return kind
    return None


def cut_after_newlines(text, size):
    """``text`` in parts of at least ``size`` characters, each cut just after a newline.

    A line longer than ``size`` stays whole; the parts join back to ``text``.
    """
    if len(text) <= size:
        return [text]
    parts, start = [], 0
    while start < len(text):
        end = text.find("\n", start + size - 1)
        end = len(text) if end < 0 else end + 1
        parts.append(text[start:end])
        start = end
    return parts


def sentencepiece_processor(tokenizer):
    """The ``sentencepiece`` library's processor for a zoo ``bpe`` tokenizer, else None.

    Only a plain tokenizer qualifies: one that adds no BOS/EOS and pads to no
    fixed length (what ``prepare`` encodes with); anything else keeps the op.
    """
    from kerazoo.text.sentencepiece import SentencePieceTokenizer

    if not isinstance(tokenizer, SentencePieceTokenizer) or tokenizer.proto is None or tokenizer.kind != "bpe":
        return None
    if tokenizer.add_bos or tokenizer.add_eos or tokenizer.sequence_length:
        return None
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=tokenizer.proto)


def _case_fold(texts):
    """The layer's own case folding (TF Text's NFKC_Casefold op), as UTF-8 bytes."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    return tf_text.case_fold_utf8(tf.constant(texts)).numpy()


def _encode_tf(tokenizer, texts):
    """The layer's op on a batch: ``(flat ids, row lengths)``."""
    import tensorflow as tf

    out = tokenizer.tokenize(tf.constant(texts))
    if hasattr(out, "flat_values"):
        return out.flat_values.numpy(), out.row_lengths().numpy()
    out = out.numpy()
    return out.reshape(-1), np.full(len(texts), out.shape[1])


def batches(items, max_pieces, max_chars):
    """Items ``(doc, side, first, text)`` grouped into tokenizer calls of bounded size."""
    batch, chars = [], 0
    for item in items:
        batch.append(item)
        chars += len(item[3])
        if len(batch) >= max_pieces or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def encoded_batches(encoder, items):
    """``(batch, flat ids, lengths)`` in order, the encoding running beside the reading.

    The op's engine runs one batch per thread; the library's runs one batch at
    a time on all its threads. At most two batches per thread are in flight,
    which bounds memory.

    Args:
        encoder: an ``Encoder``.
        items: ``(doc, side, first, text)`` tuples (``plan.split_items``).

    Yields:
        ``(batch, flat, lengths)``: the items of one call and their ids.
    """
    threads = encoder.workers if encoder.processor is None else 1
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        pending = collections.deque()
        for batch in batches(items, encoder.batch_pieces, encoder.batch_chars):
            pending.append((batch, pool.submit(encoder.encode, [item[3] for item in batch])))
            if len(pending) > 2 * threads:
                batch, future = pending.popleft()
                yield (batch, *future.result())
        while pending:
            batch, future = pending.popleft()
            yield (batch, *future.result())
