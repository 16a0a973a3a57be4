"""The core suite: every arch end to end, on whichever backend runs pytest.

CI runs this module (``pytest -m core``) under ``KERAS_BACKEND=tensorflow``,
``jax`` and ``torch``. For every arch of the registry it builds a tiny model,
fits a few steps through the recipe runner, evaluates, generates, saves and
loads the run, and checks the reloaded model against the in-memory one.
"""

import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo import data as data_lib
from kerazoo.models import ARCHS as REGISTRY
from kerazoo.runner import compile_model
from kerazoo.tokenizers import EOS_ID

pytestmark = pytest.mark.core

# The causal LMs of the registry; seq2seq has its own core test in tests/test_seq2seq.py.
ARCHS = [name for name, arch in REGISTRY.items() if arch.task == "causal_lm"]
QUIET = dict(verbose=0, log=lambda *_: None)


def _logits(model, ids):
    return keras.ops.convert_to_numpy(model(ids, training=False))


@pytest.mark.parametrize("arch", ARCHS)
def test_recipe_trains_evaluates_generates_saves_and_loads(arch, tiny_recipe, tmp_path):
    recipe = kz.load_recipe(tiny_recipe(arch))
    result = kz.run_recipe(recipe, str(tmp_path / "runs"), **QUIET)
    m = result.metrics
    assert m["backend"] == keras.backend.backend()
    assert m["steps"] == recipe.train.steps and np.isfinite(m["val_loss"]) and np.isfinite(m["train_loss"])
    assert isinstance(result.sample, str)

    model = kz.load_run(result.path)
    assert model.tokenizer.kind == "byte"
    again = kz.load_run(os.path.join(result.path, "model.keras"))
    ids = np.array([[EOS_ID] + list(range(10, 20))], np.int32)
    np.testing.assert_array_equal(_logits(model, ids), _logits(again, ids))
    assert kz.generate(model, "The quick", 6) == kz.generate(again, "The quick", 6)


@pytest.mark.parametrize("arch", ARCHS)
def test_fit_lowers_the_loss_and_the_reload_agrees(arch, text_file, tmp_path):
    """The public API of the README, a few steps on a repeated text."""
    keras.utils.set_random_seed(0)
    docs = data_lib.read_corpus(text_file)
    tokenizer = kz.train_tokenizer(docs, "byte")
    ids = data_lib.tokenize_documents(tokenizer, docs)
    hparams = dict(max_length=32, num_layers=1, num_heads=2, hidden_dim=16) if arch == "gpt" \
        else dict(embed_dim=8, hidden_dim=16, num_layers=1)
    model = kz.build(arch, tokenizer=tokenizer, dropout=0.0, **hparams)
    recipe = kz.load_recipe(_recipe_file(tmp_path, arch), ["train.learning_rate=1e-2"])
    compile_model(model, recipe.train)
    before = kz.metrics.evaluate_lm(model, ids[:400], docs[:1], seq_len=16, batch_size=4)["loss"]
    model.fit(data_lib.lm_dataset(ids, 16, 4, seed=0, repeat=True), steps_per_epoch=8, epochs=1, verbose=0,
              shuffle=False)
    after = kz.metrics.evaluate_lm(model, ids[:400], docs[:1], seq_len=16, batch_size=4)["loss"]
    assert after < before

    path = str(tmp_path / f"{arch}.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = np.asarray(ids[:17], np.int32)[None]
    np.testing.assert_allclose(_logits(model, x), _logits(again, x), atol=1e-6)
    assert kz.generate(again, "To be", 8) == kz.generate(model, "To be", 8)


def _recipe_file(tmp_path, arch):
    path = tmp_path / "r.toml"
    path.write_text(f'[model]\narch = "{arch}"\n[train]\nsteps = 8\neval_every = 8\nwarmup_steps = 1\n')
    return str(path)
