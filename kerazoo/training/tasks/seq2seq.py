"""The seq2seq task: pairs -> row store -> encoder–decoder -> ``model.fit`` -> BLEU / ROUGE.

Pairs stream into a row store (``kerazoo.data.rows``: split by a seeded hash
per row, the tokenizer trained on a bounded sample of the train pairs, every
pair tokenized once and cached); training and the checks read pairs back one
by one; the final evaluation decodes the first held-out pairs within
``train.eval_tokens`` target tokens.

A plug-in of the one run lifecycle (``kerazoo.training.lifecycle``): the same
run folder, resume, checkpoints and optimizer pre-build as every other task.
"""

import time

import keras
import numpy as np
from keras import ops

from kerazoo.inference import metrics as metrics_lib
from kerazoo.data import pairs as pairs_lib
from kerazoo.data import prepare as prepare_lib
from kerazoo.data import row_datasets
from kerazoo.data.row_prepare import prepare_rows
from kerazoo.text import packing
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
    """Streams the pairs into a row store (split per row, tokenizer trained or loaded, tokenized once).

    Returns:
        A dict with ``tokenizer``, ``store`` (a ``rows.RowStore`` with
        "source" and "target" fields, validation texts kept) and the
        ``train`` / ``val`` ``(source, target)`` ``RowField`` pairs.
    """
    d, k, hp = recipe.data, recipe.tokenizer, recipe.hparams
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
    tok_spec = prepare_lib.TokenizerSpec(k.kind, vocab_size_for(k), k.lowercase, k.sample_bytes)
    settings = {"source_column": d.source_column, "target_column": d.target_column, "header": d.header,
                "val_fraction": d.val_fraction, "seed": d.seed, "split": "row_hash"}

    corpus = lambda: prepare_lib.corpus_fingerprint(prepare_lib.CorpusSpec(d.source))  # noqa: E731
    # One tokenizer for both sides (trained on sources and targets): it learns both languages together.
    read = lambda: pairs_lib.pair_rows(d.source, d.source_column, d.target_column, d.header)  # noqa: E731
    store = prepare_rows("pairs", corpus, settings, read, ("source", "target"), tokenizer, tok_spec,
                         text_fields=("source", "target"), where=d.source, what_rows="pairs", log=log)
    out = {"tokenizer": store.tokenizer, "store": store}
    for split in ("train", "val"):
        out[split] = (store.field("source", split), store.field("target", split))
    log(f"data: {d.source}: {len(out['train'][0]) + len(out['val'][0]):,} pairs ('{d.source_column}' -> "
        f"'{d.target_column}'), {len(out['train'][0]):,} train / {len(out['val'][0]):,} held out")
    for split in ("train", "val"):
        cut = sum(int(((a > hp["max_source_length"] - 1) | (b > hp["max_length"] - 1)).sum())
                  for a, b in zip(out[split][0].lengths(), out[split][1].lengths()))
        if cut:
            log(f"note: {cut:,} {split} pairs were cut to model.max_source_length={hp['max_source_length']} "
                f"/ model.max_length={hp['max_length']} tokens")
    log(f"tokens: {target_tokens(out['train'][1], hp['max_length']):,} train target tokens (end tokens included)")
    return out


def target_tokens(field, max_length, n_rows=None):
    """Target tokens scored (``</s>`` included) of a target ``RowField``'s rows, or of its first ``n_rows``."""
    total, seen = 0, 0
    for lengths in field.lengths():
        if n_rows is not None:
            lengths = lengths[: max(n_rows - seen, 0)]
        total += int((np.minimum(lengths, max_length - 1) + 1).sum())
        seen += len(lengths)
    return total


def _val_dataset(source, target, t, hp):
    """Validation batches for the checks during ``fit``, and the batches per check."""
    batch_size = min(t.batch_size, len(source))
    n_batches = len(source) // batch_size
    steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
    ds = row_datasets.pair_dataset(source, target, hp["max_source_length"], hp["max_length"], batch_size,
                                   shuffle=False, n_rows=steps * batch_size)
    return ds, steps


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
        t, hp = recipe.train, recipe.hparams
        prep = prepare_pairs(recipe, tokenizer, log)
        (train_src, train_tgt), (val_src, val_tgt) = prep["train"], prep["val"]
        train_ds = row_datasets.pair_dataset(train_src, train_tgt, hp["max_source_length"], hp["max_length"],
                                             t.batch_size, shuffle=True, seed=t.seed, repeat=True)
        val_ds, val_steps = _val_dataset(val_src, val_tgt, t, hp)
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
        t, hp, prep = recipe.train, recipe.hparams, data.extra
        (train_src, train_tgt), (val_src, val_tgt) = prep["train"], prep["val"]
        # The cap counts target tokens (``</s>`` included): what the loss scores and decoding writes.
        n = row_datasets.rows_within(val_tgt, t.eval_tokens, lambda n: np.minimum(n, hp["max_length"] - 1) + 1)
        scope = (f"the first {n:,} of {len(val_src):,} held-out pairs (train.eval_tokens={t.eval_tokens:,})"
                 if n < len(val_src) else f"{n:,} held-out pairs")
        log(f"evaluating on {scope} (greedy decoding) ...")
        sources = [packing.source_ids(r, hp["max_source_length"])[0] for r in val_src.rows(0, n)]
        targets = [packing.target_ids(r, hp["max_length"])[0] for r in val_tgt.rows(0, n)]
        store = prep["store"]
        val_pairs = list(zip(store.texts("source", "val", 0, n), store.texts("target", "val", 0, n)))
        eval_started = time.perf_counter()
        scores, outputs = evaluate_seq2seq(model, sources, targets, [target for _, target in val_pairs])
        eval_seconds = time.perf_counter() - eval_started
        sample_source = t.sample_prompt or val_pairs[0][0]
        sample = translate(model, sample_source, max_new_tokens=min(t.sample_tokens, model.max_length - 1))
        log(f"held out: loss {scores['loss']:.4f} nats/token | perplexity {scores['perplexity']:.2f} | "
            f"BLEU {scores['bleu']:.2f} | ROUGE-1/2/L {scores['rouge1']:.4f} / {scores['rouge2']:.4f} / "
            f"{scores['rougeL']:.4f} over {scope}")
        metrics = {
            "val_loss": scores["loss"],
            "val_perplexity": scores["perplexity"],
            "val_tokens": scores["tokens"],
            "val_bleu": scores["bleu"],
            "val_rouge1": scores["rouge1"],
            "val_rouge2": scores["rouge2"],
            "val_rougeL": scores["rougeL"],
            "val_pairs": n,
            "val_pairs_total": len(val_src),
            "train_pairs": len(train_src),
            "train_target_tokens": target_tokens(train_tgt, hp["max_length"]),
            "eval_seconds": eval_seconds,
        }
        return Evaluation(metrics, sample, {"sample_source": sample_source, "outputs": outputs,
                                            "val_pairs": val_pairs})

    def unit(self, recipe):
        return "pairs", recipe.train.batch_size

    def artifacts(self, recipe, data, evaluation):
        lines = ["source\treference\toutput"] + [
            "\t".join(x.replace("\t", " ").replace("\n", " ") for x in (s, r, o))
            for (s, r), o in zip(evaluation.extra["val_pairs"], evaluation.extra["outputs"])
        ]
        return {"sample.txt": f"{evaluation.extra['sample_source']}\t{evaluation.sample}\n",
                "translations.tsv": "\n".join(lines) + "\n"}

    def score_lines(self, result):
        m = result.metrics
        of = f" of {m['val_pairs_total']:,}" if m.get("val_pairs_total", m["val_pairs"]) > m["val_pairs"] else ""
        return [f"held out ({m['val_pairs']:,}{of} pairs): loss {m['val_loss']:.4f} nats/token | "
                f"BLEU {m['val_bleu']:.2f} | ROUGE-1 {m['val_rouge1']:.4f} | ROUGE-2 {m['val_rouge2']:.4f} | "
                f"ROUGE-L {m['val_rougeL']:.4f}"]

    def summary(self, result):
        lines = super().summary(result)
        return lines[:-1] + [f"sample: {result.sample!r}", lines[-1]]
