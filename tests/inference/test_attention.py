"""kerazoo.inference.attention: a gpt's attention maps, recomputed from its own layers."""

import keras
import numpy as np
import pytest
from keras import ops

import kerazoo as kz
from kerazoo.inference.attention import attention_probabilities, block_input, token_ids

from tests.conftest import ENGLISH

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def gpt():
    keras.utils.set_random_seed(0)
    tokenizer = kz.train_tokenizer([ENGLISH * 20], "unigram", vocab_size=48)
    # Dropout on, so the check also covers "inference mode" in the recomputation.
    return kz.build("gpt", tokenizer=tokenizer, max_length=32, num_layers=2, num_heads=2, hidden_dim=16, dropout=0.1)


def _block_output_with(block, x, probs):
    """The block's output rebuilt by hand from attention probabilities ``probs``."""
    attn = block._self_attention_layer
    value = attn._value_dense(block._self_attention_layer_norm(x))  # (batch, length, heads, head_dim)
    mixed = ops.einsum("bhqk,bkhd->bqhd", probs, value)
    x = x + attn._output_dense(mixed)
    h = block._feedforward_layer_norm(x)
    h = block._feedforward_intermediate_dense(h)  # a Dense with the block's activation
    return x + block._feedforward_output_dense(h)


@pytest.mark.parametrize("layer", [0, 1])
def test_rows_are_probabilities_and_causal(gpt, layer):
    tokens, weights = kz.attention.attention_weights(gpt, TEXT, layer=layer)
    n = len(tokens)
    assert tokens[0] == "</s>" and n > 3
    assert weights.shape == (2, n, n) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights >= 0)
    assert np.all(weights[:, np.triu_indices(n, 1)[0], np.triu_indices(n, 1)[1]] == 0.0)
    assert weights[:, 0, 0] == pytest.approx(1.0)  # the first token can only see itself


@pytest.mark.parametrize("layer", [0, 1])
def test_the_block_output_rebuilt_from_the_weights_matches_the_real_block(gpt, layer):
    ids = token_ids(gpt, TEXT)[None]
    x = block_input(gpt, ids, layer)
    block = gpt.transformer_layers[layer]
    probs = attention_probabilities(block, x)
    np.testing.assert_allclose(
        ops.convert_to_numpy(_block_output_with(block, x, probs)),
        ops.convert_to_numpy(block(x, training=False)), atol=1e-5)


def test_the_last_block_feeds_the_models_logits(gpt):
    """block_input chains the real blocks: after the last one come the norm and the head."""
    ids = token_ids(gpt, TEXT)[None]
    last = gpt.transformer_layers[-1]
    x = last(block_input(gpt, ids, len(gpt.transformer_layers) - 1), training=False)
    logits = gpt.token_embedding(gpt.final_norm(x), reverse=True)
    np.testing.assert_allclose(ops.convert_to_numpy(logits), ops.convert_to_numpy(gpt(ids, training=False)), atol=1e-4)


def test_bad_model_or_layer_is_refused(gpt):
    with pytest.raises(ValueError, match="layer"):
        kz.attention.attention_weights(gpt, TEXT, layer=2)
    lstm = kz.build("lstm", tokenizer=gpt.tokenizer, embed_dim=8, hidden_dim=8)
    with pytest.raises(ValueError, match="gpt"):
        kz.attention.attention_weights(lstm, TEXT)
