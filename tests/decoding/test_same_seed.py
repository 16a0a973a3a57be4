"""One sampler noise: the same prompts, settings and seed give the same text everywhere.

The reference is TensorFlow's served graph: a tiny gpt and lstm with fixed
weights (drawn by numpy, so every backend holds the same ones) are exported
with ``kz.export`` (a TensorFlow process on JAX and PyTorch), and the
SavedModel's ``serving_default`` texts must equal in-process ``kz.generate``
on the current backend, greedy and sampled with a seed. CI runs it on every
backend, so TensorFlow, JAX, PyTorch and the served model agree.
"""

import numpy as np
import pytest
import tensorflow as tf

import kerazoo as kz
from kerazoo.decoding import noise
from kerazoo.models import build

from tests.conftest import ENGLISH

PROMPTS = ["The quick brown fox", "A", "学而时习之，不亦说乎"]
NEW = 12
SEED = 11
# (sampler, temperature, top_k, top_p) of kz.generate; the served request
# carries the same numbers (top_k 0 and top_p 1 turn a cut off there).
SETTINGS = [
    ("greedy", None, 0, 1.0),
    ("top_p", 1.0, 0, 0.9),
    ("top_k", 0.8, 20, 1.0),
    ("temperature", 1.3, 0, 1.0),
]
MODELS = {
    "gpt": dict(max_length=32, num_layers=2, num_heads=2, hidden_dim=16),
    "lstm": dict(embed_dim=16, hidden_dim=32, num_layers=2),
}


def _fixed_weights(model, scale=0.4):
    """Overwrites every weight with numpy draws: the same model on every backend."""
    rng = np.random.default_rng(0)
    for variable in model.weights:
        values = rng.normal(0.0, scale, tuple(variable.shape))
        variable.assign(values.astype(variable.dtype))


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, tmp_path_factory):
    """A tiny model with fixed weights and its exported ``serving_default``."""
    tokenizer = kz.train_tokenizer([ENGLISH], "byte")
    model = build(request.param, tokenizer=tokenizer, **MODELS[request.param])
    _fixed_weights(model)
    path = kz.export(model, name=request.param, base_dir=str(tmp_path_factory.mktemp("saved")))
    return model, tf.saved_model.load(path).signatures["serving_default"]


def _served_texts(signature, temperature, top_k, top_p):
    rows = len(PROMPTS)
    out = signature(
        prompts=tf.constant(PROMPTS), max_new_tokens=tf.fill([rows], NEW),
        temperature=tf.fill([rows], float(temperature or 0.0)), top_k=tf.fill([rows], top_k),
        top_p=tf.fill([rows], float(top_p)),
        # In-process, row r of a batch samples with seed + r (noise.row_seeds).
        seed=tf.constant([SEED + r for r in range(rows)], tf.int32),
        stop=tf.constant([[""]]), num_beams=tf.constant([1]),
    )
    return [t.decode("utf-8") for t in out["texts"].numpy()]


@pytest.mark.core
@pytest.mark.parametrize("sampler, temperature, top_k, top_p", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_in_process_text_equals_the_served_text(served, sampler, temperature, top_k, top_p):
    model, signature = served
    kwargs = {"top_k": top_k} if sampler == "top_k" else {"top_p": top_p} if sampler == "top_p" else {}
    mine = kz.generate(model, PROMPTS, max_new_tokens=NEW, sampler=sampler, temperature=temperature,
                       seed=SEED, **kwargs)
    assert mine == _served_texts(signature, temperature, top_k, top_p)
    assert any(mine), "the test decodes some text"
    if sampler != "greedy":
        greedy = kz.generate(model, PROMPTS, max_new_tokens=NEW, seed=SEED)
        assert mine != greedy, "a sampled setting that reproduced greedy would test no noise"


@pytest.mark.core
def test_one_row_equals_its_row_in_a_batch(served):
    """A row's text depends on its prompt, settings and seed, not on the batch it is decoded in."""
    model, _ = served
    batch = kz.generate(model, PROMPTS, max_new_tokens=NEW, sampler="top_p", seed=SEED)
    alone = kz.generate(model, PROMPTS[1], max_new_tokens=NEW, sampler="top_p", seed=SEED + 1)
    assert alone == batch[1]


def _lowbias32(x):
    """An independent numpy reference of the hash (uint64 lanes, masked)."""
    x = np.asarray(x, np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x6B43A9B5) & 0xFFFFFFFF
    return x ^ (x >> 16)


@pytest.mark.core
def test_noise_is_the_documented_hash():
    """The noise is lowbias32 of (seed, position, token), kept to 23 bits: bit-exact on every backend."""
    from keras import ops

    seeds, index, vocab = np.array([0, 5, 2**31 - 1, -3], np.int32), 9, 37
    row = _lowbias32(_lowbias32(seeds.astype(np.int64) & 0xFFFFFFFF) ^ index)
    bits = _lowbias32((row[:, None] * 0x27D4EB2F + np.arange(vocab, dtype=np.uint64)[None, :]) & 0xFFFFFFFF)
    expected = ((bits >> 9).astype(np.float32) * 2 + 1) / np.float32(2**24)
    got = ops.convert_to_numpy(noise.uniform_noise(ops.convert_to_tensor(seeds), ops.convert_to_tensor(np.int32(index)), vocab))
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.min() and got.max() < 1
