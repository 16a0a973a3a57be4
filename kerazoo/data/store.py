"""The token store: a corpus tokenized once into shards every run reads.

Layout of one store, ``<cache>/stores/<key>/``::

    manifest.json                  written last: corpus, tokenizer, split, shards, totals
    shard-00000.train.bin          the train split's token ids (uint16, or uint32 past 65,536 ids)
    shard-00000.train.docs.bin     int64 pairs per document: (token offset, byte offset) in the shard
    shard-00000.val.bin, shard-00000.val.docs.bin
    shard-00000.json               a finished shard's sizes and checksums (what a resume trusts)

The key hashes the corpus fingerprint (files, sizes, mtimes:
``sources.file_fingerprint``), the reading and split settings and the
tokenizer's fingerprint (its config and vocabulary files), so every run,
arch and resume with the same data and tokenizer reuses one store and a
change of either builds another.

Writing is atomic and resumable: a store is built in ``<key>.partial/``; each
shard is fsynced and then described by its ``shard-N.json``; the manifest is
written and the folder renamed to ``<key>`` only at the end. A killed prepare
leaves the partial folder, and the next one continues after its last finished
shard. Opening a store checks every file's size and a checksum of its head
and tail (``file_checksum``); a damaged store is removed and rebuilt, never read.
"""

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

# Bumped when the layout or the tokenization convention changes: old stores are not read.
FORMAT = 1
SPLITS = ("train", "val")
# A shard closes at the first document boundary past this many tokens.
SHARD_TOKENS = 1 << 26
# Bytes hashed at each end of a file by ``file_checksum``.
CHECK_BYTES = 1 << 20


def cache_dir():
    """Where stores and trained tokenizers are cached.

    ``$KERAZOO_CACHE`` when set, else ``$XDG_CACHE_HOME/kerazoo`` or
    ``~/.cache/kerazoo``.
    """
    if os.environ.get("KERAZOO_CACHE"):
        return os.environ["KERAZOO_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kerazoo")


def digest(obj, n=20):
    """A short stable hash of JSON-able data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def file_checksum(path, size):
    """A checksum of a file's size and its first and last ``CHECK_BYTES``.

    Hashing whole shards on every open would read the corpus again; a
    truncated or overwritten file changes the size or its ends, which this
    catches in constant time.
    """
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(CHECK_BYTES))
        if size > CHECK_BYTES:
            f.seek(max(CHECK_BYTES, size - CHECK_BYTES))
            h.update(f.read(CHECK_BYTES))
    return h.hexdigest()


def fsync_dir(path):
    """Makes a folder's entries (created and renamed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_durably(path, obj):
    """Writes JSON to a temporary file, fsyncs it and renames it into place."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _shard_files(index, split):
    base = f"shard-{index:05d}.{split}"
    return base + ".bin", base + ".docs.bin"


class ShardWriter:
    """Appends the ids of one shard (both splits) to its files."""

    def __init__(self, folder, index, dtype):
        self.folder, self.index, self.dtype = folder, index, np.dtype(dtype)
        self.files, self.counts = {}, {}
        for split in SPLITS:
            ids_name, docs_name = _shard_files(index, split)
            self.files[split] = (open(os.path.join(folder, ids_name), "wb"), open(os.path.join(folder, docs_name), "wb"))
            self.counts[split] = {"tokens": 0, "bytes": 0, "docs": 0}

    @property
    def tokens(self):
        return sum(c["tokens"] for c in self.counts.values())

    def add(self, split, ids, lengths, starts_document, n_bytes):
        """Appends consecutive pieces of one split in one write.

        Args:
            split: "train" or "val".
            ids: the pieces' ids, concatenated (with ``</s>`` already in front
                of each document's first piece).
            lengths: the ids of each piece.
            starts_document: per piece, True when it opens a document.
            n_bytes: per piece, its UTF-8 bytes.
        """
        ids_file, docs_file = self.files[split]
        c = self.counts[split]
        lengths, n_bytes = np.asarray(lengths, np.int64), np.asarray(n_bytes, np.int64)
        starts = np.asarray(starts_document, bool)
        if starts.any():
            token_at = c["tokens"] + np.cumsum(lengths) - lengths
            byte_at = c["bytes"] + np.cumsum(n_bytes) - n_bytes
            docs_file.write(np.stack([token_at[starts], byte_at[starts]], 1).astype(np.int64).tobytes())
            c["docs"] += int(starts.sum())
        ids_file.write(np.asarray(ids).astype(self.dtype, copy=False).tobytes())
        c["tokens"] += int(lengths.sum())
        c["bytes"] += int(n_bytes.sum())

    def close(self, end_doc):
        """Flushes and fsyncs the shard, then writes its description (what makes it count)."""
        meta = {"index": self.index, "end_doc": end_doc}
        for split, (ids_file, docs_file) in self.files.items():
            for f in (ids_file, docs_file):
                f.flush()
                os.fsync(f.fileno())
                f.close()
            ids_name, docs_name = _shard_files(self.index, split)
            meta[split] = dict(self.counts[split], file=ids_name, docs_file=docs_name,
                               checksum=file_checksum(os.path.join(self.folder, ids_name),
                                                      self.counts[split]["tokens"] * self.dtype.itemsize))
        write_json_durably(os.path.join(self.folder, f"shard-{self.index:05d}.json"), meta)
        return meta


def finished_shards(folder):
    """The shards a killed prepare finished (contiguous from 0, files intact); the rest are removed."""
    done, index = [], 0
    while True:
        path = os.path.join(folder, f"shard-{index:05d}.json")
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            break
        done.append(meta)
        index += 1
    keep = {f"shard-{m['index']:05d}.json" for m in done}
    keep |= {name for m in done for s in SPLITS for name in (m[s]["file"], m[s]["docs_file"])}
    for name in os.listdir(folder):
        if name.startswith("shard-") and name not in keep:
            os.unlink(os.path.join(folder, name))
    return done


def load_manifest(folder, expected_format):
    """A store folder's ``manifest.json``, checked for its format number.

    Args:
        folder: a token store or row store folder.
        expected_format: the format number the reader understands.

    Returns:
        ``(manifest, None)``, or ``(None, reason)`` when it is missing,
        unreadable or of another format.
    """
    try:
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        return None, "no manifest"
    except (OSError, ValueError) as e:
        return None, f"unreadable manifest ({e})"
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        return None, f"format {found}, expected {expected_format}"
    return manifest, None


def verify(folder):
    """Why a store folder cannot be read, or None when it is intact.

    Args:
        folder: a store folder.

    Returns:
        None, or a short reason (missing manifest, wrong format, a file of
        the wrong size or checksum).
    """
    manifest, reason = load_manifest(folder, FORMAT)
    if reason:
        return reason
    itemsize = np.dtype(manifest["dtype"]).itemsize
    try:
        for shard in manifest["shards"]:
            reason = shard_problem(folder, shard, itemsize)
            if reason:
                return reason
    except (KeyError, TypeError) as e:
        return f"damaged ({e})"
    return None


def shard_problem(folder, shard, itemsize):
    """Why one shard's files do not match its description, or None when they do.

    Args:
        folder: the store folder.
        shard: the shard's description (``ShardWriter.close``).
        itemsize: bytes per id.

    Returns:
        None, or a short reason (a file of the wrong size or checksum, a missing file).
    """
    try:
        for split in SPLITS:
            s = shard[split]
            ids_path = os.path.join(folder, s["file"])
            size = os.path.getsize(ids_path)
            if size != s["tokens"] * itemsize:
                return f"{s['file']} has {size} bytes, expected {s['tokens'] * itemsize}"
            if os.path.getsize(os.path.join(folder, s["docs_file"])) != s["docs"] * 16:
                return f"{s['docs_file']} has the wrong size"
            if file_checksum(ids_path, size) != s["checksum"]:
                return f"{s['file']} fails its checksum"
    except (OSError, KeyError, TypeError) as e:
        return f"damaged ({e})"
    return None


class Lock:
    """An exclusive lock file: two prepares of one store take turns."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


class Progress:
    """One progress line on stderr: MB done, MB/s and ETA (only on a terminal)."""

    def __init__(self, total_bytes, label="prepare", stream=None):
        self.total, self.label, self.done = max(total_bytes, 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.started = self.last = time.perf_counter()

    def update(self, n_bytes):
        self.done += n_bytes
        now = time.perf_counter()
        if self.enabled and now - self.last >= 0.5:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.stream.write(f"\r{self.label}: {self.done / 1e6:,.1f} / {self.total / 1e6:,.1f} MB, "
                              f"{rate / 1e6:.2f} MB/s, ETA {eta:,.0f}s   ")
            self.stream.flush()

    def rate(self):
        """MB/s so far."""
        return self.done / 1e6 / max(time.perf_counter() - self.started, 1e-9)

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def finalize(staging, final, manifest):
    """Writes the manifest last and renames the staging folder into place."""
    write_json_durably(os.path.join(staging, "manifest.json"), manifest)
    fsync_dir(staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
    fsync_dir(os.path.dirname(final))


def split_totals(shards):
    """Tokens, UTF-8 bytes and documents of each split over all shards."""
    return {split: {k: sum(s[split][k] for s in shards) for k in ("tokens", "bytes", "docs")} for split in SPLITS}
