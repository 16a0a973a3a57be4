"""Row stores: labelled rows and source/target pairs tokenized once, read back in bounded memory.

What the token store (``kerazoo.data.store``) is for documents, a row store
is for the classifier's (text, label) rows and seq2seq's (source, target)
pairs: rows stream from the readers (``sources.file_rows``), each row's side
of the split is a seeded hash of its index (``row_side``: no list of the
corpus, no permutation), a bounded sample trains the tokenizer, and one pass
tokenizes every row into shards that training reads row by row.

Layout of one store, ``<cache>/rows/<key>/``::

    manifest.json                 written last: corpus, tokenizer, split, fields, labels, row counts
    <field>/                      one token store per tokenized field ("text", or "source" and "target"):
        manifest.json, shard-NNNNN.{train,val}.bin, .docs.bin, shard-NNNNN.json  -- a row is a document
    <field>_text/                 the raw UTF-8 of validation rows a task shows (seq2seq references)
    label/                        the label id of each row, a one-id document (classify)

The key hashes the corpus fingerprint (files, sizes, mtimes), the reading
and split settings and the tokenizer's fingerprint, as ``prepare.spec_key``
does. A store is built in ``<key>.partial/`` and renamed into place after its
manifest (``store.finalize``). The build is resumable as ``prepare``'s is:
every folder is cut into shards at the same rows (``row_shards``), and a
killed build keeps the finished shards, checked, and continues from the
next row. Opening checks every file's size and checksum: a damaged store is
rebuilt, never read.
"""

import json
import os
import shutil
import time

import numpy as np

from kerazoo.data import encoders, row_shards, store
from kerazoo.data.stream import TokenStream

# 2: shards cut at rows (resumable), labels in a "label" folder.
FORMAT = 2
TRAIN, VAL = "train", "val"
# Distinct labels a classifier may have: a label column holding free text
# (the wrong column) is refused after this many instead of growing without bound.
MAX_LABELS = 1000
_MASK = (1 << 64) - 1


def row_hash(index, seed):
    """A splitmix64 hash of ``(seed, index)``: a uniform 64-bit integer."""
    x = (index + (seed + 1) * 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def row_side(index, seed, val_fraction):
    """The split of row ``index``: "val" for a seeded ``val_fraction`` of the rows, else "train".

    The row's hash (``row_hash``) compared with ``val_fraction``: decided row
    by row as the rows stream, in constant memory, and a row keeps its side
    when rows are appended to the file.
    """
    return VAL if row_hash(index, seed) < val_fraction * 2.0 ** 64 else TRAIN


def smallest_hash(n, seed):
    """The index of the row with the smallest hash among ``n``: the one held out when the hash held out none."""
    return min(range(n), key=lambda i: row_hash(i, seed))


def sided(rows, val_rows=None, val_fraction=0.1, seed=0, force_val=None):
    """``(side, row)`` of a source split by ``row_side``, or of a source and a separate validation source.

    Args:
        rows: the source's rows.
        val_rows: the rows of a separate validation source, or None.
        val_fraction, seed: the split (``row_side``).
        force_val: the index of a row held out whatever its hash (``smallest_hash``).
    """
    if val_rows is None:
        for i, row in enumerate(rows):
            yield (VAL if i == force_val else row_side(i, seed, val_fraction)), row
        return
    for row in rows:
        yield TRAIN, row
    for row in val_rows:
        yield VAL, row


class Survey:
    """What one streaming pass learns before building: row counts, train bytes, labels, a tokenizer sample.

    Args:
        sided_rows: ``(side, row)`` pairs (``sided``).
        n_fields: how many leading values of a row are text to tokenize.
        labelled: the last value of a row is a label (collected, capped at ``MAX_LABELS``).
        sample_bytes: keep the training texts up to this many bytes (0: all;
            None: none, a tokenizer is given).
        where: the source, for errors.
    """

    def __init__(self, sided_rows, n_fields, labelled, sample_bytes, where):
        self.rows = {TRAIN: 0, VAL: 0}
        self.train_bytes, labels, seen = 0, set(), set()
        self.sample = [[] for _ in range(n_fields)]
        taken = 0
        for side, row in sided_rows:
            self.rows[side] += 1
            if labelled:
                # The cap counts both sides: which side a label lands on must not decide the error.
                seen.add(row[-1])
                if len(seen) > MAX_LABELS:
                    raise ValueError(f"{where}: the label column holds more than {MAX_LABELS:,} distinct labels "
                                     "(is it the text column?); a classifier takes at most that many")
            if side != TRAIN:
                continue
            if labelled:
                labels.add(row[-1])
            size = sum(len(t.encode("utf-8")) for t in row[:n_fields])
            self.train_bytes += size
            if sample_bytes is not None and (not sample_bytes or taken < sample_bytes):
                for field, text in zip(self.sample, row):
                    field.append(text)
                taken += size
        self.taken = taken
        self.complete = not sample_bytes or self.train_bytes <= sample_bytes  # None: nothing sampled
        self.labels = sorted(labels)


def tokenizer_sample(sided_rows, survey, n_fields, sample_bytes, seed):
    """The tokenizer's training texts: every train row's fields, or a seeded sample of about ``sample_bytes``.

    Texts come field by field (all sources, then all targets), as the
    in-memory path listed them.
    """
    if survey.complete:
        return [t for field in survey.sample for t in field], survey.taken
    rate = sample_bytes / survey.train_bytes
    rng, out, taken = np.random.default_rng(seed), [[] for _ in range(n_fields)], 0
    for side, row in sided_rows:
        if side != TRAIN or rng.random() >= rate:
            continue
        for field, text in zip(out, row):
            field.append(text)
        taken += sum(len(t.encode("utf-8")) for t in row[:n_fields])
        if taken >= sample_bytes:
            break
    return [t for field in out for t in field], taken


def check_sides(counts, where, what="rows", val_where=""):
    """Refuses a split with an empty side (one clear line)."""
    if not counts[TRAIN] and not counts[VAL]:
        raise ValueError(f"{where} is empty: it holds no {what}")
    if val_where and not counts[VAL]:
        raise ValueError(f"{val_where} is empty: it holds no {what}")
    if not counts[TRAIN] or not counts[VAL]:
        empty = "training" if not counts[TRAIN] else "validation"
        raise ValueError(f"{where}: no {what} fell in the {empty} split ({counts[TRAIN] + counts[VAL]:,} {what}, "
                         "data.val_fraction); give more rows, another data.val_fraction or a data.val_source")


class RowField:
    """One tokenized field of one split: row ``i`` is the ids of the ``i``-th document of a token store."""

    def __init__(self, folder, split):
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        self.stream = TokenStream(folder, manifest, split)
        # Per shard holding rows of this split: (first row, rows, first token, tokens, offsets file).
        self._shards, row, token = [], 0, 0
        for shard in manifest["shards"]:
            s = shard[split]
            if s["docs"]:
                fd = os.open(os.path.join(folder, s["docs_file"]), os.O_RDONLY)
                self._shards.append((row, s["docs"], token, s["tokens"], fd))
            row, token = row + s["docs"], token + s["tokens"]
        self.n, self.n_tokens = row, token
        self._firsts = np.asarray([sh[0] for sh in self._shards], np.int64)

    def __len__(self):
        return self.n

    def spans(self, start, stop):
        """Token ``(starts, ends)`` of rows ``[start, stop)`` (one read of the offsets index per shard)."""
        stop = min(stop, self.n)
        starts, ends = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        k = max(int(np.searchsorted(self._firsts, start, side="right")) - 1, 0)
        while start < stop and k < len(self._shards) and self._shards[k][0] < stop:
            first, n, base, n_tokens, fd = self._shards[k]
            a, b = max(start, first) - first, min(stop, first + n) - first
            raw = os.pread(fd, (min(b + 1, n) - a) * 16, a * 16)
            firsts = np.frombuffer(raw, np.int64)[0::2]
            if b == n:  # the shard's last row ends where its stream does
                firsts = np.append(firsts, n_tokens)
            starts.append(firsts[:-1] + base)
            ends.append(firsts[1:] + base)
            k += 1
        return np.concatenate(starts), np.concatenate(ends)

    def rows(self, start, stop):
        """The ids of rows ``[start, stop)``: a list of int32 arrays (one read of their tokens)."""
        starts, ends = self.spans(start, stop)
        if not len(starts):
            return []
        flat = self.stream.read(int(starts[0]), int(ends[-1]))
        return [flat[a - starts[0]:b - starts[0]] for a, b in zip(starts, ends)]

    def row(self, i):
        """The ids of row ``i`` (int32)."""
        return self.rows(i, i + 1)[0]

    def lengths(self, chunk=1 << 20):
        """Yields the token counts of all rows, ``chunk`` rows at a time (bounded memory)."""
        for start in range(0, self.n, chunk):
            starts, ends = self.spans(start, start + chunk)
            yield ends - starts


class RowStore:
    """A ready row store.

    Attributes:
        path: the store folder.
        manifest: its manifest.
        tokenizer: the tokenizer its ids come from.
        built: True when this call built it, False when it was reused.
    """

    def __init__(self, path, manifest, tokenizer, built):
        self.path, self.manifest, self.tokenizer, self.built = path, manifest, tokenizer, built
        self.label_names = manifest.get("labels", [])
        self._label_streams = {}

    def field(self, name, split):
        """A ``RowField`` of a tokenized field ("text", "source", "target") in "train" or "val"."""
        return RowField(os.path.join(self.path, name), split)

    def texts(self, name, split, start, stop):
        """The stored raw texts of rows ``[start, stop)`` of a field kept as text."""
        return [bytes(r.astype(np.uint8)).decode("utf-8") for r in self.field(name + "_text", split).rows(start, stop)]

    def labels(self, split, start=0, stop=None):
        """Label ids of rows ``[start, stop)`` of a split (int32), read from the file (never held whole)."""
        n = self.manifest["rows"][split]
        stop = n if stop is None else min(stop, n)
        if split not in self._label_streams:  # one id per row: row i is token i
            with open(os.path.join(self.path, "label", "manifest.json")) as f:
                self._label_streams[split] = TokenStream(os.path.join(self.path, "label"), json.load(f), split)
        return self._label_streams[split].read(start, max(stop, start))


def verify(folder):
    """Why a row store cannot be read, or None when it is intact (``store.verify`` for each field)."""
    manifest, reason = store.load_manifest(folder, FORMAT)
    if reason:
        return reason
    try:
        for name in manifest["folders"]:
            reason = store.verify(os.path.join(folder, name))
            if reason:
                return f"{name}: {reason}"
    except (OSError, KeyError, TypeError) as e:
        return f"damaged ({e})"
    return None


def open_or_build(key, describe, build, log):
    """Reuses the intact row store ``key`` or builds it (under a lock; a damaged one is rebuilt).

    Args:
        key: the store's key (``<cache>/rows/<key>``).
        describe: a short name for log lines.
        build: ``build(staging_folder) -> manifest`` writes a store's files,
            continuing what a killed build left in the staging folder.
        log: where progress lines go.

    Returns:
        ``(folder, manifest, built)``.
    """
    root = os.path.join(store.cache_dir(), "rows")
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, key)
    with store.Lock(final + ".lock"):
        if os.path.isdir(final):
            reason = verify(final)
            if reason is None:
                with open(os.path.join(final, "manifest.json")) as f:
                    manifest = json.load(f)
                log(f"row store: reusing {final}")
                return final, manifest, False
            log(f"row store: {final} is damaged ({reason}); rebuilding it")
            shutil.rmtree(final)
        staging = final + ".partial"
        os.makedirs(staging, exist_ok=True)  # a killed build's shards stay: build continues them
        started = time.perf_counter()
        try:
            manifest = build(staging)
            manifest.update(format=FORMAT, key=key)
            store.finalize(staging, final, manifest)
        except OSError as e:  # disk full, permissions: the partial folder is never read as a store
            raise RuntimeError(f"preparing the row store {final} failed: {e}") from None
        except ValueError:  # bad input: nothing of it is kept
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log(f"row store: built {final} ({describe}): {manifest['rows'][TRAIN]:,} train / {manifest['rows'][VAL]:,} "
        f"validation rows in {time.perf_counter() - started:.1f}s")
    return final, manifest, True


def write_rows(staging, tokenizer, sided_rows, fields, text_fields=(), label_names=None, where="", workers=None,
               shard_tokens=None, log=print):
    """Tokenizes streamed rows into a row store's files (the one encoding pass), continuing a killed build.

    Args:
        staging: the staging folder (holding what a killed build finished, or nothing).
        tokenizer: encodes every field.
        sided_rows: ``(side, row)`` pairs, a row a tuple of strings
            (the tokenized fields first, then the label when labelled).
        fields: names of the tokenized fields, in row order.
        text_fields: fields whose validation texts are also kept raw.
        label_names: the known labels (classify), or None.
        where: the source, for errors.
        workers: encoding threads (default: every core).
        shard_tokens: tokens per shard (default ``KERAZOO_SHARD_TOKENS`` or
            ``store.SHARD_TOKENS``, as ``prepare``'s).
        log: where a resume is reported.

    Returns:
        The manifest's ``rows``, ``fields``, ``text_fields``, ``labels`` and ``folders`` entries.

    Raises:
        ValueError: a validation row whose label is not a training label.
    """
    dtype = "uint16" if tokenizer.vocabulary_size() <= 1 << 16 else "uint32"
    dtypes = {f: dtype for f in fields}
    dtypes.update({f + "_text": "uint8" for f in text_fields})
    if label_names is not None:
        dtypes["label"] = "uint16" if len(label_names) <= 1 << 16 else "uint32"
    folders = {name: os.path.join(staging, name) for name in dtypes}
    done = row_shards.finished_chunks(folders, dtypes, log)
    start_row = done[fields[0]][-1]["end_doc"] if done[fields[0]] else 0
    if start_row:
        log(f"row store: resuming a killed build after {len(done[fields[0]])} finished shards ({start_row:,} rows)")
    shard_tokens = shard_tokens or int(os.environ.get("KERAZOO_SHARD_TOKENS", store.SHARD_TOKENS))
    chunks = row_shards.ChunkWriter(folders, dtypes, done, shard_tokens)
    index = {n: i for i, n in enumerate(label_names or [])}
    counts = {TRAIN: 0, VAL: 0}

    def items():
        # Every row is read (counted, its label checked); rows a killed build finished are not encoded again.
        for i, (side, row) in enumerate(sided_rows):
            if label_names is not None and row[-1] not in index:
                shown = ", ".join(label_names[:10]) + (", ..." if len(label_names) > 10 else "")
                raise ValueError(f"{where}: unknown label {row[-1]!r} (not among the {len(label_names):,} "
                                 f"training labels: {shown})")
            counts[side] += 1
            if i >= start_row:
                label = index[row[-1]] if label_names is not None else None
                for name, text in zip(fields, row):
                    yield i, side, (name, label), text

    def extra(batch):
        # Labels and raw validation texts go with their rows' chunk, one write per folder and side.
        def write(a, b, add):
            part = batch[a:b]
            for side in (TRAIN, VAL):
                labels = [label for _, s, (name, label), _ in part if s == side and name == fields[0]]
                if label_names is not None and labels:
                    add("label", side, np.asarray(labels), np.ones(len(labels)), np.zeros(len(labels), np.int64))
            for field in text_fields:
                data = [t.encode("utf-8") for _, s, (name, _), t in part if s == VAL and name == field]
                if data:
                    sizes = [len(d) for d in data]
                    add(field + "_text", VAL, np.frombuffer(b"".join(data), np.uint8), sizes, sizes)
        return write

    encoder = encoders.Encoder(tokenizer, workers or os.cpu_count() or 1)
    for batch, flat, lengths in encoders.encoded_batches(encoder, items()):
        chunks.write([item[0] for item in batch], [item[1] for item in batch], [item[2][0] for item in batch],
                     [item[3] for item in batch], lengths, flat, extra(batch))
    chunks.finish(counts[TRAIN] + counts[VAL])
    return {"rows": counts, "fields": list(fields), "text_fields": list(text_fields),
            "labels": list(label_names or []), "folders": list(folders)}
