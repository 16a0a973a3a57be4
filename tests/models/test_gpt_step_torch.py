"""The plain-PyTorch step (``step_torch``) is a mirror of the keras.ops step (``step.block_step``)."""

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
@pytest.mark.parametrize("tie, logit_bias", [(True, True), (False, False)])
def test_torch_step_logits_equal_the_keras_ops_step(rows, tie, logit_bias):
    import torch

    from kerazoo.models.gpt import step_torch

    keras.utils.set_random_seed(1)
    model = build("gpt", vocab_size=40, max_length=LENGTH, num_layers=2, num_heads=2, hidden_dim=8,
                  tie_embeddings=tie, logit_bias=logit_bias)
    spread(model)
    x = np.random.default_rng(0).integers(0, 40, (rows, 10)).astype("int32")
    step = step_torch.TorchStep(model, rows)
    onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    assert (step.blocks[0].ff1.packed is not None) == (rows > 1 and onednn and step.head.kernel.device.type == "cpu")

    # The keras.ops step, run eagerly on torch, against the mirror.
    check_mirror_against_chunked_step(model, step, x, LENGTH)
