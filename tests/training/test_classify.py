"""Classifier heads on the zoo's encoders: recipes, init_from, metrics, kerazoo.classify, export."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo import data as data_lib
from kerazoo.models import Classifier, build
from kerazoo.models.classifier import encoder_config_of, load_encoder_weights
from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks.classify import classification_metrics

from tests.serving.test_serving import KERAS_FREE

QUIET = dict(verbose=0, log=lambda *_: None)
GOOD, BAD = ["good", "great", "fun", "lovely"], ["bad", "dull", "awful", "boring"]
FILLER = ["the", "film", "was", "a", "very", "plot", "and"]


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = ["neg", "pos"][rng.integers(2)]
        words = list(rng.choice(GOOD if label == "pos" else BAD, 2)) + list(rng.choice(FILLER, 3))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def _write_tsv(path, rows, text_column="sentence"):
    path.write_text(f"{text_column}\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    return str(path)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    return (_write_tsv(folder / "train.tsv", _rows(160, 0)),
            _write_tsv(folder / "dev.tsv", _rows(40, 1), text_column="content"))


def _classify_recipe(tmp_path, arch, train, extra=""):
    model = ('max_length = 32\nnum_layers = 1\nnum_heads = 2\nhidden_dim = 16' if arch == "bert"
             else "embed_dim = 16\nhidden_dim = 16\nnum_layers = 1")
    path = tmp_path / f"cls_{arch}.toml"
    path.write_text(f"""
name = "cls_{arch}"
[data]
source = "{train}"
column = "sentence"
[tokenizer]
kind = "char"
[model]
arch = "{arch}"
{model}
dropout = 0.0
[task]
kind = "classify"
[train]
seq_len = 24
batch_size = 16
steps = 30
eval_every = 30
warmup_steps = 3
learning_rate = 1e-2
{extra}
""")
    return str(path)


@pytest.mark.core
def test_bilstm_classifier_from_scratch_learns_and_keeps_label_names(labelled, tmp_path):
    train, dev = labelled
    recipe = load_recipe(_classify_recipe(tmp_path, "bilstm", train),
                         [f'data.val_source="{dev}"', 'data.val_column="content"'])
    result = kz.run_recipe(recipe, str(tmp_path / "runs"), **QUIET)
    m = json.load(open(os.path.join(result.path, "metrics.json")))
    assert m["task"] == "classify" and m["labels"] == ["neg", "pos"] and m["val_rows"] == 40
    assert m["texts_seen"] == 30 * 16 and "tokens_seen" not in m
    assert m["confusion_matrix"]["labels"] == ["neg", "pos"]
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == 40
    assert m["val_accuracy"] >= 0.8, m  # two sentiment words per text: easy
    assert 0.0 <= m["val_macro_f1"] <= 1.0
    out = kz.classify(result.path, ["good fun film", "dull awful plot"])
    assert [o["label"] for o in out] == ["pos", "neg"]
    assert set(out[0]["probabilities"]) == {"neg", "pos"}
    assert abs(sum(out[0]["probabilities"].values()) - 1.0) < 1e-5
    model = kz.load_run(result.path)
    assert isinstance(model, Classifier) and model.label_names == ["neg", "pos"]


def _pretrained_run(folder, texts):
    """A finished run folder holding a tiny bert (what pre-training or import-hf leaves)."""
    from kerazoo.training import runs

    keras.utils.set_random_seed(3)
    tokenizer = kz.train_tokenizer(texts, "char")
    model = build("bert", tokenizer=tokenizer, max_length=32, num_layers=1, num_heads=2, hidden_dim=16)
    folder.mkdir()
    model.save(str(folder / "model.keras"))
    runs.write_json(str(folder / "metrics.json"), {"arch": "bert"})
    return str(folder), model


def test_init_from_a_pretrained_run_loads_encoder_and_tokenizer(labelled, tmp_path):
    train, _ = labelled
    pre_path, pretrained = _pretrained_run(tmp_path / "pre", data_lib.read_labelled(train, "sentence")[0])
    path = tmp_path / "ft.toml"
    path.write_text(f"""
[data]
source = "{train}"
column = "sentence"
[model]
arch = "bert"
init_from = "{pre_path}"
[task]
kind = "classify"
[train]
seq_len = 24
batch_size = 16
steps = 2
eval_every = 2
warmup_steps = 1
""")
    recipe = load_recipe(str(path))
    from kerazoo.training.tasks.classify import build_classifier

    # Before fine-tuning, the classifier's encoder is the pre-trained one.
    fresh = build_classifier(recipe, pretrained.tokenizer, pretrained, ["neg", "pos"])
    for name in ("token_embedding", "transformer_layer_0", "embeddings_norm"):
        for a, b in zip(fresh.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    result = kz.run_recipe(recipe, str(tmp_path / "runs"), **QUIET)
    m = result.metrics
    assert m["init_from"] == pre_path and m["pooling"] == "cls" and m["steps"] == 2
    model = kz.load_run(result.path)
    assert model.tokenizer.get_vocabulary() == pretrained.tokenizer.get_vocabulary()
    # A tokenizer other than the encoder's is refused.
    other = tmp_path / "other_tok"
    kz.save_tokenizer(kz.train_tokenizer(["xyz"], "char"), str(other))
    with pytest.raises(ValueError, match="does not match the tokenizer of 'model.init_from'"):
        kz.run_recipe(load_recipe(str(path), [f'tokenizer.path="{other}"', "name=\"again\""]),
                      str(tmp_path / "runs"), **QUIET)


@pytest.mark.parametrize("arch,pooling", [("lstm", "last"), ("gru", "mean"), ("bert", "mean")])
def test_pooled_classifier_ignores_padding_and_reloads(arch, pooling, tmp_path):
    keras.utils.set_random_seed(0)
    config = dict(vocab_size=30, dropout=0.0, num_layers=1, hidden_dim=8)
    config.update(dict(max_length=16, num_heads=2) if arch == "bert" else dict(embed_dim=8))
    model = Classifier(arch, config, ["a", "b", "c"], pooling=pooling, max_length=16)
    ids = np.array([[2, 7, 8, 3]], np.int32)
    padded = np.array([[2, 7, 8, 3, 0, 0, 0]], np.int32)
    out = keras.ops.convert_to_numpy(model(ids))
    assert out.shape == (1, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(padded)), out, atol=1e-5)
    path = str(tmp_path / "c.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert again.label_names == ["a", "b", "c"] and again.pooling == pooling
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(padded)), out, atol=1e-5)
    # The encoder of a plain LM drops into a classifier by layer name.
    lm = build(arch, **config)
    assert "token_embedding" in load_encoder_weights(Classifier(arch, encoder_config_of(lm), ["x", "y"],
                                                                pooling=pooling, max_length=16), lm)


def test_gpt_is_not_an_encoder():
    with pytest.raises(ValueError, match="'gpt' is not an encoder"):
        Classifier("gpt", dict(vocab_size=10), ["a", "b"])


def test_classification_metrics_by_hand():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert m["accuracy"] == 0.6
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]]}
    # F1: a 0.5, b 0.8, c 0.0
    assert abs(m["macro_f1"] - (0.5 + 0.8 + 0.0) / 3) < 1e-9


@pytest.mark.parametrize("key,value,message", [
    ("data.label_column", "stars", "column 'stars' not found"),
    ("data.source", "EMPTY", "is empty"),
    ("data.source", "ONE", "holds a single label"),
    ("data.val_source", "UNKNOWN", "unknown label 'meh'"),
    ("data.source", "missing.tsv", "does not exist"),
])
def test_bad_labelled_data_is_refused_and_leaves_nothing(labelled, tmp_path, key, value, message):
    train, _ = labelled
    files = {"EMPTY": _write_tsv(tmp_path / "empty.tsv", []),
             "ONE": _write_tsv(tmp_path / "one.tsv", [("a b", "pos"), ("c d", "pos")]),
             "UNKNOWN": _write_tsv(tmp_path / "unknown.tsv", [("a b", "pos"), ("c d", "meh")])}
    recipe = load_recipe(_classify_recipe(tmp_path, "bilstm", train), [f'{key}="{files.get(value, value)}"'])
    with pytest.raises(ValueError, match=message):
        kz.run_recipe(recipe, str(tmp_path / "runs"), **QUIET)
    assert not os.path.exists(tmp_path / "runs") or not os.listdir(tmp_path / "runs")


def test_read_labelled_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hi", "label": 1}\n{"text": "yo", "label": "x"}\n')
    assert data_lib.read_labelled(str(path)) == (["hi", "yo"], ["1", "x"])
    with pytest.raises(ValueError, match="column 'label' not found"):
        path.write_text('{"text": "hi"}\n')
        data_lib.read_labelled(str(path))


# test_serving's keras-free process (keras, keras_hub and kerazoo cannot be
# imported; TF Text ops loaded as the C++ server links them), asking `classify`.
KERAS_FREE_CLASSIFY = KERAS_FREE[:KERAS_FREE.index("served = ")] + textwrap.dedent("""
    served = tf.saved_model.load(sys.argv[1])
    out = served.signatures["classify"](texts=tf.constant(json.loads(sys.argv[2])))
    print("RESULT" + json.dumps({"labels": [l.decode() for l in out["labels"].numpy()],
                                 "probabilities": out["probabilities"].numpy().tolist(),
                                 "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
""")


def test_classify_export_matches_in_process_without_keras(tmp_path):
    from kerazoo.serving import exporter, warmup

    keras.utils.set_random_seed(0)
    tokenizer = kz.train_tokenizer(["good bad film plot 学而时习之"] * 3, "char")
    config = dict(vocab_size=int(tokenizer.vocabulary_size()), embed_dim=8, hidden_dim=8, dropout=0.0)
    model = Classifier("bilstm", config, ["neg", "pos"], pooling="mean", max_length=8, tokenizer=tokenizer)
    path = kz.export(model, name="cls", base_dir=str(tmp_path))
    assert os.path.basename(path) == "1"
    meta = json.load(open(os.path.join(path, exporter.METADATA_FILE)))
    assert meta["kind"] == "classify" and meta["label_names"] == ["neg", "pos"]
    assert meta["signatures"] == ["classify", "serving_default"]
    assert [name for name, _ in warmup.read(path)] == ["serving_default", "classify"]
    texts = ["good film", "bad plot, far longer than the eight tokens of max_length", "", "学而"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", KERAS_FREE_CLASSIFY, path, json.dumps(texts)],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    served = json.loads(lines[-1][len("RESULT"):])
    assert served["loaded"] == []
    expected = kz.classify(model, texts)
    assert served["labels"] == [e["label"] for e in expected]
    np.testing.assert_allclose(served["probabilities"],
                               [[e["probabilities"][n] for n in ("neg", "pos")] for e in expected], atol=1e-5)
