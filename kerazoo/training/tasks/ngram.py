"""The n-gram baseline's task: count the token stream once, score it as a causal LM.

    documents -> one token stream (the causal-LM preparation, same tokenizer and split)
              -> the first train.steps x batch_size x seq_len tokens (the neural archs' budget)
              -> Kneser-Ney tables (``kerazoo.models.ngram``), counted in one pass, no optimizer
              -> scored in bits per byte of the held-out text by the causal LM's metric path
"""

import time

import tensorflow as tf

from kerazoo.inference import metrics as metrics_lib
from kerazoo.inference.generate import decode_text
from kerazoo.models.ngram import NGramLM, check_order
from kerazoo.text import packing
from kerazoo.training.tasks.base import Evaluation, TaskData
from kerazoo.training.tasks.causal_lm import CausalLM, prepare


class Counted:
    """What one counting pass reports in place of ``fit``'s clock and step counter."""

    def __init__(self, seconds, tokens):
        self.train_seconds = seconds
        self.steps = 0  # no optimizer steps
        self.seen = tokens  # tokens counted


def budget(recipe):
    """Training tokens a recipe's ``[train]`` settings spend: ``steps x batch_size x seq_len``."""
    t = recipe.train
    return t.steps * t.batch_size * t.seq_len


class NGramTask(CausalLM):
    """Counts an interpolated Kneser-Ney ``ngram`` model; scores it like the neural causal LMs."""

    kind = "ngram"

    def prepare(self, recipe, tokenizer, log):
        prep = prepare(recipe, tokenizer, log)
        if len(prep.val_ids) < 2:
            raise ValueError("validation split too small: it holds no token to predict; raise data.val_fraction")
        check_order(recipe.model["order"], int(prep.tokenizer.vocabulary_size()))
        return TaskData(prep.tokenizer, None, None, 0, {"prepared": prep})

    def build_model(self, recipe, data):
        prep = data.extra["prepared"]
        ids = prep.train_ids[:budget(recipe)]
        started = time.perf_counter()
        model = NGramLM.from_counts(ids, int(data.tokenizer.vocabulary_size()), recipe.model["order"], data.tokenizer)
        data.extra["counted"] = Counted(time.perf_counter() - started, len(ids))
        return model

    def single_device_copy(self, model, recipe, data):
        return model  # counted on the host: there is no replica to gather

    def describe(self, recipe, model):
        return (f"ngram, order {model.order}, {model.count_params():,} table entries; "
                f"counted on up to {budget(recipe):,} training tokens")

    def train(self, model, data, log, fit):
        counted = data.extra["counted"]
        log(f"counted {counted.seen:,} tokens in {counted.train_seconds:.1f}s (no gradient steps)")
        return [], counted, counted

    def evaluate(self, model, recipe, data, log):
        t, prep = recipe.train, data.extra["prepared"]
        log("evaluating on the whole validation split ...")
        scores = metrics_lib.evaluate_lm(model, prep.val_ids, prep.val_docs, t.seq_len, t.batch_size)
        prompt = packing.document_ids(data.tokenizer.tokenize(tf.constant(t.sample_prompt)))
        new = model.sample(prompt, t.sample_tokens, t.sample_temperature, seed=t.seed)
        sample = decode_text(data.tokenizer, new) if new else ""
        return Evaluation({
            "val_loss": scores["loss"],
            "val_perplexity": scores["perplexity"],
            "val_bits_per_byte": scores["bits_per_byte"],
            "val_tokens": scores["tokens"],
            "val_bytes": scores["bytes"],
        }, sample)
