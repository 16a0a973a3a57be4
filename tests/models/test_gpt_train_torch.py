"""The plain-PyTorch training forward pass (``train_torch``) is a mirror of the GPT's Keras layers."""

import keras
import numpy as np
import pytest

from kerazoo.models import build

from tests.models.test_gpt_step import spread

pytestmark = [
    pytest.mark.core,  # CI's PyTorch run is the core suite
    pytest.mark.skipif(keras.backend.backend() != "torch", reason="the plain-torch training forward pass"),
]


def _gpt(**kwargs):
    keras.utils.set_random_seed(1)
    config = dict(vocab_size=40, max_length=16, num_layers=2, num_heads=2, hidden_dim=8, dropout=0.0)
    return spread(build("gpt", **{**config, **kwargs}))


def _logits_and_grads(model, x, y, mirror):
    """Logits and the loss's gradients in every variable, through the mirror or the Keras layers."""
    from kerazoo.models.gpt import train_torch

    for v in model.trainable_variables:
        v.value.grad = None
    logits = train_torch.forward(model, x) if mirror else super(type(model), model).call(x, training=True)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    loss.backward()
    return logits.detach().cpu().numpy(), [v.value.grad.cpu().numpy() for v in model.trainable_variables]


@pytest.mark.parametrize("tie, logit_bias, approximate", [(True, False, False), (False, True, True)])
def test_mirror_logits_and_gradients_equal_the_layers(tie, logit_bias, approximate):
    import torch

    model = _gpt(tie_embeddings=tie, logit_bias=logit_bias, gelu_approximate=approximate)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(0, 40, (3, 12)).astype("int32"))
    y = torch.as_tensor(rng.integers(0, 40, (3, 12)).astype("int32"))
    ours, our_grads = _logits_and_grads(model, x, y, mirror=True)
    theirs, their_grads = _logits_and_grads(model, x, y, mirror=False)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    assert len(our_grads) == len(their_grads) == len(model.trainable_variables)
    for a, b, v in zip(our_grads, their_grads, model.trainable_variables):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)
    # The model's own call takes the mirror here.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), ours, rtol=1e-6, atol=1e-6)


def test_mirror_is_left_out_where_it_would_differ():
    from kerazoo.models.gpt import train_torch

    assert train_torch.applies(_gpt(), training=True)
    dropout = _gpt(dropout=0.1)
    assert not train_torch.applies(dropout, training=True) and train_torch.applies(dropout, training=False)
    lora = _gpt()
    lora.transformer_layers[0]._self_attention_layer._query_dense.enable_lora(2)
    assert not train_torch.applies(lora, training=True)
    quantized = _gpt()
    quantized.quantize("int8")
    assert not train_torch.applies(quantized, training=False)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        assert not train_torch.applies(_gpt(), training=True)
    finally:
        keras.config.set_dtype_policy("float32")
