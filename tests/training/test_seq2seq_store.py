"""Seq2seq reads its pairs from a row store: streamed, split per row, tokenized once, never a whole list."""

import gzip
import json
import os

import numpy as np
import pytest

import kerazoo as kz
from kerazoo.data import pairs as pairs_lib
from kerazoo.data import readers, rows
from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT
from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks import seq2seq

WORDS = "the cat sat on a mat and dog ran to big red house".split()
TINY = dict(max_source_length=8, max_length=6, num_encoder_layers=1, num_decoder_layers=1, num_heads=2,
            hidden_dim=16, dropout=0.0)


def _pairs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(1, 5))))
        out.append((" ".join(words), " ".join(reversed(words))))
    return out


def _recipe(tmp_path, source, extra=""):
    model = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items())
    path = tmp_path / "s2s_store.toml"
    path.write_text(f"""
name = "s2s_store"
[data]
source = "{source}"
header = false
source_column = "1"
target_column = "2"
val_fraction = 0.2
[tokenizer]
kind = "char"
[model]
arch = "seq2seq"
{model}
[train]
batch_size = 8
steps = 2
eval_every = 2
eval_batches = 2
warmup_steps = 1
{extra}
""")
    return load_recipe(str(path))


@pytest.fixture
def tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in _pairs()))
    return str(path)


def _no_whole_file(*args, **kwargs):
    raise AssertionError("seq2seq read a whole file into memory")


def _quiet(*_):
    pass


def test_pairs_stream_from_the_store_and_batches_equal_the_in_memory_path(tsv, tmp_path, monkeypatch):
    recipe = _recipe(tmp_path, tsv)
    pairs = _pairs()
    for name in ("read_table", "read_jsonl", "read_text_file"):
        monkeypatch.setattr(readers, name, _no_whole_file)
    for name in ("read_pairs", "split_pairs", "tokenize_pairs", "teacher_forcing_arrays"):
        monkeypatch.setattr(pairs_lib, name, _no_whole_file)
    data = seq2seq.Seq2SeqTask().prepare(recipe, None, _quiet)
    store = data.extra["store"]
    sides = [rows.row_side(i, 0, 0.2) for i in range(len(pairs))]
    train = [p for p, s in zip(pairs, sides) if s == "train"]
    val = [p for p, s in zip(pairs, sides) if s == "val"]
    assert store.manifest["rows"] == {"train": len(train), "val": len(val)} and len(val) > 10
    assert list(zip(store.texts("source", "val", 0, len(val)), store.texts("target", "val", 0, len(val)))) == val
    monkeypatch.undo()
    # The tokenizer saw the train sources, then the train targets, as the in-memory path trained it.
    texts = [s for s, _ in train] + [t for _, t in train]
    assert data.tokenizer.get_vocabulary() == kz.train_tokenizer(texts, "char").get_vocabulary()
    # The in-memory pipeline over the same split gives the same batches, in order (train and validation).
    for split, ds, kwargs in (("train", data.train_ds, dict(shuffle=True, seed=0, repeat=True)),
                              ("val", data.val_ds, dict(shuffle=False))):
        src, tgt, _ = pairs_lib.tokenize_pairs(data.tokenizer, train if split == "train" else val, 8, 6)
        reference = pairs_lib.seq2seq_dataset(src, tgt, 8, **kwargs)
        for (xa, ya), (xb, yb) in zip(reference.take(6), ds.take(6)):
            for key in (ENCODER_INPUT, DECODER_INPUT):
                np.testing.assert_array_equal(xa[key].numpy(), xb[key].numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    assert len(list(data.val_ds)) == data.val_steps == 2


def test_compressed_jsonl_reuse_and_a_damaged_store(tsv, tmp_path):
    path = tmp_path / "pairs.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps({"1": s, "2": t}) + "\n" for s, t in _pairs()))
    plain = seq2seq.prepare_pairs(_recipe(tmp_path, tsv), None, _quiet)["store"]
    logs = []
    packed = seq2seq.prepare_pairs(_recipe(tmp_path, str(path)), None, logs.append)["store"]
    assert packed.built and packed.manifest["rows"] == plain.manifest["rows"]
    for field in ("source", "target"):
        a, b = plain.field(field, "train"), packed.field(field, "train")
        assert [r.tolist() for r in a.rows(0, len(a))] == [r.tolist() for r in b.rows(0, len(b))]
    again = seq2seq.prepare_pairs(_recipe(tmp_path, str(path)), None, logs.append)["store"]
    assert not again.built and any("row store: reusing" in line for line in logs)
    # A field's manifest overwritten: detected, rebuilt, never read.
    with open(os.path.join(packed.path, "target", "manifest.json"), "w") as f:
        f.write("{not json")
    rebuilt = seq2seq.prepare_pairs(_recipe(tmp_path, str(path)), None, logs.append)["store"]
    assert rebuilt.built and any("is damaged (target: unreadable manifest" in line for line in logs)


def test_evaluation_is_capped_by_eval_tokens_and_reported(tsv, tmp_path, monkeypatch):
    recipe = _recipe(tmp_path, tsv, "eval_tokens = 30\n")
    task = seq2seq.Seq2SeqTask()
    data = task.prepare(recipe, None, _quiet)
    seen = {}

    def fake_evaluate(model, sources, targets, references):  # the real one runs in test_seq2seq.py
        seen.update(sources=sources, targets=targets, references=references)
        return {"loss": 1.0, "perplexity": 2.7, "tokens": sum(len(t) + 1 for t in targets), "bleu": 0.0,
                "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}, ["out"] * len(sources)

    monkeypatch.setattr(seq2seq, "evaluate_seq2seq", fake_evaluate)
    monkeypatch.setattr(seq2seq, "translate", lambda *args, **kwargs: "sample")
    logs = []
    evaluation = task.evaluate(type("Model", (), {"max_length": 6})(), recipe, data, logs.append)
    m = evaluation.metrics
    n, store = m["val_pairs"], data.extra["store"]
    assert 1 <= n < m["val_pairs_total"] and m["val_tokens"] <= 30 < m["val_tokens"] + 6
    assert seen["references"] == store.texts("target", "val", 0, n) and len(seen["sources"]) == n
    assert [p for p, _ in evaluation.extra["val_pairs"]] == store.texts("source", "val", 0, n)
    assert any(f"the first {n:,} of {m['val_pairs_total']:,} held-out pairs (train.eval_tokens=30)" in line
               for line in logs)


def test_kerazoo_prepare_builds_the_pair_store(tsv, tmp_path, capsys):
    from kerazoo.cli import main

    recipe = _recipe(tmp_path, tsv)
    assert main(["prepare", recipe.path]) == 0
    out = capsys.readouterr().out
    assert "row store: " in out and "(built)" in out
    assert main(["prepare", recipe.path]) == 0
    assert "(reused)" in capsys.readouterr().out
