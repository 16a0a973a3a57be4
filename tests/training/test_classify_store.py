"""The classifier reads its rows from a row store: streamed, split per row, tokenized once, never a whole list."""

import gzip
import os

import numpy as np
import pytest

import kerazoo as kz
from kerazoo import data as data_lib
from kerazoo.data import readers, rows
from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks import classify

WORDS = {"pos": ["good", "great", "fun"], "neg": ["bad", "dull", "awful"], "": ["the", "film", "plot", "was"]}


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = ["neg", "pos"][rng.integers(2)]
        words = list(rng.choice(WORDS[label], 2)) + list(rng.choice(WORDS[""], int(rng.integers(1, 12))))
        out.append((" ".join(words), label))
    return out


def _recipe(tmp_path, source, extra="", name="cls_store"):
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
name = "{name}"
[data]
source = "{source}"
val_fraction = 0.25
[tokenizer]
kind = "char"
[model]
arch = "bilstm"
embed_dim = 8
hidden_dim = 8
num_layers = 1
[task]
kind = "classify"
[train]
seq_len = 16
batch_size = 8
steps = 2
eval_every = 2
warmup_steps = 1
{extra}
""")
    return load_recipe(str(path))


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in _rows(120)))
    return str(path)


def _no_whole_file(*args, **kwargs):
    raise AssertionError("the classifier read a whole file into memory")


def _quiet(*_):
    pass


def test_rows_stream_from_the_store_and_batches_equal_the_in_memory_path(corpus, tmp_path, monkeypatch):
    recipe = _recipe(tmp_path, corpus)
    all_rows = list(readers.labelled_rows(corpus))  # the reference, before the guard
    for name in ("read_labelled", "read_table", "read_jsonl", "read_text_file"):
        monkeypatch.setattr(readers, name, _no_whole_file)
    monkeypatch.setattr(data_lib, "read_labelled", _no_whole_file)
    logs = []
    data = classify.Classify().prepare(recipe, None, logs.append)
    store = data.extra["store"]
    assert store.built and data.extra["names"] == ["neg", "pos"]
    # The split is the seeded hash of each row's index.
    sides = [rows.row_side(i, recipe.data.seed, 0.25) for i in range(len(all_rows))]
    train = [r for r, s in zip(all_rows, sides) if s == "train"]
    val = [r for r, s in zip(all_rows, sides) if s == "val"]
    assert store.manifest["rows"] == {"train": len(train), "val": len(val)} and len(val) > 10
    np.testing.assert_array_equal(store.labels("val"), [["neg", "pos"].index(l) for _, l in val])
    # The tokenizer saw the train texts, as the in-memory path trained it.
    assert data.tokenizer.get_vocabulary() == kz.train_tokenizer([t for t, _ in train], "char").get_vocabulary()
    # Training batches: the in-memory pipeline over the same split gives the same batches, in order.
    x = classify.pack(data.tokenizer, [t for t, _ in train], 16, pad_to=16).numpy()
    y = [["neg", "pos"].index(l) for _, l in train]
    reference = classify.train_dataset(x, y, 8, recipe.train.seed)
    for (a, la), (b, lb) in zip(reference.take(12), data.train_ds.take(12)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
    # Validation batches during fit: the first rows, padded to seq_len.
    vx, vy = next(iter(data.val_ds))
    np.testing.assert_array_equal(vx.numpy(), classify.pack(data.tokenizer, [t for t, _ in val[:8]], 16, 16).numpy())
    # A second run reads no row: the same store, reused.
    monkeypatch.setattr(readers, "labelled_rows", _no_whole_file)
    again = classify.Classify().prepare(recipe, None, logs.append)
    assert not again.extra["store"].built and again.extra["store"].path == store.path
    assert any("row store: reusing" in line for line in logs)


def test_compressed_jsonl_gives_the_same_store_and_a_damaged_store_is_rebuilt(corpus, tmp_path):
    plain = classify.Classify().prepare(_recipe(tmp_path, corpus), None, _quiet).extra["store"]
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for text, label in readers.labelled_rows(corpus):
            f.write(f'{{"text": "{text}", "label": "{label}"}}\n')
    packed = classify.Classify().prepare(_recipe(tmp_path, str(path)), None, _quiet).extra["store"]
    assert packed.path != plain.path  # another corpus, another key
    for split in ("train", "val"):
        a, b = plain.field("text", split), packed.field("text", split)
        assert len(a) == len(b)
        for i in range(len(a)):
            np.testing.assert_array_equal(a.row(i), b.row(i))
        np.testing.assert_array_equal(plain.labels(split), packed.labels(split))
    # Truncate a shard: the next run finds it damaged and rebuilds rather than train on it.
    shard = os.path.join(packed.path, "text", "shard-00000.train.bin")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) - 2)
    logs = []
    again = classify.Classify().prepare(_recipe(tmp_path, str(path)), None, logs.append).extra["store"]
    assert again.built and any("is damaged" in line for line in logs)
    assert rows.verify(again.path) is None


def test_evaluation_is_capped_by_eval_tokens_and_reported(corpus, tmp_path):
    recipe = _recipe(tmp_path, corpus, "eval_tokens = 40\n", name="capped")
    task = classify.Classify()
    data = task.prepare(recipe, None, _quiet)
    logs = []
    evaluation = task.evaluate(task.build_model(recipe, data), recipe, data, logs.append)
    m, val = evaluation.metrics, evaluation.metrics["val_rows_total"]
    assert 1 <= m["val_rows"] < val and sum(map(sum, m["confusion_matrix"]["matrix"])) == m["val_rows"]
    packed = np.minimum(next(data.extra["store"].field("text", "val").lengths()), 16 - 2) + 2
    assert packed[:m["val_rows"]].sum() <= 40 < packed[:m["val_rows"] + 1].sum()
    assert any(f"the first {m['val_rows']:,} of {val:,} rows (train.eval_tokens=40)" in line for line in logs)
    result = type("Result", (), {"metrics": m})()
    assert f"of {val:,} (train.eval_tokens)" in task.score_lines(result)[0]


def test_more_labels_than_the_cap_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "many.tsv"
    path.write_text("text\tlabel\n" + "".join(f"row {i}\tl{i}\n" for i in range(40)))
    monkeypatch.setattr(rows, "MAX_LABELS", 10)
    with pytest.raises(ValueError, match="more than 10 distinct labels"):
        classify.Classify().prepare(_recipe(tmp_path, str(path)), None, _quiet)


def test_kerazoo_prepare_builds_the_row_store_that_train_reuses(corpus, tmp_path, capsys):
    from kerazoo.cli import main

    recipe = _recipe(tmp_path, corpus, name="prepared")
    assert main(["prepare", recipe.path]) == 0
    assert "(built)" in capsys.readouterr().out
    logs = []
    data = classify.Classify().prepare(recipe, None, logs.append)
    assert not data.extra["store"].built and any("row store: reusing" in line for line in logs)


def test_a_source_that_changes_while_being_prepared_is_refused_and_leaves_no_store(corpus, tmp_path, monkeypatch):
    write_rows = rows.write_rows

    def write_and_append(staging, *args, **kwargs):
        out = write_rows(staging, *args, **kwargs)
        with open(corpus, "a") as f:
            f.write("a late row\tpos\n")
        return out

    monkeypatch.setattr(rows, "write_rows", write_and_append)
    with pytest.raises(ValueError, match="changed while being prepared"):
        classify.Classify().prepare(_recipe(tmp_path, corpus, name="changing"), None, _quiet)
    root = os.path.join(os.environ["KERAZOO_CACHE"], "rows")
    assert not [name for name in os.listdir(root) if name.endswith(".partial")]


def test_the_tokenizer_sample_is_bounded_and_seeded():
    data = [(rows.TRAIN, (f"text {i} " * 5, "x")) for i in range(400)] + [(rows.VAL, ("held out", "x"))]
    survey = rows.Survey(iter(data), 1, True, 1000, "t")
    assert survey.rows == {"train": 400, "val": 1} and not survey.complete
    sample, taken = rows.tokenizer_sample(iter(data), survey, 1, 1000, seed=0)
    assert 500 < taken < 1100 and "held out" not in sample  # about sample_bytes, drawn at that rate
    assert sample == rows.tokenizer_sample(iter(data), survey, 1, 1000, seed=0)[0]
    assert sample != [t for _, (t, _) in data[:len(sample)]]  # drawn over the whole file, not its head
    everything = rows.Survey(iter(data), 1, True, 0, "t")
    assert everything.complete and len(rows.tokenizer_sample(iter(data), everything, 1, 0, 0)[0]) == 400
