"""The one run lifecycle every training task goes through.

    open     check runs/.<name>.partial (refuse to clobber; on resume: same recipe, no NaN)
    prepare  the task reads, splits and tokenizes its data; builds and compiles its model
    claim    os.mkdir the partial folder (atomic: one of two racing runs gets it);
             write tokenizer/ and recipe.toml
    fit      model.fit with the standard callbacks: atomic BackupAndRestore (resume),
             the best checkpoint, NaN stop, CSV history; the optimizer is built first
    evaluate the task scores its model on the held-out split
    finish   model.keras, history.json, the task's artifacts, then metrics.json
             last: its presence commits the close-out. Then backup/ is renamed
             to .backup.trash (atomic) and deleted file by file, leftover
             .tmp-* files are swept, and the partial folder is renamed to
             runs/<name>.

A run holds the lock ``runs/.<name>.lock`` (``kerazoo.training.locks``) from
``claim`` to its end (``open`` only checks that it is free, writing nothing),
so a second ``train`` or ``--resume`` of the same name stops with the
holder's PID instead of racing it. SIGKILL at any moment leaves either a
finished ``runs/<name>`` or a partial folder that ``--resume`` completes: a
resume of a partial folder whose close-out was committed only repeats the
idempotent steps after the commit (no training, no evaluation); otherwise it
continues from the last committed check.

Everything that can fail on bad input (data, tokenizer, model) happens
before the folder is claimed, so a user's mistake leaves nothing behind. The
task (``kerazoo.training.tasks.base.Task``) supplies what differs; the
order, the folder contract and the crash safety live here only.
"""

import csv
import dataclasses
import math
import os
import time

import keras

from kerazoo import text as tokenizers_lib
from kerazoo.training import callbacks as zoo_callbacks
from kerazoo.training import checkpointing
from kerazoo.training.closeout import COMMIT_FILE, close_out, committed
from kerazoo.training import locks
from kerazoo.training import lora
from kerazoo.training import precision
from kerazoo.training import runs
from kerazoo.training.optim import build_optimizer
from kerazoo.training.recipes import dump_recipe



@dataclasses.dataclass
class RunResult:
    """What a finished run left.

    Attributes:
        path: the run folder ("" on a non-chief process of a cluster).
        metrics: the contents of its ``metrics.json``.
        sample: the task's sample output (a continuation, a translation, or "").
    """

    path: str
    metrics: dict
    sample: str


def read_history(path):
    """The per-check history that CSVLogger wrote (survives resumes).

    Args:
        path: a ``history.csv``.

    Returns:
        A list of ``{column: float}``, one per validation check ([] when absent).
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def peak_rss_mb():
    """This process's peak resident memory so far, in MiB (data, model, optimizer and all)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def check_workdir(work_dir, resume):
    """Refuses to clobber an unfinished run unless asked to resume it.

    Raises:
        ValueError: a partial folder exists without ``resume``, or none with it.
    """
    if os.path.exists(work_dir) and not resume:
        raise ValueError(
            f"an unfinished run exists at {work_dir}; pass --resume to continue it, or delete it"
        )
    if resume and not os.path.exists(work_dir):
        finished = os.path.join(os.path.dirname(work_dir), os.path.basename(work_dir)[1:-len(".partial")])
        done = f" (the run finished: {finished})" if os.path.isfile(os.path.join(finished, COMMIT_FILE)) else ""
        raise ValueError(f"nothing to resume: {work_dir} does not exist{done}")


def saved_recipe(path):
    """A run folder's ``recipe.toml`` with today's defaults filled in (None if it no longer parses).

    Compared as parsed data, not as text: a key added to kerazoo after the run
    started (so missing from its file) takes its default, as it would have then.

    Args:
        path: the ``recipe.toml``.

    Returns:
        The recipe as ``Recipe.to_dict()`` data, or None.
    """
    import tomllib

    from kerazoo.training.recipes import RecipeError, parse_recipe

    try:
        with open(path, "rb") as f:
            return parse_recipe(tomllib.load(f), path).to_dict()
    except (tomllib.TOMLDecodeError, RecipeError):
        return None


def check_resumable(work_dir, recipe):
    """Refuses to resume a run with a changed recipe or a diverged loss.

    Raises:
        ValueError: naming what differs.
    """
    saved = os.path.join(work_dir, "recipe.toml")
    if os.path.exists(saved):
        if saved_recipe(saved) != recipe.to_dict():
            raise ValueError(
                f"the recipe differs from the one the unfinished run at {work_dir} started with "
                f"(see its recipe.toml); resume with the same recipe and --set values"
            )
    checkpointing.read_metadata(os.path.join(work_dir, "backup"))  # damaged: refused before the data is read
    history = read_history(os.path.join(work_dir, "history.csv"))
    if history and not math.isfinite(history[-1].get("loss", 0.0)):
        raise ValueError(f"the unfinished run at {work_dir} diverged (NaN loss); delete it and lower train.learning_rate")


def claim_workdir(runs_dir, work_dir, resume):
    """Creates the partial folder, failing if another process already has.

    ``os.mkdir`` is atomic: of two runs of the same recipe started together,
    exactly one gets the folder; the other stops instead of sharing it.

    Raises:
        ValueError: the folder exists (and this is not a resume).
    """
    if resume:
        return
    os.makedirs(runs_dir, exist_ok=True)
    try:
        os.mkdir(work_dir)
    except FileExistsError:
        raise ValueError(
            f"another run of this recipe is in progress or unfinished at {work_dir}; "
            "wait for it, pass --resume, or delete it"
        ) from None


def standard_callbacks(t, work_dir):
    """The Keras callbacks of every run, plus kerazoo's clocks.

    Args:
        t: the recipe's ``TrainSection``.
        work_dir: the partial folder.

    Returns:
        ``(callbacks, clock, counter)``: the list for ``fit``, the
        ``TrainingClock`` and the ``StepCounter`` in it.
    """
    clock, counter = zoo_callbacks.TrainingClock(), zoo_callbacks.StepCounter()
    cbs = [
        # First: it commits an epoch before CSVLogger records it (a resume
        # rebuilds the CSV from the committed epochs).
        checkpointing.AtomicBackupAndRestore(os.path.join(work_dir, "backup")),
        checkpointing.AtomicModelCheckpoint(
            os.path.join(work_dir, "checkpoints", "best.keras"), monitor="val_loss", save_best_only=True,
            initial_value_threshold=checkpointing.best_committed(work_dir),
        ),
        zoo_callbacks.StopOnNaN(),
        keras.callbacks.CSVLogger(os.path.join(work_dir, "history.csv"), append=True),
        clock,
        counter,
    ]
    if t.early_stopping_patience:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=t.early_stopping_patience, restore_best_weights=True
        ))
    if t.tensorboard:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(work_dir, "tensorboard")))
    return cbs, clock, counter


def _fit(model, t, work_dir, data, parallel, verbose, callbacks):
    """``model.fit`` over the task's datasets; returns ``(history, clock, counter)``."""
    cbs, clock, counter = standard_callbacks(t, work_dir)
    cbs += list(callbacks or [])
    train_ds = checkpointing.resume_train_dataset(data.train_ds, work_dir, t.eval_every)
    with parallel.scope():
        # Before fit: BackupAndRestore restores the optimizer's state into these variables.
        build_optimizer(model)
        model.fit(
            train_ds,
            epochs=t.steps // t.eval_every,
            steps_per_epoch=t.eval_every,
            validation_data=data.val_ds,
            validation_steps=data.val_steps,
            callbacks=cbs,
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
    history = read_history(os.path.join(work_dir, "history.csv"))
    if history and not math.isfinite(history[-1].get("loss", 0.0)):
        raise RuntimeError(f"training diverged: the loss became NaN; the unfinished run is kept at {work_dir}")
    checkpointing.fault_point("run.fitted")
    return history, clock, counter


def run_task(task, recipe, parallel, runs_dir, resume=False, tokenizer=None, verbose=1, log=print, callbacks=None):
    """Trains, evaluates and saves one recipe through ``task``, in this process's engine.

    Args:
        task: the recipe's ``Task`` plug-in.
        recipe: a validated ``Recipe``.
        parallel: the ``distribute`` engine of this process.
        runs_dir: where run folders go.
        resume: continue the unfinished run of the same name.
        tokenizer: reuse this tokenizer instead of the recipe's.
        verbose: Keras ``fit`` verbosity.
        log: where progress lines go.
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: bad input; nothing is written in that case.
        RuntimeError: the loss became NaN (the partial folder is kept).
    """
    t = recipe.train
    task.check(recipe)
    work_dir = open_run(runs_dir, recipe.name, resume)
    lock, what = runs.lock_path(runs_dir, recipe.name), f"the run {recipe.name!r} in {runs_dir}"
    if resume:
        check_resumable(work_dir, recipe)
        if committed(work_dir):
            with locks.holding(lock, what):
                return _resume_committed(work_dir, runs_dir, recipe.name, log)
    saved_tokenizer = os.path.join(work_dir, "tokenizer")
    if resume and tokenizer is None and os.path.isdir(saved_tokenizer):
        tokenizer = tokenizers_lib.load_tokenizer(saved_tokenizer)

    keras.utils.set_random_seed(t.seed)
    data = task.prepare(recipe, tokenizer, log)
    with precision.dtype_policy(t.precision), parallel.scope():
        model = task.build_model(recipe, data)
        tuned = lora.apply(model, t)  # before the folder is claimed: a model with nothing to adapt is bad input
    trainable = lora.trainable_params(model)
    log(f"model: {task.describe(recipe, model)}"
        + (f"; {t.precision}" if t.precision != "float32" else "")
        + (f"; {parallel.describe}" if parallel.describe else ""))

    # The lock file is the first thing written, once the input has proved good.
    os.makedirs(runs_dir, exist_ok=True)
    with locks.holding(lock, what):
        return _run_locked(task, recipe, parallel, runs_dir, work_dir, resume, data, model, verbose, callbacks, log,
                           tuned, trainable)


def _run_locked(task, recipe, parallel, runs_dir, work_dir, resume, data, model, verbose, callbacks, log,
                tuned, trainable):
    """``run_task`` from the claim on, under the run's lock."""
    t = recipe.train
    saved_tokenizer = os.path.join(work_dir, "tokenizer")
    if resume:
        runs.sweep_temporaries(work_dir)  # writers killed mid-write; none is alive (we hold the lock)
    claim_workdir(runs_dir, work_dir, resume)
    checkpointing.fault_point("run.claimed")
    os.makedirs(os.path.join(work_dir, "checkpoints"), exist_ok=True)
    if not os.path.isdir(saved_tokenizer):
        tokenizers_lib.save_tokenizer(data.tokenizer, saved_tokenizer)
    runs.write_text(os.path.join(work_dir, "recipe.toml"), dump_recipe(recipe))

    started = time.perf_counter()
    history, clock, counter = task.train(
        model, data, log, lambda: _fit(model, t, work_dir, data, parallel, verbose, callbacks))
    model = lora.merged(model)  # what is evaluated, saved and exported: no adapters, merged kernels
    if parallel.replicas > 1 and not tuned:  # a merged copy is already a one-device model
        model = task.single_device_copy(model, recipe, data)
    evaluation = task.evaluate(model, recipe, data, log)

    unit, per_step = task.unit(recipe)
    steps_done = len(history) * t.eval_every
    seen = getattr(counter, "seen", None)  # set by tasks that count rather than fit (ngram)
    metrics = {
        "arch": recipe.arch,
        "task": task.kind,
        "params": int(model.count_params()),
        "trainable_params": trainable,
        **tuned,
        "tokenizer": data.tokenizer.kind,
        "vocab_size": int(data.tokenizer.vocabulary_size()),
        **evaluation.metrics,
        "train_loss": history[-1]["loss"] if history else None,
        "steps": steps_done,
        f"{unit}_seen": steps_done * per_step if seen is None else seen,
        # This process's steps only: a resumed run's earlier steps were timed by another clock.
        f"{unit}_per_sec": ((counter.steps * per_step if seen is None else seen) / clock.train_seconds
                            if clock.train_seconds else None),
        # The same rate without this process's first epoch (its trace and compile), where there was a second.
        f"steady_{unit}_per_sec": zoo_callbacks.steady_rate(clock, counter, per_step) if seen is None else None,
        "train_seconds": clock.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
        "backend": keras.backend.backend(),
        "precision": t.precision,
        "devices": parallel.replicas,
    }
    checkpointing.save_model(model, os.path.join(work_dir, "model.keras"))
    checkpointing.fault_point("closeout.model_saved")
    runs.write_json(os.path.join(work_dir, "history.json"), history)
    for name, text in task.artifacts(recipe, data, evaluation).items():
        runs.write_text(os.path.join(work_dir, name), text)
    runs.write_json(os.path.join(work_dir, COMMIT_FILE), metrics)
    checkpointing.fault_point("closeout.committed")
    path = close_out(work_dir, runs_dir, recipe.name)
    return RunResult(path, metrics, evaluation.sample)


def _resume_committed(work_dir, runs_dir, name, log):
    """Finishes a run killed after its close-out commit (None when it was not committed)."""
    from kerazoo.training.inputs import read_json

    commit = os.path.join(work_dir, COMMIT_FILE)
    if not committed(work_dir):
        return None
    metrics = read_json(commit, "metrics file", expect=dict)
    log(f"the unfinished run at {work_dir} had finished training and evaluation; completing its close-out")
    return RunResult(close_out(work_dir, runs_dir, name), metrics, "")


def open_run(runs_dir, name, resume):
    """Checks the run's folders and that no other process holds the run, before any data is read.

    Writes nothing: the lock itself is taken (``locks.holding``) once the
    data and the model are ready.

    Args:
        runs_dir: the runs folder.
        name: the run name.
        resume: whether this is a ``--resume``.

    Returns:
        The partial folder.

    Raises:
        ValueError: the runs folder or the final name is unusable, another
            process holds the run, or the partial folder's state does not
            fit ``resume``.
    """
    runs.check_runs_dir(runs_dir, name)
    locks.check_free(runs.lock_path(runs_dir, name), f"the run {name!r} in {runs_dir}")
    work_dir = runs.partial_dir(runs_dir, name)
    check_workdir(work_dir, resume)
    return work_dir
