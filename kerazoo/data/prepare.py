"""``prepare_store``: a corpus read, split and tokenized once into a token store.

    corpus_pieces(source)           stream the corpus (kerazoo.data.sources)
    plan_split(...)                 pass 1: which document validates (kerazoo.data.plan), and in
                                    the same read a bounded, seeded sample trains the tokenizer
    encode on every core            pass 2: pieces -> ids in order (kerazoo.data.encoders)
    ShardWriter / finalize          shards, fsync, manifest last, rename (kerazoo.data.store)

Stores and trained tokenizers live under ``store.cache_dir()``; see the
``kerazoo.data.store`` docstring for the layout and the key.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from kerazoo.data import plan as plan_lib
from kerazoo.data import encoders, readers, sources, store
from kerazoo.data.stream import open_stream

DEFAULT_SAMPLE_BYTES = 20_000_000


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """How a corpus is read and split (the recipe's ``[data]``)."""

    source: str
    column: str = "text"
    boundary: str = "file"
    val_fraction: float = 0.1
    seed: int = 0
    split: str = "auto"


@dataclasses.dataclass(frozen=True)
class TokenizerSpec:
    """The tokenizer to train when none is given (the recipe's ``[tokenizer]``)."""

    kind: str = "unigram"
    vocab_size: object = None
    lowercase: bool = False
    sample_bytes: int = DEFAULT_SAMPLE_BYTES


@dataclasses.dataclass
class PreparedStore:
    """A ready token store.

    Attributes:
        path: the store folder.
        manifest: its manifest.
        tokenizer: the tokenizer its ids come from.
        built: True when this call built it, False when it was reused.
    """

    path: str
    manifest: dict
    tokenizer: object
    built: bool

    def stream(self, split):
        """A ``TokenStream`` of "train" or "val"."""
        return open_stream(self.path, split)


def corpus_fingerprint(spec):
    """The corpus identity a store key is made of: files with sizes and mtimes, or a built-in's name."""
    if spec.source.startswith(readers.BUILTIN_PREFIX):
        return {"builtin": spec.source, "python": sys.version.split()[0]}
    return {"files": sources.file_fingerprint(readers.corpus_files(spec.source))}


def tokenizer_fingerprint(tokenizer):
    """A hash of a tokenizer's config (without its layer name) and vocabulary files."""
    from kerazoo import text

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "t")
        text.save_tokenizer(tokenizer, folder)
        h = hashlib.sha256()
        for root, _, names in sorted(os.walk(folder)):
            for name in sorted(names):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    data = f.read()
                if name == "config.json":
                    config = json.loads(data)
                    config.get("config", {}).pop("name", None)
                    data = json.dumps(config, sort_keys=True).encode()
                h.update(os.path.relpath(path, folder).encode() + b"\0" + data)
    return h.hexdigest()[:20]


def _train_tokenizer(spec, tok_spec, get_plan, log):
    """Trains the tokenizer on a sample of the train split, or loads the one cached for this data."""
    from kerazoo import text

    folder = os.path.join(store.cache_dir(), "tokenizers",
                          store.digest([spec_key(spec), dataclasses.asdict(tok_spec)]))
    if os.path.isfile(os.path.join(folder, "config.json")):
        tokenizer = text.load_tokenizer(folder)
        log(f"tokenizer: {tok_spec.kind} with {tokenizer.vocabulary_size()} tokens, cached at {folder}")
        return tokenizer
    started = time.perf_counter()
    sample, taken = get_plan(tok_spec.sample_bytes).sample
    tokenizer = text.train_tokenizer(sample, tok_spec.kind, tok_spec.vocab_size, lowercase=tok_spec.lowercase,
                                     max_size=True)
    achieved = tokenizer.vocabulary_size()
    asked = f" (asked for {tok_spec.vocab_size})" if tok_spec.vocab_size and achieved < tok_spec.vocab_size else ""
    log(f"tokenizer: trained {tok_spec.kind} with {achieved} tokens{asked} on a sample of {taken:,} bytes "
        f"(tokenizer.sample_bytes={tok_spec.sample_bytes:,}) in {time.perf_counter() - started:.1f}s")
    text.save_tokenizer(tokenizer, folder)
    return tokenizer


def spec_key(spec):
    """The key of a corpus as read and split (fingerprint + settings)."""
    return store.digest({"format": store.FORMAT, "corpus": corpus_fingerprint(spec), **dataclasses.asdict(spec)})


def prepare_store(spec, tokenizer=None, tokenizer_spec=None, log=print, workers=None, shard_tokens=None):
    """Builds (or reuses) the token store of a corpus and a tokenizer.

    Args:
        spec: a ``CorpusSpec``.
        tokenizer: the tokenizer to encode with; None trains one from
            ``tokenizer_spec`` on a sample of the train split (cached).
        tokenizer_spec: a ``TokenizerSpec`` (when ``tokenizer`` is None).
        log: where progress lines go.
        workers: encoding threads (default: every core).
        shard_tokens: tokens per shard (default ``KERAZOO_SHARD_TOKENS`` or
            ``store.SHARD_TOKENS``).

    Returns:
        A ``PreparedStore``.

    Raises:
        ValueError: a bad corpus (naming the file and line), a corpus too
            small to split, or a corpus that changed while being prepared.
    """
    pieces = lambda: readers.corpus_pieces(spec.source, spec.column, spec.boundary)  # noqa: E731
    cached_plan = []

    def get_plan(sample_bytes=None):
        # One read of the corpus plans the split (and draws the tokenizer's sample when asked).
        if not cached_plan:
            started = time.perf_counter()
            cached_plan.append(plan_lib.plan_split(pieces(), spec.val_fraction, spec.seed, spec.split, sample_bytes))
            plan = cached_plan[0]
            log(f"token store: planned a {plan.mode} split of {len(plan.keep):,} documents "
                f"({plan.total_bytes / 1e6:,.1f} MB) in {time.perf_counter() - started:.1f}s"
                + (" with the tokenizer's sample" if sample_bytes is not None else ""))
        return cached_plan[0]

    fingerprint = corpus_fingerprint(spec)
    if tokenizer is None:
        tokenizer = _train_tokenizer(spec, tokenizer_spec or TokenizerSpec(), get_plan, log)
    key = f"{spec_key(spec)}-{tokenizer_fingerprint(tokenizer)}"
    root = os.path.join(store.cache_dir(), "stores")
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, key)
    with store.Lock(final + ".lock"):
        if os.path.isdir(final):
            reason = store.verify(final)
            if reason is None:
                with open(os.path.join(final, "manifest.json")) as f:
                    manifest = json.load(f)
                log(f"token store: reusing {final}")
                return PreparedStore(final, manifest, tokenizer, False)
            log(f"token store: {final} is damaged ({reason}); rebuilding it")
            shutil.rmtree(final)
        shard_tokens = shard_tokens or int(os.environ.get("KERAZOO_SHARD_TOKENS", store.SHARD_TOKENS))
        try:
            manifest = _build(final, spec, fingerprint, tokenizer, get_plan, pieces, log, workers, shard_tokens)
        except OSError as e:  # disk full, permissions: the partial folder is never read as a store
            raise RuntimeError(f"preparing the token store {final} failed: {e}") from None
    return PreparedStore(final, manifest, tokenizer, True)


def _build(final, spec, fingerprint, tokenizer, get_plan, pieces, log, workers, shard_tokens):
    """Writes a store into ``<final>.partial`` (continuing a killed build) and renames it into place."""
    staging = final + ".partial"
    os.makedirs(staging, exist_ok=True)
    done = store.finished_shards(staging)
    start_doc = done[-1]["end_doc"] if done else 0
    plan = get_plan()
    if done:
        log(f"token store: resuming a killed prepare after {len(done)} finished shards ({start_doc:,} documents)")
    dtype = "uint16" if tokenizer.vocabulary_size() <= 1 << 16 else "uint32"
    workers = workers or os.cpu_count() or 1
    progress = store.Progress(plan.total_bytes)
    encoder = encoders.Encoder(tokenizer, workers)
    shards = list(done)
    state = _Writing(store.ShardWriter(staging, len(done), dtype), start_doc, shards, staging, dtype, shard_tokens)
    started = time.perf_counter()
    items = plan_lib.split_items(pieces(), plan, start_doc)
    for batch, flat, lengths in encoders.encoded_batches(encoder, items):
        progress.update(state.write(batch, flat, lengths))
    writer = state.writer
    shards.append(writer.close(len(plan.keep)))
    progress.close()
    if corpus_fingerprint(spec) != fingerprint:
        shutil.rmtree(staging)
        raise ValueError(f"the corpus {spec.source} changed while being prepared (a file's size or mtime); "
                         "prepare it again once it is complete")
    totals = store.split_totals(shards)
    manifest = {
        "format": store.FORMAT, "key": os.path.basename(final), "corpus": fingerprint,
        "data": dataclasses.asdict(spec), "split_mode": plan.mode, "skipped_blank_documents": plan.skipped,
        "tokenizer": {"fingerprint": tokenizer_fingerprint(tokenizer), "class": type(tokenizer).__name__,
                      "vocabulary_size": tokenizer.vocabulary_size()},
        "dtype": dtype, "shards": shards, "totals": totals, "encoder": encoder.engine,
    }
    store.finalize(staging, final, manifest)
    seconds = time.perf_counter() - started
    log(f"token store: built {final}: {totals['train']['tokens']:,} train / {totals['val']['tokens']:,} "
        f"validation tokens in {len(shards)} shard(s); encoded {progress.done / 1e6:.1f} MB in {seconds:.1f}s "
        f"({progress.done / 1e6 / max(seconds, 1e-9):.2f} MB/s, {encoder.engine} on {encoder.workers} threads)"
        + (f"; skipped {plan.skipped:,} blank documents" if plan.skipped else ""))
    return manifest


class _Writing:
    """Writes encoded batches into shards, closing a shard at the first document boundary past its size.

    One batch is split, offset and written with NumPy (a few calls per batch,
    not per document): per-document Python work would cost as much as the
    encoding itself on corpora of short documents.
    """

    def __init__(self, writer, last_doc, shards, staging, dtype, shard_tokens):
        self.writer, self.last_doc, self.shards = writer, last_doc, shards
        self.staging, self.dtype, self.shard_tokens = staging, dtype, shard_tokens

    def write(self, batch, flat, lengths):
        """Writes one batch's ids (``</s>`` before each document's first piece); returns its UTF-8 bytes."""
        from kerazoo.text.packing import DOCUMENT_START_ID

        n = len(batch)
        docs = np.fromiter((item[0] for item in batch), np.int64, n)
        sides = np.fromiter((item[1] for item in batch), np.int8, n)
        firsts = np.fromiter((item[2] for item in batch), bool, n)
        # isascii() is O(1): most text skips the encode that counts UTF-8 bytes.
        n_bytes = np.fromiter((len(t) if t.isascii() else len(t.encode("utf-8")) for *_, t in batch), np.int64, n)
        # Each piece's ids move right by the document starts before it (and its own): one scatter.
        lengths = np.asarray(lengths, np.int64) + firsts
        ends = np.cumsum(lengths)
        out = np.full(int(ends[-1]), DOCUMENT_START_ID, flat.dtype)
        shift = np.repeat(np.cumsum(firsts), lengths - firsts)
        out[np.arange(len(flat)) + shift] = flat
        flat = out
        token_sides = np.repeat(sides, lengths)
        new_doc = docs != np.concatenate([[self.last_doc], docs[:-1]])
        a = 0
        while a < n:
            before = self.writer.tokens + ends[a:] - lengths[a:] - (ends[a] - lengths[a])
            cut = np.nonzero(new_doc[a:] & (before >= self.shard_tokens))[0]
            b = a + int(cut[0]) if len(cut) else n
            for side in (0, 1):
                mask = sides[a:b] == side
                if mask.any():
                    lo, hi = ends[a] - lengths[a], ends[b - 1]
                    ids = flat[lo:hi][token_sides[lo:hi] == side]
                    self.writer.add(store.SPLITS[side], ids, lengths[a:b][mask], firsts[a:b][mask],
                                    n_bytes[a:b][mask])
            if b < n:
                self.shards.append(self.writer.close(int(docs[b])))
                self.writer = store.ShardWriter(self.staging, len(self.shards), self.dtype)
            a = b
        self.last_doc = int(docs[-1])
        return int(n_bytes.sum())
