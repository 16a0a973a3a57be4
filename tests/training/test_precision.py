"""Mixed precision: a recipe option, loss scaling for float16, float32 logits, cached decoding and saving."""


import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.training.recipes import RecipeError

QUIET = dict(verbose=0, log=lambda *_: None)


# bfloat16 in the core suite (every backend); float16 with loss scaling on
# TensorFlow's full run, to keep the other backends' runs short.
@pytest.mark.parametrize("policy", [pytest.param("mixed_bfloat16", marks=pytest.mark.core), "mixed_float16"])
@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_mixed_precision_trains_generates_saves_and_loads(arch, policy, tiny_recipe, tmp_path):
    if arch == "gpt" and policy == "mixed_float16" and keras.backend.backend() == "jax" \
            and not any(d.platform == "gpu" for d in __import__("jax").devices()):
        pytest.skip("XLA:CPU has no float16 matmul with float32 accumulation (mixed_float16 is for GPUs)")
    recipe = kz.load_recipe(tiny_recipe(arch, extra=f'precision = "{policy}"'))
    result = kz.run_recipe(recipe, str(tmp_path), **QUIET)
    assert np.isfinite(result.metrics["val_loss"]) and result.metrics["precision"] == policy
    assert keras.config.dtype_policy().name == "float32", "the global policy is restored after the build"

    model = kz.load_run(result.path)
    assert model.dtype_policy.name == policy, "layers keep their policy through saving"
    ids = np.array([[3, 40, 41, 42, 43]], np.int32)
    logits = model(ids)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert isinstance(kz.generate(model, "The", 6), str)
    assert kz.generate(model, "The", 6) == kz.generate(kz.load_run(result.path), "The", 6)


def test_float16_uses_keras_loss_scaling(tiny_recipe, tmp_path):
    from kerazoo.training import precision
    from kerazoo.training.runner import compile_model

    recipe = kz.load_recipe(tiny_recipe("rnn", extra='precision = "mixed_float16"'))
    with precision.dtype_policy(recipe.train.precision):
        model = compile_model(kz.build("rnn", vocab_size=20, **recipe.hparams), recipe.train)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    plain = compile_model(kz.build("rnn", vocab_size=20, **recipe.hparams), kz.load_recipe(tiny_recipe("rnn")).train)
    assert not isinstance(plain.optimizer, keras.optimizers.LossScaleOptimizer)
    assert plain.dtype_policy.name == "float32"


def test_unknown_precision_names_the_key(tiny_recipe):
    with pytest.raises(RecipeError, match=r"'train.precision' must be one of float32, mixed_bfloat16, mixed_float16, got 'fp8'"):
        kz.load_recipe(tiny_recipe("gpt", extra='precision = "fp8"'))
