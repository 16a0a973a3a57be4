"""A tokenizer on its own, as a folder: ``config.json`` and ``assets/``.

``save_tokenizer`` writes the folder atomically (a temporary name, then a
rename); ``load_tokenizer`` reads it back in Keras safe mode.
"""

import json
import os
import shutil
import uuid

import keras

from kerazoo.text.base import ZooTokenizer

CONFIG_FILENAME = "config.json"
ASSETS_DIRNAME = "assets"


def save_tokenizer(tokenizer, path):
    """Saves a tokenizer as a folder: ``config.json`` and ``assets/``.

    The folder is written next to ``path`` under a temporary name and then
    renamed into place, so ``path`` never holds a half-written tokenizer. An
    existing folder at ``path`` is replaced.

    Args:
        tokenizer: a kerazoo tokenizer (a ``ZooTokenizer``).
        path: the folder to write.
    """
    if not isinstance(tokenizer, ZooTokenizer):
        raise ValueError(
            "save_tokenizer() takes a kerazoo tokenizer; got "
            f"{type(tokenizer).__name__}"
        )
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"cannot save a tokenizer to {path}: it is a file")
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.tmp-{uuid.uuid4().hex}")
    os.mkdir(staging)
    try:
        _write_tokenizer_folder(tokenizer, staging)
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_tokenizer_folder(tokenizer, folder):
    """Writes the config and the assets of ``tokenizer`` into ``folder``."""
    config = keras.saving.serialize_keras_object(tokenizer)
    with open(os.path.join(folder, CONFIG_FILENAME), "w") as file:
        json.dump(config, file, indent=2)
    assets = os.path.join(folder, ASSETS_DIRNAME)
    os.mkdir(assets)
    tokenizer.save_assets(assets)


def _replace_folder(new, path):
    """Renames folder ``new`` to ``path``, replacing any folder there.

    The old folder is first renamed aside, and restored if the swap fails.
    """
    if not os.path.exists(path):
        os.rename(new, path)
        return
    old = f"{new}.old"
    os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_tokenizer(path):
    """Loads a tokenizer saved by ``save_tokenizer``.

    Deserialization runs in Keras safe mode.

    Args:
        path: the tokenizer folder.

    Returns:
        The tokenizer layer.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"no tokenizer folder at {path}")
    config = _read_tokenizer_config(path)
    try:
        tokenizer = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{path} is not a kerazoo tokenizer folder: {error}"
        ) from None
    if not isinstance(tokenizer, ZooTokenizer):
        raise ValueError(
            f"{path} is not a kerazoo tokenizer folder: its config describes "
            f"a {type(tokenizer).__name__}"
        )
    try:
        tokenizer.load_assets(os.path.join(path, ASSETS_DIRNAME))
    except OSError as error:
        raise ValueError(
            f"the tokenizer folder {path} is incomplete: {error}"
        ) from None
    return tokenizer


def _read_tokenizer_config(path):
    """Reads and returns the config dict of a tokenizer folder."""
    config_path = os.path.join(path, CONFIG_FILENAME)
    if not os.path.isfile(config_path):
        raise ValueError(
            f"{path} is not a tokenizer folder: it has no {CONFIG_FILENAME}"
        )
    try:
        with open(config_path) as file:
            config = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"{path} is not a tokenizer folder: {CONFIG_FILENAME} holds no "
            "serialized Keras object"
        )
    return config
