"""Model builders, the registry, and saving round trips."""

import numpy as np
import keras
import keras_hub
import pytest

from kerazoo import models
from kerazoo.models import build

TINY = {
    "rnn": dict(embed_dim=8, hidden_dim=8, num_layers=2),
    "gru": dict(embed_dim=8, hidden_dim=8, num_layers=2),
    "lstm": dict(embed_dim=8, hidden_dim=8, num_layers=2),
    "gpt": dict(max_length=16, num_layers=2, num_heads=2, hidden_dim=16),
}


@pytest.mark.parametrize("arch", list(TINY))
def test_build_shapes(arch):
    model = build(arch, vocab_size=50, **TINY[arch])
    x = np.random.default_rng(0).integers(0, 50, (3, 7)).astype("int32")
    assert tuple(model(x).shape) == (3, 7, 50)


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_recurrent_archs_are_sequential(arch):
    model = build(arch, vocab_size=20, **TINY[arch])
    assert isinstance(model, keras.Sequential)
    names = [type(layer).__name__ for layer in model.layers]
    assert names[0] == "Embedding" and names[-1] == "Dense"
    assert names.count({"rnn": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}[arch]) == 2
    assert "Dropout" in names


def test_gpt_is_functional_and_uses_keras_hub_blocks():
    model = build("gpt", vocab_size=20, **TINY["gpt"])
    assert not isinstance(model, keras.Sequential)
    blocks = [l for l in model.layers if isinstance(l, keras_hub.layers.TransformerDecoder)]
    assert len(blocks) == 2 and all(b.normalize_first for b in blocks)


@pytest.mark.parametrize("training", [False, True])
def test_gpt_is_causal(training):
    """Changing a later token must not change earlier logits (also with dropout, in training)."""
    model = build("gpt", vocab_size=30, dropout=0.0 if not training else 0.5, **TINY["gpt"])
    x = np.arange(10, dtype="int32")[None] % 30
    y = x.copy()
    y[0, 7] = 3
    if training:
        # The same dropout masks for both calls: the seed generators' states
        # are restored, and the global seed reset (unseeded torch dropout uses it).
        states = [keras.ops.convert_to_numpy(v) for v in model.non_trainable_variables]
        keras.utils.set_random_seed(0)
        a = keras.ops.convert_to_numpy(model(x, training=True))
        for variable, state in zip(model.non_trainable_variables, states):
            variable.assign(state)
        keras.utils.set_random_seed(0)
        b = keras.ops.convert_to_numpy(model(y, training=True))
    else:
        a, b = keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(model(y))
    np.testing.assert_allclose(a[0, :7], b[0, :7], atol=1e-5)
    assert np.abs(a[0, 7:] - b[0, 7:]).max() > 1e-6


def test_gpt_blocks_train_through_fused_causal_attention_with_keras_hubs_result():
    """``CausalDecoder`` takes ``dot_product_attention(is_causal=True)`` and equals keras_hub's masked call."""
    from kerazoo.models.gpt.block import CausalDecoder

    model = build("gpt", vocab_size=50, dropout=0.0, **TINY["gpt"])
    ids = np.random.default_rng(0).integers(1, 50, (3, 12)).astype("int32")
    x = model.token_embedding(ids)
    x = x + model.position_embedding(x)
    fused = [0]
    for block in model.transformer_layers:
        assert isinstance(block, CausalDecoder)
        original = block._causal_attention
        block._causal_attention = lambda h, training, original=original: (fused.__setitem__(0, fused[0] + 1), original(h, training))[1]
        ours = keras.ops.convert_to_numpy(block(x))
        theirs = keras.ops.convert_to_numpy(keras_hub.layers.TransformerDecoder.call(block, x))
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
        # A padding mask is not causality alone: keras_hub's own path runs.
        mask = np.ones((3, 12), bool)
        mask[:, 9:] = False
        padded = keras.ops.convert_to_numpy(block(x, decoder_padding_mask=mask))
        np.testing.assert_allclose(
            padded, keras.ops.convert_to_numpy(keras_hub.layers.TransformerDecoder.call(block, x, decoder_padding_mask=mask)),
            atol=1e-6,
        )
        x = keras.ops.convert_to_tensor(ours)
    assert fused[0] == 2, "each block's unmasked call took the fused path, the masked one did not"


def test_tied_and_untied_head_parameter_counts():
    tied = build("gpt", vocab_size=40, tie_embeddings=True, **TINY["gpt"])
    untied = build("gpt", vocab_size=40, tie_embeddings=False, **TINY["gpt"])
    assert untied.count_params() - tied.count_params() == 40 * 16


@pytest.mark.parametrize("arch", list(TINY))
def test_save_and_reload_safe_mode(arch, tmp_path):
    model = build(arch, vocab_size=30, **TINY[arch])
    x = np.random.default_rng(1).integers(0, 30, (2, 9)).astype("int32")
    path = str(tmp_path / f"{arch}.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert type(again) is type(model)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(again(x)))


def test_unknown_arch_names_it():
    with pytest.raises(ValueError, match="unknown arch 'transformerxl'"):
        build("transformerxl", vocab_size=10)


@pytest.mark.parametrize(
    "hparams, message",
    [
        ({"hidden_sz": 3}, "unknown hyper-parameter 'hidden_sz'"),
        ({"num_layers": "two"}, "'num_layers' must be int"),
        ({"num_layers": -1}, "'num_layers' must be positive"),
        ({"dropout": 1.5}, "'dropout' must be in"),
        ({"num_heads": 3, "hidden_dim": 16}, "'num_heads' \\(3\\) must divide"),
    ],
)
def test_bad_hyperparameters_name_the_key(hparams, message):
    with pytest.raises(ValueError, match=message):
        build("gpt", vocab_size=10, **hparams)


def test_vocab_size_required():
    with pytest.raises(ValueError, match="vocab_size or tokenizer"):
        build("lstm")


def test_registry_lists_every_arch_with_defaults():
    listed = {name: rows for name, _, rows in models.list_archs()}
    assert set(listed) == {"rnn", "gru", "lstm", "gpt", "llama", "bert", "bilstm", "seq2seq", "ngram"}
    gpt = {row[0]: row[2] for row in listed["gpt"]}
    assert gpt["num_layers"] == 4 and gpt["tie_embeddings"] is True
    assert all(row[3] for rows in listed.values() for row in rows), "every hyper-parameter has help text"
