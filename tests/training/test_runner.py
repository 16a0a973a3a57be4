"""The fit-based runner: resume after a crash, and the Python API."""

import json
import os

import keras
import pytest

import kerazoo as kz


class _CrashAfterFirstCheck(keras.callbacks.Callback):
    """Stands in for a crash: raises once the first eval_every block is done."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated crash")


def test_resume_continues_from_the_last_finished_block(tiny_recipe, tmp_path):
    runs = str(tmp_path / "runs")
    recipe = kz.load_recipe(tiny_recipe("gpt"))
    with pytest.raises(KeyboardInterrupt):
        kz.run_recipe(recipe, runs, verbose=0, log=lambda *_: None, callbacks=[_CrashAfterFirstCheck()])
    partial = os.path.join(runs, ".tiny_gpt.partial")
    assert os.path.isdir(os.path.join(partial, "backup")) and not os.path.exists(os.path.join(runs, "tiny_gpt"))

    class _Epochs(keras.callbacks.Callback):
        seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    result = kz.run_recipe(recipe, runs, resume=True, verbose=0, log=lambda *_: None, callbacks=[_Epochs()])
    assert _Epochs.seen == [1], "only the unfinished block is trained again"
    assert result.path.endswith("tiny_gpt") and not os.path.exists(partial)
    assert result.metrics["steps"] == 4
    assert len(json.load(open(os.path.join(result.path, "history.json")))) == 2


def test_resume_without_a_partial_run(tiny_recipe, tmp_path):
    with pytest.raises(ValueError, match="nothing to resume"):
        kz.run_recipe(kz.load_recipe(tiny_recipe("gpt")), str(tmp_path), resume=True, verbose=0)


def test_same_seed_same_metrics(tiny_recipe, tmp_path):
    recipe = kz.load_recipe(tiny_recipe("gru"))
    a = kz.run_recipe(recipe, str(tmp_path / "a"), verbose=0, log=lambda *_: None).metrics
    b = kz.run_recipe(recipe, str(tmp_path / "b"), verbose=0, log=lambda *_: None).metrics
    assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]


def test_random_windows_train_and_resume_like_an_uninterrupted_run(tiny_recipe, tmp_path):
    recipe = kz.load_recipe(tiny_recipe("gpt", extra='windows = "random"'))
    whole = kz.run_recipe(recipe, str(tmp_path / "whole"), verbose=0, log=lambda *_: None).metrics
    runs = str(tmp_path / "crashed")
    with pytest.raises(KeyboardInterrupt):
        kz.run_recipe(recipe, runs, verbose=0, log=lambda *_: None, callbacks=[_CrashAfterFirstCheck()])
    resumed = kz.run_recipe(recipe, runs, resume=True, verbose=0, log=lambda *_: None).metrics
    assert resumed["steps"] == whole["steps"] == 4
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-5), "the resumed run saw the same batches"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="counts tf.function traces")
def test_the_train_step_is_traced_once(tiny_recipe, tmp_path, monkeypatch):
    """The optimizer is built before fit: a variable created inside the first
    trace makes tf.function trace the whole train step a second time."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces, original = [], TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(1)
        return original(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    kz.run_recipe(kz.load_recipe(tiny_recipe("gpt")), str(tmp_path), verbose=0, log=lambda *_: None)
    assert len(traces) == 1


@pytest.mark.core
def test_auto_jit_compile_trains_causal_lms_under_xla_and_agrees_without(tiny_recipe, tmp_path):
    """``train.jit_compile = "auto"`` (the default) compiles the causal-LM train
    step with XLA on TensorFlow (where Keras' own "auto" would not, on a CPU)
    and JAX, not on PyTorch; XLA and no XLA train to the same losses."""
    from kerazoo.training.runner import compile_model

    recipe = kz.load_recipe(tiny_recipe("gpt", extra='jit_compile = "auto"'))
    assert recipe.train.jit_compile == "auto"
    model = compile_model(kz.build("gpt", vocab_size=20, **recipe.hparams), recipe.train)
    assert model.jit_compile is (keras.backend.backend() != "torch")
    no_xla = kz.load_recipe(tiny_recipe("gpt", extra="jit_compile = false"))
    assert compile_model(kz.build("gpt", vocab_size=20, **no_xla.hparams), no_xla.train).jit_compile is False
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from kerazoo.training.runner import jit_compile_for

        with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
            assert jit_compile_for(recipe.train) == "auto", "Keras decides under a distribution strategy"
        xla = kz.run_recipe(recipe, str(tmp_path / "xla"), verbose=0, log=lambda *_: None).metrics
        plain = kz.run_recipe(no_xla, str(tmp_path / "plain"), verbose=0, log=lambda *_: None).metrics
        assert xla["val_loss"] == pytest.approx(plain["val_loss"], rel=1e-4)
        assert xla["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)


def test_loaded_run_model_carries_its_tokenizer(tiny_recipe, tmp_path):
    result = kz.run_recipe(kz.load_recipe(tiny_recipe("lstm", "char")), str(tmp_path), verbose=0, log=lambda *_: None)
    model = kz.load_run(result.path)
    assert model.tokenizer.kind == "char"
    assert isinstance(kz.generate(model, "The", 4), str)


def test_tensorboard_and_early_stopping_options(tiny_recipe, tmp_path):
    recipe = kz.load_recipe(tiny_recipe("rnn", extra="tensorboard = true\nearly_stopping_patience = 1"))
    result = kz.run_recipe(recipe, str(tmp_path), verbose=0, log=lambda *_: None)
    assert os.listdir(os.path.join(result.path, "tensorboard"))
    assert 1 <= result.metrics["steps"] <= 4


def test_resume_refuses_a_changed_recipe(tiny_recipe, tmp_path):
    runs = str(tmp_path / "runs")
    path = tiny_recipe("gpt")
    with pytest.raises(KeyboardInterrupt):
        kz.run_recipe(kz.load_recipe(path), runs, verbose=0, log=lambda *_: None, callbacks=[_CrashAfterFirstCheck()])
    changed = kz.load_recipe(path, ["model.hidden_dim=32"])
    with pytest.raises(ValueError, match="the recipe differs"):
        kz.run_recipe(changed, runs, resume=True, verbose=0, log=lambda *_: None)
    saved_path = os.path.join(runs, ".tiny_gpt.partial", "recipe.toml")
    saved = open(saved_path).read()
    assert "hidden_dim = 16" in saved, "the unfinished run is left as it was"
    # A run started before a key existed has no line for it: it resumes with the key's default.
    assert "\ntensorboard = false\n" in saved
    open(saved_path, "w").write(saved.replace("\ntensorboard = false\n", "\n"))
    result = kz.run_recipe(kz.load_recipe(path), runs, resume=True, verbose=0, log=lambda *_: None)
    assert result.metrics["steps"] == 4
