"""The one keras.ops block step (``kerazoo.models.gpt.step``) against the models' full forward pass.

Cached decoding must give, at every position, the logits of running the
whole sequence through the model: the whole-cache path (``call_with_cache``:
prefill, XLA and TF-graph loops, beam search), the chunked path
(``call_with_chunk``: the chunked XLA loop) and seq2seq's decoder blocks,
which add cross-attention to the same step.
"""

import keras
import numpy as np
import pytest
from keras import ops

from kerazoo.models import build
from kerazoo.models.gpt import step as gpt_step
from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT
from kerazoo.text.special import EOS_ID, PAD_ID

LENGTH = 16
GPT = dict(vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=2, hidden_dim=8)


def _numpy(x):
    return ops.convert_to_numpy(ops.stop_gradient(x))


def spread(model, seed=0):
    """Redraws every weight from N(0, 0.5): logits of order 1 to 10 rather than GPT-2's
    near-zero initial ones, so that a wrong term in a step shows at 1e-5."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(variable.dtype))
    return model


def _gpt(**kwargs):
    keras.utils.set_random_seed(1)
    return spread(build("gpt", **{**GPT, **kwargs}))


def _ids(rows, width, vocab=40, seed=0):
    return np.random.default_rng(seed).integers(1, vocab, (rows, width)).astype("int32")


@pytest.mark.core  # every backend (PyTorch's call_with_cache is the torch mirror: see test_gpt_step_torch)
@pytest.mark.parametrize("tie, logit_bias", [(True, False), (False, True)])
@pytest.mark.parametrize("prefill", [0, 5])
def test_gpt_whole_cache_steps_equal_the_forward_pass_at_every_position(tie, logit_bias, prefill):
    model = _gpt(tie_embeddings=tie, logit_bias=logit_bias)
    x = _ids(2, 11)
    full = _numpy(model(x))
    cache = model.init_cache(2, LENGTH)
    logits = []
    if prefill:
        out, cache = model.call_with_cache(x[:, :prefill], cache, 0)
        logits.append(_numpy(out))
    for t in range(prefill, x.shape[1]):
        # Loops pass the position as a tensor; the first step also runs as
        # the prefill does (a Python 0, nothing cached to attend to).
        index = t if t == 0 else ops.convert_to_tensor(t, "int32")
        out, cache = model.call_with_cache(x[:, t:t + 1], cache, index)
        logits.append(_numpy(out))
    np.testing.assert_allclose(np.concatenate(logits, 1), full, atol=1e-5)


@pytest.mark.core  # every backend: the chunked path is keras.ops on each
@pytest.mark.parametrize("steps", [1, 2])
def test_gpt_chunked_steps_equal_the_forward_pass_at_every_position(steps):
    """Chunks of 4 positions over a 16-position cache, ``steps`` new positions per call."""
    model = _gpt()
    x = _ids(3, 14, seed=2)
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
    np.testing.assert_allclose(np.concatenate(logits, 1), full, atol=1e-5)


@pytest.mark.core
def test_the_whole_cache_write_is_the_chunk_that_starts_at_index():
    """``block_step`` without a chunk returns the new keys and values; as a chunk there it gives the same."""
    model = _gpt()
    block = model.transformer_layers[0]
    rng = np.random.default_rng(3)
    x = ops.convert_to_tensor(rng.normal(size=(2, 3, 8)).astype("float32"))
    cache = tuple(ops.convert_to_tensor(rng.normal(size=(2, 2, LENGTH, 4)).astype("float32")) for _ in range(2))
    index = ops.convert_to_tensor(6, "int32")
    out, new = gpt_step.block_step(block, x, cache, index)
    assert tuple(new[0].shape) == (2, 2, 3, 4)
    chunk = tuple(ops.zeros((2, 2, 3, 4)) for _ in range(2))
    out_chunked, written = gpt_step.block_step(block, x, cache, index, chunk, index, gpt_step.fused_qkv(block))
    np.testing.assert_allclose(_numpy(out_chunked), _numpy(out), atol=1e-5)
    for a, b in zip(written, new):
        np.testing.assert_allclose(_numpy(a), _numpy(b), atol=1e-6)
    # Positions 6 ... 8 are the new ones: nothing at or after index is read.
    poisoned = tuple(ops.slice_update(c, [0, 0, 6, 0], ops.full((2, 2, 10, 4), 1e3)) for c in cache)
    np.testing.assert_allclose(_numpy(gpt_step.block_step(block, x, poisoned, index)[0]), _numpy(out), atol=1e-5)


@pytest.mark.core  # every backend
@pytest.mark.parametrize("prefill", [0, 3])
def test_seq2seq_cached_steps_equal_the_forward_pass_at_every_position(prefill):
    keras.utils.set_random_seed(2)
    model = build("seq2seq", vocab_size=40, max_source_length=12, max_length=LENGTH, num_encoder_layers=1,
                  num_decoder_layers=2, num_heads=2, hidden_dim=8, dropout=0.0)
    spread(model)
    source = _ids(2, 9, seed=4)
    source[:, -1] = EOS_ID
    source[1, 5:] = PAD_ID  # a shorter source: its padding is masked out of cross-attention
    source[1, 4] = EOS_ID
    target = _ids(2, 10, seed=5)
    full = _numpy(model({ENCODER_INPUT: source, DECODER_INPUT: target}))
    cache = model.start_cache(source, LENGTH)
    logits = []
    if prefill:
        out, cache = model.call_with_cache(target[:, :prefill], cache, 0)
        logits.append(_numpy(out))
    for t in range(prefill, target.shape[1]):
        index = t if t == 0 else ops.convert_to_tensor(t, "int32")
        out, cache = model.call_with_cache(target[:, t:t + 1], cache, index)
        logits.append(_numpy(out))
    np.testing.assert_allclose(np.concatenate(logits, 1), full, atol=1e-5)
