"""int8 weights (``kerazoo.models.quantize``, Keras' own ``model.quantize``) for gpt and llama.

The quantized forward pass runs Keras' int8 layers; cached decoding reads
the same weights through ``kerazoo.models.weights``: the two must agree at
every position, and both must stay close to the float model.
"""

import keras
import numpy as np
import pytest
from keras import ops

from kerazoo.models import build, quantize
from tests.models.test_gpt_step import spread

LENGTH = 16
CONFIGS = {
    "gpt": dict(vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=2, hidden_dim=16),
    "llama": dict(vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=4, num_kv_heads=2, hidden_dim=16,
                  intermediate_dim=32),
}


def _numpy(x):
    return ops.convert_to_numpy(ops.stop_gradient(x))


def _model(arch, **kwargs):
    keras.utils.set_random_seed(1)
    model = build(arch, **{**CONFIGS[arch], **kwargs})
    for variable in model.weights:  # N(0, 0.5): logits of order 1 to 10
        variable.assign(np.random.default_rng(0).normal(0.0, 0.5, variable.shape).astype(variable.dtype))
    return model


def _ids(rows, width):
    return np.random.default_rng(0).integers(1, 40, (rows, width)).astype("int32")


def _int8_variables(model):
    return sorted(v.path for v in model.weights if v.dtype == "int8")


@pytest.mark.core
# gpt untied (the reverse head and its int8 scales), llama tied (the embedding as the head).
@pytest.mark.parametrize("arch, tie", [("gpt", False), ("llama", True)])
def test_cached_decoding_of_an_int8_model_equals_its_forward_pass(arch, tie):
    model = _model(arch, tie_embeddings=tie)
    x = _ids(2, 10)
    float_logits = _numpy(model(x))
    quantize.quantize(model)
    int8 = _int8_variables(model)
    # Every product's weights are int8: attention, MLP, and the embedding/head.
    assert any("token_embedding" in p for p in int8) and len(int8) >= 4 * 2 + 1
    if not tie:
        assert any("reverse_embeddings" in p for p in int8)
    full = _numpy(model(x))
    # Weight rounding moves the logits a little, not a lot.
    assert 0 < np.abs(full - float_logits).max() < 0.05 * np.abs(float_logits).max()
    cache = model.init_cache(2, LENGTH)
    steps = []
    for t in range(x.shape[1]):
        out, cache = model.call_with_cache(x[:, t:t + 1], cache, t)
        steps.append(_numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-4, rtol=1e-4)
    if keras.backend.backend() == "torch":  # the eager loop's plain-torch mirror reads the same weights
        import torch

        step, cache = model.torch_step(2), tuple(torch.as_tensor(c).clone() for c in model.init_cache(2, LENGTH))
        mirrored = [_numpy(step(torch.as_tensor(x[:, t:t + 1]).long(), cache, t)[0]) for t in range(x.shape[1])]
        np.testing.assert_allclose(np.concatenate(mirrored, axis=1), full, atol=1e-4, rtol=1e-4)


def test_generate_and_score_run_on_an_int8_model():
    from kerazoo.inference.generate import generate
    from kerazoo.inference.metrics import score
    from kerazoo.text import train_tokenizer

    tokenizer = train_tokenizer(["the cat sat on the mat and the dog sat on the log"] * 20, "char", None)
    model = build("gpt", tokenizer=tokenizer, **{**CONFIGS["gpt"], "vocab_size": None})
    before = score(model, ["the cat sat"])[0]["bits_per_byte"]
    float_text = generate(model, ["the "], max_new_tokens=8)
    quantize.quantize(model)
    after = score(model, ["the cat sat"])[0]["bits_per_byte"]
    assert abs(after - before) < 0.01 * before
    assert len(generate(model, ["the "], max_new_tokens=8)[0]) == len(float_text[0])


def test_refuses_what_it_does_not_cover():
    with pytest.raises(ValueError, match="unknown quantization mode"):
        quantize.quantize(_model("gpt"), "int3")
    with pytest.raises(ValueError, match="Transformer decoders"):
        quantize.quantize(build("lstm", vocab_size=20, embed_dim=8, hidden_dim=8))
    model = quantize.quantize(_model("gpt"))
    with pytest.raises(ValueError, match="already quantized"):
        quantize.quantize(model)
