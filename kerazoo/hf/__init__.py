"""Import of local Hugging Face checkpoint folders into the zoo.

``IMPORTERS`` maps a checkpoint's ``model_type`` (its ``config.json``) to a
function ``folder -> keras.Model`` (the model carries its tokenizer);
``import_checkpoint`` writes the result as a run folder that every zoo
command takes (``generate``, ``export``, ``tokenizer.path``, ...).
"""

import json
import os

from kerazoo import runs
from kerazoo import tokenizers as tokenizers_lib
from kerazoo.hf.gpt2 import import_gpt2

IMPORTERS = {"gpt2": import_gpt2}


def import_checkpoint(folder, name=None, runs_dir="runs"):
    """Imports a checkpoint folder and writes it as a run folder, atomically.

    Args:
        folder: a local Hugging Face checkpoint folder.
        name: the run name (default: the folder's name).
        runs_dir: where run folders go.

    Returns:
        The path of the new run folder (``model.keras``, ``tokenizer/``,
        ``metrics.json`` with the parameter count and the source).

    Raises:
        ValueError: no ``config.json``, an unsupported ``model_type``, or a
            bad checkpoint.
    """
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise ValueError(f"{folder} is not a Hugging Face checkpoint folder (no config.json)")
    with open(config_path, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type not in IMPORTERS:
        raise ValueError(f"cannot import model_type '{model_type}'; supported: {', '.join(sorted(IMPORTERS))}")
    model = IMPORTERS[model_type](folder)
    name = name or os.path.basename(os.path.normpath(folder))
    work_dir = runs.partial_dir(runs_dir, name)
    os.makedirs(work_dir)
    try:
        model.save(os.path.join(work_dir, "model.keras"))
        tokenizers_lib.save_tokenizer(model.tokenizer, os.path.join(work_dir, "tokenizer"))
        runs.write_json(os.path.join(work_dir, "metrics.json"), {
            "arch": "gpt", "params": int(model.count_params()), "tokenizer": model.tokenizer.kind,
            "vocab_size": int(model.tokenizer.vocabulary_size()), "imported_from": os.path.abspath(folder),
            "model_type": model_type,
        })
    except BaseException:
        runs.discard(work_dir)
        raise
    return runs.finish(work_dir, runs_dir, name)
