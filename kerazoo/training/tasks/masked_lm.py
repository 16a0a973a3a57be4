"""Masked-LM pre-training: BERT's objective on any corpus.

    documents -> the token store (kerazoo.data.prepare_store: tokenized once, shared, memory-mapped)
              -> non-overlapping windows of seq_len, read from the shards in constant memory
              -> keras_hub MaskedLMMaskGenerator per batch: 15% of tokens selected,
                 of those 80% -> <mask>, 10% -> a random token, 10% kept
              -> the encoder predicts the original ids at the selected positions

The loss is the cross-entropy at the selected positions only (their weight
is 1, every other position 0, averaged over the weights). The validation
windows (the first ``train.eval_tokens`` validation tokens) are masked once
with a fixed seed, so every check and the final evaluation score the same
positions.
"""

import math

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kerazoo import data as data_lib
from kerazoo import text as tokenizers_lib
from kerazoo.models import build
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData
from kerazoo.training.tasks.causal_lm import prepare_store
from kerazoo.text.special import MASK_ID, NUM_SPECIAL_TOKENS


def mask_generator(tokenizer, seq_len, rate=0.15):
    """keras_hub's mask generator with the zoo's special ids left unselected.

    Args:
        tokenizer: the zoo tokenizer (its vocabulary size and ``<mask>`` id).
        seq_len: window length.
        rate: share of tokens selected.

    Returns:
        A ``keras_hub.layers.MaskedLMMaskGenerator``.
    """
    return keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=int(tokenizer.vocabulary_size()),
        mask_selection_rate=rate,
        mask_token_id=MASK_ID,
        mask_selection_length=seq_len,  # never binding; keeps the outputs dense
        unselectable_token_ids=list(range(NUM_SPECIAL_TOKENS)),
        mask_token_rate=0.8,
        random_token_rate=0.1,
    )


def train_dataset(stream, generator, seq_len, batch_size, seed):
    """Shuffled, repeating ``(masked ids, original ids, weights)`` batches, masked afresh each time.

    Args:
        stream: the train split's ``TokenStream`` (read window by window, never whole).
        generator: ``mask_generator(...)``.
        seq_len: window length.
        batch_size: windows per batch.
        seed: the window order's seed.

    Returns:
        A ``tf.data.Dataset``.
    """
    # packed_windows' inputs are the non-overlapping windows [i * seq_len, (i + 1) * seq_len);
    # its shifted targets are not used here.
    windows = data_lib.packed_windows(stream, seq_len, batch_size, shuffle=True, seed=seed, repeat=True)
    return windows.map(lambda x, _: data_lib.mask_tokens(generator, x)).prefetch(tf.data.AUTOTUNE)


def fixed_masks(windows, generator, seed):
    """Masks validation windows once, reproducibly.

    Returns:
        ``(masked ids, original ids, weights)`` numpy arrays.
    """
    tf.random.set_seed(seed)
    x, y, w = data_lib.mask_tokens(generator, tf.constant(windows))
    return x.numpy(), y.numpy(), w.numpy()


def compile_masked_lm(model, train):
    """Compiles an encoder for masked-LM training: loss and accuracy at selected positions."""
    model.compile(
        optimizer=make_optimizer(train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # "auto" keeps Keras' choice: not yet measured under XLA on TensorFlow.
        jit_compile=jit_compile_for(train, xla_when_auto=False),
    )
    return model


def evaluate_masked_lm(model, x, y, w, batch_size=32):
    """Masked-token loss, perplexity and accuracy over pre-masked windows.

    Args:
        model: the encoder (ids -> per-token logits).
        x: masked input ids ``(n, seq_len)``.
        y: original ids.
        w: 1.0 at the scored positions.
        batch_size: windows per forward pass.

    Returns:
        A dict with ``loss`` (nats per masked token), ``perplexity``,
        ``accuracy`` and ``tokens`` (masked tokens scored).
    """
    nats, correct, count = 0.0, 0, 0
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch_size]), np.float64)
        yb, wb = y[start:start + batch_size], w[start:start + batch_size] > 0
        logits -= logits.max(axis=-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(logp, yb[..., None].astype(np.int64), axis=-1)[..., 0]
        nats -= float(picked[wb].sum())
        correct += int((logits.argmax(-1) == yb)[wb].sum())
        count += int(wb.sum())
    loss = nats / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "accuracy": correct / max(count, 1),
            "tokens": count}


class MaskedLM(Task):
    """Masked-LM pre-training of an encoder (bert): scored on the masked tokens only."""

    kind = "masked_lm"

    def prepare(self, recipe, tokenizer, log):
        t, s = recipe.train, recipe.task
        if tokenizer is None and recipe.init_from:  # fine-tuning reads with the pre-trained run's tokenizer
            tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.init_from))
        prepared = prepare_store(recipe, tokenizer, log)
        train, val = prepared.stream("train"), prepared.stream("val")
        generator = mask_generator(prepared.tokenizer, t.seq_len, s.mask_rate)
        train_ds = train_dataset(train, generator, t.seq_len, t.batch_size, t.seed)
        # Bounded: the first train.eval_tokens validation tokens are masked and held in memory.
        n = min(len(val), t.eval_tokens) if t.eval_tokens else len(val)
        val_windows = data_lib.mlm_windows(val.read(0, n), t.seq_len)
        if len(val_windows) < 1:
            raise ValueError(f"validation split too small: {n} tokens do not fill one window of "
                             f"train.seq_len={t.seq_len}; raise data.val_fraction or lower train.seq_len")
        if n < len(val):
            log(f"masked-LM validation: the first {n:,} of {len(val):,} tokens (train.eval_tokens={t.eval_tokens:,})")
        vx, vy, vw = fixed_masks(val_windows, generator, t.seed)
        val_batch = min(t.batch_size, len(vx))
        n_val = len(vx) // val_batch
        val_steps = min(t.eval_batches, n_val) if t.eval_batches else n_val
        val_ds = tf.data.Dataset.from_tensor_slices((vx, vy, vw)).batch(val_batch, drop_remainder=True)
        return TaskData(prepared.tokenizer, train_ds, val_ds, val_steps, {"val": (vx, vy, vw), "store": prepared})

    def build_model(self, recipe, data):
        return compile_masked_lm(build(recipe.arch, tokenizer=data.tokenizer, **recipe.hparams), recipe.train)

    def describe(self, recipe, model):
        t = recipe.train
        return (f"{recipe.arch}, {model.count_params():,} parameters; masked LM ({recipe.task.mask_rate:.0%} of "
                f"tokens); {t.steps} steps of {t.batch_size}x{t.seq_len} tokens")

    def evaluate(self, model, recipe, data, log):
        log("evaluating masked tokens on the validation windows ...")
        scores = evaluate_masked_lm(model, *data.extra["val"], recipe.train.batch_size)
        log(f"validation: masked-token loss {scores['loss']:.4f} nats | perplexity {scores['perplexity']:.2f} | "
            f"accuracy {scores['accuracy']:.2%} over {scores['tokens']:,} masked tokens")
        return Evaluation({
            "val_loss": scores["loss"],
            "val_perplexity": scores["perplexity"],
            "val_masked_accuracy": scores["accuracy"],
            "val_masked_tokens": scores["tokens"],
            "mask_rate": recipe.task.mask_rate,
        })

    def score_lines(self, result):
        m = result.metrics
        return [f"validation: masked-token loss {m['val_loss']:.4f} nats | perplexity {m['val_perplexity']:.2f} | "
                f"masked-token accuracy {m['val_masked_accuracy']:.2%}"]
