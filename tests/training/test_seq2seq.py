"""The seq2seq arch: model, pairs, cached translation, the task runner and the CLI."""

import json
import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.data import pairs as pairs_lib
from kerazoo.decoding.beam import beam_search
from kerazoo.cli import main
from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT
from kerazoo.text.special import BOS_ID, EOS_ID, PAD_ID
from kerazoo.inference.translate import _cache_fn, encode_sources, translate, translate_ids

TINY = dict(max_source_length=24, max_length=16, num_encoder_layers=1, num_decoder_layers=2,
            num_heads=2, hidden_dim=16, dropout=0.0)
WORDS = "the cat sat on a mat and dog ran to big red house".split()


def _pairs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(2, 5))))
        out.append((" ".join(words), " ".join(reversed(words))))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    return kz.train_tokenizer([" ".join(WORDS)] * 4, "byte")


@pytest.fixture(scope="module")
def model(tokenizer):
    """A random tiny model whose greedy outputs vary (embeddings scaled up)."""
    keras.utils.set_random_seed(3)
    m = kz.build("seq2seq", tokenizer=tokenizer, **TINY)
    emb = m.token_embedding.embeddings
    emb.assign(np.random.default_rng(0).normal(0, 1.0, emb.shape).astype("float32"))
    return m


def _full_greedy(model, source, n):
    """Greedy decoding that recomputes the whole decoder at every step (no cache).

    The decoder input keeps one width, padded after the target: the decoder is
    causal, so the padding cannot change the last target position's logits, and
    one shape spares JAX a compilation of every op for every prefix length.
    """
    target = [BOS_ID]
    for _ in range(n):
        padded = np.full((1, n + 1), PAD_ID, np.int32)
        padded[0, :len(target)] = target
        logits = model({ENCODER_INPUT: np.array([source], np.int32), DECODER_INPUT: padded})
        nxt = int(np.argmax(keras.ops.convert_to_numpy(logits)[0, len(target) - 1]))
        if nxt == EOS_ID:
            break
        target.append(nxt)
    return target[1:]


def test_forward_shapes_and_registry(model):
    x = {ENCODER_INPUT: np.array([[10, 11, EOS_ID, 0]], np.int32), DECODER_INPUT: np.array([[BOS_ID, 12, 13]], np.int32)}
    assert tuple(model(x).shape) == (1, 3, model.vocab_size)
    assert kz.models.get_arch("seq2seq").task == "seq2seq"
    with pytest.raises(ValueError, match="num_heads"):
        kz.build("seq2seq", vocab_size=50, hidden_dim=10, num_heads=3)


@pytest.mark.core  # every backend
def test_cached_greedy_equals_recomputing_the_decoder(model, tokenizer):
    sources, _ = encode_sources(tokenizer, ["the cat sat", "a big red house and a dog"], model.max_source_length)
    cached = translate_ids(model, sources, 10)
    assert cached == [_full_greedy(model, s, 10) for s in sources]
    assert any(len(ids) >= 3 for ids in cached), "the test model should produce non-trivial outputs"


@pytest.mark.core  # every backend
def test_batch_of_different_lengths_equals_one_at_a_time_and_one_beam_is_greedy(model, tokenizer):
    # Two rows: the same batch bucket as the test above, so no new compilation.
    texts = ["the", "the cat sat on a mat and the dog ran"]
    batch = translate(model, texts, max_new_tokens=8)
    assert batch == [translate(model, t, max_new_tokens=8) for t in texts]
    sources, _ = encode_sources(tokenizer, texts, model.max_source_length)
    prompts = [[BOS_ID] for _ in sources]
    one_beam = beam_search(model, prompts, 8, 1, cache_fn=_cache_fn(model, sources))
    assert one_beam == translate_ids(model, sources, 8)


def test_long_sources_are_cut_and_bad_arguments_refused(model, tokenizer):
    sources, cut = encode_sources(tokenizer, ["x" * 100, "ok"], model.max_source_length)
    assert cut == 1 and len(sources[0]) == model.max_source_length and sources[0][-1] == EOS_ID
    assert isinstance(translate(model, "x" * 100, max_new_tokens=4), str)
    with pytest.raises(ValueError, match="max_new_tokens"):
        translate(model, "the", max_new_tokens=model.max_length)
    with pytest.raises(ValueError, match="non-empty list"):
        translate(model, [])
    gpt = kz.build("gpt", tokenizer=tokenizer, max_length=16, num_layers=1, num_heads=2, hidden_dim=16)
    with pytest.raises(ValueError, match="seq2seq model"):
        translate(gpt, "the")


@pytest.mark.core  # every backend
def test_save_and_reload_in_safe_mode(model, tmp_path):
    path = str(tmp_path / "s2s.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = {ENCODER_INPUT: np.array([[10, 11, EOS_ID]], np.int32), DECODER_INPUT: np.array([[BOS_ID, 12]], np.int32)}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(again(x)), atol=1e-6)
    assert translate(again, "the cat", max_new_tokens=6) == translate(model, "the cat", max_new_tokens=6)


def test_read_pairs_formats_and_errors(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("en\tfr\nHi.\tSalut.\nGo.\tVa !\n\t\n", encoding="utf-8")
    assert pairs_lib.read_pairs(str(tsv), "en", "fr") == [("Hi.", "Salut."), ("Go.", "Va !")]
    bare = tmp_path / "bare.tsv"
    bare.write_text("Hi.\tSalut.\tCC-BY\nGo.\tVa !\tCC-BY\n", encoding="utf-8")
    assert pairs_lib.read_pairs(str(bare), "1", "2", header=False)[1] == ("Go.", "Va !")
    with pytest.raises(ValueError, match="named by position: 1, 2, 3"):
        pairs_lib.read_pairs(str(bare), "en", "2", header=False)
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"src": "a", "tgt": "b"}\n{"src": "c", "tgt": "d"}\n', encoding="utf-8")
    assert pairs_lib.read_pairs(str(jsonl), "src", "tgt") == [("a", "b"), ("c", "d")]
    with pytest.raises(ValueError, match="column 'target' not found"):
        pairs_lib.read_pairs(str(jsonl), "src", "target")
    empty = tmp_path / "e.tsv"
    empty.write_text("en\tfr\n\t \n", encoding="utf-8")
    with pytest.raises(ValueError, match="no \\(source, target\\) pairs"):
        pairs_lib.read_pairs(str(empty), "en", "fr")
    built_in = pairs_lib.read_pairs("builtin:pydocs-reverse")
    assert len(built_in) == 4000 and all(s.split() == t.split()[::-1] for s, t in built_in[:50])
    train, val = pairs_lib.split_pairs(built_in, 0.1, 0)
    assert len(val) == 400 and len(train) == 3600


def test_teacher_forcing_arrays():
    x, y = pairs_lib.teacher_forcing_arrays([[7, 8, EOS_ID], [9, EOS_ID]], [[5, 6], [4]])
    np.testing.assert_array_equal(x[ENCODER_INPUT], [[7, 8, EOS_ID], [9, EOS_ID, 0]])
    np.testing.assert_array_equal(x[DECODER_INPUT], [[BOS_ID, 5, 6], [BOS_ID, 4, 0]])
    np.testing.assert_array_equal(y, [[5, 6, EOS_ID], [4, EOS_ID, 0]])


def test_plain_fit_lowers_the_loss(tokenizer, tmp_path):
    keras.utils.set_random_seed(0)
    pairs = _pairs(64)
    src, tgt, _ = pairs_lib.tokenize_pairs(tokenizer, pairs, TINY["max_source_length"], TINY["max_length"])
    m = kz.build("seq2seq", tokenizer=tokenizer, **TINY)
    m.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
              jit_compile=False)  # a tiny model: XLA's compile time would dominate the test
    x, y = pairs_lib.teacher_forcing_arrays(src, tgt)

    def loss():  # eager: no second traced function for evaluate()
        return float(m.loss(y, m(x, training=False)))

    before = loss()
    m.fit(pairs_lib.seq2seq_dataset(src, tgt, 16, seed=0, repeat=True), steps_per_epoch=15, epochs=1, verbose=0)
    assert loss() < before - 0.5


def _recipe(tmp_path, extra=""):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"en": s, "rev": t}) + "\n" for s, t in _pairs(80)), encoding="utf-8")
    path = tmp_path / "tiny_s2s.toml"
    model = "\n".join(f"{k} = {json.dumps(v)}" for k, v in dict(TINY, num_decoder_layers=1).items())
    path.write_text(f"""
name = "tiny_s2s"
[data]
source = "{data}"
source_column = "en"
target_column = "rev"
# One held-out pair: its translation and the sample share one compiled decoding loop (batch 1).
val_fraction = 0.0125
[tokenizer]
kind = "byte"
[model]
arch = "seq2seq"
{model}
[train]
batch_size = 8
steps = 4
eval_every = 2
eval_batches = 1
warmup_steps = 1
sample_prompt = "the cat"
sample_tokens = 6
{extra}
""")
    return str(path)


@pytest.mark.core  # every backend
def test_recipe_run_writes_bleu_and_rouge_and_reloads(tmp_path, capsys):
    recipe = kz.load_recipe(_recipe(tmp_path))
    assert recipe.task_kind == "seq2seq"
    result = kz.run_recipe(recipe, str(tmp_path / "runs"), verbose=0, log=lambda *_: None)
    m = result.metrics
    for key in ("val_loss", "val_bleu", "val_rouge1", "val_rouge2", "val_rougeL"):
        assert np.isfinite(m[key]), key
    assert m["val_pairs"] == 1 and m["steps"] == 4
    for name in ("model.keras", "metrics.json", "history.json", "recipe.toml", "translations.tsv", "tokenizer"):
        assert os.path.exists(os.path.join(result.path, name)), name
    # The CLI reloads the run folder: the same translation as the trained model's.
    lines = tmp_path / "texts.txt"
    lines.write_text("the cat\n")
    assert main(["translate", result.path, "--file", str(lines), "--max-new-tokens", "6"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out == [{"text": "the cat", "translation": result.sample}]


def test_recipe_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="task.kind"):
        kz.load_recipe(_recipe(tmp_path, '[task]\nkind = "causal_lm"'))
    with pytest.raises(ValueError, match="task.kind"):
        kz.load_recipe(_recipe(tmp_path, '[task]\nkind = "translate"'))
    with pytest.raises(ValueError, match="data.target_column"):
        kz.load_recipe(_recipe(tmp_path), ["data.target_column=en"])
    with pytest.raises(ValueError, match="column 'nope' not found"):
        kz.run_recipe(kz.load_recipe(_recipe(tmp_path), ["data.source_column=nope"]), str(tmp_path / "r"),
                      verbose=0, log=lambda *_: None)
    assert not os.path.exists(tmp_path / "r")
    assert main(["translate", str(tmp_path / "missing"), "--text", "hi"]) == 2
