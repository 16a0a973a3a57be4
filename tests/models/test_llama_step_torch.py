"""The llama's plain-PyTorch step (``step_torch``) is a mirror of its keras.ops step (``step.block_step``)."""

import keras
import numpy as np
import pytest

from kerazoo.models import build

from tests.models.test_gpt_step import spread
from tests.models.mirror_parity import check_mirror_against_chunked_step

pytestmark = [
    pytest.mark.core,  # CI's PyTorch run is the core suite
    pytest.mark.skipif(keras.backend.backend() != "torch", reason="the plain-torch step"),
]

LENGTH = 16


@pytest.mark.parametrize("rows", [1, 3])  # 3 rows: products on weights packed for oneDNN, where it has them
@pytest.mark.parametrize("kv_heads, tie, qkv_bias", [(2, True, False), (4, False, True), (1, False, False)])
def test_torch_step_logits_equal_the_keras_ops_step(rows, kv_heads, tie, qkv_bias):
    import torch

    from kerazoo.models.llama import step_torch

    keras.utils.set_random_seed(1)
    model = spread(build("llama", vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=4, num_kv_heads=kv_heads,
                         hidden_dim=16, tie_embeddings=tie, qkv_bias=qkv_bias, logit_bias=not tie,
                         rope_theta=500.0))
    x = np.random.default_rng(0).integers(0, 40, (rows, 10)).astype("int32")
    step = step_torch.TorchStep(model, rows)

    # The keras.ops step, run eagerly on torch, against the mirror; both
    # caches hold num_kv_heads heads.
    torch_cache = check_mirror_against_chunked_step(model, step, x, LENGTH)
    assert tuple(torch_cache[0].shape) == (rows, kv_heads, LENGTH, 4)
