"""Safe loading: every model of the zoo saves as plain data and loads in safe mode;
recipes are data; recipe and export names cannot point outside their folders."""

import base64
import binascii
import json
import marshal
import os
import types
import zipfile

import keras
import pytest

from kerazoo.training import recipes
from kerazoo.models import build
from kerazoo.models.classifier import Classifier
from kerazoo.models.registry import ARCHS
from kerazoo.serving.exporter import check_name
from kerazoo.text import train_tokenizer

TINY = {
    "rnn": dict(embed_dim=8, hidden_dim=8, num_layers=1),
    "gru": dict(embed_dim=8, hidden_dim=8, num_layers=1),
    "lstm": dict(embed_dim=8, hidden_dim=8, num_layers=1),
    "gpt": dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16),
    "llama": dict(max_length=16, num_layers=1, num_heads=2, num_kv_heads=1, hidden_dim=16),
    "bert": dict(max_length=16, num_layers=1, num_heads=2, hidden_dim=16),
    "bilstm": dict(embed_dim=8, hidden_dim=8),
    "seq2seq": dict(max_source_length=16, max_length=16, num_encoder_layers=1, num_decoder_layers=1,
                    num_heads=2, hidden_dim=16),
    "ngram": dict(order=2),
}
# What Keras writes for code rather than data: a Lambda layer, a lambda or a
# plain Python function (marshalled bytecode), and whatever is not a known class.
CODE_CLASS_NAMES = {"Lambda", "__lambda__", "function"}
CODE_KEYS = {"function_type", "bytecode", "__lambda__", "__python_function__"}


def _is_bytecode(text):
    """Whether a string is base64 of marshalled Python code (how Keras stores a lambda)."""
    try:
        return isinstance(marshal.loads(base64.b64decode(text.encode("ascii"), validate=False)), types.CodeType)
    except (ValueError, EOFError, TypeError, UnicodeEncodeError, binascii.Error):
        return False


def _code_in(config, where="config"):
    """The places in a saved config that hold code, not data."""
    found = []
    if isinstance(config, str) and len(config) > 16 and _is_bytecode(config):
        found.append(f"{where}: marshalled bytecode")
    if isinstance(config, dict):
        if config.get("class_name") in CODE_CLASS_NAMES:
            found.append(f"{where}: class_name {config['class_name']}")
        found += [f"{where}.{k}" for k in config if k in CODE_KEYS]
        for key, value in config.items():
            found += _code_in(value, f"{where}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            found += _code_in(value, f"{where}[{i}]")
    return found


def _save_and_inspect(model, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        config = json.loads(z.read("config.json"))
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".npy"))], names
    assert _code_in(config) == []
    again = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert type(again) is type(model)
    return config


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["safe loading checks every arch of the zoo"] * 4, "byte")


def test_the_check_finds_lambda_layers_and_bytecode(tmp_path):
    """The detector is not vacuous: a Lambda layer and a lambda activation are caught."""
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(keras.layers.Dense(2, activation=lambda x: x)(inputs))
    model = keras.Model(inputs, outputs)
    model.save(str(tmp_path / "bad.keras"))
    with zipfile.ZipFile(str(tmp_path / "bad.keras")) as z:
        found = _code_in(json.loads(z.read("config.json")))
    assert any("class_name Lambda" in f for f in found)
    assert any("activation" in f and "bytecode" in f for f in found)
    with pytest.raises((TypeError, ValueError)):
        keras.saving.load_model(str(tmp_path / "bad.keras"), safe_mode=True)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_saves_without_code_and_loads_in_safe_mode(arch, tokenizer, tmp_path):
    assert set(TINY) == set(ARCHS), "a new arch needs a tiny config here"
    _save_and_inspect(build(arch, tokenizer=tokenizer, **TINY[arch]), tmp_path)


@pytest.mark.parametrize("encoder", ["bert", "bilstm"])
def test_classifiers_save_without_code(encoder, tokenizer, tmp_path):
    config = {"vocab_size": int(tokenizer.vocabulary_size()), **TINY[encoder]}
    model = Classifier(encoder, config, ["neg", "pos"], pooling="mean", max_length=16, tokenizer=tokenizer)
    _save_and_inspect(model, tmp_path)


def test_recipes_are_parsed_never_executed(tmp_path):
    """TOML has no code; a value that looks like code stays a string and is rejected as one."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.toml"
    path.write_text(f'[model]\narch = "__import__(\'os\').system(\'touch {marker}\')"\n')
    with pytest.raises(recipes.RecipeError, match="unknown arch"):
        recipes.load_recipe(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../etc", "..", ".", "/etc/passwd", "a/b", "runs/../x", ".hidden", "", "a\\b",
                                  "x\x00y", "-rf"])
def test_recipe_names_cannot_leave_the_runs_folder(name, tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(f'name = {json.dumps(name)}\n[model]\narch = "gpt"\n')
    with pytest.raises(recipes.RecipeError, match="'name' must be"):
        recipes.load_recipe(str(path))


@pytest.mark.parametrize("name", ["../../etc", "..", ".", "/abs/path", "a/b", "", ".hidden", "x/../y"])
def test_export_names_cannot_leave_saved_models(name):
    with pytest.raises(ValueError, match="invalid export name"):
        check_name(name)


@pytest.mark.parametrize("name", ["pydocs_gpt", "model-2", "v1.0"])
def test_plain_export_names_pass(name):
    assert check_name(name) == name


def test_cli_rejects_a_traversing_export_name(tmp_path, capsys):
    from kerazoo.cli import main

    assert main(["export", str(tmp_path), "--name", "../../etc", "--base-dir", str(tmp_path / "sm")]) == 2
    assert "invalid export name" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "sm")
