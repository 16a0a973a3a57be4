"""The seq2seq task: pairs -> tokenizer -> encoder–decoder -> ``model.fit`` -> BLEU / ROUGE.

The same run-folder machinery as the causal-LM runner (``kerazoo.training.runner``):
everything that can fail on bad input happens before the partial folder is
claimed; ``fit`` runs with the standard callbacks (resume, best checkpoint,
NaN stop, history); the folder is renamed into place when complete.
"""

import os
import time

import keras
import numpy as np
from keras import ops

from kerazoo.training import checkpointing
from kerazoo.inference import metrics as metrics_lib
from kerazoo.data import pairs as pairs_lib
from kerazoo.training import precision
from kerazoo.training import runs
from kerazoo.training import runner as runner_lib
from kerazoo import text as tokenizers_lib
from kerazoo.models import build
from kerazoo.training.recipes import dump_recipe, vocab_size_for
from kerazoo.text.special import PAD_ID
from kerazoo.inference.translate import translate, translate_ids

# Held-out translations are decoded in batches of this many pairs.
EVAL_BATCH = 64


def compile_seq2seq(model, t):
    """Compiles a seq2seq model for teacher-forced training; padding is ignored by the loss."""
    model.compile(
        optimizer=runner_lib._optimizer(t),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
        # "auto" keeps Keras' choice: not yet measured under XLA on TensorFlow.
        jit_compile=runner_lib.jit_compile_for(t, xla_when_auto=False),
    )
    return model


def prepare_pairs(recipe, tokenizer=None, log=print):
    """Reads and splits the pairs, trains (or loads) the tokenizer, tokenizes once.

    Returns:
        A dict with ``tokenizer``, ``train_pairs``, ``val_pairs`` and the
        tokenized ``train`` / ``val`` ``(sources, targets)``.
    """
    d, k, hp = recipe.data, recipe.tokenizer, recipe.hparams
    pairs = pairs_lib.read_pairs(d.source, d.source_column, d.target_column, d.header)
    train_pairs, val_pairs = pairs_lib.split_pairs(pairs, d.val_fraction, d.seed)
    log(f"data: {d.source}: {len(pairs):,} pairs ('{d.source_column}' -> '{d.target_column}'), "
        f"{len(train_pairs):,} train / {len(val_pairs):,} held out")
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(runner_lib.resolve_tokenizer_path(k.path))
    if tokenizer is None:
        started = time.perf_counter()
        # One tokenizer for both sides: it learns the source and target languages together.
        texts = [s for s, _ in train_pairs] + [t for _, t in train_pairs]
        tokenizer = tokenizers_lib.train_tokenizer(texts, k.kind, vocab_size_for(k), lowercase=k.lowercase)
        log(f"tokenizer: trained {k.kind} with {tokenizer.vocabulary_size()} tokens "
            f"in {time.perf_counter() - started:.1f}s")
    out = {"tokenizer": tokenizer, "train_pairs": train_pairs, "val_pairs": val_pairs}
    for name, split in (("train", train_pairs), ("val", val_pairs)):
        sources, targets, cut = pairs_lib.tokenize_pairs(tokenizer, split, hp["max_source_length"], hp["max_length"])
        out[name] = (sources, targets)
        if cut:
            log(f"note: {cut:,} {name} pairs were cut to model.max_source_length={hp['max_source_length']} "
                f"/ model.max_length={hp['max_length']} tokens")
    n_tokens = sum(len(t) + 1 for t in out["train"][1])
    log(f"tokens: {n_tokens:,} train target tokens (end tokens included)")
    return out


def _val_dataset(sources, targets, t):
    """Validation batches for the checks during ``fit``, and the batches per check."""
    batch_size = min(t.batch_size, len(sources))
    n_batches = len(sources) // batch_size
    steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
    return pairs_lib.seq2seq_dataset(sources, targets, batch_size, shuffle=False), steps


def evaluate_seq2seq(model, sources, targets, references, batch_size=EVAL_BATCH, max_new_tokens=None):
    """Loss over every held-out target token, and BLEU / ROUGE of greedy outputs.

    Args:
        model: a trained ``seq2seq`` model.
        sources, targets: held-out id lists from ``pairs.tokenize_pairs``.
        references: the held-out target texts (as read, not re-detokenized).
        batch_size: pairs per batch.
        max_new_tokens: output tokens at most (default: the target context - 1).

    Returns:
        ``(scores, outputs)``: a dict with ``loss`` (nats per target token,
        end token included), ``perplexity``, ``tokens``, ``bleu``, ``rouge1``,
        ``rouge2``, ``rougeL``; and the greedy output texts.
    """
    total, count = 0.0, 0
    for start in range(0, len(sources), batch_size):
        x, y = pairs_lib.teacher_forcing_arrays(sources[start:start + batch_size], targets[start:start + batch_size])
        logits = ops.convert_to_numpy(model(x, training=False)).astype(np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        picked = np.take_along_axis(log_probs, y[..., None].astype(np.int64), -1)[..., 0]
        keep = y != PAD_ID
        total -= float(picked[keep].sum())
        count += int(keep.sum())
    max_new_tokens = max_new_tokens or model.max_length - 1
    outputs = []
    tokenizer = model.tokenizer
    for start in range(0, len(sources), batch_size):
        for ids in translate_ids(model, sources[start:start + batch_size], max_new_tokens):
            text = tokenizer.detokenize(np.asarray([ids], np.int32)).numpy()[0].decode("utf-8", "replace") if ids else ""
            outputs.append(text)
    loss = total / max(count, 1)
    scores = {"loss": loss, "perplexity": float(np.exp(loss)), "tokens": count,
              "bleu": metrics_lib.bleu(outputs, references)}
    scores.update(metrics_lib.rouge(outputs, references))
    return scores, outputs


def run(recipe, parallel, runs_dir, resume, tokenizer, verbose, log, callbacks):
    """Trains, evaluates and saves a seq2seq recipe (the ``seq2seq`` entry of ``TASK_RUNNERS``).

    Args:
        recipe: a validated ``Recipe`` whose task is ``seq2seq``.
        parallel: the ``distribute`` engine of this process.
        runs_dir: where run folders go.
        resume: continue the unfinished run of the same name.
        tokenizer: reuse this tokenizer instead of the recipe's.
        verbose: Keras ``fit`` verbosity.
        log: where progress lines go.
        callbacks: extra Keras callbacks for ``fit``.

    Returns:
        A ``runner.RunResult``; its ``sample`` is the translation of
        ``train.sample_prompt`` (or of the first held-out source).
    """
    t = recipe.train
    work_dir = runs.partial_dir(runs_dir, recipe.name)
    runner_lib._check_workdir(work_dir, resume)
    if resume:
        runner_lib._check_resumable(work_dir, recipe)
    saved_tokenizer = os.path.join(work_dir, "tokenizer")
    if resume and tokenizer is None and os.path.isdir(saved_tokenizer):
        tokenizer = tokenizers_lib.load_tokenizer(saved_tokenizer)

    keras.utils.set_random_seed(t.seed)
    prep = prepare_pairs(recipe, tokenizer, log)
    (train_src, train_tgt), (val_src, val_tgt) = prep["train"], prep["val"]
    train_ds = pairs_lib.seq2seq_dataset(train_src, train_tgt, t.batch_size, shuffle=True, seed=t.seed, repeat=True)
    val_ds, val_steps = _val_dataset(val_src, val_tgt, t)
    with precision.dtype_policy(t.precision), parallel.scope():
        model = compile_seq2seq(build(recipe.arch, tokenizer=prep["tokenizer"], **recipe.hparams), t)
    log(f"model: {recipe.arch}, {model.count_params():,} parameters; {t.steps} steps of {t.batch_size} pairs"
        + (f"; {t.precision}" if t.precision != "float32" else "")
        + (f"; {parallel.describe}" if parallel.describe else ""))

    runner_lib._claim_workdir(runs_dir, work_dir, resume)
    os.makedirs(os.path.join(work_dir, "checkpoints"), exist_ok=True)
    if not os.path.isdir(saved_tokenizer):
        tokenizers_lib.save_tokenizer(prep["tokenizer"], saved_tokenizer)
    runs.write_text(os.path.join(work_dir, "recipe.toml"), dump_recipe(recipe))

    cbs, clock, counter = runner_lib._callbacks(t, work_dir)
    cbs += list(callbacks or [])
    train_ds = checkpointing.resume_train_dataset(train_ds, work_dir, t.eval_every)
    started = time.perf_counter()
    with parallel.scope():
        model.fit(
            train_ds, epochs=t.steps // t.eval_every, steps_per_epoch=t.eval_every,
            validation_data=val_ds, validation_steps=val_steps, callbacks=cbs, verbose=verbose, shuffle=False,
        )
    history = runner_lib._read_history(os.path.join(work_dir, "history.csv"))
    if history and not np.isfinite(history[-1].get("loss", 0.0)):
        raise RuntimeError(f"training diverged: the loss became NaN; the unfinished run is kept at {work_dir}")
    checkpointing.fault_point("run.fitted")
    if parallel.replicas > 1:
        model = runner_lib._single_device_copy(model, recipe, prep["tokenizer"])

    log(f"evaluating on {len(val_src):,} held-out pairs (greedy decoding) ...")
    references = [target for _, target in prep["val_pairs"]]
    eval_started = time.perf_counter()
    scores, outputs = evaluate_seq2seq(model, val_src, val_tgt, references)
    eval_seconds = time.perf_counter() - eval_started
    sample_source = t.sample_prompt or prep["val_pairs"][0][0]
    sample = translate(model, sample_source, max_new_tokens=min(t.sample_tokens, model.max_length - 1))
    steps_done = len(history) * t.eval_every
    target_tokens = sum(len(x) + 1 for x in train_tgt)
    metrics = {
        "arch": recipe.arch,
        "task": "seq2seq",
        "params": int(model.count_params()),
        "tokenizer": prep["tokenizer"].kind,
        "vocab_size": int(prep["tokenizer"].vocabulary_size()),
        "val_loss": scores["loss"],
        "val_perplexity": scores["perplexity"],
        "val_tokens": scores["tokens"],
        "val_bleu": scores["bleu"],
        "val_rouge1": scores["rouge1"],
        "val_rouge2": scores["rouge2"],
        "val_rougeL": scores["rougeL"],
        "val_pairs": len(val_src),
        "train_pairs": len(train_src),
        "train_loss": history[-1]["loss"] if history else None,
        "steps": steps_done,
        "pairs_seen": steps_done * t.batch_size,
        "pairs_per_sec": counter.steps * t.batch_size / clock.train_seconds if clock.train_seconds else None,
        "train_target_tokens": target_tokens,
        "train_seconds": clock.train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": time.perf_counter() - started,
        "backend": keras.backend.backend(),
        "precision": t.precision,
        "devices": parallel.replicas,
    }
    log(f"held out: loss {scores['loss']:.4f} nats/token | perplexity {scores['perplexity']:.2f} | "
        f"BLEU {scores['bleu']:.2f} | ROUGE-1/2/L {scores['rouge1']:.4f} / {scores['rouge2']:.4f} / {scores['rougeL']:.4f}")
    log(f"training: {steps_done} steps, {metrics['pairs_per_sec'] or 0:,.0f} pairs/s, {clock.train_seconds:.0f}s")
    checkpointing.save_model(model, os.path.join(work_dir, "model.keras"))
    runs.write_json(os.path.join(work_dir, "metrics.json"), metrics)
    runs.write_json(os.path.join(work_dir, "history.json"), history)
    runs.write_text(os.path.join(work_dir, "sample.txt"), f"{sample_source}\t{sample}\n")
    lines = ["source\treference\toutput"] + [
        "\t".join(x.replace("\t", " ").replace("\n", " ") for x in (s, r, o))
        for (s, r), o in zip(prep["val_pairs"], outputs)
    ]
    runs.write_text(os.path.join(work_dir, "translations.tsv"), "\n".join(lines) + "\n")
    runs.discard(os.path.join(work_dir, "backup"))
    path = runs.finish(work_dir, runs_dir, recipe.name)
    log(f"sample: {sample_source!r} -> {sample!r}")
    return runner_lib.RunResult(path, metrics, sample)
