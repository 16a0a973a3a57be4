"""Instruction / dialogue tuning (``[task] kind = "sft"``) of any causal LM of the zoo.

    prompt/response rows (TSV / CSV / JSONL columns, or a built-in pair corpus)
      -> a row store (kerazoo.data.rows, as seq2seq's: split by a seeded hash per row, the
         tokenizer trained on a bounded sample of the train rows, every row tokenized once)
      -> the chat template: </s> <|user|> prompt <|assistant|> response </s>  (kerazoo.text.chat)
      -> labels on the response and its closing </s> only (the rest is <pad>, ignored by the loss)
      -> model.fit: a fresh model, or [model] init_from a trained run (its vocabulary grown
         by the two role tokens when it has none), optionally with LoRA ([train] lora_rank)
      -> held-out replies decoded greedily to the end of the turn: BLEU and ROUGE-1/2/L, on the
         first held-out rows within train.eval_tokens response tokens

``data.source_column`` names the prompt column, ``data.target_column`` the
response; ``[task] prompt_format`` wraps each prompt (``"Translate to French: {}"``).
"""

import json
import time

import keras
import numpy as np

from kerazoo import text as tokenizers_lib
from kerazoo.data import prepare as prepare_lib
from kerazoo.data import row_datasets
from kerazoo.data import sft as sft_data
from kerazoo.data.row_prepare import prepare_rows
from kerazoo.inference import chat as chat_inference
from kerazoo.inference import metrics as metrics_lib
from kerazoo.models import build
from kerazoo.text import chat
from kerazoo.text.special import PAD_ID
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.recipes import vocab_size_for
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData


def given_tokenizer(recipe, tokenizer):
    """The tokenizer before the role tokens, when one is given.

    Args:
        recipe: an sft recipe.
        tokenizer: the caller's tokenizer, or None.

    Returns:
        The caller's, the init_from run's or ``tokenizer.path``'s tokenizer
        (unwrapped from its role tokens), or None when the row store is to
        train one.

    Raises:
        ValueError: a role token is already in its vocabulary (before any row is read).
    """
    if tokenizer is None and recipe.init_from:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.init_from))
    if tokenizer is None and recipe.tokenizer.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.tokenizer.path))
    if tokenizer is not None:
        chat.with_chat_tokens(tokenizer)  # a role token in the vocabulary: refused before any row is read
        if isinstance(tokenizer, chat.ChatTokenizer):
            tokenizer = tokenizer.base
    return tokenizer


def exchange_store(recipe, tokenizer=None, log=print):
    """Streams the exchanges into a row store (source: the formatted prompt, target: the response).

    Args:
        recipe: an sft recipe.
        tokenizer: a tokenizer to use (else init_from's, tokenizer.path's,
            or one trained on a bounded sample of the train rows, cached).
        log: where progress lines go.

    Returns:
        ``(store, chat tokenizer)``: a ``rows.RowStore`` with "source" and
        "target" fields (validation texts kept) and its tokenizer with the role tokens.
    """
    d, k = recipe.data, recipe.tokenizer
    prompt_format = recipe.task.prompt_format
    tok_spec = prepare_lib.TokenizerSpec(k.kind, vocab_size_for(k), k.lowercase, k.sample_bytes)
    settings = {"source_column": d.source_column, "target_column": d.target_column, "header": d.header,
                "val_fraction": d.val_fraction, "seed": d.seed, "split": "row_hash", "prompt_format": prompt_format}
    corpus = lambda: prepare_lib.corpus_fingerprint(prepare_lib.CorpusSpec(d.source))  # noqa: E731
    read = lambda: sft_data.exchange_rows(d.source, d.source_column, d.target_column, d.header,  # noqa: E731
                                          prompt_format)
    store = prepare_rows("exchanges", corpus, settings, read, ("source", "target"), given_tokenizer(recipe, tokenizer),
                         tok_spec, text_fields=("source", "target"), where=d.source, what_rows="exchanges", log=log)
    return store, chat.with_chat_tokens(store.tokenizer)


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
    return masked_loss_batches(model, ((x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)))


def masked_loss_batches(model, batches):
    """``masked_loss`` over ``(x, y)`` batches (read one at a time from a row store).

    Returns:
        ``(loss, n_tokens)``.
    """
    total, count = 0.0, 0
    for xb, yb in batches:
        logits = np.asarray(model.predict_on_batch(xb), np.float64)
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
        store, tokenizer = exchange_store(recipe, tokenizer, log)
        train = (store.field("source", "train"), store.field("target", "train"))
        val = (store.field("source", "val"), store.field("target", "val"))
        log(f"data: {d.source}: {len(train[0]) + len(val[0]):,} exchanges ('{d.source_column}' -> "
            f"'{d.target_column}'), {len(train[0]):,} train / {len(val[0]):,} held out")
        cut, tokens = 0, 0
        for fields in (val, train):
            for p, r in zip(fields[0].lengths(), fields[1].lengths()):
                c, n = sft_data.cut_and_response_tokens(p, r, t.seq_len)
                cut, tokens = cut + c, n if fields is train else tokens
        if cut:
            log(f"note: {cut:,} exchanges were cut to train.seq_len={t.seq_len} tokens")
        log(f"tokens: {tokens:,} train response tokens (end of turn included)")
        train_ds = sft_data.store_dataset(*train, tokenizer, t.seq_len, min(t.batch_size, len(train[0])),
                                          shuffle=True, seed=t.seed, repeat=True)
        batch = min(t.batch_size, len(val[0]))
        n_batches = len(val[0]) // batch
        steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
        val_ds = sft_data.store_dataset(*val, tokenizer, t.seq_len, batch, shuffle=False, n_rows=steps * batch)
        return TaskData(tokenizer, train_ds, val_ds, steps, {"store": store, "train": train, "val": val})

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
        (source, target), store = data.extra["val"], data.extra["store"]
        n = row_datasets.rows_within(target, t.eval_tokens, lambda lengths: lengths + 1)
        log(f"evaluating on the first {n:,} of {len(source):,} held-out exchanges (train.eval_tokens={t.eval_tokens:,}; "
            "greedy replies to the end of the turn) ...")
        started = time.perf_counter()
        batches = (sft_data.store_arrays(source, target, data.tokenizer, t.seq_len, s, min(s + t.batch_size, n))
                   for s in range(0, n, t.batch_size))
        loss, tokens = masked_loss_batches(model, batches)
        prompts, references = store.texts("source", "val", 0, n), store.texts("target", "val", 0, n)
        replies = chat_inference.answers(model, prompts, t.sample_tokens)
        rouge = metrics_lib.rouge(replies, references)
        metrics = {
            "val_loss": loss,
            "val_perplexity": float(np.exp(min(loss, 700.0))),
            "val_tokens": tokens,
            "val_bleu": metrics_lib.bleu(replies, references),
            "val_rouge1": rouge["rouge1"],
            "val_rouge2": rouge["rouge2"],
            "val_rougeL": rouge["rougeL"],
            "val_pairs": n,
            "val_pairs_total": len(source),
            "train_pairs": len(data.extra["train"][0]),
            "eval_seconds": time.perf_counter() - started,
        }
        return Evaluation(metrics, replies[0] if replies else "",
                          {"replies": replies, "exchanges": list(zip(prompts, references))})

    def artifacts(self, recipe, data, evaluation):
        rows = [json.dumps({"prompt": p, "reference": r, "reply": o}, ensure_ascii=False)
                for (p, r), o in zip(evaluation.extra["exchanges"], evaluation.extra["replies"])]
        return {"replies.jsonl": "\n".join(rows) + "\n"}

    def score_lines(self, result):
        m = result.metrics
        return [f"held out ({m['val_pairs']:,} exchanges): response loss {m['val_loss']:.4f} nats/token | "
                f"BLEU {m['val_bleu']:.2f} | ROUGE-1 {m['val_rouge1']:.4f} | ROUGE-2 {m['val_rouge2']:.4f} | "
                f"ROUGE-L {m['val_rougeL']:.4f}"]

    def summary(self, result):
        lines = super().summary(result)
        return lines[:-1] + [f"first held-out reply: {result.sample!r}", lines[-1]]
