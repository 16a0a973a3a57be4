"""The recipe runner: data -> tokenizer -> model -> ``model.fit`` -> run folder.

Everything that can fail on bad input (reading the corpus, training the
tokenizer, building the model) happens before the run folder is created, so
a user's mistake leaves nothing behind.
"""

import csv
import dataclasses
import math
import os
import tempfile
import time

import keras
import numpy as np

from kerazoo.training import callbacks as zoo_callbacks
from kerazoo.training import checkpointing
from kerazoo import data as data_lib
from kerazoo.training import distribute
from kerazoo.inference import metrics as metrics_lib
from kerazoo.training import precision
from kerazoo.training import runs
from kerazoo import text as tokenizers_lib
from kerazoo.inference.generate import generate
from kerazoo.models import build
from kerazoo.training.recipes import dump_recipe, vocab_size_for

# AdamW's second-moment decay. 0.99 rather than Keras' 0.999: small models on
# small corpora train more stably with it (nanoGPT's choice as well).
ADAM_BETA_2 = 0.99


@dataclasses.dataclass
class Prepared:
    """The inputs of a run, ready to fit."""

    tokenizer: object
    train_docs: list
    val_docs: list
    train_ids: np.ndarray
    val_ids: np.ndarray


def resolve_tokenizer_path(path):
    """A tokenizer folder, or the ``tokenizer/`` folder inside a run folder."""
    inner = os.path.join(path, "tokenizer")
    return inner if os.path.isdir(inner) else path


def prepare(recipe, tokenizer=None, log=print):
    """Reads, splits and tokenizes the corpus; trains the tokenizer if needed.

    Args:
        recipe: a validated ``Recipe``.
        tokenizer: a tokenizer to reuse instead of the recipe's.
        log: where progress lines go.

    Returns:
        A ``Prepared``.
    """
    d, k = recipe.data, recipe.tokenizer
    docs = data_lib.read_corpus(d.source, d.column)
    train_docs, val_docs = data_lib.split_corpus(docs, d.val_fraction, d.seed, d.split)
    log(f"data: {d.source}: {len(docs)} documents, "
        f"{metrics_lib.text_bytes(train_docs):,} train / {metrics_lib.text_bytes(val_docs):,} validation bytes")
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
    if tokenizer is None:
        started = time.perf_counter()
        tokenizer = tokenizers_lib.train_tokenizer(train_docs, k.kind, vocab_size_for(k), lowercase=k.lowercase)
        log(f"tokenizer: trained {k.kind} with {tokenizer.vocabulary_size()} tokens "
            f"in {time.perf_counter() - started:.1f}s")
    train_ids = data_lib.tokenize_documents(tokenizer, train_docs)
    val_ids = data_lib.tokenize_documents(tokenizer, val_docs)
    log(f"tokens: {len(train_ids):,} train / {len(val_ids):,} validation "
        f"({metrics_lib.text_bytes(train_docs) / max(len(train_ids), 1):.2f} bytes per token)")
    return Prepared(tokenizer, train_docs, val_docs, train_ids, val_ids)


def _optimizer(t):
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio``."""
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if t.warmup_steps else t.learning_rate,
        decay_steps=t.steps - t.warmup_steps,
        alpha=t.min_lr_ratio,
        warmup_target=t.learning_rate if t.warmup_steps else None,
        warmup_steps=t.warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=t.weight_decay,
        beta_2=ADAM_BETA_2,
        clipnorm=t.clipnorm or None,
    )
    # Decay matrices only: decaying biases and LayerNorm scales hurts and is
    # not what GPT-2 / nanoGPT do.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return precision.scale_loss(optimizer, t.precision)


def jit_compile_for(t, xla_when_auto=True):
    """The ``jit_compile`` to give ``model.compile`` for ``train.jit_compile``.

    An explicit ``true`` / ``false`` is passed on. ``"auto"`` compiles a
    causal LM's train step with XLA on TensorFlow and JAX. Keras' own
    ``"auto"`` turns XLA off for TensorFlow on a machine without a GPU;
    kerazoo's models compile under XLA (their decoding loops already do), and
    the main job (``recipes/pydocs_gpt.toml``) trains markedly faster under
    XLA on a CPU, to the same loss (docs/benchmarks.md). The
    other tasks (``xla_when_auto=False``: classify buckets its batches by
    length, so XLA would compile once per bucket; seq2seq and masked LM are
    not measured under XLA on TensorFlow yet), a distribution strategy on
    TensorFlow, and PyTorch (where ``True`` means ``torch.compile``) keep
    Keras' choice.

    Args:
        t: the recipe's ``TrainSection``.
        xla_when_auto: whether ``"auto"`` means XLA (on TensorFlow and JAX) for this task.

    Returns:
        ``True``, ``False`` or ``"auto"`` (Keras decides).
    """
    if t.jit_compile != "auto":
        return t.jit_compile
    backend = keras.backend.backend()
    if backend == "torch" or not xla_when_auto:
        return "auto"
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return "auto"
    return True


def compile_model(model, t):
    """Compiles a causal LM for next-token training (``jit_compile_for`` picks XLA)."""
    model.compile(
        optimizer=_optimizer(t),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile_for(t),
    )
    return model


def build_optimizer(model):
    """Creates the optimizer's variables now, before ``fit`` traces its train step.

    Keras' TensorFlow trainer leaves this to the first trace of the train step
    when no distribution strategy is set; ``tf.function`` then sees variables
    created during tracing and traces the whole step a second time, which
    costs a large share of a short run's start-up. Building here is what
    Keras itself does under a strategy.

    Args:
        model: a compiled, built model.
    """
    if model.built and model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _callbacks(t, work_dir):
    """The standard Keras callbacks of a run, plus kerazoo's clocks."""
    clock, counter = zoo_callbacks.TrainingClock(), zoo_callbacks.StepCounter()
    cbs = [
        # First: it commits an epoch before CSVLogger records it (a resume
        # rebuilds the CSV from the committed epochs).
        checkpointing.AtomicBackupAndRestore(os.path.join(work_dir, "backup")),
        checkpointing.AtomicModelCheckpoint(
            os.path.join(work_dir, "checkpoints", "best.keras"), monitor="val_loss", save_best_only=True,
            initial_value_threshold=checkpointing.best_committed(work_dir),
        ),
        keras.callbacks.TerminateOnNaN(),
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


def _val_dataset(val_ids, t):
    """Validation windows for the checks during ``fit``, and the batches per check."""
    n_windows = (len(val_ids) - 1) // t.seq_len
    if n_windows < 1:
        raise ValueError(
            f"validation split too small: {len(val_ids)} tokens do not fill one window "
            f"of train.seq_len={t.seq_len}; raise data.val_fraction or lower train.seq_len"
        )
    batch_size = min(t.batch_size, n_windows)
    n_batches = n_windows // batch_size
    steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
    return data_lib.lm_dataset(val_ids, t.seq_len, batch_size, shuffle=False), steps


def _read_history(path):
    """The per-check history that CSVLogger wrote (survives resumes)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _check_workdir(work_dir, resume):
    """Refuses to clobber an unfinished run unless asked to resume it."""
    if os.path.exists(work_dir) and not resume:
        raise ValueError(
            f"an unfinished run exists at {work_dir}; pass --resume to continue it, or delete it"
        )
    if resume and not os.path.exists(work_dir):
        raise ValueError(f"nothing to resume: {work_dir} does not exist")


def _saved_recipe(path):
    """A run folder's ``recipe.toml`` with today's defaults filled in (None if it no longer parses).

    Compared as parsed data, not as text: a key added to kerazoo after the run
    started (so missing from its file) takes its default, as it would have then.
    """
    import tomllib

    from kerazoo.training.recipes import RecipeError, parse_recipe

    try:
        with open(path, "rb") as f:
            return parse_recipe(tomllib.load(f), path).to_dict()
    except (tomllib.TOMLDecodeError, RecipeError):
        return None


def _check_resumable(work_dir, recipe):
    """Refuses to resume a run with a changed recipe or a diverged loss."""
    saved = os.path.join(work_dir, "recipe.toml")
    if os.path.exists(saved):
        if _saved_recipe(saved) != recipe.to_dict():
            raise ValueError(
                f"the recipe differs from the one the unfinished run at {work_dir} started with "
                f"(see its recipe.toml); resume with the same recipe and --set values"
            )
    history = _read_history(os.path.join(work_dir, "history.csv"))
    if history and not math.isfinite(history[-1].get("loss", 0.0)):
        raise ValueError(f"the unfinished run at {work_dir} diverged (NaN loss); delete it and lower train.learning_rate")


def _claim_workdir(runs_dir, work_dir, resume):
    """Creates the partial folder, failing if another process already has.

    ``os.mkdir`` is atomic: of two runs of the same recipe started together,
    exactly one gets the folder; the other stops instead of sharing it.
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


@dataclasses.dataclass
class RunResult:
    """What a finished run left."""

    path: str
    metrics: dict
    sample: str


def run_recipe(recipe, runs_dir="runs", resume=False, tokenizer=None, verbose=1, log=print, callbacks=None):
    """Trains, evaluates and saves one recipe.

    With ``[distribute] strategy = "data_parallel"`` every process of a
    cluster calls this with the same recipe; they train in step, and only the
    chief keeps a run folder (the others work in a temporary one).

    Args:
        recipe: a validated ``Recipe``.
        runs_dir: where run folders go.
        resume: continue the unfinished run of the same name.
        tokenizer: reuse this tokenizer instead of the recipe's.
        verbose: Keras ``fit`` verbosity (1: progress bar).
        log: where progress lines go.
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        A ``RunResult``.

    Raises:
        ValueError: bad input (corpus, tokenizer settings, sizes); nothing is
            written in that case.
        RuntimeError: the loss became NaN.
    """
    # First: joining several JAX hosts must happen before any JAX computation.
    parallel = distribute.setup(recipe.distribute, recipe.train.batch_size, recipe.path or "<recipe>")
    if parallel.is_chief:
        return _run(recipe, parallel, runs_dir, resume, tokenizer, verbose, log, callbacks)
    with tempfile.TemporaryDirectory(prefix="kerazoo-worker-") as scratch:
        result = _run(recipe, parallel, scratch, False, tokenizer, 0, lambda *_: None, callbacks)
    return dataclasses.replace(result, path="")


def _train_dataset(train_ids, t):
    """The endless, seeded training batches of a causal-LM run, cut as ``train.windows`` says."""
    if t.windows == "random":
        return data_lib.lm_random_dataset(train_ids, t.seq_len, t.batch_size, seed=t.seed)
    return data_lib.lm_dataset(train_ids, t.seq_len, t.batch_size, shuffle=True, seed=t.seed, repeat=True)


def _run(recipe, parallel, runs_dir, resume, tokenizer, verbose, log, callbacks):
    """``run_recipe`` in this process's engine scope."""
    if recipe.task_kind != "causal_lm":
        # Other tasks (seq2seq, ...) have their own runners on the same machinery.
        from kerazoo.training.tasks import TASK_RUNNERS

        if recipe.task_kind not in TASK_RUNNERS:
            raise ValueError(f"task '{recipe.task_kind}' has no runner yet; available: causal_lm, {', '.join(TASK_RUNNERS)}")
        return TASK_RUNNERS[recipe.task_kind](recipe, parallel, runs_dir, resume, tokenizer, verbose, log, callbacks)
    t = recipe.train
    work_dir = runs.partial_dir(runs_dir, recipe.name)
    _check_workdir(work_dir, resume)
    if resume:
        _check_resumable(work_dir, recipe)
    saved_tokenizer = os.path.join(work_dir, "tokenizer")
    if resume and tokenizer is None and os.path.isdir(saved_tokenizer):
        tokenizer = tokenizers_lib.load_tokenizer(saved_tokenizer)

    keras.utils.set_random_seed(t.seed)
    prep = prepare(recipe, tokenizer, log)
    train_ds = _train_dataset(prep.train_ids, t)
    val_ds, val_steps = _val_dataset(prep.val_ids, t)
    with precision.dtype_policy(t.precision), parallel.scope():
        model = compile_model(build(recipe.arch, tokenizer=prep.tokenizer, **recipe.hparams), t)
    log(f"model: {recipe.arch}, {model.count_params():,} parameters; "
        f"{t.steps} steps of {t.batch_size}x{t.seq_len} tokens"
        + (f"; {t.precision}" if t.precision != "float32" else "")
        + (f"; {parallel.describe}" if parallel.describe else ""))

    _claim_workdir(runs_dir, work_dir, resume)
    os.makedirs(os.path.join(work_dir, "checkpoints"), exist_ok=True)
    if not os.path.isdir(saved_tokenizer):
        tokenizers_lib.save_tokenizer(prep.tokenizer, saved_tokenizer)
    runs.write_text(os.path.join(work_dir, "recipe.toml"), dump_recipe(recipe))

    cbs, clock, counter = _callbacks(t, work_dir)
    cbs += list(callbacks or [])
    train_ds = checkpointing.resume_train_dataset(train_ds, work_dir, t.eval_every)
    started = time.perf_counter()
    with parallel.scope():
        build_optimizer(model)
        model.fit(
            train_ds,
            epochs=t.steps // t.eval_every,
            steps_per_epoch=t.eval_every,
            validation_data=val_ds,
            validation_steps=val_steps,
            callbacks=cbs,
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
    history = _read_history(os.path.join(work_dir, "history.csv"))
    if history and not math.isfinite(history[-1].get("loss", 0.0)):
        raise RuntimeError(f"training diverged: the loss became NaN; the unfinished run is kept at {work_dir}")
    checkpointing.fault_point("run.fitted")

    if parallel.replicas > 1:
        model = _single_device_copy(model, recipe, prep.tokenizer)
    log("evaluating on the whole validation split ...")
    scores = metrics_lib.evaluate_lm(model, prep.val_ids, prep.val_docs, t.seq_len, t.batch_size)
    temperature = t.sample_temperature if t.sample_temperature > 0 else None  # 0: greedy
    sample = generate(model, t.sample_prompt, t.sample_tokens, temperature=temperature, seed=t.seed)
    steps_done = len(history) * t.eval_every
    tokens_this_process = counter.steps * t.batch_size * t.seq_len
    metrics = {
        "arch": recipe.arch,
        "params": int(model.count_params()),
        "tokenizer": prep.tokenizer.kind,
        "vocab_size": int(prep.tokenizer.vocabulary_size()),
        "val_loss": scores["loss"],
        "val_perplexity": scores["perplexity"],
        "val_bits_per_byte": scores["bits_per_byte"],
        "val_tokens": scores["tokens"],
        "val_bytes": scores["bytes"],
        "train_loss": history[-1]["loss"] if history else None,
        "steps": steps_done,
        "tokens_seen": steps_done * t.batch_size * t.seq_len,
        "tokens_per_sec": tokens_this_process / clock.train_seconds if clock.train_seconds else None,
        "train_seconds": clock.train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "backend": keras.backend.backend(),
        "precision": t.precision,
        "devices": parallel.replicas,
    }
    checkpointing.save_model(model, os.path.join(work_dir, "model.keras"))
    runs.write_json(os.path.join(work_dir, "metrics.json"), metrics)
    runs.write_json(os.path.join(work_dir, "history.json"), history)
    runs.write_text(os.path.join(work_dir, "sample.txt"), t.sample_prompt + sample + "\n")
    runs.discard(os.path.join(work_dir, "backup"))
    path = runs.finish(work_dir, runs_dir, recipe.name)
    return RunResult(path, metrics, sample)


def _single_device_copy(model, recipe, tokenizer):
    """The trained weights in a model outside the data-parallel engine.

    Evaluation, sampling and saving are one-device work; a distributed model
    would run ``predict`` through the strategy (per-replica batches) and its
    variables would be mirrored ones.
    """
    with precision.dtype_policy(recipe.train.precision):
        plain = build(recipe.arch, tokenizer=tokenizer, **recipe.hparams)
    plain.set_weights([keras.ops.convert_to_numpy(w) for w in model.get_weights()])
    return plain


def load_run(path):
    """Loads the model of a run folder (or a ``.keras`` file), in safe mode.

    Args:
        path: a run folder or a ``.keras`` file.

    Returns:
        The ``keras.Model``, carrying its tokenizer.
    """
    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"no model found at {path} (expected a run folder with model.keras, or a .keras file)")
    try:
        return keras.saving.load_model(file, safe_mode=True, compile=False)
    except (OSError, ValueError, KeyError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load {file}: {first_line}") from None
