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
from kerazoo.training.runner import compile_model
from kerazoo.text.special import EOS_ID

pytestmark = pytest.mark.core

# The next-token archs; the encoders' and seq2seq's core tests are in test_bert.py,
# test_classify.py and test_seq2seq.py.
ARCHS = [a.name for a in REGISTRY.values() if a.task == "causal_lm"]
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
    hparams = dict(max_length=32, num_layers=1, num_heads=2, hidden_dim=16) if arch in ("gpt", "llama") \
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


# Tiny hyper-parameters of every arch of the registry (not only the causal ones).
TINY = {
    "gpt": dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16),
    "llama": dict(max_length=16, num_layers=1, num_heads=2, num_kv_heads=1, hidden_dim=16),
    "bert": dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16),
    "bilstm": dict(embed_dim=8, hidden_dim=8),
    "seq2seq": dict(max_source_length=16, max_length=16, num_encoder_layers=1, num_decoder_layers=1,
                    num_heads=2, hidden_dim=16),
}


def _tiny(arch, vocab_size=40):
    hparams = TINY.get(arch, dict(embed_dim=8, hidden_dim=16, num_layers=1))
    return kz.build(arch, vocab_size=vocab_size, dropout=0.0, **hparams)


def _batch(arch, ids):
    """``(x, y)`` of one training batch for the arch's inputs."""
    if arch == "seq2seq":
        from kerazoo.models.seq2seq import DECODER_INPUT, ENCODER_INPUT

        return {ENCODER_INPUT: ids[:, 1:], DECODER_INPUT: ids[:, :-1]}, ids[:, 1:]
    return ids[:, :-1], ids[:, 1:]


# Every arch that trains by gradient (the ngram counts; it has no train step).
@pytest.mark.parametrize("arch", [name for name, a in REGISTRY.items() if a.task != "ngram"])
def test_each_train_step_uses_only_its_own_gradient(arch):
    """Step two from weights w1 equals one fresh step from w1.

    Guards against gradients that leak from one step into the next: on
    PyTorch, Keras clears them with ``Module.zero_grad()``, which misses
    any variable the model did not register as a torch parameter (then the
    second update would add the first step's gradient again).
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(5, 40, size=(2, 3, 9)).astype("int32")
    model, fresh = _tiny(arch), _tiny(arch)
    for m in (model, fresh):
        m.compile(optimizer=keras.optimizers.SGD(0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(*_batch(arch, x[0]))
    fresh.set_weights(model.get_weights())
    model.train_on_batch(*_batch(arch, x[1]))
    fresh.train_on_batch(*_batch(arch, x[1]))
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6)


def test_the_package_keeps_the_old_names():
    """The flat layout's module names are the new modules themselves."""
    import importlib

    import kerazoo.data.pairs
    import kerazoo.interop.hf
    import kerazoo.pairs
    from kerazoo.hf import import_checkpoint
    from kerazoo.training import runner, runs

    assert kerazoo.pairs is kerazoo.data.pairs and kerazoo.data.pairs.__spec__.name == "kerazoo.data.pairs"
    assert import_checkpoint is kerazoo.interop.hf.import_checkpoint
    assert kz.tokenizers is kz.text and kz.metrics is importlib.import_module("kerazoo.inference.metrics")
    assert kz.load_run is runs.load_run is runner.load_run and kz.run_recipe is runner.run_recipe
    assert set(kz.__all__) <= set(dir(kz))
    with pytest.raises(AttributeError):
        kz.no_such_name
