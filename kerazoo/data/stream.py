"""Training input from a token store, in constant memory, for every backend.

A split of the store is one id stream spread over shard files
(``TokenStream``). Windows are read with ``os.pread`` rather than through a
memory map: a map's pages count in the process's resident memory as they are
touched, so random windows over a large store would grow RSS towards its
size; a read of ``seq_len + 1`` ids keeps memory flat.

    random_windows(stream, ...)  nanoGPT's get_batch: windows at random offsets
    packed_windows(stream, ...)  non-overlapping windows, reshuffled every pass

Both are ``tf.data`` pipelines (Keras feeds them to TensorFlow, JAX and
PyTorch alike) and equal ``windows.lm_random_dataset`` / ``windows.lm_dataset``
over the same ids. ``part=(index, count)`` makes a worker read only its own
part of the stream (``worker_part`` finds it from ``TF_CONFIG`` / JAX).
"""

import json
import os

import numpy as np
import tensorflow as tf


class TokenStream:
    """One split of a token store, read as a single id stream.

    Args:
        folder: the store folder.
        manifest: its manifest.
        split: "train" or "val".
    """

    def __init__(self, folder, manifest, split):
        self.dtype = np.dtype(manifest["dtype"])
        self.split = split
        self._fds, starts, doc_tables, n_bytes = [], [0], [], 0
        for shard in manifest["shards"]:
            s = shard[split]
            if s["tokens"] == 0:
                continue
            self._fds.append(os.open(os.path.join(folder, s["file"]), os.O_RDONLY))
            doc_tables.append((os.path.join(folder, s["docs_file"]), starts[-1], s["tokens"], n_bytes, s["bytes"],
                               s["docs"]))
            starts.append(starts[-1] + s["tokens"])
            n_bytes += s["bytes"]
        self._starts = np.asarray(starts, np.int64)
        self._doc_tables = doc_tables
        self.n_tokens = int(starts[-1])
        self.n_bytes = sum(shard[split]["bytes"] for shard in manifest["shards"])
        self.n_docs = sum(shard[split]["docs"] for shard in manifest["shards"])

    def __len__(self):
        return self.n_tokens

    def read(self, start, stop):
        """The ids ``[start, stop)`` of the stream, across shard files.

        Returns:
            A 1-D int32 array.
        """
        out, pos = [], start
        shard = int(np.searchsorted(self._starts, start, side="right")) - 1
        while pos < stop:
            base, end = self._starts[shard], self._starts[shard + 1]
            take = min(stop, end) - pos
            raw = os.pread(self._fds[shard], take * self.dtype.itemsize, (pos - base) * self.dtype.itemsize)
            out.append(np.frombuffer(raw, self.dtype))
            pos += take
            shard += 1
        return np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)

    def byte_offset(self, token):
        """UTF-8 bytes of the text before token index ``token``.

        Args:
            token: a token index in ``[0, len]``.

        Returns:
            ``(bytes, exact)``: exact at a document start; inside a document
            the bytes are interpolated over its tokens and ``exact`` is False.
        """
        if token >= self.n_tokens:
            return self.n_bytes, True
        for docs_path, base, n_tokens, base_bytes, n_bytes, n_docs in self._doc_tables:
            if token >= base + n_tokens:
                continue
            table = np.fromfile(docs_path, np.int64).reshape(n_docs, 2)
            rel = token - base
            i = int(np.searchsorted(table[:, 0], rel, side="right")) - 1
            t0, b0 = (int(v) for v in table[i])
            t1, b1 = (int(v) for v in table[i + 1]) if i + 1 < n_docs else (n_tokens, n_bytes)
            if rel == t0:
                return base_bytes + b0, True
            return base_bytes + b0 + int(round((b1 - b0) * (rel - t0) / max(t1 - t0, 1))), False
        return self.n_bytes, True

    def close(self):
        """Closes the shard files."""
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def open_stream(folder, split):
    """A ``TokenStream`` of one split of the store at ``folder`` (already verified)."""
    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    return TokenStream(folder, manifest, split)


def worker_part():
    """``(index, count)`` of this process among the training workers.

    From ``TF_CONFIG`` (``tf.distribute`` multi-worker: the chief first, then
    the workers) or ``KERAS_DISTRIBUTION_PROCESS_ID`` / ``_NUM_PROCESSES``
    (``keras.distribution`` hosts); ``(0, 1)`` alone.
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if cluster.get("worker"):
        chief = 1 if cluster.get("chief") else 0
        count = chief + len(cluster["worker"])
        index = 0 if task.get("type") == "chief" else chief + int(task.get("index", 0))
        return index, count
    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
    if processes > 1:  # keras.distribution's hosts (kerazoo.training.distribute)
        return int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", "0")), processes
    return 0, 1


def _no_auto_shard(ds, part):
    """A dataset that shards itself by worker must not be sharded again by ``tf.distribute``."""
    if part[1] == 1:
        return ds
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def random_windows(stream, seq_len, batch_size, seed=0, part=(0, 1)):
    """Endless batches of windows at uniformly random offsets (nanoGPT's ``get_batch``).

    Args:
        stream: a ``TokenStream`` (or anything with ``read`` and ``len``).
        seq_len: tokens per example.
        batch_size: examples per batch.
        seed: seed of the offsets; every iterator replays the same stream.
        part: ``(index, count)``: this worker draws only from its own
            contiguous ``1/count`` of the stream.

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` int32 batches ``(batch, seq_len)``.
    """
    index, count = part
    lo = len(stream) * index // count
    hi = len(stream) * (index + 1) // count
    starts = hi - lo - seq_len
    if starts < 1:
        raise ValueError(f"too little text: {hi - lo} tokens, a window of seq_len={seq_len} needs {seq_len + 1}")

    def fetch(first):
        rows = np.stack([stream.read(lo + int(s), lo + int(s) + seq_len + 1) for s in first])
        return rows[:, :-1], rows[:, 1:]

    def cut(draws):
        first = tf.math.floormod(draws, starts)  # int64 draws: the modulo bias is nil
        x, y = tf.numpy_function(fetch, [first], (tf.int32, tf.int32), stateful=False)
        return tf.ensure_shape(x, (batch_size, seq_len)), tf.ensure_shape(y, (batch_size, seq_len))

    ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=False)
    return _no_auto_shard(ds.batch(batch_size, drop_remainder=True).map(cut).prefetch(tf.data.AUTOTUNE), part)


# Past this many windows, tf.data's shuffle buffer (about 100 bytes a window)
# would grow memory with the corpus; a NumPy permutation per pass (8 bytes a
# window) replaces it. Below it, the order is windows.lm_dataset's exactly.
MAX_SHUFFLE_BUFFER = 1 << 20


def _permuted(n, part, seed, repeat):
    """Window indices of this worker's part, a fresh seeded permutation every pass."""
    index, count = part

    def order(epoch):
        return np.random.default_rng([seed, int(epoch)]).permutation(np.arange(index, n, count, dtype=np.int64))

    def one_pass(epoch):
        rows = tf.numpy_function(order, [epoch], tf.int64, stateful=False)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(rows, [None]))

    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    return epochs.flat_map(one_pass)


def packed_windows(stream, seq_len, batch_size, shuffle=True, seed=0, repeat=False, part=(0, 1), limit=None):
    """Non-overlapping next-token windows, reshuffled each pass (``windows.lm_dataset`` over a store).

    Args:
        stream: a ``TokenStream``.
        seq_len: tokens per example.
        batch_size: examples per batch (the last partial batch is dropped).
        shuffle: reshuffle the windows every pass, seeded.
        seed: shuffle seed.
        repeat: repeat forever.
        part: ``(index, count)``: this worker takes every ``count``-th window.
        limit: use only the first ``limit`` windows (bounded evaluation).

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` int32 batches.

    Raises:
        ValueError: when the windows do not fill one batch.
    """
    n = (len(stream) - 1) // seq_len
    if limit is not None:
        n = min(n, limit)
    index, count = part
    local = len(range(index, n, count))
    if local < batch_size:
        raise ValueError(f"too little text: {len(stream)} tokens make {n} windows of seq_len={seq_len}, "
                         f"fewer than batch_size={batch_size}")

    def fetch(rows):
        windows = np.stack([stream.read(int(i) * seq_len, int(i) * seq_len + seq_len + 1) for i in rows])
        return windows[:, :-1], windows[:, 1:]

    def cut(rows):
        x, y = tf.numpy_function(fetch, [rows], (tf.int32, tf.int32), stateful=False)
        return tf.ensure_shape(x, (batch_size, seq_len)), tf.ensure_shape(y, (batch_size, seq_len))

    if shuffle and local > MAX_SHUFFLE_BUFFER:
        return _no_auto_shard(_permuted(n, part, seed, repeat).batch(batch_size, drop_remainder=True)
                              .map(cut).prefetch(tf.data.AUTOTUNE), part)

    def passes(_):
        ds = tf.data.Dataset.range(n).shard(count, index)
        ds = ds.shuffle(local, seed=seed, reshuffle_each_iteration=True) if shuffle else ds
        return ds.repeat() if repeat else ds

    # Built inside flat_map, as windows.lm_dataset does: every iterator
    # replays the same seeded order.
    ds = tf.data.Dataset.range(1).flat_map(passes)
    return _no_auto_shard(ds.batch(batch_size, drop_remainder=True).map(cut).prefetch(tf.data.AUTOTUNE), part)
