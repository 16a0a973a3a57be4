"""Text classification: a pooled head on an encoder, fine-tuned on labelled rows.

    CSV / TSV / JSONL (text and label columns, files, folders, globs, compressed)
          -> streamed once into a row store (kerazoo.data.rows: a seeded hash per row
             splits it, label names sorted, tokenized once, cached)
          -> rows read back one by one: <s> ids </s>, cut to train.seq_len, padded per length bucket
          -> Classifier (bert | bilstm | pooled rnn/gru/lstm) -> label logits

With ``[model] init_from`` the encoder and its tokenizer come from a finished
run (masked-LM pre-training, or ``kerazoo import-hf``); otherwise both start
fresh (the tokenizer trained on the training texts). ``pack`` is the one
packing rule: training, ``kerazoo.classify`` and the exported ``classify``
signature all use it.
"""

import keras
import numpy as np
import tensorflow as tf

from kerazoo import data as data_lib
from kerazoo.data import prepare as prepare_lib
from kerazoo.data import row_datasets
from kerazoo.data.row_prepare import prepare_rows
from kerazoo import text as tokenizers_lib
from kerazoo.models.classifier import Classifier, encoder_config_of, load_encoder_weights
from kerazoo.training.recipes import vocab_size_for
from kerazoo.training.optim import jit_compile_for, make_optimizer
from kerazoo.training.runs import resolve_tokenizer_path
from kerazoo.training.tasks.base import Evaluation, Task, TaskData
from kerazoo.text import packing
from kerazoo.text.special import PAD_ID


def pack(tokenizer, texts, max_length, pad_to=None):
    """Tokenizes and packs texts the way classifiers read them (TensorFlow ops).

    Args:
        tokenizer: a zoo tokenizer.
        texts: 1-D string tensor (or list of str).
        max_length: tokens per row, ``<s>`` and ``</s>`` included; longer
            texts are cut.
        pad_to: pad every row to this length; None pads to the longest row.

    Returns:
        An int32 tensor ``(batch, length)`` padded with ``PAD_ID``.
    """
    ids = tokenizer.tokenize(tf.convert_to_tensor(texts, tf.string))
    return packing.classifier_ids_tf(ids, max_length, pad_to)


def label_ids(labels, names, where):
    """Label strings -> ids, refusing labels the model does not know.

    Raises:
        ValueError: naming the unknown label and the known ones.
    """
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise ValueError(f"{where}: unknown label {unknown[0]!r} (not in the training labels: {', '.join(names)})")
    return np.asarray([index[label] for label in labels], np.int32)


def classification_metrics(y_true, y_pred, names):
    """Accuracy, macro-F1 and the confusion matrix.

    Args:
        y_true: int label ids.
        y_pred: int predicted ids.
        names: the label names (matrix order).

    Returns:
        ``{"accuracy", "macro_f1", "per_label": {name: {precision, recall,
        f1, support}}, "confusion_matrix": {"labels": names, "matrix":
        rows = true label, columns = predicted}}``.
    """
    k = len(names)
    matrix = np.zeros((k, k), np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    per_label, f1s = {}, []
    for i, name in enumerate(names):
        tp = matrix[i, i]
        precision_ = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i, :].sum() if matrix[i, :].sum() else 0.0
        f1 = 2 * precision_ * recall / (precision_ + recall) if precision_ + recall else 0.0
        f1s.append(f1)
        per_label[name] = {"precision": float(precision_), "recall": float(recall), "f1": float(f1),
                           "support": int(matrix[i, :].sum())}
    return {
        "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1)),
        "macro_f1": float(np.mean(f1s)),
        "per_label": per_label,
        "confusion_matrix": {"labels": list(names), "matrix": matrix.tolist()},
    }


def probabilities(model, ids):
    """Class probabilities of one batch of packed ids ``(batch, length)`` (float32)."""
    logits = keras.ops.convert_to_numpy(model(np.asarray(ids), training=False)).astype(np.float64)
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32)


def predict_probabilities(model, tokenizer, texts, batch_size=32):
    """Class probabilities of texts, in ``batch_size`` rows per forward pass.

    Returns:
        A float32 array ``(len(texts), num_labels)``.
    """
    out = [probabilities(model, pack(tokenizer, texts[start:start + batch_size], model.max_length).numpy())
           for start in range(0, len(texts), batch_size)]
    if not out:
        return np.zeros((0, len(model.label_names)), np.float32)
    return np.concatenate(out)


def classify(model, texts, batch_size=32):
    """Classifies texts with a classifier of the zoo.

    Args:
        model: a ``Classifier``, a run folder or a ``.keras`` file.
        texts: a list of strings.
        batch_size: rows per forward pass.

    Returns:
        One dict per text: ``label`` (the name) and ``probabilities``
        (``{name: probability}``).

    Example:
        >>> kerazoo.classify("runs/sst2_bilstm", ["a gripping film", "dull and long"])
        [{'label': '1', 'probabilities': {'0': 0.04, '1': 0.96}}, ...]
    """
    from kerazoo.inference.generate import resolve_model

    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    model = resolve_model(model)
    if not isinstance(model, Classifier):
        raise ValueError(f"a {type(model).__name__} is not a classifier (train one with [task] kind = \"classify\")")
    if model.tokenizer is None:
        raise ValueError("the classifier carries no tokenizer")
    probs = predict_probabilities(model, model.tokenizer, texts, batch_size)
    names = model.label_names
    return [{"label": names[int(p.argmax())], "probabilities": {n: float(v) for n, v in zip(names, p)}}
            for p in probs]


def row_store(recipe, tokenizer=None, log=print):
    """The recipe's labelled rows in a row store (streamed, split by a seeded hash per row, tokenized once).

    Args:
        recipe: a validated classify ``Recipe``.
        tokenizer: the tokenizer to encode with; None: ``model.init_from``'s,
            ``tokenizer.path``, or one trained on a sample of the train rows.
        log: where progress lines go.

    Returns:
        A ``kerazoo.data.rows.RowStore`` with a "text" field and labels.
    """
    k = recipe.tokenizer
    if tokenizer is None and (recipe.init_from or k.path):
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(recipe.init_from or k.path))
    tokenizer_spec = prepare_lib.TokenizerSpec(k.kind, vocab_size_for(k), k.lowercase, k.sample_bytes)
    d = recipe.data
    val_column = d.val_column or d.column
    def corpus():
        sources = [d.source] + ([d.val_source] if d.val_source else [])
        return [prepare_lib.corpus_fingerprint(prepare_lib.CorpusSpec(source)) for source in sources]

    settings = {"column": d.column, "label_column": d.label_column, "val_source": d.val_source,
                "val_column": val_column, "val_fraction": d.val_fraction, "seed": d.seed, "split": "row_hash"}

    read = lambda: data_lib.labelled_rows(d.source, d.column, d.label_column)  # noqa: E731
    val = (lambda: data_lib.labelled_rows(d.val_source, val_column, d.label_column)) if d.val_source else None
    return prepare_rows("labelled", corpus, settings, read, ("text",), tokenizer, tokenizer_spec, read_val_rows=val,
                        labelled=True, where=d.source, val_where=d.val_source, log=log)


def _tokenizer_and_encoder(recipe, tokenizer, log):
    """The given tokenizer (None: train one on the rows) and, with init_from, the pre-trained encoder model."""
    from kerazoo.training.runs import load_run

    k = recipe.tokenizer
    if recipe.init_from:
        encoder = load_run(recipe.init_from)
        if encoder.tokenizer is None:
            raise ValueError(f"'model.init_from' {recipe.init_from}: the model carries no tokenizer")
        if tokenizer is not None and tokenizer.get_vocabulary() != encoder.tokenizer.get_vocabulary():
            raise ValueError(f"the tokenizer does not match the one the encoder at {recipe.init_from} was "
                             "trained with; leave it out (init_from brings its own)")
        if k.path:
            given = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
            if given.get_vocabulary() != encoder.tokenizer.get_vocabulary():
                raise ValueError(f"'tokenizer.path' {k.path} does not match the tokenizer of 'model.init_from' "
                                 f"{recipe.init_from}; remove tokenizer.path")
        log(f"encoder: {recipe.arch} from {recipe.init_from} ({encoder.count_params():,} parameters), "
            f"its {encoder.tokenizer.kind} tokenizer ({encoder.tokenizer.vocabulary_size()} tokens)")
        return encoder.tokenizer, encoder
    if tokenizer is None and k.path:
        tokenizer = tokenizers_lib.load_tokenizer(resolve_tokenizer_path(k.path))
    return tokenizer, None


def build_classifier(recipe, tokenizer, encoder, names):
    """The recipe's classifier, its encoder initialised from ``encoder`` when given."""
    s, t = recipe.task, recipe.train
    pooling = s.pooling or ("cls" if recipe.arch == "bert" else "mean")
    if encoder is not None:
        config = encoder_config_of(encoder)
    else:
        config = {"vocab_size": int(tokenizer.vocabulary_size()), **recipe.hparams}
    model = Classifier(recipe.arch, config, names, pooling=pooling, dropout=s.classifier_dropout,
                       max_length=t.seq_len, tokenizer=tokenizer)
    if encoder is not None:
        load_encoder_weights(model, encoder)
    return model


def length_buckets(seq_len):
    """Padded lengths of training batches: 8, 16, 32, ... up to ``seq_len``."""
    sizes, size = [], 8
    while size < seq_len:
        sizes.append(size)
        size *= 2
    return sizes + [seq_len]


def train_dataset(x, y, batch_size, seed):
    """Shuffled, repeating training batches of in-memory rows, padded to a few bucket lengths.

    Texts of similar length share a batch, padded only to their bucket
    (8, 16, 32, ... ``seq_len`` tokens): short texts (most of SST-2's are a
    few words) do not pay for the longest one, and the compiled train step
    sees only a handful of shapes. ``Classify`` reads the same batches from
    its row store (``store_train_dataset``).

    Args:
        x: packed ids ``(n, seq_len)`` padded with ``PAD_ID``.
        y: int label ids ``(n,)``.
        batch_size: rows per batch.
        seed: shuffle seed.

    Returns:
        A ``tf.data.Dataset`` of ``(ids, labels)``.
    """
    lengths = (x != PAD_ID).sum(axis=1).astype(np.int32)
    y = np.asarray(y, np.int32)
    base = tf.data.Dataset.from_tensor_slices((x, lengths, y)).map(lambda ids, n, label: (ids[:n], label))

    def stream(_):  # fresh seeded order per iterator (see data.lm_dataset)
        return base.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat()

    return bucket_batches(tf.data.Dataset.range(1).flat_map(stream), x.shape[1], batch_size)


def store_train_dataset(store, seq_len, batch_size, seed):
    """``train_dataset`` over a row store's train split: rows read one by one, never all in memory.

    Args:
        store: a ``RowStore`` of labelled rows.
        seq_len: tokens per row at most.
        batch_size: rows per batch.
        seed: shuffle seed (the same order as ``train_dataset``'s up to
            ``row_datasets.MAX_SHUFFLE_BUFFER`` rows).

    Returns:
        A ``tf.data.Dataset`` of ``(ids, labels)``.
    """
    rows = row_datasets.classifier_rows(store.field("text", "train"), store, "train", seq_len,
                                        shuffle=True, seed=seed, repeat=True)
    return bucket_batches(rows, seq_len, batch_size)


def bucket_batches(rows, seq_len, batch_size):
    """Rows ``(ids, label)`` batched by length bucket (``length_buckets``), padded to the bucket size."""
    buckets = length_buckets(seq_len)
    ds = rows.bucket_by_sequence_length(
        lambda ids, label: tf.shape(ids)[0],
        bucket_boundaries=[b + 1 for b in buckets[:-1]] + [buckets[-1] + 1],
        bucket_batch_sizes=[batch_size] * (len(buckets) + 1),
        padded_shapes=([None], []),
        padding_values=(PAD_ID, 0),
        pad_to_bucket_boundary=True,
        drop_remainder=True,
    )
    # pad_to_bucket_boundary pads to boundary - 1, i.e. to the bucket sizes.
    return ds.prefetch(tf.data.AUTOTUNE)


def compile_classifier(model, train):
    """Compiles a classifier: cross-entropy over labels, accuracy."""
    model.compile(
        optimizer=make_optimizer(train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        # "auto" keeps Keras' choice: batches are bucketed by length, and XLA compiles once per bucket.
        jit_compile=jit_compile_for(train, xla_when_auto=False),
    )
    return model


class Classify(Task):
    """Text classification (bert, bilstm, pooled rnn/gru/lstm): accuracy, macro-F1, confusion matrix."""

    kind = "classify"

    def check(self, recipe):
        from kerazoo.training.recipes import check_init_from

        if recipe.init_from:  # first: a missing pre-training run is the likeliest mistake
            check_init_from(recipe.init_from, recipe.arch, recipe.path or "<recipe>")

    def prepare(self, recipe, tokenizer, log):
        d, t = recipe.data, recipe.train
        tokenizer, encoder = _tokenizer_and_encoder(recipe, tokenizer, log)
        store = row_store(recipe, tokenizer, log)
        names = store.label_names
        if len(names) < 2:
            raise ValueError(f"{d.source}: column '{d.label_column}' holds a single label ({names[0]!r}); "
                             "a classifier needs at least 2")
        train, val = store.field("text", "train"), store.field("text", "val")
        log(f"data: {d.source}: {len(train):,} train / {len(val):,} validation rows"
            + (f" (validation: {d.val_source})" if d.val_source else "") + f"; labels: {', '.join(names)}")
        cut = sum(int((n > t.seq_len - 2).sum()) for n in train.lengths())
        tokens = {f.stream.split: sum(int((np.minimum(n, t.seq_len - 2) + 2).sum()) for n in f.lengths())
                  for f in (train, val)}
        log(f"tokens: {tokens['train']:,} train / {tokens['val']:,} validation"
            + (f"; {cut:,} training texts cut to train.seq_len={t.seq_len}" if cut else ""))
        if len(train) < t.batch_size:
            raise ValueError(f"{len(train)} training rows are fewer than train.batch_size={t.batch_size}")
        val_batch = min(t.batch_size, len(val))
        n_val = len(val) // val_batch
        val_steps = min(t.eval_batches, n_val) if t.eval_batches else n_val
        val_ds = row_datasets.classifier_batches(val, store, "val", t.seq_len, val_batch, val_steps * val_batch)
        return TaskData(store.tokenizer, store_train_dataset(store, t.seq_len, t.batch_size, t.seed), val_ds,
                        val_steps, {"encoder": encoder, "names": names, "store": store})

    def build_model(self, recipe, data):
        model = build_classifier(recipe, data.tokenizer, data.extra["encoder"], data.extra["names"])
        return compile_classifier(model, recipe.train)

    def describe(self, recipe, model):
        t = recipe.train
        return (f"{recipe.arch} classifier ({model.pooling} pooling), {model.count_params():,} parameters; "
                f"{t.steps} steps of {t.batch_size} texts x {t.seq_len} tokens")

    def evaluate(self, model, recipe, data, log):
        t, names, store = recipe.train, data.extra["names"], data.extra["store"]
        val = store.field("text", "val")
        n = row_datasets.rows_within(val, t.eval_tokens, lambda lengths: np.minimum(lengths, t.seq_len - 2) + 2)
        scope = (f"the first {n:,} of {len(val):,} rows (train.eval_tokens={t.eval_tokens:,})" if n < len(val)
                 else f"the whole validation set ({n:,} rows)")
        log(f"evaluating on {scope} ...")
        batches = (val.rows(start, min(n, start + t.batch_size)) for start in range(0, n, t.batch_size))
        probs = np.concatenate([probabilities(model, row_datasets.classifier_matrix(b, t.seq_len)) for b in batches])
        y_val = store.labels("val", 0, n)
        scores = classification_metrics(y_val, probs.argmax(-1), names)
        nll = -np.log(np.maximum(probs[np.arange(len(y_val)), y_val], 1e-12)).mean()
        log(f"validation: accuracy {scores['accuracy']:.2%} | macro-F1 {scores['macro_f1']:.4f} | "
            f"loss {nll:.4f} over {scope}")
        return Evaluation({
            "val_accuracy": scores["accuracy"],
            "val_macro_f1": scores["macro_f1"],
            "val_loss": float(nll),
            "val_rows": n,
            "val_rows_total": len(val),
            "labels": list(names),
            "per_label": scores["per_label"],
            "confusion_matrix": scores["confusion_matrix"],
            "init_from": recipe.init_from or None,
            "pooling": model.pooling,
        })

    def unit(self, recipe):
        # Batches of texts padded per length bucket: count texts, not tokens.
        return "texts", recipe.train.batch_size

    def score_lines(self, result):
        m = result.metrics
        of = (f" of {m['val_rows_total']:,} (train.eval_tokens)"
              if m.get("val_rows_total", m["val_rows"]) > m["val_rows"] else "")
        return [f"validation: accuracy {m['val_accuracy']:.2%} | macro-F1 {m['val_macro_f1']:.4f} "
                f"over {m['val_rows']:,}{of} rows"]
