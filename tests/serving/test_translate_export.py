"""The ``translate`` export of a seq2seq model: text in, text out, no Keras at serving time."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerazoo as kz
from kerazoo.serving import warmup
from kerazoo.serving.portable_ops import xla_ops

TINY = dict(max_source_length=24, max_length=16, num_encoder_layers=1, num_decoder_layers=1,
            num_heads=2, hidden_dim=16, dropout=0.0)
TEXTS = ["the cat sat", "", "学而时习之", "a much longer source text than the encoder can read at once"]
NEW = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(5)
    tokenizer = kz.train_tokenizer(["the cat sat on a mat 学而时习之"] * 4, "byte")
    model = kz.build("seq2seq", tokenizer=tokenizer, **TINY)
    emb = model.token_embedding.embeddings
    # Scaled-up random embeddings: outputs vary instead of stopping at once.
    values = np.random.default_rng(1).normal(0, 1.0, emb.shape).astype("float32")
    values[:5] = 0.0  # special ids (end token included) never win: outputs run to their budget
    emb.assign(values)
    base = tmp_path_factory.mktemp("saved_models")
    path = kz.export(model, name="tiny_s2s", base_dir=str(base), max_new_tokens=NEW)
    return model, path


@pytest.fixture(scope="module")
def served(exported):
    return tf.saved_model.load(exported[1])


def test_layout_signatures_and_greedy_parity(exported, served):
    model, path = exported
    assert path.endswith(os.path.join("tiny_s2s", "1"))
    assert set(served.signatures) == {"serving_default", "translate"}
    out = served.signatures["serving_default"](texts=tf.constant(TEXTS), max_new_tokens=tf.fill([len(TEXTS)], NEW))
    texts = [t.decode("utf-8") for t in out["translations"].numpy()]
    assert texts == kz.translate(model, TEXTS, max_new_tokens=NEW)
    assert any(texts), "the test model should produce non-empty outputs"
    assert out["source_tokens"].numpy()[3] == TINY["max_source_length"]  # cut to the encoder's length
    default = served.signatures["translate"](texts=tf.constant(TEXTS[:1]))
    assert default["translations"].numpy()[0].decode("utf-8") == texts[0]
    # Bad budgets are answered: 0 gives empty text, huge ones are clamped.
    odd = served.signatures["serving_default"](texts=tf.constant(TEXTS[:2]), max_new_tokens=tf.constant([0, 10**6]))
    assert odd["token_counts"].numpy()[0] == 0 and odd["token_counts"].numpy()[1] <= TINY["max_length"] - 1


def test_warmup_records_and_no_xla(exported, served):
    from tensorflow.core.protobuf import saved_model_pb2

    _, path = exported
    records = warmup.read(path)
    assert [name for name, _ in records] == ["serving_default", "serving_default", "translate"]
    for name, inputs in records:
        served.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    assert xla_ops(proto.meta_graphs[0].graph_def) == []
    meta = json.load(open(os.path.join(path, "assets.extra", "kerazoo_export.json")))
    assert meta["kind"] == "seq2seq" and meta["max_new_tokens_cap"] == TINY["max_length"] - 1


# As in tests/test_serving.py: only TensorFlow and TF Text's kernels, keras blocked.
KERAS_FREE = textwrap.dedent("""
    import glob, importlib.abc, importlib.machinery, importlib.util, json, os, sys

    BLOCKED = ("keras", "keras_hub", "keras_nlp", "kerazoo", "tf_keras")

    class Refuse(importlib.abc.Loader):
        def create_module(self, spec):
            return None
        def exec_module(self, module):
            raise ImportError(f"{module.__name__} is blocked in this process")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                return importlib.machinery.ModuleSpec(name, Refuse(), is_package=True)

    sys.meta_path.insert(0, Block())
    import tensorflow as tf
    text_ops = os.path.join(importlib.util.find_spec("tensorflow_text").submodule_search_locations[0], "python", "ops")
    for library in sorted(glob.glob(os.path.join(text_ops, "*.so"))):
        tf.load_op_library(library)
    served = tf.saved_model.load(sys.argv[1])
    texts = json.loads(sys.argv[2])
    out = served.signatures["serving_default"](texts=tf.constant(texts), max_new_tokens=tf.fill([len(texts)], int(sys.argv[3])))
    print("RESULT" + json.dumps({
        "texts": [t.decode("utf-8") for t in out["translations"].numpy()],
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
    }))
""")


def test_runs_in_a_process_without_keras(exported):
    model, path = exported
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", KERAS_FREE, path, json.dumps(TEXTS), str(NEW)],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT"):])
    assert result["loaded"] == []
    assert result["texts"] == kz.translate(model, TEXTS, max_new_tokens=NEW)
