"""Causal language modelling: next-token prediction over one token stream.

    documents -> one token stream (tokenized once, an end-of-sequence id opening each document)
              -> windows of seq_len (+1 for the shifted targets), packed or at random offsets
              -> the model predicts every next token
              -> scored in bits per byte of the held-out text, and a sample continuation

The stream lives in a token store (``kerazoo.data.prepare_store``): built
once per corpus and tokenizer, shared by every run, read in constant memory.
``prepare`` below is the in-memory path the n-gram still reads.
"""

import dataclasses
import time

import keras
import numpy as np

from kerazoo import data as data_lib
from kerazoo import text as tokenizers_lib
from kerazoo.inference import metrics as metrics_lib
from kerazoo.inference.generate import generate
from kerazoo.models import build
from kerazoo.training import precision
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.recipes import vocab_size_for
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData


@dataclasses.dataclass
class Prepared:
    """The inputs of a run, ready to fit."""

    tokenizer: object
    train_docs: list
    val_docs: list
    train_ids: np.ndarray
    val_ids: np.ndarray


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
    docs = data_lib.read_corpus(d.source, d.column, d.boundary)
    train_docs, val_docs = data_lib.split_corpus(docs, d.val_fraction, d.seed, d.split)
    log(f"data: {d.source}: {len(docs)} documents, "
        f"{metrics_lib.text_bytes(train_docs):,} train / {metrics_lib.text_bytes(val_docs):,} validation bytes")
    if tokenizer is None and recipe.init_from:  # fine-tuning reads with the pre-trained run's tokenizer
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.init_from))
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


def initial_model(recipe, tokenizer):
    """The model a causal-LM run starts from: built fresh, or ``[model] init_from``'s trained one.

    Args:
        recipe: the validated recipe.
        tokenizer: the run's tokenizer (with init_from, the pre-trained run's).

    Returns:
        An uncompiled model.
    """
    if not recipe.init_from:
        return build(recipe.arch, tokenizer=tokenizer, **recipe.hparams)
    from kerazoo.training.recipes import check_init_from
    from kerazoo.training.runs import load_run

    check_init_from(recipe.init_from, recipe.arch, recipe.path or "<recipe>")
    model = load_run(recipe.init_from)
    if int(model.tokenizer.vocabulary_size()) != int(tokenizer.vocabulary_size()):
        raise ValueError(f"the tokenizer ({tokenizer.vocabulary_size()} tokens) does not match the model of "
                         f"'model.init_from' {recipe.init_from} ({model.tokenizer.vocabulary_size()}); "
                         "leave tokenizer.path out (init_from brings its own)")
    return model


def compile_model(model, t):
    """Compiles a causal LM for next-token training (``jit_compile_for`` picks XLA).

    Args:
        model: a causal LM of the zoo.
        t: the recipe's ``TrainSection``.

    Returns:
        ``model``, compiled.
    """
    model.compile(
        optimizer=make_optimizer(t),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile_for(t),
    )
    return model


def prepare_store(recipe, tokenizer=None, log=print):
    """The recipe's token store: built once, reused by every run of the same data and tokenizer.

    Args:
        recipe: a validated ``Recipe``.
        tokenizer: a tokenizer to reuse instead of the recipe's.
        log: where progress lines go.

    Returns:
        A ``kerazoo.data.PreparedStore``.
    """
    d, k = recipe.data, recipe.tokenizer
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
    spec = data_lib.CorpusSpec(d.source, d.column, d.boundary, d.val_fraction, d.seed, d.split)
    tok_spec = data_lib.TokenizerSpec(k.kind, vocab_size_for(k), k.lowercase, k.sample_bytes)
    prepared = data_lib.prepare_store(spec, tokenizer, tok_spec, log)
    totals = prepared.manifest["totals"]
    log(f"data: {d.source}: {totals['train']['docs'] + totals['val']['docs']} documents, "
        f"{totals['train']['bytes']:,} train / {totals['val']['bytes']:,} validation bytes")
    log(f"tokens: {totals['train']['tokens']:,} train / {totals['val']['tokens']:,} validation "
        f"({totals['train']['bytes'] / max(totals['train']['tokens'], 1):.2f} bytes per token)")
    return prepared


def train_dataset(train, t, part=None):
    """The endless, seeded training batches of a causal-LM run, cut as ``train.windows`` says.

    Args:
        train: the train split: a ``TokenStream`` (or a 1-D id array, the in-memory path).
        t: the recipe's ``TrainSection``.
        part: ``(worker index, worker count)`` to read only this worker's part
            of the stream (``data.worker_part()``). By default every worker
            builds the same stream and ``tf.distribute`` (DATA auto-shard) or
            ``keras.distribution`` gives each worker its own share of every
            global batch, which keeps a multi-worker run equal to a one-device
            run step by step (tests/training/test_distribute.py).
    """
    if not isinstance(train, data_lib.TokenStream):
        if t.windows == "random":
            return data_lib.lm_random_dataset(train, t.seq_len, t.batch_size, seed=t.seed)
        return data_lib.lm_dataset(train, t.seq_len, t.batch_size, shuffle=True, seed=t.seed, repeat=True)
    part = part or (0, 1)
    if t.windows == "random":
        return data_lib.random_windows(train, t.seq_len, t.batch_size, seed=t.seed, part=part)
    return data_lib.packed_windows(train, t.seq_len, t.batch_size, shuffle=True, seed=t.seed, repeat=True, part=part)


def val_dataset(val, t):
    """Validation windows for the checks during ``fit``, and the batches per check."""
    n_windows = (len(val) - 1) // t.seq_len
    if n_windows < 1:
        raise ValueError(
            f"validation split too small: {len(val)} tokens do not fill one window "
            f"of train.seq_len={t.seq_len}; raise data.val_fraction or lower train.seq_len"
        )
    batch_size = min(t.batch_size, n_windows)
    n_batches = n_windows // batch_size
    steps = min(t.eval_batches, n_batches) if t.eval_batches else n_batches
    if not isinstance(val, data_lib.TokenStream):
        return data_lib.lm_dataset(val, t.seq_len, batch_size, shuffle=False), steps
    # Not limited to ``steps`` batches: Keras under tf.distribute may draw one more than it scores.
    return data_lib.packed_windows(val, t.seq_len, batch_size, shuffle=False), steps


def evaluate_stream(model, val, t, log=print):
    """Scores a causal LM on the first ``train.eval_tokens`` tokens of the validation stream.

    Args:
        model: the causal LM.
        val: the validation ``TokenStream``.
        t: the recipe's ``TrainSection``.
        log: where the line about what is scored goes.

    Returns:
        ``metrics.lm_metrics`` plus ``tokens_total`` (the split's tokens) and
        ``bytes_exact`` (False when the cap fell inside a document and its
        bytes were interpolated).
    """
    n = min(len(val), t.eval_tokens) if t.eval_tokens else len(val)
    n_bytes, exact = val.byte_offset(n)
    log(f"evaluating on {n:,} of {len(val):,} validation tokens"
        + (f" (train.eval_tokens={t.eval_tokens:,})" if n < len(val) else " (the whole split)") + " ...")
    nats, tokens = metrics_lib.total_nll(model, val.read(0, n), t.seq_len, t.batch_size)
    return dict(metrics_lib.lm_metrics(nats, tokens, n_bytes), tokens_total=len(val), bytes_exact=exact)


class CausalLM(Task):
    """Next-token prediction (gpt, rnn, gru, lstm): scored in bits per byte, with a sample."""

    kind = "causal_lm"

    def prepare(self, recipe, tokenizer, log):
        prepared = prepare_store(recipe, tokenizer, log)
        train, val = prepared.stream("train"), prepared.stream("val")
        # Training batches first: too little training text is the error to report first.
        train_ds = train_dataset(train, recipe.train)
        val_ds, val_steps = val_dataset(val, recipe.train)
        return TaskData(prepared.tokenizer, train_ds, val_ds, val_steps, {"store": prepared, "val": val})

    def build_model(self, recipe, data):
        return compile_model(initial_model(recipe, data.tokenizer), recipe.train)

    def single_device_copy(self, model, recipe, data):
        if recipe.init_from:
            return super().single_device_copy(model, recipe, data)
        # Rebuilt from the recipe in its dtype policy, as it was built for training.
        with precision.dtype_policy(recipe.train.precision):
            plain = build(recipe.arch, tokenizer=data.tokenizer, **recipe.hparams)
        plain.set_weights([keras.ops.convert_to_numpy(w) for w in model.get_weights()])
        return plain

    def evaluate(self, model, recipe, data, log):
        t = recipe.train
        scores = evaluate_stream(model, data.extra["val"], t, log)
        temperature = t.sample_temperature if t.sample_temperature > 0 else None  # 0: greedy
        sample = generate(model, t.sample_prompt, t.sample_tokens, temperature=temperature, seed=t.seed)
        return Evaluation({
            "val_loss": scores["loss"],
            "val_perplexity": scores["perplexity"],
            "val_bits_per_byte": scores["bits_per_byte"],
            "val_tokens": scores["tokens"],
            "val_bytes": scores["bytes"],
            "val_tokens_total": scores["tokens_total"],
        }, sample)

    def artifacts(self, recipe, data, evaluation):
        return {"sample.txt": recipe.train.sample_prompt + evaluation.sample + "\n"}

    def score_lines(self, result):
        m = result.metrics
        scored = ""
        if m.get("val_tokens_total", 0) > m.get("val_tokens", 0) + 1:  # n ids predict n - 1 tokens
            scored = f" (on {m['val_tokens']:,} of {m['val_tokens_total']:,} tokens)"
        return [f"validation: loss {m['val_loss']:.4f} nats/token | perplexity {m['val_perplexity']:.2f} | "
                f"{m['val_bits_per_byte']:.4f} bits/byte" + scored]

    def summary(self, result):
        lines = super().summary(result)
        return lines[:-1] + [f"sample: {result.sample!r}", lines[-1]]
