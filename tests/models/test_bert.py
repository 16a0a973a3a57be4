"""The bert and bilstm encoders, masked-LM pre-training and the [task] section."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerazoo as kz
from kerazoo.data import mask_tokens, mlm_windows
from kerazoo.models import build
from kerazoo.training.recipes import RecipeError, load_recipe
from kerazoo.training.tasks.masked_lm import mask_generator
from kerazoo.text.special import MASK_ID, PAD_ID

from tests.conftest import tiny_recipe_text

TINY_BERT = dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16)
QUIET = dict(verbose=0, log=lambda *_: None)


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("arch,hparams", [("bert", TINY_BERT), ("bilstm", dict(embed_dim=8, hidden_dim=8))])
def test_encoder_ignores_padding_and_reloads_in_safe_mode(arch, hparams, tmp_path):
    keras.utils.set_random_seed(0)
    model = build(arch, vocab_size=40, dropout=0.0, **hparams)
    ids = np.array([[2, 7, 9, 11, 3]], np.int32)
    padded = np.concatenate([ids, np.full((1, 4), PAD_ID, np.int32)], axis=1)
    assert _np(model(ids)).shape == (1, 5, 40)
    hidden, mask = model.encode(padded)
    short, _ = model.encode(ids)
    assert _np(mask).tolist() == [[True] * 5 + [False] * 4]
    np.testing.assert_allclose(_np(hidden)[:, :5], _np(short), atol=1e-5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(_np(again(padded)), _np(model(padded)), atol=1e-6)


def test_bert_is_bidirectional():
    keras.utils.set_random_seed(0)
    model = build("bert", vocab_size=40, dropout=0.0, **TINY_BERT)
    a, b = np.array([[5, 6, 7, 8]], np.int32), np.array([[5, 6, 7, 9]], np.int32)
    # Changing the last token changes the first position's state (a causal model would not).
    assert not np.allclose(_np(model.encode(a)[0])[0, 0], _np(model.encode(b)[0])[0, 0])


def test_bad_bert_hyperparameters_name_the_key():
    with pytest.raises(ValueError, match="'activation' must be one of"):
        build("bert", vocab_size=10, activation="swishy")
    with pytest.raises(ValueError, match="'num_heads' .* must divide"):
        build("bert", vocab_size=10, hidden_dim=30, num_heads=4)


def test_mask_generator_selects_15_percent_split_80_10_10():
    tokenizer = kz.tokenizers.ByteTokenizer()
    rng = np.random.default_rng(0)
    windows = rng.integers(5, 261, size=(200, 100)).astype(np.int32)
    tf.random.set_seed(0)
    x, y, w = (t.numpy() for t in mask_tokens(mask_generator(tokenizer, 100), tf.constant(windows)))
    selected = w > 0
    assert abs(selected.mean() - 0.15) < 0.01
    assert (x[~selected] == y[~selected]).all()  # only selected positions change
    masked = (x[selected] == MASK_ID).mean()
    kept = (x[selected] == y[selected]).mean()
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.03
    assert mlm_windows(np.arange(10), 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.core
def test_masked_lm_recipe_reports_masked_accuracy_and_perplexity(text_file, tmp_path):
    path = tmp_path / "mlm.toml"
    path.write_text(tiny_recipe_text(text_file, "bert", "byte"))
    recipe = load_recipe(str(path))
    assert recipe.task_kind == "masked_lm"  # bert's default
    result = kz.run_recipe(recipe, str(tmp_path / "runs"), **QUIET)
    m = json.load(open(os.path.join(result.path, "metrics.json")))
    assert m["task"] == "masked_lm" and m["arch"] == "bert" and m["steps"] == 4
    assert 0.0 <= m["val_masked_accuracy"] <= 1.0 and m["val_masked_tokens"] > 0
    assert np.isclose(m["val_perplexity"], np.exp(m["val_loss"]))
    model = kz.load_run(result.path)
    assert model.tokenizer.kind == "byte"
    assert os.path.isfile(os.path.join(result.path, "checkpoints", "best.keras"))


def _recipe(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text,message", [
    ('[model]\narch = "gpt"\n[task]\nkind = "masked_lm"', "'masked_lm' is not a task of arch 'gpt'"),
    ('[model]\narch = "bert"\n[task]\nkind = "causal"', "'task.kind' must be one of"),
    ('[model]\narch = "bilstm"\n[task]\npooling = "cls"', "'task.pooling' 'cls' needs a bert encoder"),
    ('[model]\ninit_from = "no/such/run"', "missing key 'model.arch'"),
    ('[model]\narch = "bert"\n[task]\nmask_rate = 1.5', "'task.mask_rate' must be in"),
])
def test_task_section_is_validated(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_init_from_takes_no_hyperparameters(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_text("")
    (run / "metrics.json").write_text('{"arch": "bert"}')
    recipe = load_recipe(_recipe(tmp_path, f'[model]\narch = "bert"\ninit_from = "{run}"\n[task]\nkind = "classify"'))
    assert recipe.arch == "bert" and recipe.init_from == str(run) and recipe.task_kind == "classify"
    with pytest.raises(RecipeError, match="'model.num_layers' cannot be set with model.init_from"):
        load_recipe(_recipe(tmp_path, f'[model]\narch = "bert"\ninit_from = "{run}"\nnum_layers = 2'))
    # A recipe whose pre-training run does not exist yet is valid data; running it is not.
    later = load_recipe(_recipe(tmp_path, '[model]\narch = "bert"\ninit_from = "runs/later"\n[task]\nkind = "classify"'))
    with pytest.raises(ValueError, match="'model.init_from' run folder runs/later does not exist"):
        kz.run_recipe(later, str(tmp_path / "runs"), **QUIET)
    with pytest.raises(RecipeError, match="'model.arch' is 'lstm' but the run"):
        load_recipe(_recipe(tmp_path, f'[model]\narch = "lstm"\ninit_from = "{run}"'))


def test_shipped_encoder_recipes_parse():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")
    recipe = load_recipe(os.path.join(root, "pydocs_bert.toml"))
    assert recipe.task_kind == "masked_lm" and recipe.tokenizer.kind == "unigram"
    assert load_recipe(os.path.join(root, "pydocs_gpt.toml")).tokenizer == recipe.tokenizer
