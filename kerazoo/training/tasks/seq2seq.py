"""The seq2seq task: pairs -> tokenizer -> encoder–decoder -> ``model.fit`` -> BLEU / ROUGE.

A plug-in of the one run lifecycle (``kerazoo.training.lifecycle``): the same
run folder, resume, checkpoints and optimizer pre-build as every other task.
"""

import time

import keras
import numpy as np
from keras import ops

from kerazoo.inference import metrics as metrics_lib
from kerazoo.data import pairs as pairs_lib
from kerazoo.training import precision
from kerazoo import text as tokenizers_lib
from kerazoo.models import build
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.recipes import vocab_size_for
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData
from kerazoo.text.special import PAD_ID
from kerazoo.inference.translate import translate, translate_ids

# Held-out translations are decoded in batches of this many pairs.
EVAL_BATCH = 64


def compile_seq2seq(model, t):
    """Compiles a seq2seq model for teacher-forced training; padding is ignored by the loss."""
    model.compile(
        optimizer=make_optimizer(t),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
        # "auto" keeps Keras' choice: not yet measured under XLA on TensorFlow.
        jit_compile=jit_compile_for(t, xla_when_auto=False),
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
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
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


class Seq2SeqTask(Task):
    """Encoder–decoder translation (seq2seq): held-out loss, BLEU and ROUGE of greedy outputs."""

    kind = "seq2seq"

    def prepare(self, recipe, tokenizer, log):
        t = recipe.train
        prep = prepare_pairs(recipe, tokenizer, log)
        (train_src, train_tgt), (val_src, val_tgt) = prep["train"], prep["val"]
        train_ds = pairs_lib.seq2seq_dataset(train_src, train_tgt, t.batch_size, shuffle=True, seed=t.seed,
                                             repeat=True)
        val_ds, val_steps = _val_dataset(val_src, val_tgt, t)
        return TaskData(prep["tokenizer"], train_ds, val_ds, val_steps, prep)

    def build_model(self, recipe, data):
        return compile_seq2seq(build(recipe.arch, tokenizer=data.tokenizer, **recipe.hparams), recipe.train)

    def describe(self, recipe, model):
        t = recipe.train
        return f"{recipe.arch}, {model.count_params():,} parameters; {t.steps} steps of {t.batch_size} pairs"

    def single_device_copy(self, model, recipe, data):
        # Rebuilt from the recipe in its dtype policy, as it was built for training.
        with precision.dtype_policy(recipe.train.precision):
            plain = build(recipe.arch, tokenizer=data.tokenizer, **recipe.hparams)
        plain.set_weights([keras.ops.convert_to_numpy(w) for w in model.get_weights()])
        return plain

    def evaluate(self, model, recipe, data, log):
        t, prep = recipe.train, data.extra
        (train_src, train_tgt), (val_src, val_tgt) = prep["train"], prep["val"]
        log(f"evaluating on {len(val_src):,} held-out pairs (greedy decoding) ...")
        references = [target for _, target in prep["val_pairs"]]
        eval_started = time.perf_counter()
        scores, outputs = evaluate_seq2seq(model, val_src, val_tgt, references)
        eval_seconds = time.perf_counter() - eval_started
        sample_source = t.sample_prompt or prep["val_pairs"][0][0]
        sample = translate(model, sample_source, max_new_tokens=min(t.sample_tokens, model.max_length - 1))
        log(f"held out: loss {scores['loss']:.4f} nats/token | perplexity {scores['perplexity']:.2f} | "
            f"BLEU {scores['bleu']:.2f} | ROUGE-1/2/L {scores['rouge1']:.4f} / {scores['rouge2']:.4f} / "
            f"{scores['rougeL']:.4f}")
        metrics = {
            "val_loss": scores["loss"],
            "val_perplexity": scores["perplexity"],
            "val_tokens": scores["tokens"],
            "val_bleu": scores["bleu"],
            "val_rouge1": scores["rouge1"],
            "val_rouge2": scores["rouge2"],
            "val_rougeL": scores["rougeL"],
            "val_pairs": len(val_src),
            "train_pairs": len(train_src),
            "train_target_tokens": sum(len(x) + 1 for x in train_tgt),
            "eval_seconds": eval_seconds,
        }
        return Evaluation(metrics, sample, {"sample_source": sample_source, "outputs": outputs})

    def unit(self, recipe):
        return "pairs", recipe.train.batch_size

    def artifacts(self, recipe, data, evaluation):
        lines = ["source\treference\toutput"] + [
            "\t".join(x.replace("\t", " ").replace("\n", " ") for x in (s, r, o))
            for (s, r), o in zip(data.extra["val_pairs"], evaluation.extra["outputs"])
        ]
        return {"sample.txt": f"{evaluation.extra['sample_source']}\t{evaluation.sample}\n",
                "translations.tsv": "\n".join(lines) + "\n"}

    def score_lines(self, result):
        m = result.metrics
        return [f"held out ({m['val_pairs']:,} pairs): loss {m['val_loss']:.4f} nats/token | "
                f"BLEU {m['val_bleu']:.2f} | ROUGE-1 {m['val_rouge1']:.4f} | ROUGE-2 {m['val_rouge2']:.4f} | "
                f"ROUGE-L {m['val_rougeL']:.4f}"]

    def summary(self, result):
        lines = super().summary(result)
        return lines[:-1] + [f"sample: {result.sample!r}", lines[-1]]
