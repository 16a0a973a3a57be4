"""Tests of the token store: kerazoo.data.prepare / store / stream / plan."""

import dataclasses
import gzip
import json
import os

import numpy as np
import pytest

from kerazoo import data
from kerazoo import text as tokenizers
from kerazoo.data import plan as plan_lib
from kerazoo.data import prepare as prep
from kerazoo.data import store, stream

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu 中文".split()


def make_corpus(folder, n_files=30, lines=40, seed=0):
    """A folder of small text files (some gzipped, one blank) of varied length."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    for i in range(n_files):
        text = "".join(" ".join(rng.choice(WORDS, rng.integers(3, 12))) + "\n" for _ in range(rng.integers(1, lines)))
        if i % 3 == 0:
            (folder / f"f{i:03d}.txt.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (folder / f"f{i:03d}.txt").write_text(text, encoding="utf-8")
    (folder / "blank.txt").write_text("  \n\n", encoding="utf-8")
    return str(folder)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def in_memory(source, tokenizer, split="auto", boundary="file"):
    """Today's path: read everything, split, tokenize."""
    docs = data.read_corpus(source, boundary=boundary)
    train, val = data.split_corpus(docs, 0.1, 0, split)
    return {"train": (data.tokenize_documents(tokenizer, train), train),
            "val": (data.tokenize_documents(tokenizer, val), val)}


@pytest.mark.parametrize("split", ["shuffle", "tail"])
def test_round_trip_equals_the_in_memory_path(tmp_path, cache, split):
    source = make_corpus(tmp_path / "corpus")
    tokenizer = tokenizers.train_tokenizer(["".join(WORDS) + " \n"], "char")
    # Tiny shards: reads cross shard files.
    got = prep.prepare_store(prep.CorpusSpec(source, split=split), tokenizer, log=lambda *_: None, shard_tokens=300)
    assert got.built and len(got.manifest["shards"]) > 3
    assert got.manifest["skipped_blank_documents"] == 1
    for name, (ids, docs) in in_memory(source, tokenizer, split).items():
        s = got.stream(name)
        np.testing.assert_array_equal(s.read(0, len(s)), ids)
        assert s.n_bytes == sum(len(d.encode()) for d in docs) and s.n_docs == len(docs)
        np.testing.assert_array_equal(s.read(5, 777), ids[5:777])
        # Byte offsets at document starts are exact.
        starts = np.nonzero(ids == tokenizers.EOS_ID)[0] if hasattr(tokenizers, "EOS_ID") else np.nonzero(ids == 3)[0]
        k = len(starts) // 2
        assert s.byte_offset(int(starts[k])) == (sum(len(d.encode()) for d in docs[:k]), True)


def test_boundary_blank_line_matches_the_in_memory_reader(tmp_path, cache):
    path = tmp_path / "paras.txt"
    path.write_text("".join(f"para {i} line one\nline two {i}\n\n\n" for i in range(50)))
    tokenizer = tokenizers.train_tokenizer(["para line one two 0123456789\n"], "char")
    got = prep.prepare_store(prep.CorpusSpec(str(path), boundary="blank_line"), tokenizer, log=lambda *_: None)
    ids, docs = in_memory(str(path), tokenizer, boundary="blank_line")["train"]
    assert len(docs) == 45 and got.stream("train").n_docs == 45
    np.testing.assert_array_equal(got.stream("train").read(0, len(ids)), ids)


def test_reused_rebuilt_on_tokenizer_change_and_after_damage(tmp_path, cache):
    source = make_corpus(tmp_path / "corpus", n_files=25)
    spec, logs = prep.CorpusSpec(source), []
    tok_spec = prep.TokenizerSpec("unigram", 120, sample_bytes=0)
    first = prep.prepare_store(spec, None, tok_spec, log=logs.append)
    again = prep.prepare_store(spec, None, tok_spec, log=logs.append)
    assert first.built and not again.built and again.path == first.path
    assert any("cached at" in line for line in logs), "the trained tokenizer is reused, not retrained"
    # 120 is more than this corpus supports: the achieved size is trained and reported.
    assert any(f"with {first.tokenizer.vocabulary_size()} tokens (asked for 120)" in line for line in logs)
    other = prep.prepare_store(spec, None, dataclasses.replace(tok_spec, kind="bpe"), log=logs.append)
    assert other.built and other.path != first.path
    # A truncated shard is detected and the store rebuilt, never read.
    shard = os.path.join(first.path, first.manifest["shards"][0]["train"]["file"])
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 2)
    assert "bytes, expected" in store.verify(first.path)
    rebuilt = prep.prepare_store(spec, None, tok_spec, log=logs.append)
    assert rebuilt.built and any("damaged" in line for line in logs)
    assert store.verify(rebuilt.path) is None
    # A manifest that is not JSON is damage too.
    with open(os.path.join(rebuilt.path, "manifest.json"), "w") as f:
        f.write("{")
    assert "unreadable manifest" in store.verify(rebuilt.path)


def test_a_corpus_changing_while_prepared_is_detected(tmp_path, cache, monkeypatch):
    source = make_corpus(tmp_path / "corpus", n_files=25)
    real = plan_lib.split_items

    def touching(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 3:
                with open(os.path.join(source, "f001.txt"), "a") as f:
                    f.write("late line\n")
            yield item

    monkeypatch.setattr(plan_lib, "split_items", touching)
    tokenizer = tokenizers.train_tokenizer(["x"], "byte")
    with pytest.raises(ValueError, match="changed while being prepared"):
        prep.prepare_store(prep.CorpusSpec(source), tokenizer, log=lambda *_: None)
    assert not [n for n in os.listdir(cache / "stores") if not n.endswith(".lock")], "nothing is left to be read"


class Ids:
    """An in-memory stand-in with TokenStream's read / len."""

    def __init__(self, ids):
        self.ids = ids

    def __len__(self):
        return len(self.ids)

    def read(self, a, b):
        return self.ids[a:b]


def batches(ds, n):
    return [tuple(np.asarray(t) for t in b) for b in ds.take(n)]


def test_windows_equal_todays_pipelines_and_workers_get_disjoint_parts():
    ids = np.arange(5000, dtype=np.int32) % 997
    for got, want in zip(batches(stream.packed_windows(Ids(ids), 16, 4, shuffle=True, seed=3, repeat=True), 90),
                         batches(data.lm_dataset(ids, 16, 4, shuffle=True, seed=3, repeat=True), 90)):
        np.testing.assert_array_equal(got[0], want[0]) and np.testing.assert_array_equal(got[1], want[1])
    for got, want in zip(batches(stream.random_windows(Ids(ids), 16, 4, seed=3), 20),
                         batches(data.lm_random_dataset(ids, 16, 4, seed=3), 20)):
        np.testing.assert_array_equal(got[0], want[0])
    # Two workers: disjoint windows whose union is every window (packed) ...
    stream_ids = Ids(np.arange(4000, dtype=np.int32))
    parts = [{int(x[0]) for b in batches(stream.packed_windows(stream_ids, 10, 1, shuffle=True, part=(i, 2)), 400)
              for x in b[0]} for i in range(2)]
    assert not parts[0] & parts[1] and len(parts[0] | parts[1]) == (4000 - 1) // 10
    # ... and random windows drawn from disjoint halves of the stream.
    halves = [np.concatenate([b[0].ravel() for b in batches(stream.random_windows(stream_ids, 10, 8, part=(i, 2)), 30)])
              for i in range(2)]
    assert halves[0].max() < 2000 <= halves[1].min()


def test_worker_part_reads_tf_config(monkeypatch):
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert stream.worker_part() == (2, 3)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}}))
    assert stream.worker_part() == (0, 3)
    monkeypatch.delenv("TF_CONFIG")
    assert stream.worker_part() == (0, 1)
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    assert stream.worker_part() == (1, 2)


def test_bits_per_byte_on_pydocs_equal_the_in_memory_path(cache):
    import keras

    from kerazoo.inference import metrics
    from kerazoo.models import build
    from kerazoo.training.recipe_schema import TrainSection
    from kerazoo.training.tasks.causal_lm import evaluate_stream

    got = prep.prepare_store(prep.CorpusSpec("builtin:pydocs"), None, prep.TokenizerSpec("unigram", 2048),
                             log=lambda *_: None)
    memory = in_memory("builtin:pydocs", got.tokenizer)
    trained_today = tokenizers.train_tokenizer(memory["train"][1], "unigram", 2048)
    assert prep.tokenizer_fingerprint(trained_today) == prep.tokenizer_fingerprint(got.tokenizer)
    keras.utils.set_random_seed(0)
    model = build("gpt", tokenizer=got.tokenizer, max_length=32, num_layers=1, num_heads=2, hidden_dim=16)
    ids, docs = memory["val"]
    today = metrics.evaluate_lm(model, ids, docs, 32, 64)
    ours = evaluate_stream(model, got.stream("val"), TrainSection(seq_len=32, batch_size=64), log=lambda *_: None)
    assert ours["bits_per_byte"] == pytest.approx(today["bits_per_byte"], rel=1e-9)
    assert ours["bytes"] == today["bytes"] and ours["bytes_exact"]
    capped = evaluate_stream(model, got.stream("val"), TrainSection(seq_len=32, batch_size=64, eval_tokens=3000),
                             log=lambda *_: None)
    assert capped["tokens"] < 3000 and capped["tokens_total"] == len(ids)


def test_tokenizer_sample_is_bounded_and_seeded(tmp_path):
    source = make_corpus(tmp_path / "corpus", n_files=60)
    pieces = lambda: data.readers.corpus_pieces(source)  # noqa: E731
    plan = plan_lib.plan_split(pieces())
    everything, total = plan_lib.tokenizer_sample(plan_lib.split_items(pieces(), plan), plan, 0)
    assert total == sum(len(t.encode()) for t in everything) and total > 4000
    texts, taken = plan_lib.tokenizer_sample(plan_lib.split_items(pieces(), plan), plan, 2000, seed=1)
    assert 0 < taken < 2000 + max(len(t.encode()) for t in everything) and set(texts) < set(everything)
    assert plan_lib.tokenizer_sample(plan_lib.split_items(pieces(), plan), plan, 2000, seed=1) == (texts, taken)


@pytest.mark.parametrize("split", ["shuffle", "tail"])
def test_the_planning_pass_draws_the_same_bounded_sample(tmp_path, split):
    source = make_corpus(tmp_path / "corpus", n_files=60)
    pieces = lambda: data.readers.corpus_pieces(source)  # noqa: E731
    plan = plan_lib.plan_split(pieces(), mode=split, sample_bytes=0)
    train_text = plan_lib.tokenizer_sample(plan_lib.split_items(pieces(), plan), plan, 0)
    # Under the budget: the whole train split, as the second read gives it (the tail cut included).
    assert plan.sample == train_text
    assert plan_lib.plan_split(pieces(), mode=split, sample_bytes=10**9).sample == train_text
    bounded = plan_lib.plan_split(pieces(), mode=split, seed=3, sample_bytes=2000)
    texts, taken = bounded.sample
    train_text = plan_lib.tokenizer_sample(plan_lib.split_items(pieces(), bounded), bounded, 0)  # seed 3's split
    assert 1000 < taken < 2000 + max(len(t.encode()) for t in train_text[0])
    assert set(texts) < set(train_text[0]) and taken == sum(len(t.encode()) for t in texts)
    assert plan_lib.plan_split(pieces(), mode=split, seed=3, sample_bytes=2000).sample == (texts, taken)
    assert plan_lib.plan_split(pieces(), mode=split, seed=4, sample_bytes=2000).sample != (texts, taken)


def test_disk_full_leaves_no_readable_store(tmp_path, cache, monkeypatch):
    import errno

    source = make_corpus(tmp_path / "corpus", n_files=25)
    tokenizer = tokenizers.train_tokenizer(["x"], "byte")
    real_add, calls = store.ShardWriter.add, []

    def add(self, *args):
        calls.append(1)
        if len(calls) > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, *args)

    monkeypatch.setattr(store.ShardWriter, "add", add)
    with pytest.raises(RuntimeError, match="No space left on device"):
        prep.prepare_store(prep.CorpusSpec(source), tokenizer, log=lambda *_: None, shard_tokens=200)
    names = os.listdir(cache / "stores")
    assert all(n.endswith((".partial", ".lock")) for n in names)
    monkeypatch.setattr(store.ShardWriter, "add", real_add)
    logs = []
    again = prep.prepare_store(prep.CorpusSpec(source), tokenizer, log=logs.append, shard_tokens=200)
    assert any("resuming" in line for line in logs) and store.verify(again.path) is None


def test_large_packed_streams_permute_in_numpy_each_pass(monkeypatch):
    monkeypatch.setattr(stream, "MAX_SHUFFLE_BUFFER", 10)
    ids = Ids(np.arange(401, dtype=np.int32))  # 40 windows of 10
    got = [int(x[0]) // 10 for b in batches(stream.packed_windows(ids, 10, 4, shuffle=True, seed=1, repeat=True), 20)
           for x in b[0]]
    first, second = got[:40], got[40:]
    assert sorted(first) == sorted(second) == list(range(40)) and first != second
    again = [int(x[0]) // 10 for b in batches(stream.packed_windows(ids, 10, 4, shuffle=True, seed=1, repeat=True), 10)
             for x in b[0]]
    assert again == first, "every iterator replays the same seeded order"
    half = {int(x[0]) // 10 for b in batches(stream.packed_windows(ids, 10, 4, seed=1, part=(1, 2)), 5) for x in b[0]}
    assert half == set(range(1, 40, 2))
