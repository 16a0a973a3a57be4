"""Instruction / dialogue tuning (``[task] kind = "sft"``) of any causal LM of the zoo.

    prompt/response rows (TSV / CSV / JSONL columns, or a built-in pair corpus)
      -> the chat template: </s> <|user|> prompt <|assistant|> response </s>  (kerazoo.text.chat)
      -> labels on the response and its closing </s> only (the rest is <pad>, ignored by the loss)
      -> model.fit: a fresh model, or [model] init_from a trained run (its vocabulary grown
         by the two role tokens when it has none), optionally with LoRA ([train] lora_rank)
      -> held-out replies decoded greedily to the end of the turn: BLEU and ROUGE-1/2/L

``data.source_column`` names the prompt column, ``data.target_column`` the
response; ``[task] prompt_format`` wraps each prompt (``"Translate to French: {}"``).
"""

import json
import time

import keras
import numpy as np

from kerazoo import text as tokenizers_lib
from kerazoo.data import sft as sft_data
from kerazoo.data.pairs import split_pairs
from kerazoo.inference import chat as chat_inference
from kerazoo.inference import metrics as metrics_lib
from kerazoo.models import build
from kerazoo.text import chat
from kerazoo.text.special import PAD_ID
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.recipes import vocab_size_for
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData


def base_tokenizer(recipe, tokenizer, train, log):
    """The tokenizer before the role tokens: given, the init_from run's, tokenizer.path's, or trained."""
    k = recipe.tokenizer
    if tokenizer is None and recipe.init_from:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.init_from))
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
    if tokenizer is None:
        started = time.perf_counter()
        texts = [p for p, _ in train] + [r for _, r in train]
        tokenizer = tokenizers_lib.train_tokenizer(texts, k.kind, vocab_size_for(k), lowercase=k.lowercase)
        log(f"tokenizer: trained {k.kind} with {tokenizer.vocabulary_size()} tokens "
            f"in {time.perf_counter() - started:.1f}s")
    return tokenizer


def grow_vocabulary(model, tokenizer):
    """A copy of ``model`` for the larger vocabulary of ``tokenizer`` (the role tokens added).

    Every weight keeps its trained values; the rows (or columns) of the new
    ids, in any weight with a vocabulary-sized axis (the embedding, an untied
    head, a logit bias), keep the fresh model's initialisation.

    Args:
        model: a trained zoo model whose config has ``vocab_size``.
        tokenizer: the ``ChatTokenizer`` wrapping that model's tokenizer.

    Returns:
        The grown model.
    """
    old_v, new_v = int(model.tokenizer.vocabulary_size()), int(tokenizer.vocabulary_size())
    config = model.get_config()
    config.update(vocab_size=new_v, tokenizer=keras.saving.serialize_keras_object(tokenizer))
    grown = type(model).from_config(config)
    grown.tokenizer = tokenizer  # from_config rebuilt it without its vocabulary files
    for old, new in zip(model.weights, grown.weights):
        value = keras.ops.convert_to_numpy(old)
        if tuple(old.shape) != tuple(new.shape):
            fresh = keras.ops.convert_to_numpy(new).copy()
            axis = [i for i, (a, b) in enumerate(zip(old.shape, new.shape)) if a != b]
            if len(axis) != 1 or old.shape[axis[0]] != old_v or new.shape[axis[0]] != new_v:
                raise ValueError(f"cannot grow {old.path} from {tuple(old.shape)} to {tuple(new.shape)}")
            index = [slice(None)] * value.ndim
            index[axis[0]] = slice(0, old_v)
            fresh[tuple(index)] = value
            value = fresh
        new.assign(value)
    return grown


def compile_sft(model, t):
    """Compiles for next-token training where ``<pad>`` labels (prompts, padding) carry no loss."""
    model.compile(
        optimizer=make_optimizer(t),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD_ID),
        jit_compile=jit_compile_for(t),
    )
    return model


def masked_loss(model, x, y, batch_size=32):
    """Mean cross-entropy (nats) over the non-``<pad>`` labels: the response tokens.

    Returns:
        ``(loss, n_tokens)``.
    """
    total, count = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model.predict_on_batch(x[start:start + batch_size]), np.float64)
        yb = y[start:start + batch_size]
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        picked = np.take_along_axis(logp, yb[..., None].astype(np.int64), -1)[..., 0]
        keep = yb != PAD_ID
        total -= float(picked[keep].sum())
        count += int(keep.sum())
    return total / max(count, 1), count


class SFT(Task):
    """Instruction tuning on prompt/response rows: loss on responses, BLEU / ROUGE of held-out replies."""

    kind = "sft"

    def check(self, recipe):
        if recipe.init_from:
            from kerazoo.training.recipes import check_init_from

            check_init_from(recipe.init_from, recipe.arch, recipe.path or "<recipe>")

    def prepare(self, recipe, tokenizer, log):
        d, t = recipe.data, recipe.train
        rows = sft_data.read_exchanges(d.source, d.source_column, d.target_column, d.header, recipe.task.prompt_format)
        train, val = split_pairs(rows, d.val_fraction, d.seed)
        log(f"data: {d.source}: {len(rows):,} exchanges ('{d.source_column}' -> '{d.target_column}'), "
            f"{len(train):,} train / {len(val):,} held out")
        tokenizer = chat.with_chat_tokens(base_tokenizer(recipe, tokenizer, train, log))
        x, y, cut = sft_data.exchange_arrays(tokenizer, train, t.seq_len)
        vx, vy, vcut = sft_data.exchange_arrays(tokenizer, val, t.seq_len)
        if cut or vcut:
            log(f"note: {cut + vcut:,} exchanges were cut to train.seq_len={t.seq_len} tokens")
        log(f"tokens: {int((y != PAD_ID).sum()):,} train response tokens (end of turn included)")
        train_ds = sft_data.sft_dataset(x, y, min(t.batch_size, len(x)), shuffle=True, seed=t.seed, repeat=True)
        batch = min(t.batch_size, len(vx))
        n_batches = len(vx) // batch
        steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
        val_ds = sft_data.sft_dataset(vx, vy, batch, shuffle=False)
        return TaskData(tokenizer, train_ds, val_ds, steps, {"train": train, "val": val, "val_arrays": (vx, vy)})

    def build_model(self, recipe, data):
        if not recipe.init_from:
            return compile_sft(build(recipe.arch, tokenizer=data.tokenizer, **recipe.hparams), recipe.train)
        from kerazoo.training.runs import load_run

        model = load_run(recipe.init_from)
        if int(model.tokenizer.vocabulary_size()) != int(data.tokenizer.vocabulary_size()):
            model = grow_vocabulary(model, data.tokenizer)
        return compile_sft(model, recipe.train)

    def evaluate(self, model, recipe, data, log):
        t = recipe.train
        val = data.extra["val"]
        log(f"evaluating on {len(val):,} held-out exchanges (greedy replies to the end of the turn) ...")
        started = time.perf_counter()
        loss, tokens = masked_loss(model, *data.extra["val_arrays"], batch_size=t.batch_size)
        replies = chat_inference.answers(model, [p for p, _ in val], t.sample_tokens)
        references = [r for _, r in val]
        rouge = metrics_lib.rouge(replies, references)
        metrics = {
            "val_loss": loss,
            "val_perplexity": float(np.exp(min(loss, 700.0))),
            "val_tokens": tokens,
            "val_bleu": metrics_lib.bleu(replies, references),
            "val_rouge1": rouge["rouge1"],
            "val_rouge2": rouge["rouge2"],
            "val_rougeL": rouge["rougeL"],
            "val_pairs": len(val),
            "train_pairs": len(data.extra["train"]),
            "eval_seconds": time.perf_counter() - started,
        }
        return Evaluation(metrics, replies[0] if replies else "", {"replies": replies})

    def artifacts(self, recipe, data, evaluation):
        rows = [json.dumps({"prompt": p, "reference": r, "reply": o}, ensure_ascii=False)
                for (p, r), o in zip(data.extra["val"], evaluation.extra["replies"])]
        return {"replies.jsonl": "\n".join(rows) + "\n"}

    def score_lines(self, result):
        m = result.metrics
        return [f"held out ({m['val_pairs']:,} exchanges): response loss {m['val_loss']:.4f} nats/token | "
                f"BLEU {m['val_bleu']:.2f} | ROUGE-1 {m['val_rouge1']:.4f} | ROUGE-2 {m['val_rouge2']:.4f} | "
                f"ROUGE-L {m['val_rougeL']:.4f}"]

    def summary(self, result):
        lines = super().summary(result)
        return lines[:-1] + [f"first held-out reply: {result.sample!r}", lines[-1]]
