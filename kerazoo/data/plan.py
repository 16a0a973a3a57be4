"""The streaming split: which document goes to train and which to validation.

``split_corpus`` needs every document in memory. ``plan_split`` reads the
corpus once as a stream and keeps only what the split needs (one byte per
document, the held-out mask, character and byte totals); ``split_items``
then streams the corpus a second time and labels every piece with its side.
The result is the same split as ``split_corpus(read_corpus(...))``: the same
blank documents dropped, the same seeded shuffle, the same tail cut.

The same first pass can also draw the tokenizer's training sample
(``plan_split(..., sample_bytes=N)``), so that a prepare that trains its
tokenizer reads the corpus twice (plan + sample, then encode), not three times.
"""

import dataclasses
import heapq

import numpy as np

from kerazoo.data.splits import MIN_DOCS_TO_SHUFFLE, SPLIT_MODES

TRAIN, VAL = 0, 1


@dataclasses.dataclass
class SplitPlan:
    """What the second pass needs to split a streamed corpus.

    Attributes:
        keep: one byte per document read, 1 for a non-blank one (kept).
        val: for a shuffled split, one bool per kept document (True: held out);
            None for a tail split.
        mode: "shuffle" or "tail" (what "auto" resolved to).
        cut_chars: tail split: characters of the kept text that train.
        total_bytes: UTF-8 bytes of everything read (for progress and sampling).
        train_fraction: the share of the text that trains.
        sample: ``(texts, sampled_bytes)`` drawn by ``plan_split`` when it was
            given ``sample_bytes``, else None.
    """

    keep: np.ndarray
    val: object
    mode: str
    cut_chars: int
    total_bytes: int
    train_fraction: float
    sample: object = None

    @property
    def skipped(self):
        """Blank documents dropped."""
        return int(len(self.keep) - self.keep.sum())


def _documents(pieces, sampler=None):
    """Per document: (non-blank, characters, bytes), streamed from the pieces.

    ``sampler`` (a ``PassSample``) is offered every piece with its position:
    the document's index and the characters of non-blank documents before it.
    """
    blank, chars, size, started, doc, kept_chars = True, 0, 0, False, 0, 0
    for first, text in pieces:
        if first and started:
            yield not blank, chars, size
            kept_chars += chars if not blank else 0
            blank, chars, size, doc = True, 0, 0, doc + 1
        started = True
        if sampler is not None:
            sampler.offer(doc, kept_chars + chars, text)
        blank = blank and not text.strip()
        chars += len(text)
        size += len(text.encode("utf-8"))
    if started:
        yield not blank, chars, size


class PassSample:
    """A seeded, bounded sample of pieces drawn while the corpus streams past once.

    Every piece gets a seeded random key; the pieces with the smallest keys
    are kept within ``budget`` bytes (a bottom-k sample, so it needs no total
    in advance). Which pieces train is only known at the end of the pass, so
    ``texts`` then drops validation and blank documents and cuts at the tail
    split. A corpus under the budget is kept whole: its sample is the whole
    train split, as ``tokenizer_sample`` gives.

    Args:
        budget: the most UTF-8 bytes held (0: no limit).
        seed: seed of the keys.
    """

    def __init__(self, budget, seed=0):
        self.budget, self.rng = budget, np.random.default_rng(seed)
        self.heap, self.bytes, self.count, self.keys = [], 0, 0, iter(())

    def _key(self):
        key = next(self.keys, None)
        if key is None:
            self.keys = iter(self.rng.random(4096).tolist())
            key = next(self.keys)
        return key

    def offer(self, doc, char_start, text):
        """Considers one piece (document ``doc``, ``char_start`` kept characters before it)."""
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        heapq.heappush(self.heap, (-self._key(), self.count, doc, char_start, text, size))
        self.count += 1
        self.bytes += size
        while self.budget and self.bytes > self.budget and len(self.heap) > 1:
            self.bytes -= heapq.heappop(self.heap)[5]

    def texts(self, plan, sample_bytes):
        """The sampled training text in corpus order, at most ``sample_bytes`` (the crossing piece included).

        Returns:
            ``(texts, sampled_bytes)``.
        """
        held = sorted(self.heap, key=lambda item: item[1])
        kept_before = np.cumsum(plan.keep, dtype=np.int64) - 1 if plan.val is not None else None
        texts, taken = [], 0
        for _, _, doc, start, text, size in held:
            if not plan.keep[doc]:
                continue
            if plan.val is not None:
                if plan.val[kept_before[doc]]:
                    continue
            elif start >= plan.cut_chars:
                continue
            elif start + len(text) > plan.cut_chars:
                text = text[: plan.cut_chars - start]
                size = len(text.encode("utf-8"))
            texts.append(text)
            taken += size
            if sample_bytes and taken >= sample_bytes:
                break
        return texts, taken


def plan_split(pieces, val_fraction=0.1, seed=0, mode="auto", sample_bytes=None):
    """Reads a corpus stream once and decides its split (``split_corpus``'s rules).

    Args:
        pieces: an iterable of ``(starts_document, text)`` (``readers.corpus_pieces``).
        val_fraction: share held out, in (0, 1).
        seed: seed of the shuffled split.
        mode: "auto", "shuffle" or "tail" (see ``split_corpus``).
        sample_bytes: when not None, also draw a tokenizer sample of at most
            this many bytes of the train split in the same pass (``PassSample``,
            seeded by ``seed``; 0: the whole train split) into ``plan.sample``.

    Returns:
        A ``SplitPlan``.

    Raises:
        ValueError: an empty corpus, a bad mode or fraction, or a corpus too
            small to split.
    """
    if mode not in SPLIT_MODES:
        raise ValueError(f"unknown split mode '{mode}'; valid: {', '.join(SPLIT_MODES)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    # The budget allows for the validation share, which is only known at the end.
    sampler = None if sample_bytes is None else PassSample(
        int(sample_bytes / (1.0 - val_fraction) * 1.05) if sample_bytes else 0, seed)
    keep, kept_chars, total_bytes = bytearray(), 0, 0
    for non_blank, chars, size in _documents(pieces, sampler):
        keep.append(1 if non_blank else 0)
        kept_chars += chars if non_blank else 0
        total_bytes += size
    keep = np.frombuffer(bytes(keep), np.uint8)
    n = int(keep.sum())
    if n == 0:
        raise ValueError("the corpus is empty: it holds no text")
    if mode == "auto":
        mode = "shuffle" if n >= MIN_DOCS_TO_SHUFFLE else "tail"
    if mode == "shuffle":
        if n < 2:
            raise ValueError(f"data.split = \"shuffle\" needs at least 2 documents, the corpus has {n}; "
                             "use data.split = \"auto\" or \"tail\"")
        order = np.random.default_rng(seed).permutation(n)
        n_val = max(1, int(round(n * val_fraction)))
        val = np.zeros(n, bool)
        val[order[:n_val]] = True
        if val.all():
            raise ValueError("the corpus is too small to split into train and validation")
        return _with_sample(SplitPlan(keep, val, mode, 0, total_bytes, 1.0 - n_val / n), sampler, sample_bytes)
    cut = int(round(kept_chars * (1.0 - val_fraction)))
    if cut <= 0 or cut >= kept_chars:
        raise ValueError("the corpus is too small to split into train and validation")
    return _with_sample(SplitPlan(keep, None, mode, cut, total_bytes, cut / kept_chars), sampler, sample_bytes)


def _with_sample(plan, sampler, sample_bytes):
    if sampler is not None:
        plan.sample = sampler.texts(plan, sample_bytes)
    return plan


def split_items(pieces, plan, start_doc=0):
    """Streams the corpus again, each piece labelled with its side of the split.

    Args:
        pieces: the same stream ``plan_split`` read.
        plan: its ``SplitPlan``.
        start_doc: skip the documents before this index (a resumed prepare).

    Yields:
        ``(doc_index, side, starts_document, text)``; ``side`` is ``TRAIN`` or
        ``VAL``. A tail split's cut document gives its two halves as two
        documents, as ``split_corpus`` does.

    Raises:
        ValueError: the corpus holds another number of documents than when
            it was planned (it changed while being prepared).
    """
    doc, kept, seen, val_started = -1, -1, 0, False
    for first, text in pieces:
        if first:
            doc += 1
            if doc >= len(plan.keep):
                raise ValueError("the corpus changed while being prepared: it now holds more documents")
            val_started = False
            if plan.keep[doc]:
                kept += 1
        if not plan.keep[doc]:
            continue
        if plan.val is not None:
            side = VAL if plan.val[kept] else TRAIN
            if doc >= start_doc:
                yield doc, side, first, text
            continue
        # Tail split: characters before the cut train, the rest validate.
        train_part = text[: max(0, plan.cut_chars - seen)]
        seen += len(text)
        if doc < start_doc:
            continue
        if train_part:
            yield doc, TRAIN, first, train_part
        if len(train_part) < len(text):
            yield doc, VAL, not val_started, text[len(train_part):]
            val_started = True
    if doc + 1 != len(plan.keep):
        raise ValueError("the corpus changed while being prepared: it now holds fewer documents")


def tokenizer_sample(items, plan, sample_bytes, seed=0):
    """A bounded, seeded sample of the training text to train a tokenizer on.

    Every training piece is taken with probability ``sample_bytes`` over the
    training bytes (all of them when the training text is smaller), until
    ``sample_bytes`` are taken. Pieces end after a newline, so a tokenizer
    trained on them sees the same lines as on whole documents.

    Args:
        items: ``split_items`` of the corpus.
        plan: its ``SplitPlan``.
        sample_bytes: the most UTF-8 bytes to take (0: no limit).
        seed: seed of the draws.

    Returns:
        ``(texts, sampled_bytes)``.
    """
    train_bytes = plan.total_bytes * plan.train_fraction
    rate = 1.0 if not sample_bytes or train_bytes <= sample_bytes else sample_bytes / train_bytes
    rng = np.random.default_rng(seed)
    texts, taken = [], 0
    for _, side, _, text in items:
        if side != TRAIN or (rate < 1.0 and rng.random() >= rate):
            continue
        texts.append(text)
        taken += len(text.encode("utf-8"))
        if sample_bytes and taken >= sample_bytes:
            break
    return texts, taken
