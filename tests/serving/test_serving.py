"""TF Serving export: layout, parity with Keras, a keras-free process, warm-up, bad input."""

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
from kerazoo import data as data
from kerazoo.models import build
from kerazoo.serving import exporter, warmup
from kerazoo.serving.portable_ops import xla_ops

from tests.conftest import CHINESE, ENGLISH

LONG = "the quick brown fox " * 30  # longer than the gpt's 32-token context
PROMPTS = [ENGLISH[:40], CHINESE[:10], "", LONG]
NEW = 8

MODELS = {
    "gpt": ("unigram", dict(max_length=32, num_layers=2, num_heads=2, hidden_dim=16)),
    "lstm": ("char", dict(embed_dim=8, hidden_dim=16, num_layers=2)),
}


def _corpus():
    return data.read_corpus("builtin:pydocs")[:10] + [ENGLISH, CHINESE] * 5


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory):
    """A tiny model of each arch and its export: ``(model, version folder)``."""
    kind, hparams = MODELS[request.param]
    tokenizer = kz.train_tokenizer(_corpus(), kind, vocab_size=300 if kind == "unigram" else None)
    keras.utils.set_random_seed(1)
    model = build(request.param, tokenizer=tokenizer, **hparams)
    base = tmp_path_factory.mktemp("saved_models")
    return model, kz.export(model, name=request.param, base_dir=str(base))


@pytest.fixture(scope="module")
def loaded(exported):
    """The export, loaded once per arch: the load is the slow part, and the
    signatures keep no state between calls (seeded sampling takes its seed as an input)."""
    return tf.saved_model.load(exported[1])


def _generate(signature, prompts, max_new_tokens=NEW, temperature=0.0, top_k=0, top_p=1.0, seed=0, stop=(("",),),
              num_beams=(1,)):
    rows = len(prompts)
    out = signature(
        prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], max_new_tokens),
        temperature=tf.fill([rows], float(temperature)), top_k=tf.fill([rows], top_k),
        top_p=tf.fill([rows], float(top_p)), seed=tf.fill([rows], seed),
        stop=tf.constant(stop, tf.string, shape=[len(stop), len(stop[0])]), num_beams=tf.constant(num_beams, tf.int32),
    )
    return [t.decode("utf-8") for t in out["texts"].numpy()], out["token_counts"].numpy()


def _arch_independent(model):
    """Versioning and clean-up do not depend on the arch: checked on the cheaper lstm export only."""
    if getattr(model, "max_length", None):
        pytest.skip("export versioning and clean-up are arch-independent; checked on the lstm export")


def test_export_layout_is_versioned(exported, tmp_path):
    model, path = exported
    _arch_independent(model)
    assert os.path.basename(path) == "1"
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isfile(os.path.join(path, warmup.WARMUP_FILE))
    meta = json.load(open(os.path.join(path, exporter.METADATA_FILE)))
    assert meta["signatures"] == ["generate", "generate_xla", "greedy", "score", "serving_default"]
    assert meta["serving_default"] == "portable" and meta["xla_signatures"] == ["generate_xla"]
    # A second export is version 2; version 1 is untouched.
    before = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    second = kz.export(model, name=os.path.basename(os.path.dirname(path)), base_dir=os.path.dirname(os.path.dirname(path)))
    assert os.path.basename(second) == "2"
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".export-")]


def test_failed_export_leaves_nothing(exported, tmp_path, monkeypatch):
    model, _ = exported
    _arch_independent(model)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warmup, "write", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        kz.export(model, name="m", base_dir=str(tmp_path))
    assert [n for n in os.listdir(tmp_path / "m") if n != ".lock"] == []


def test_greedy_matches_keras_token_for_token(exported, loaded):
    model, _ = exported
    texts, counts = _generate(loaded.signatures["serving_default"], PROMPTS)
    assert texts == kz.generate(model, PROMPTS, max_new_tokens=NEW)
    assert (counts <= NEW).all() and counts.sum() > 0
    # The prompt-only signature is greedy with the export's default length.
    default = min(64, exporter.signatures.new_token_cap(model))
    out = loaded.signatures["greedy"](prompts=tf.constant(PROMPTS[:2]))
    assert [t.decode() for t in out["texts"].numpy()] == kz.generate(model, PROMPTS[:2], max_new_tokens=default)


def test_score_matches_keras_evaluation(exported, loaded):
    model, _ = exported
    texts = [ENGLISH, CHINESE, "", LONG]
    out = loaded.signatures["score"](texts=tf.constant(texts))
    expected = kz.score(model, texts)
    np.testing.assert_allclose(out["log_likelihood"].numpy(), [e["log_likelihood"] for e in expected], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out["token_counts"].numpy(), [e["tokens"] for e in expected])
    np.testing.assert_allclose(out["perplexity"].numpy(), [e["perplexity"] for e in expected], rtol=1e-4)
    np.testing.assert_allclose(out["bits_per_byte"].numpy(), [e["bits_per_byte"] for e in expected], rtol=1e-4, atol=1e-6)


def test_score_equals_training_evaluation(exported):
    """kz.score of one text is the run's evaluation (metrics.evaluate_lm) of that text."""
    model, _ = exported
    ids = data.tokenize_documents(model.tokenizer, [ENGLISH])
    context = getattr(model, "max_length", None) or len(ids) - 1
    reference = kz.metrics.evaluate_lm(model, ids, [ENGLISH], context)
    mine = kz.score(model, [ENGLISH])[0]
    assert mine["tokens"] == reference["tokens"]
    assert mine["bits_per_byte"] == pytest.approx(reference["bits_per_byte"], rel=1e-9)


# The served graph must load where only TensorFlow and TF Text's kernels
# exist, as in TF Serving. TF Text's Python package imports tf.keras when
# imported, so the process registers its kernels the way the C++ server
# links them: tf.load_op_library on the package's op libraries.
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
    for name in BLOCKED:
        try:
            __import__(name)
            raise SystemExit(f"{name} was importable")
        except ImportError:
            pass
    served = tf.saved_model.load(sys.argv[1])
    prompts = json.loads(sys.argv[2])
    n = len(prompts)
    texts = {}
    for name in sys.argv[4].split(","):
        out = served.signatures[name](
            prompts=tf.constant(prompts), max_new_tokens=tf.fill([n], int(sys.argv[3])), temperature=tf.zeros([n]),
            top_k=tf.zeros([n], tf.int32), top_p=tf.ones([n]), seed=tf.zeros([n], tf.int32),
            stop=tf.constant([[""]]), num_beams=tf.constant([1]))
        texts[name] = [t.decode("utf-8") for t in out["texts"].numpy()]
    score = served.signatures["score"](texts=tf.constant(prompts))
    print("RESULT" + json.dumps({
        "texts": texts,
        "log_likelihood": score["log_likelihood"].numpy().tolist(),
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
    }))
""")


def _run_keras_free(path, prompts, new=NEW, signatures=("serving_default",)):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", KERAS_FREE, path, json.dumps(prompts), str(new), ",".join(signatures)],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT"):])


@pytest.fixture(scope="module")
def keras_free(exported):
    """Both generation signatures of the export, run in one keras-free process per arch
    (a process pays TensorFlow's start-up and the SavedModel's load)."""
    return _run_keras_free(exported[1], PROMPTS, signatures=("serving_default", "generate_xla"))


def test_runs_in_a_process_without_keras(exported, keras_free):
    model, _ = exported
    result = keras_free
    assert result["loaded"] == []
    assert result["texts"]["serving_default"] == kz.generate(model, PROMPTS, max_new_tokens=NEW)
    expected = [s["log_likelihood"] for s in kz.score(model, PROMPTS)]
    np.testing.assert_allclose(result["log_likelihood"], expected, rtol=1e-4, atol=1e-4)


def test_xla_signature_runs_without_keras_token_for_token(exported, keras_free, loaded):
    """generate_xla, in a process with TensorFlow and TF Text only, equals in-process greedy and the portable graph."""
    model, _ = exported
    result = keras_free
    assert result["loaded"] == []
    assert result["texts"]["generate_xla"] == kz.generate(model, PROMPTS, max_new_tokens=NEW)
    assert result["texts"]["generate_xla"] == _generate(loaded.signatures["generate"], PROMPTS)[0]
    # Seeded sampling rows (XLA pads the batch to 8 rows): the same text as the portable graph.
    prompts = [ENGLISH[:20], CHINESE[:5], "", "x"] * 2 + ["def"]
    for settings in (dict(temperature=1.0, seed=7), dict(temperature=0.8, top_k=5, top_p=0.9, seed=3)):
        assert (_generate(loaded.signatures["generate_xla"], prompts, **settings)[0]
                == _generate(loaded.signatures["generate"], prompts, **settings)[0])


def test_graph_needs_no_xla_and_pins_no_device(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    from kerazoo.serving.portable_ops import signature_functions

    _, path = exported
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    graph = proto.meta_graphs[0].graph_def
    portable = signature_functions(proto.meta_graphs[0], ["serving_default", "generate", "greedy", "score"])
    assert portable and xla_ops(graph, portable) == []
    # generate_xla reaches a function XLA must compile, and the portable ones none.
    must_compile = {f.signature.name for f in graph.library.function if f.attr["_XlaMustCompile"].b}
    assert must_compile & signature_functions(proto.meta_graphs[0], ["generate_xla"])
    assert not must_compile & portable
    # TF's own checkpoint save/restore functions pin their file I/O to the
    # CPU in every SavedModel. In the serving functions, the only pins allowed
    # are TF Text's soft "CPU:*" on its own CPU-only kernels (and their
    # constants); no model op is pinned, so the math runs on a GPU.
    serving = [f for f in graph.library.function if "_traced_save" not in f.signature.name
               and "_traced_restore" not in f.signature.name]
    pinned = [n for f in serving for n in f.node_def if n.device]
    assert {n.device for n in pinned} <= {"/device:CPU:*"}
    assert [n.op for n in pinned if n.op != "Const" and hasattr(tf.raw_ops, n.op)] == []


def test_warmup_records_replay(exported, loaded):
    from kerazoo.serving.rest import signature_defaults

    _, path = exported
    requests = warmup.read(path)
    assert {name for name, _ in requests} == {"serving_default", "greedy", "score"}
    # Inputs a record leaves out (stop, num_beams) take the SignatureDef's defaults, as in TF Serving.
    defaults = signature_defaults(path)
    for name, inputs in requests:
        rows = len(next(iter(inputs.values())))
        inputs = {**defaults[name], **inputs}
        outputs = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(v.shape[0] == rows for v in outputs.values())


def test_saved_model_cli_lists_string_signatures(exported):
    _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("serving_default", "greedy", "score"):
        assert f"signature_def['{name}']" in proc.stdout
    default = proc.stdout.split("signature_def['serving_default']")[1]
    assert "inputs['prompts'] tensor_info:\n        dtype: DT_STRING" in default
    assert "outputs['texts'] tensor_info:\n        dtype: DT_STRING" in default


def test_bad_input_is_answered(exported, loaded):
    model, _ = exported
    serve = loaded.signatures["serving_default"]
    cap = exporter.signatures.new_token_cap(model)
    bad_utf8 = b"caf\xc3 \xff\xfe end"
    prompts = tf.constant([b"", bad_utf8, LONG.encode(), "你".encode()])
    rows = 4
    for max_new, most in ((0, 0), (-5, 0), (10**9, cap)):
        out = serve(prompts=prompts, max_new_tokens=tf.fill([rows], max_new), temperature=tf.zeros([rows]),
                    top_k=tf.zeros([rows], tf.int32), top_p=tf.ones([rows]), seed=tf.zeros([rows], tf.int32),
                    stop=tf.constant([[""]]), num_beams=tf.constant([1]))
        counts = out["token_counts"].numpy()
        assert (counts <= most).all() and (counts >= 0).all()
        for text in out["texts"].numpy():
            text.decode("utf-8")  # always valid UTF-8
    context = getattr(model, "max_length", None)
    if context:
        assert (out["prompt_tokens"].numpy() + cap <= context).all()


def test_sampling_settings_per_row(loaded):
    serve = loaded.signatures["serving_default"]
    prompts = [ENGLISH[:20]] * 4
    greedy, _ = _generate(serve, prompts)
    sampled, _ = _generate(serve, prompts, temperature=1.0, seed=7)
    assert sampled == _generate(serve, prompts, temperature=1.0, seed=7)[0]  # seeded: reproducible
    assert len(set(sampled)) == 1  # same prompt, same seed, same row result
    assert _generate(serve, prompts, temperature=1.0, seed=8)[0] != sampled or sampled == greedy
    assert _generate(serve, prompts, temperature=1.0, top_k=1, seed=3)[0] == greedy  # top-1 is greedy
    assert _generate(serve, prompts, temperature=1.0, top_p=1e-6, seed=3)[0] == greedy  # tiny nucleus is greedy
    # Rows are independent: a greedy row next to sampled rows stays greedy.
    rows = 2
    out = serve(prompts=tf.constant(prompts[:2]), max_new_tokens=tf.fill([rows], NEW),
                temperature=tf.constant([0.0, 1.5]), top_k=tf.zeros([rows], tf.int32), top_p=tf.ones([rows]),
                seed=tf.constant([0, 5]), stop=tf.constant([[""]]), num_beams=tf.constant([1]))
    assert out["texts"].numpy()[0].decode() == greedy[0]


def test_export_names_cannot_escape(exported, tmp_path):
    model, _ = exported
    for name in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="invalid export name"):
            kz.export(model, name=name, base_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_cli_export_of_a_run(tiny_recipe, tmp_path):
    from kerazoo.cli import main

    recipe = tiny_recipe("gpt", "byte")
    result = kz.run_recipe(kz.load_recipe(recipe), str(tmp_path / "runs"), verbose=0)
    base = str(tmp_path / "saved")
    assert main(["export", result.path, "--base-dir", base, "--max-new-tokens", "5"]) == 0
    assert sorted(os.listdir(os.path.join(base, "tiny_gpt"))) == [".lock", "1"]
    assert main(["export", str(tmp_path / "missing"), "--base-dir", base]) == 2
    assert main(["export", result.path, "--name", "../x", "--base-dir", base]) == 2


JAX_EXPORT = textwrap.dedent("""
    import json, sys
    import kerazoo as kz
    result = kz.run_recipe(kz.load_recipe(sys.argv[1]), sys.argv[2], verbose=0)
    prompts = json.loads(sys.argv[4])
    texts = kz.generate(result.path, prompts, max_new_tokens=6)
    path = kz.export(result.path, base_dir=sys.argv[3])
    print("RESULT" + json.dumps({"texts": texts, "path": path}))
""")


def test_a_model_trained_on_jax_exports(tiny_recipe, tmp_path):
    pytest.importorskip("jax")
    recipe = tiny_recipe("gpt", "byte", extra='jit_compile = "auto"')  # trained on JAX: jitted, as by default
    prompts = ["The quick", "你好", ""]
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_EXPORT, recipe, str(tmp_path / "runs"), str(tmp_path / "saved"), json.dumps(prompts)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0 and lines, proc.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT"):])
    served = tf.saved_model.load(result["path"]).signatures["serving_default"]
    assert _generate(served, prompts, max_new_tokens=6)[0] == result["texts"]


_LOADED_BY_REST = {}


@pytest.fixture
def shared_load(monkeypatch):
    """rest.predict loads its export on every request; the REST tests check the
    request handling, so the first request of an export loads it for real
    (rest.load_saved_model) and the later ones reuse that load (loading a
    damaged export is test_bad_inputs.py's damaged-SavedModel cases)."""
    from kerazoo.serving import rest

    real = rest.load_saved_model

    def load_once(folder):
        if folder not in _LOADED_BY_REST:
            _LOADED_BY_REST[folder] = real(folder)
        return _LOADED_BY_REST[folder]

    monkeypatch.setattr(rest, "load_saved_model", load_once)


def test_rest_predict_row_and_columnar(exported, shared_load):
    from kerazoo.serving.rest import predict

    model, path = exported
    rows = predict(path, {"instances": [
        {"prompts": p, "max_new_tokens": NEW, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
        for p in PROMPTS[:2]
    ]})
    expected = kz.generate(model, PROMPTS[:2], max_new_tokens=NEW)
    assert [r["texts"] for r in rows["predictions"]] == expected
    columns = predict(path, json.dumps({"signature_name": "greedy", "inputs": {"prompts": PROMPTS[:2]}}))
    assert set(columns["outputs"]) == {"texts", "token_counts", "prompt_tokens"}
    for body, message in (
        ({"instances": [{"prompts": "x"}]}, "input size does not match"),
        ({"signature_name": "nope", "instances": ["x"]}, "signature 'nope' not found"),
        ({"inputs": {}, "instances": []}, "exactly one of"),
        ("{not json", "not JSON"),
    ):
        with pytest.raises(ValueError, match=message):
            predict(path, body)


def test_shipped_serving_configs_parse():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    folder = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "serving")
    config = text_format.Parse(open(os.path.join(folder, "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == ["pydocs_gpt", "pydocs_lstm", "pydocs_gru"]
    # BatchingParameters (session_bundle_config.proto) is not in tensorflow-serving-api's
    # Python package; check the shipped file against its field names instead.
    fields = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
              "allowed_batch_sizes", "pad_variable_length_inputs", "thread_pool_name",
              "enable_large_batch_splitting", "max_execution_batch_size"}
    lines = [line.split("#")[0].strip() for line in open(os.path.join(folder, "batching_parameters.txt"))]
    used = {line.split(":")[0].split("{")[0].strip() for line in lines if line}
    assert used <= fields and "max_batch_size" in used


def test_xla_as_serving_default(exported, tmp_path):
    """--serving-default xla: serving_default is generate_xla, and the warm-up records call it."""
    from tensorflow.core.protobuf import saved_model_pb2

    from kerazoo.serving.portable_ops import signature_functions

    model, _ = exported
    if getattr(model, "max_length", None) is None:
        pytest.skip("one arch is enough for the option; the gpt export checks it")
    path = kz.export(model, name="x", base_dir=str(tmp_path), serving_default="xla")
    meta = json.load(open(os.path.join(path, exporter.METADATA_FILE)))
    assert meta["serving_default"] == "xla" and meta["warmup_xla"] is True
    assert {name for name, _ in warmup.read(path)} == {"generate", "generate_xla", "greedy", "score"}
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    graph = proto.meta_graphs[0].graph_def
    must_compile = {f.signature.name for f in graph.library.function if f.attr["_XlaMustCompile"].b}
    assert must_compile & signature_functions(proto.meta_graphs[0], ["serving_default"])
    loaded = tf.saved_model.load(path)
    assert _generate(loaded.signatures["serving_default"], PROMPTS)[0] == kz.generate(model, PROMPTS, max_new_tokens=NEW)
    with pytest.raises(ValueError, match="serving_default"):
        kz.export(model, name="y", base_dir=str(tmp_path), serving_default="fast")
    with pytest.raises(ValueError, match="only causal LMs"):
        exporter.signatures.check_default("xla", "classify")


def test_stop_strings_and_beams_match_in_process(exported, loaded):
    """stop and num_beams: as kz.generate(stop=...) and kz.generate(sampler="beam"), in both signatures."""
    model, _ = exported
    prompts = PROMPTS[:3]
    plain = kz.generate(model, prompts, max_new_tokens=NEW)
    stops = [s for s in {t[len(t) // 2:][:2] for t in plain if len(t) > 1} if s.strip()] or ["e"]
    # The text cut before its first stop string (kz.generate's rule, inference.generate.cut_at_stop).
    from kerazoo.inference.generate import cut_at_stop

    expected = [cut_at_stop(t, stops)[0] for t in plain]
    assert expected == kz.generate(model, prompts, max_new_tokens=NEW, stop=stops)
    # A recurrent model reads a long prompt for several chunks before its first new token.
    assert kz.generate(model, [LONG], max_new_tokens=NEW, stop=stops) == [
        cut_at_stop(kz.generate(model, [LONG], max_new_tokens=NEW)[0], stops)[0]]
    for name in ("generate", "generate_xla"):
        assert _generate(loaded.signatures[name], prompts, stop=[stops])[0] == expected
    beam = kz.generate(model, prompts, max_new_tokens=NEW, sampler="beam", num_beams=2)
    for name in ("generate", "generate_xla"):
        assert _generate(loaded.signatures[name], prompts, num_beams=[2])[0] == beam
    # Per row: beams on row 1 only, a stop on row 0 only; the other rows as if alone.
    texts, _ = _generate(loaded.signatures["generate"], prompts, num_beams=[1, 2, 1],
                         stop=[[stops[0]], [""], [""]])
    assert texts == [cut_at_stop(plain[0], stops[:1])[0], beam[1], plain[2]]


def test_stop_and_beams_bad_input_is_answered(loaded):
    """Empty, over-long and invalid-UTF-8 stops, num_beams <= 0 or huge, mismatched rows: answered."""
    serve = loaded.signatures["serving_default"]
    prompts = [b"", b"caf\xc3 \xff", LONG.encode(), "你".encode()]
    greedy = _generate(serve, prompts)[0]
    stops = [[""], ["x" * 100_000], [b"\xff\xfe"], [""]]
    assert _generate(serve, prompts, stop=stops, num_beams=[0, -3, 1, 0])[0] == greedy
    for beams in ([10**9], [10**9, 1], []):  # clamped to MAX_BEAMS; rows disagreeing or none: answered
        texts, counts = _generate(serve, prompts, max_new_tokens=3, num_beams=beams, stop=[["a", ""]] * 7)
        assert len(texts) == 4 and (counts <= 3).all()
    empty = serve(prompts=tf.constant([], tf.string), max_new_tokens=tf.constant([], tf.int32),
                  temperature=tf.constant([], tf.float32), top_k=tf.constant([], tf.int32),
                  top_p=tf.constant([], tf.float32), seed=tf.constant([], tf.int32),
                  stop=tf.zeros([0, 0], tf.string), num_beams=tf.constant([], tf.int32))
    assert empty["texts"].shape == (0,)


def test_requests_without_the_new_inputs_take_the_signature_defaults(exported, shared_load):
    """TF Serving fills left-out inputs from SignatureDef.defaults; the export stores them."""
    from kerazoo.serving.rest import predict, signature_defaults

    model, path = exported
    defaults = signature_defaults(path)
    for name in ("serving_default", "generate", "generate_xla"):
        assert defaults[name]["stop"].tolist() == [[b""]] and defaults[name]["num_beams"].tolist() == [1]
    body = {"instances": [{"prompts": p, "max_new_tokens": NEW, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
                           "seed": 0, "num_beams": 2} for p in PROMPTS[:2]]}
    beam = kz.generate(model, PROMPTS[:2], max_new_tokens=NEW, sampler="beam", num_beams=2)
    assert [r["texts"] for r in predict(path, body)["predictions"]] == beam
