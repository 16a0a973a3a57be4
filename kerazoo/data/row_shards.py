"""A row store's shards: every folder cut at the same rows, so a killed build resumes.

A row store has one folder per tokenized field, per field kept as raw text
and for the labels; each holds token-store shards (``store.ShardWriter``).
Chunk ``k`` of a build is shard ``k`` of every folder, all closed at the same
row: the first row that starts once the chunk holds ``shard_tokens`` tokens
(the tokenized fields counted). The cuts depend on the rows alone, not on
how the encoder batched them, so a resumed build writes the same bytes as an
uninterrupted one.

A chunk counts once every folder's ``shard-k.json`` exists (each written
after its files are fsynced, ``ShardWriter.close``). A resume keeps the
chunks every folder finished whose files pass ``store.shard_problem`` (size
and checksum), removes the rest, and continues from the row after them.
"""

import os

import numpy as np

from kerazoo.data import store


def finished_chunks(folders, dtypes, log=print):
    """The chunks a killed build finished in every folder, checked; later shards are removed.

    Args:
        folders: name -> folder of each part of the store (created when missing).
        dtypes: name -> the ids' dtype of each folder.
        log: where a dropped shard is reported.

    Returns:
        name -> the kept shards' descriptions (the same number in every folder).
    """
    found, n = {}, None
    for name, folder in folders.items():
        os.makedirs(folder, exist_ok=True)
        found[name] = store.finished_shards(folder)
        intact = len(found[name])
        for i, meta in enumerate(found[name]):
            reason = store.shard_problem(folder, meta, np.dtype(dtypes[name]).itemsize)
            if reason:
                log(f"row store: dropping {name}/shard-{meta['index']:05d} and later ones ({reason})")
                intact = i
                break
        n = intact if n is None else min(n, intact)
    for name, folder in folders.items():
        # The descriptions go first: a kill while removing leaves shards that finished_shards drops.
        for meta in found[name][n:]:
            os.unlink(os.path.join(folder, f"shard-{meta['index']:05d}.json"))
        store.finished_shards(folder)
    return {name: metas[:n] for name, metas in found.items()}


class ChunkWriter:
    """Writes encoded rows into the chunks of every folder, cutting them at rows (module docstring).

    Args:
        folders: name -> folder, as ``finished_chunks`` took them.
        dtypes: name -> the ids' dtype of each folder.
        done: ``finished_chunks``' result (the chunks kept from a killed build).
        shard_tokens: a chunk closes at the first row starting past this many tokens.
    """

    def __init__(self, folders, dtypes, done, shard_tokens):
        self.folders, self.dtypes, self.shard_tokens = folders, dtypes, max(int(shard_tokens), 1)
        self.shards = {name: list(metas) for name, metas in done.items()}
        self.index = len(next(iter(done.values())))
        self.first, self.last_row = next(iter(folders)), -1
        self._open()

    def _open(self):
        self.writers = {name: store.ShardWriter(folder, self.index, self.dtypes[name])
                        for name, folder in self.folders.items()}
        self.tokens, self.rows = 0, 0

    def close(self, next_row):
        """Closes the current chunk in every folder (``next_row``: the first row after it)."""
        for name, writer in self.writers.items():
            self.shards[name].append(writer.close(next_row))
        self.index += 1
        self._open()

    def write(self, rows_at, sides, names, texts, lengths, flat, extra):
        """Writes one encoded batch, closing chunks at the rows where they are full.

        Args:
            rows_at: per item, its row index.
            sides: per item, "train" or "val".
            names: per item, its tokenized field (an item is one field of one row).
            texts: per item, its text (for the UTF-8 byte counts).
            lengths: per item, its ids in ``flat``.
            flat: the batch's ids, concatenated.
            extra: ``extra(a, b, add)`` writes the raw texts and labels of items
                ``[a, b)`` through ``add(name, side, ids, lengths, n_bytes)``.
        """
        n = len(rows_at)
        lengths = np.asarray(lengths, np.int64)
        ends = np.cumsum(lengths)
        rows_at = np.asarray(rows_at, np.int64)
        # A row's fields may straddle two batches: a row starts where the row index changes.
        starts_row = rows_at != np.concatenate([[self.last_row], rows_at[:-1]])
        a = 0
        while a < n:
            before = self.tokens + ends[a:] - lengths[a:] - (ends[a] - lengths[a])
            cut = np.nonzero(starts_row[a:] & (before >= self.shard_tokens))[0]
            b = a + int(cut[0]) if len(cut) else n
            if b > a:
                self._write_items(a, b, sides, names, texts, lengths, ends, flat, extra)
            if b < n:
                self.close(int(rows_at[b]))
            a = b
        self.last_row = int(rows_at[-1])

    def _write_items(self, a, b, sides, names, texts, lengths, ends, flat, extra):
        groups = {}
        for i in range(a, b):
            groups.setdefault((names[i], sides[i]), []).append(i)
        for (name, side), at in groups.items():
            ids = np.concatenate([flat[ends[i] - lengths[i]:ends[i]] for i in at])
            self.add(name, side, ids, lengths[at], [len(texts[i].encode("utf-8")) for i in at])
        extra(a, b, self.add)
        self.tokens += int(ends[b - 1] - ends[a] + lengths[a])

    def add(self, name, side, ids, lengths, n_bytes):
        """Appends rows (one document each) to one folder's current shard.

        Args:
            name: the folder.
            side: "train" or "val".
            ids: the rows' ids, concatenated.
            lengths: per row, its ids.
            n_bytes: per row, its UTF-8 bytes.
        """
        lengths = np.asarray(lengths, np.int64)
        self.writers[name].add(side, ids, lengths, np.ones(len(lengths), bool), n_bytes)
        if name == self.first:
            self.rows += len(lengths)

    def finish(self, n_rows):
        """Closes the last chunk (unless a resume found every row written) and writes each folder's manifest."""
        if self.rows or not self.index:
            self.close(n_rows)
        for name, folder in self.folders.items():
            store.write_json_durably(os.path.join(folder, "manifest.json"),
                                     {"format": store.FORMAT, "dtype": self.dtypes[name], "shards": self.shards[name]})
