"""Tests of kerazoo.text.storage and of tokenizers saved inside models: folders, .keras files, fresh processes."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest
import tensorflow as tf

from kerazoo import text as tk
from tests.text.common import MIXED, ids_of, round_trip, text_of


@pytest.mark.parametrize("kind", tk.KINDS)
def test_save_and_load_tokenizer(trained, kind, tmp_path):
    tokenizer = trained[kind]
    path = tmp_path / "tok"
    tk.save_tokenizer(tokenizer, path)
    assert sorted(os.listdir(path)) == ["assets", "config.json"]
    loaded = tk.load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert loaded.kind == kind
    assert loaded.get_vocabulary() == tokenizer.get_vocabulary()
    assert ids_of(loaded, MIXED) == ids_of(tokenizer, MIXED)
    assert text_of(loaded.detokenize(ids_of(loaded, MIXED))) == round_trip(
        tokenizer, MIXED
    )


def test_save_tokenizer_replaces_an_existing_folder(trained, tmp_path):
    path = tmp_path / "tok"
    tk.save_tokenizer(trained["char"], path)
    (path / "stale.txt").write_text("old")
    tk.save_tokenizer(trained["unigram"], str(path))
    assert tk.load_tokenizer(path).kind == "unigram"
    assert not (path / "stale.txt").exists()
    # No temporary folders are left next to it.
    assert os.listdir(tmp_path) == ["tok"]


def test_save_tokenizer_rejects_bad_arguments(trained, tmp_path):
    with pytest.raises(ValueError, match="kerazoo tokenizer"):
        tk.save_tokenizer(keras.layers.Dense(2), tmp_path / "x")
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        tk.save_tokenizer(trained["byte"], target)


def test_load_tokenizer_errors(trained, tmp_path):
    with pytest.raises(ValueError, match="no tokenizer folder"):
        tk.load_tokenizer(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        tk.load_tokenizer(empty)
    (empty / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tk.load_tokenizer(empty)
    dense = keras.saving.serialize_keras_object(keras.layers.Dense(2))
    (empty / "config.json").write_text(json.dumps(dense))
    with pytest.raises(ValueError, match="not a kerazoo tokenizer"):
        tk.load_tokenizer(empty)
    broken = tmp_path / "broken"
    tk.save_tokenizer(trained["char"], broken)
    os.remove(broken / "assets" / tk.CHARS_FILENAME)
    with pytest.raises(ValueError, match="incomplete"):
        tk.load_tokenizer(broken)


# A tiny model that holds a tokenizer, imported by this process and by a
# fresh one.
HOLDER_MODULE = textwrap.dedent(
    '''
    import keras


    @keras.saving.register_keras_serializable(package="kerazoo_tests")
    class TokenizerModel(keras.Model):
        """An embedding that carries its tokenizer, as the zoo's models do."""

        def __init__(self, tokenizer, vocab_size, **kwargs):
            super().__init__(**kwargs)
            self.tokenizer = tokenizer
            self.vocab_size = vocab_size
            self.embedding = keras.layers.Embedding(vocab_size, 4)

        def call(self, ids):
            return self.embedding(ids)

        def get_config(self):
            config = super().get_config()
            config["tokenizer"] = keras.saving.serialize_keras_object(
                self.tokenizer
            )
            config["vocab_size"] = self.vocab_size
            return config

        @classmethod
        def from_config(cls, config):
            tokenizer = keras.saving.deserialize_keras_object(
                config.pop("tokenizer")
            )
            return cls(tokenizer=tokenizer, **config)
    '''
)


FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    folder, text = sys.argv[1], sys.argv[2]
    sys.path.insert(0, folder)
    import keras
    import holder_model  # registers TokenizerModel
    import kerazoo.text  # registers the tokenizers
    result = {}
    for kind in sys.argv[3:]:
        model = keras.saving.load_model(f"{folder}/{kind}.keras", safe_mode=True)
        tokenizer = model.tokenizer
        ids = tokenizer.tokenize(text)
        result[kind] = {
            "kind": tokenizer.kind,
            "ids": ids.numpy().tolist(),
            "text": tokenizer.detokenize(ids).numpy().decode("utf-8"),
        }
    print(json.dumps(result))
    """
)


def test_model_holding_a_tokenizer_reloads_in_a_fresh_process(
    trained, tmp_path, monkeypatch
):
    (tmp_path / "holder_model.py").write_text(HOLDER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import holder_model

    expected = {}
    for kind, tokenizer in trained.items():
        model = holder_model.TokenizerModel(tokenizer, tokenizer.vocabulary_size())
        model(tf.constant([[1, 2]]))
        model.save(tmp_path / f"{kind}.keras")
        ids = ids_of(tokenizer, MIXED)
        expected[kind] = {
            "kind": kind,
            "ids": ids,
            "text": text_of(tokenizer.detokenize(ids)),
        }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_SCRIPT, str(tmp_path), MIXED]
        + list(trained),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == expected


# The modules the tokenizer classes lived in before: the flat layout's
# ``kerazoo.tokenizers`` and the package's ``kerazoo.text.tokenizers``.
OLD_MODULES = ("kerazoo.tokenizers", "kerazoo.text.tokenizers")


@pytest.mark.parametrize("old_module", OLD_MODULES)
@pytest.mark.parametrize("kind", tk.KINDS)
def test_tokenizers_saved_before_the_split_still_load(trained, kind, old_module, tmp_path):
    """Saved configs name the module a class lived in; Keras finds the class by
    its registered name ("kerazoo>ByteTokenizer"), so moving it keeps files
    saved earlier loadable (in safe mode)."""
    tokenizer = trained[kind]
    path = tmp_path / "tok"
    tk.save_tokenizer(tokenizer, path)
    config = json.loads((path / tk.CONFIG_FILENAME).read_text())
    assert config["registered_name"] == f"kerazoo>{type(tokenizer).__name__}"
    config["module"] = old_module
    (path / tk.CONFIG_FILENAME).write_text(json.dumps(config))
    loaded = tk.load_tokenizer(path)
    assert type(loaded) is type(tokenizer)
    assert ids_of(loaded, MIXED) == ids_of(tokenizer, MIXED)
