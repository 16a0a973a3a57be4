"""LoRA on Keras' enable_lora: only adapters train, the run keeps merged weights, bad targets fail cleanly."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo import cli
from kerazoo.models import build
from kerazoo.training import lora
from kerazoo.training.recipes import TrainSection
from kerazoo.training.tasks.causal_lm import compile_model

TINY_GPT = dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16, dropout=0.0)
LORA = dataclasses.replace(TrainSection(), lora_rank=2, lora_alpha=4.0, learning_rate=1e-2, warmup_steps=1, steps=4,
                           jit_compile=False)


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def test_only_adapters_train_and_the_merged_copy_gives_the_same_logits(tmp_path):
    keras.utils.set_random_seed(0)
    model = build("gpt", vocab_size=40, **TINY_GPT)
    info = lora.apply(model, LORA)
    assert info == {"lora_rank": 2, "lora_alpha": 4.0, "lora_layers": 2}  # query and value of one block
    assert {v.name for v in model.trainable_weights} == {"lora_kernel_a", "lora_kernel_b"}
    before = _weights(model)
    compile_model(model, LORA)
    x = np.random.default_rng(0).integers(5, 40, size=(8, 16))
    model.fit(x, np.roll(x, -1, axis=1), epochs=1, batch_size=4, verbose=0)
    after = _weights(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed and all("lora_kernel" in p for p in changed), changed
    assert any("lora_kernel_b" in p for p in changed)  # B starts at zero; it moved

    plain = lora.merged(model)
    assert not lora.adapters(plain) and len(plain.weights) == len(build("gpt", vocab_size=40, **TINY_GPT).weights)
    np.testing.assert_allclose(plain.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    path = str(tmp_path / "merged.keras")
    plain.save(path)
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)


def test_no_eligible_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="matches no Dense/EinsumDense layer.*can take adapters"):
        lora.apply(build("lstm", vocab_size=20, embed_dim=4, hidden_dim=4, num_layers=1), LORA)
    with pytest.raises(ValueError, match="has no Dense or EinsumDense layer"):
        lora.apply(build("ngram", vocab_size=20, order=2), LORA)


def test_lora_on_an_lstm_run_exits_2_and_writes_nothing(tiny_recipe, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = cli.main(["train", tiny_recipe("lstm", extra="lora_rank = 2"), "--runs-dir", str(runs)])
    assert code == cli.USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kerazoo: error: train.lora_targets 'query,value' matches no")
    assert not runs.exists() or not os.listdir(runs)


def test_a_lora_run_from_init_from_changes_only_the_adapted_kernels(tiny_recipe, tmp_path):
    runs = str(tmp_path / "runs")
    quiet = dict(verbose=0, log=lambda *_: None)
    base = kz.run_recipe(kz.load_recipe(tiny_recipe("gpt", "char")), runs, **quiet)  # a tokenizer with files
    recipe = tmp_path / "tune.toml"
    text = open(tiny_recipe("gpt", "char")).read().replace('name = "tiny_gpt"', 'name = "tuned"')
    head, rest = text.split("[model]", 1)
    rest = rest.split("[train]", 1)[1]
    recipe.write_text(f'{head}[model]\narch = "gpt"\ninit_from = "{base.path}"\n[train]{rest}'
                      "lora_rank = 2\nlora_targets = \"query,value\"\nlearning_rate = 0.01\n")
    tuned = kz.run_recipe(kz.load_recipe(str(recipe)), runs, **quiet)
    m = json.loads(open(os.path.join(tuned.path, "metrics.json")).read())
    assert m["lora_layers"] == 2 and m["trainable_params"] == 2 * (16 * 2 * 2 + 2 * 8)
    # per layer: the EinsumDense kernel is (16, 2 heads, 8): A (16, 2, rank 2), B (rank 2, 8)
    assert m["params"] == json.loads(open(os.path.join(base.path, "metrics.json")).read())["params"]
    old, new = _weights(kz.load_run(base.path)), _weights(kz.load_run(tuned.path))
    assert old.keys() == new.keys()  # merged: no adapter variables saved
    changed = {p for p in old if not np.array_equal(old[p], new[p])}
    assert changed and all(p.endswith(("query/kernel", "value/kernel")) for p in changed), changed
    assert kz.generate(tuned.path, "The ", max_new_tokens=3) is not None  # the merged run keeps its vocabulary
