"""The llama arch: its one keras.ops step against its forward pass, grouped-query attention, saving.

Cached decoding must give, at every position, the logits of running the
whole sequence through the model, on every backend: the whole-cache path
(``call_with_cache``: prefill, XLA and TF-graph loops, beam search, the
PyTorch loop's ``torch_step``) and the chunked path (``call_with_chunk``).
"""

import keras
import numpy as np
import pytest
from keras import ops

from kerazoo.models import build
from kerazoo.models.llama import step as llama_step
from tests.models.test_gpt_step import spread

LENGTH = 16
LLAMA = dict(vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=4, num_kv_heads=2, hidden_dim=16,
             dropout=0.0)


def _numpy(x):
    return ops.convert_to_numpy(ops.stop_gradient(x))


def _llama(**kwargs):
    keras.utils.set_random_seed(1)
    return spread(build("llama", **{**LLAMA, **kwargs}))


def _ids(rows, width, vocab=40, seed=0):
    return np.random.default_rng(seed).integers(1, vocab, (rows, width)).astype("int32")


@pytest.mark.core  # every backend
@pytest.mark.parametrize("kv_heads, tie, qkv_bias, prefill", [(2, True, False, 0), (4, False, True, 5), (1, True, True, 3)])
def test_whole_cache_steps_equal_the_forward_pass_at_every_position(kv_heads, tie, qkv_bias, prefill):
    model = _llama(num_kv_heads=kv_heads, tie_embeddings=tie, qkv_bias=qkv_bias, logit_bias=not tie)
    x = _ids(2, 11)
    full = _numpy(model(x))
    cache = model.init_cache(2, LENGTH)
    assert tuple(cache[0].shape) == (2, kv_heads, LENGTH, 4)  # num_kv_heads heads, not num_heads
    logits = []
    if prefill:
        out, cache = model.call_with_cache(x[:, :prefill], cache, 0)
        logits.append(_numpy(out))
    for t in range(prefill, x.shape[1]):
        index = t if t == 0 else ops.convert_to_tensor(t, "int32")
        out, cache = model.call_with_cache(x[:, t:t + 1], cache, index)
        logits.append(_numpy(out))
    np.testing.assert_allclose(np.concatenate(logits, 1), full, atol=1e-4)


@pytest.mark.core
@pytest.mark.skipif(keras.backend.backend() != "torch", reason="PyTorch's loop step (XLA loops take the chunked step)")
def test_torch_step_equals_the_forward_pass():
    """``torch_step`` (the plain-torch mirror, fused query/key/value and gate/up kernels): PyTorch's loop step."""
    model = _llama(qkv_bias=True)
    x = _ids(3, 9, seed=1)
    full = _numpy(model(x))
    step = model.torch_step(3)
    cache = model.init_cache(3, LENGTH)
    logits, cache = step(x[:, :4], cache, 0)
    outs = [_numpy(logits)]
    for t in range(4, 9):
        logits, cache = step(x[:, t:t + 1], cache, t)
        outs.append(_numpy(logits))
    np.testing.assert_allclose(np.concatenate(outs, 1), full, atol=1e-4)


@pytest.mark.core
@pytest.mark.parametrize("steps", [1, 2])
def test_chunked_steps_equal_the_forward_pass_at_every_position(steps):
    model = _llama()
    x = _ids(3, 10, seed=2)
    full = _numpy(model(x))
    cache, weights, size = model.init_cache(3, LENGTH), model.decode_weights(), 4
    logits = []
    for start in range(0, LENGTH, size):
        chunk = model.read_chunk(cache, start, size)
        for index in range(start, min(start + size, x.shape[1]), steps):
            at = ops.convert_to_tensor(index, "int32")
            begin = start if start == 0 else ops.convert_to_tensor(start, "int32")
            out, chunk = model.call_with_chunk(x[:, index:index + steps], cache, chunk, at, begin, weights)
            logits.append(_numpy(out))
        cache = model.write_chunk(cache, chunk, start)
    np.testing.assert_allclose(np.concatenate(logits, 1), full, atol=1e-4)


def test_rotary_positions_rotate_pairs_by_position():
    """Position 0 is the identity; the dot product of two rotated vectors depends only on their distance."""
    cos, sin = llama_step.rope_tables(ops.arange(8), 4, 10000.0)
    rng = np.random.default_rng(0)
    q, k = (ops.convert_to_tensor(np.tile(rng.normal(size=(1, 4)), (8, 1)).astype("float32")) for _ in range(2))
    rq, rk = _numpy(llama_step.rotate(q, cos, sin)), _numpy(llama_step.rotate(k, cos, sin))
    np.testing.assert_allclose(rq[0], _numpy(q)[0], atol=1e-6)
    np.testing.assert_allclose(rq[5] @ rk[3], rq[2] @ rk[0], atol=1e-5)
    assert abs(rq[5] @ rk[3] - rq[5] @ rk[5]) > 1e-3


def test_hyper_parameters_are_checked_and_listed():
    with pytest.raises(ValueError, match="num_kv_heads"):
        build("llama", vocab_size=10, num_heads=4, num_kv_heads=3, hidden_dim=16)
    with pytest.raises(ValueError, match="even"):
        build("llama", vocab_size=10, num_heads=2, hidden_dim=6)
    from kerazoo.models import list_archs

    rows = {name: {r[0] for r in params} for name, _, params in list_archs()}["llama"]
    assert {"num_kv_heads", "rope_theta", "qkv_bias", "tie_embeddings", "rms_norm_epsilon"} <= rows


def test_no_biases_by_default_and_the_kv_projections_are_smaller():
    model = build("llama", **LLAMA)
    names = [w.path for w in model.weights]
    assert not [n for n in names if n.endswith("bias")]
    block = model.transformer_layers[0]
    assert tuple(block.query_dense.kernel.shape) == (16, 4, 4)
    assert tuple(block.key_dense.kernel.shape) == (16, 2, 4)


def test_saves_and_loads_with_the_same_logits(tmp_path):
    model = _llama(qkv_bias=True, tie_embeddings=False)
    path = str(tmp_path / "llama.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = _ids(2, 7)
    np.testing.assert_allclose(_numpy(again(x)), _numpy(model(x)), atol=1e-6)
    assert again.get_config() == model.get_config()


def _byte_llama(**kwargs):
    import kerazoo as kz

    tokenizer = kz.train_tokenizer(["the quick brown fox"], "byte")
    keras.utils.set_random_seed(3)
    model = build("llama", tokenizer=tokenizer, **{**LLAMA, "max_length": 32, **kwargs, "vocab_size": None})
    return spread(model, seed=4)


@pytest.mark.core  # every backend's real loop: the chunked XLA loop (TF, JAX), the PyTorch loop
def test_decoding_equals_greedy_choice_over_the_whole_sequence():
    """Each decoded id is the argmax of a forward pass over the whole sequence before it (one pass checks all)."""
    from kerazoo.decoding import loop as decoding
    from kerazoo.decoding.sampling import SamplerSpec
    from kerazoo.text.special import EOS_ID

    model = _byte_llama()
    prompts, new = [[EOS_ID, 20, 21], [EOS_ID, 30, 31, 32, 33, 34]], 12
    state = decoding.DecodeState(model, prompts, new, SamplerSpec("greedy"))
    state.advance()
    for prompt, ids in zip(prompts, state.new_ids()):
        assert len(ids) >= 3
        sequence = np.array([prompt + ids], np.int32)
        chosen = np.argmax(_numpy(model(sequence))[0], axis=-1)
        np.testing.assert_array_equal(chosen[len(prompt) - 1:-1], ids)
        if len(ids) < new:  # stopped: the end token was the greedy choice
            assert chosen[-1] == EOS_ID


def test_export_has_gpt_signatures_and_matches_keras(tmp_path):
    """The serving export takes the llama through the protocol, with gpt's signatures and no loop of its own."""
    import tensorflow as tf

    import kerazoo as kz
    from kerazoo.serving import signatures

    model = _byte_llama()
    gpt = build("gpt", vocab_size=40, max_length=32, num_layers=1, num_heads=2, hidden_dim=8)
    assert signatures.model_kind(model) == signatures.model_kind(gpt) == "causal_lm"  # one builder, one set
    loaded = tf.saved_model.load(kz.export(model, name="llama", base_dir=str(tmp_path)))
    prompts, new = ["the", "", "a quick brown fox jumps over"], 8
    rows = len(prompts)
    out = loaded.signatures["serving_default"](
        prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], new), temperature=tf.fill([rows], 0.0),
        top_k=tf.fill([rows], 0), top_p=tf.fill([rows], 1.0), seed=tf.fill([rows], 0),
        stop=tf.constant([[""]]), num_beams=tf.constant([1]))  # TF's Python loader fills no defaults
    assert [t.decode("utf-8") for t in out["texts"].numpy()] == kz.generate(model, prompts, max_new_tokens=new)
    scored = loaded.signatures["score"](texts=tf.constant(prompts))
    np.testing.assert_allclose(scored["log_likelihood"].numpy(), [e["log_likelihood"] for e in kz.score(model, prompts)],
                               rtol=1e-4, atol=1e-4)
