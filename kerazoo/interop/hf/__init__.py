"""Import of local Hugging Face checkpoint folders into the zoo.

A checkpoint folder holds ``config.json``, the weights (``model.safetensors``
or ``pytorch_model.bin``) and the tokenizer's vocabulary files. Nothing is
downloaded. ``import_checkpoint`` reads ``config.json``'s ``model_type`` and
hands the folder to the matching importer of ``IMPORTERS``; the result is a
run folder (``model.keras`` with the tokenizer inside, ``tokenizer/``,
``metrics.json`` naming the arch) that ``[model] init_from`` accepts.
"""

import os

from kerazoo.training import checkpointing
from kerazoo.interop.hf import bert as bert_import
from kerazoo.interop.hf import gpt2 as gpt2_import
from kerazoo.interop.hf import llama as llama_import


def _import_gpt2(folder, config, log):
    """GPT-2's importer in ``IMPORTERS``' form."""
    return gpt2_import.import_gpt2(folder), {"arch": "gpt", "model_type": "gpt2"}


# model_type of config.json -> importer(folder, config, log) -> (keras model, info dict)
IMPORTERS = {"bert": bert_import.import_bert, "gpt2": _import_gpt2,
             **{model_type: llama_import.import_llama for model_type in llama_import.ARCHITECTURES}}


def read_config(folder):
    """Reads a checkpoint folder's ``config.json``.

    Raises:
        ValueError: the folder or its config is missing or unreadable.
    """
    from kerazoo.training.inputs import check_folder_files, read_json

    if not os.path.isdir(folder):
        raise ValueError(f"checkpoint folder {folder} does not exist")
    path = os.path.join(folder, "config.json")
    if not os.path.lexists(path):
        raise ValueError(f"{folder} holds no config.json: not a Hugging Face checkpoint folder")
    # Every file the importers may open (vocabularies, weights) is regular: a fifo would hang them.
    check_folder_files(folder, "checkpoint file")
    return read_json(path, "Hugging Face config", expect=dict)


def load_model(folder, log=print):
    """Builds the zoo model of a checkpoint folder, weights and tokenizer included.

    Args:
        folder: the checkpoint folder.
        log: where progress lines go.

    Returns:
        ``(model, info)``: the ``keras.Model`` (carrying its tokenizer) and a
        dict describing the import.

    Raises:
        ValueError: a missing file, an unsupported ``model_type`` or settings
            the zoo's arch cannot represent.
    """
    config = read_config(folder)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in IMPORTERS:
        raise ValueError(f"{folder}: model_type {model_type!r} is not supported; "
                         f"importable: {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[model_type](folder, config, log)


def import_checkpoint(folder, name=None, runs_dir="runs", log=print):
    """Imports a Hugging Face checkpoint folder into a run folder.

    Args:
        folder: the checkpoint folder (config.json, weights, vocabulary).
        name: the run name (default: the folder's name).
        runs_dir: where run folders go.
        log: where progress lines go.

    Returns:
        The run folder, e.g. ``runs/minilm``; ``[model] init_from`` takes it.

    Example:
        >>> kerazoo.interop.hf.import_checkpoint("all-MiniLM-L6-v2", name="minilm")
        'runs/minilm'
    """
    import time

    from kerazoo.training import locks, runs
    from kerazoo.training.recipes import NAME_RE

    name = name or os.path.basename(os.path.normpath(folder))
    if not NAME_RE.match(name):
        raise ValueError(f"invalid run name {name!r}: use letters, digits, '_', '-' or '.'")
    # The run lock of ``kerazoo train`` (same file): an import and a training run,
    # or two imports, never write one run name at once. Checked before the
    # checkpoint is read; taken once it has proved good, so bad input writes nothing.
    runs.check_runs_dir(runs_dir, name)
    lock, what = runs.lock_path(runs_dir, name), f"the run {name!r} in {runs_dir}"
    locks.check_free(lock, what)
    started = time.perf_counter()
    model, info = load_model(folder, log)
    os.makedirs(runs_dir, exist_ok=True)
    with locks.holding(lock, what):
        path, metrics = _write_run(model, info, folder, runs_dir, name, started)
    log(f"imported {info['arch']} ({metrics['params']:,} parameters) from {folder} into {path}")
    return path


def _write_run(model, info, folder, runs_dir, name, started):
    """``import_checkpoint``'s writes, under the run's lock: a partial folder renamed when whole.

    Returns:
        ``(run folder, metrics)``.
    """
    import time

    import keras

    from kerazoo import text as tokenizers_lib
    from kerazoo.training import runs

    work_dir = runs.partial_dir(runs_dir, name)
    if os.path.exists(work_dir):
        raise ValueError(f"an unfinished run exists at {work_dir}; delete it first")
    os.mkdir(work_dir)
    try:
        tokenizers_lib.save_tokenizer(model.tokenizer, os.path.join(work_dir, "tokenizer"))
        checkpointing.save_model(model, os.path.join(work_dir, "model.keras"))
        metrics = {
            "arch": info["arch"],
            "task": "import",
            "params": int(model.count_params()),
            "tokenizer": model.tokenizer.kind,
            "vocab_size": int(model.tokenizer.vocabulary_size()),
            "source": os.path.abspath(folder),
            "backend": keras.backend.backend(),
            "wall_seconds": time.perf_counter() - started,
            **{k: v for k, v in info.items() if k != "arch"},
        }
        runs.write_json(os.path.join(work_dir, "metrics.json"), metrics)
    except BaseException:
        runs.discard(work_dir)
        raise
    return runs.finish(work_dir, runs_dir, name), metrics
