"""The run-folder machinery every task shares with the causal-LM runner.

A task run follows the same life as ``runner._run``: everything that can
fail on bad input happens before the partial folder ``runs/.<name>.partial``
is claimed; ``model.fit`` runs with the runner's callbacks (checkpoints,
``BackupAndRestore`` for ``--resume``, NaN stop, CSV history); the finished
folder is renamed into place atomically.
"""

import math
import os
import time

import keras

from kerazoo.training import checkpointing
from kerazoo.training import runner
from kerazoo.training import runs
from kerazoo import text as tokenizers_lib
from kerazoo.training.recipes import dump_recipe


def open_run(recipe, runs_dir, resume, tokenizer):
    """Checks the partial folder and, on resume, reloads its tokenizer.

    Args:
        recipe: the validated recipe.
        runs_dir: where run folders go.
        resume: continue the unfinished run of the same name.
        tokenizer: a caller-given tokenizer, or None.

    Returns:
        ``(work_dir, tokenizer)``.
    """
    work_dir = runs.partial_dir(runs_dir, recipe.name)
    runner._check_workdir(work_dir, resume)
    if resume:
        runner._check_resumable(work_dir, recipe)
    saved = os.path.join(work_dir, "tokenizer")
    if resume and tokenizer is None and os.path.isdir(saved):
        tokenizer = tokenizers_lib.load_tokenizer(saved)
    return work_dir, tokenizer


def optimizer(train):
    """The runner's AdamW with warm-up and cosine decay."""
    return runner._optimizer(train)


def fit_run(model, recipe, parallel, work_dir, runs_dir, resume, tokenizer, train_ds, val_ds, val_steps,
            verbose, callbacks):
    """Claims the partial folder and fits the model with the runner's callbacks.

    Args:
        model: the compiled model.
        recipe: the recipe (``train`` settings, name).
        parallel: the ``distribute`` engine.
        work_dir: the partial folder.
        runs_dir: the runs folder.
        resume: whether this continues an unfinished run.
        tokenizer: the tokenizer, saved as ``tokenizer/``.
        train_ds: repeating training dataset.
        val_ds: validation dataset.
        val_steps: validation batches per check.
        verbose: ``fit`` verbosity.
        callbacks: extra Keras callbacks.

    Returns:
        ``(history, clock, counter, started)``: the per-check history, the
        training clock and step counter callbacks, and the start time.

    Raises:
        RuntimeError: the loss became NaN (the partial folder is kept).
    """
    t = recipe.train
    runner._claim_workdir(runs_dir, work_dir, resume)
    os.makedirs(os.path.join(work_dir, "checkpoints"), exist_ok=True)
    saved = os.path.join(work_dir, "tokenizer")
    if not os.path.isdir(saved):
        tokenizers_lib.save_tokenizer(tokenizer, saved)
    runs.write_text(os.path.join(work_dir, "recipe.toml"), dump_recipe(recipe))
    cbs, clock, counter = runner._callbacks(t, work_dir)
    cbs += list(callbacks or [])
    train_ds = checkpointing.resume_train_dataset(train_ds, work_dir, t.eval_every)
    started = time.perf_counter()
    with parallel.scope():
        runner.build_optimizer(model)
        model.fit(train_ds, epochs=t.steps // t.eval_every, steps_per_epoch=t.eval_every,
                  validation_data=val_ds, validation_steps=val_steps, callbacks=cbs, verbose=verbose,
                  shuffle=False)
    history = runner._read_history(os.path.join(work_dir, "history.csv"))
    if history and not math.isfinite(history[-1].get("loss", 0.0)):
        raise RuntimeError(f"training diverged: the loss became NaN; the unfinished run is kept at {work_dir}")
    checkpointing.fault_point("run.fitted")
    return history, clock, counter, started


def single_device(model, parallel):
    """The trained model outside the data-parallel engine (see ``runner._single_device_copy``).

    Evaluation and saving are one-device work; the copy is rebuilt from the
    model's own config (its dtype policy included) and takes its weights.
    """
    if parallel.replicas <= 1:
        return model
    plain = type(model).from_config(model.get_config())
    plain.set_weights([keras.ops.convert_to_numpy(w) for w in model.get_weights()])
    return plain


def common_metrics(model, recipe, tokenizer, history, clock, counter, started, parallel, tokens_per_step):
    """The metrics every run reports (arch, sizes, steps, speed, backend).

    Args:
        tokens_per_step: tokens in one training batch, for tokens/s; None
            for batches of texts (then ``texts_seen`` and ``texts_per_sec``).
    """
    t = recipe.train
    steps_done = len(history) * t.eval_every
    if tokens_per_step is None:  # batches of texts padded per bucket: count texts, not tokens
        return {
            **_base_metrics(model, recipe, tokenizer, history, steps_done),
            "texts_seen": steps_done * t.batch_size,
            "texts_per_sec": counter.steps * t.batch_size / clock.train_seconds if clock.train_seconds else None,
            **_timing(clock, started, parallel, t),
        }
    return {
        **_base_metrics(model, recipe, tokenizer, history, steps_done),
        "tokens_seen": steps_done * tokens_per_step,
        "tokens_per_sec": counter.steps * tokens_per_step / clock.train_seconds if clock.train_seconds else None,
        **_timing(clock, started, parallel, t),
    }


def _base_metrics(model, recipe, tokenizer, history, steps_done):
    return {
        "arch": recipe.arch,
        "task": recipe.task_kind,
        "params": int(model.count_params()),
        "tokenizer": tokenizer.kind,
        "vocab_size": int(tokenizer.vocabulary_size()),
        "train_loss": history[-1]["loss"] if history else None,
        "steps": steps_done,
    }


def _timing(clock, started, parallel, t):
    return {
        "train_seconds": clock.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "backend": keras.backend.backend(),
        "precision": t.precision,
        "devices": parallel.replicas,
    }


def finish_run(model, recipe, work_dir, runs_dir, metrics, history):
    """Saves the model, metrics and history, and renames the folder into place.

    Returns:
        The final run folder.
    """
    checkpointing.save_model(model, os.path.join(work_dir, "model.keras"))
    runs.write_json(os.path.join(work_dir, "metrics.json"), metrics)
    runs.write_json(os.path.join(work_dir, "history.json"), history)
    runs.discard(os.path.join(work_dir, "backup"))
    return runs.finish(work_dir, runs_dir, recipe.name)
