"""Language-model evaluation in units that compare across tokenizers.

- loss: mean cross-entropy per predicted token, in nats.
- perplexity: ``exp(loss)``.
- bits per byte: total cross-entropy in bits divided by the UTF-8 bytes of
  the evaluated text. Token counts differ between a byte tokenizer and a
  2k-piece SentencePiece model; bytes do not, so this is the number to compare.
"""

import math

import numpy as np

from kerazoo.text import packing
from kerazoo.text.special import PAD_ID


def _log_softmax(logits):
    """Numerically stable log-softmax over the last axis, in float64."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def eval_windows(ids, seq_len):
    """Windows that score every token of a stream exactly once.

    Unlike training windows, the tail is kept: the last window is padded and
    its padding labels are ``PAD_ID``, which the scorer skips.

    Args:
        ids: 1-D int array.
        seq_len: window length.

    Returns:
        ``(x, y)`` int32 arrays ``(n, seq_len)``.
    """
    n_targets = len(ids) - 1
    n = max(1, math.ceil(n_targets / seq_len))
    x = np.full((n * seq_len,), PAD_ID, np.int32)
    y = np.full((n * seq_len,), PAD_ID, np.int32)
    x[:n_targets] = ids[:-1]
    y[:n_targets] = ids[1:]
    return x.reshape(n, seq_len), y.reshape(n, seq_len)


def total_nll(model, ids, seq_len, batch_size=32):
    """Sums the model's negative log-likelihood over a token stream.

    Args:
        model: a causal LM mapping ids ``(b, t)`` to logits ``(b, t, vocab)``.
        ids: 1-D int array (the id stream of the evaluated text).
        seq_len: window length (at most the model's context).
        batch_size: windows per forward pass.

    Returns:
        ``(total_nats, n_tokens)``: summed cross-entropy and the number of
        predicted tokens.
    """
    x, y = eval_windows(ids, seq_len)
    total, count = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        # Pad the last batch to a full one so the compiled function is reused.
        pad = batch_size - len(xb)
        if pad and len(x) > batch_size:
            xb = np.concatenate([xb, np.zeros((pad, seq_len), np.int32)])
            yb = np.concatenate([yb, np.zeros((pad, seq_len), np.int32)])
        logp = _log_softmax(np.asarray(model.predict_on_batch(xb)))
        picked = np.take_along_axis(logp, yb[..., None].astype(np.int64), axis=-1)[..., 0]
        mask = yb != PAD_ID
        total -= float(picked[mask].sum())
        count += int(mask.sum())
    return total, count


def lm_metrics(total_nats, n_tokens, n_bytes):
    """Turns summed cross-entropy into the reported metrics.

    Args:
        total_nats: summed cross-entropy over the text, in nats.
        n_tokens: number of predicted tokens.
        n_bytes: UTF-8 bytes of the text.

    Returns:
        A dict with ``loss`` (nats/token), ``perplexity``, ``bits_per_byte``,
        ``tokens`` and ``bytes``.
    """
    loss = total_nats / max(n_tokens, 1)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_byte": total_nats / math.log(2) / max(n_bytes, 1),
        "tokens": n_tokens,
        "bytes": n_bytes,
    }


def text_bytes(docs):
    """Total UTF-8 bytes of a list of documents."""
    return sum(len(d.encode("utf-8")) for d in docs)


def evaluate_lm(model, ids, docs, seq_len, batch_size=32):
    """Evaluates a causal LM on a tokenized text.

    Args:
        model: the causal LM.
        ids: the id stream of ``docs`` (from ``data.tokenize_documents``).
        docs: the evaluated documents, for the byte count.
        seq_len: window length.
        batch_size: windows per forward pass.

    Returns:
        The ``lm_metrics`` dict.
    """
    nats, tokens = total_nll(model, ids, seq_len, batch_size)
    return lm_metrics(nats, tokens, text_bytes(docs))


def score(model, texts, tokenizer=None, batch_size=32):
    """Scores each text on its own: how likely the model finds it.

    A text is scored after the end token (the document start the model
    trained with), in windows of the model's context (one window for
    recurrent models), exactly as the exported ``score`` signature does.

    Args:
        model: a causal LM of the zoo, a run folder or a ``.keras`` file.
        texts: a list of strings.
        tokenizer: overrides the model's own tokenizer.
        batch_size: windows per forward pass.

    Returns:
        One dict per text: ``log_likelihood`` (nats, summed), ``tokens``,
        ``perplexity`` and ``bits_per_byte``. An empty text scores 0 over
        0 tokens.

    Example:
        >>> kerazoo.score("runs/pydocs_gpt", ["for x in range(3):", "zzzz qqqq"])
    """
    import tensorflow as tf

    from kerazoo.inference.generate import resolve_model

    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    model = resolve_model(model)
    tokenizer = tokenizer or getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("the model carries no tokenizer; pass tokenizer=")
    context = getattr(model, "max_length", None)
    out = []
    for text in texts:
        ids = packing.document_ids(tokenizer.tokenize(tf.constant(text)))
        nats, n = total_nll(model, ids, context or max(len(ids) - 1, 1), batch_size)
        m = lm_metrics(nats, n, len(text.encode("utf-8")))
        out.append({"log_likelihood": -nats, "tokens": n, "perplexity": m["perplexity"],
                    "bits_per_byte": m["bits_per_byte"]})
    return out


def bleu(hypotheses, references):
    """Corpus BLEU (sacrebleu's defaults: 13a tokenization, 4-grams, one reference).

    Args:
        hypotheses: list of output strings.
        references: list of reference strings, one per hypothesis.

    Returns:
        BLEU on a 0-100 scale.
    """
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def rouge(hypotheses, references):
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (Google's ``rouge-score``).

    Words are Unicode word characters, lowercased (``rouge-score``'s default
    tokenizer keeps ASCII letters only, which would split French words at
    every accent); no stemming.

    Args:
        hypotheses: list of output strings.
        references: list of reference strings, one per hypothesis.

    Returns:
        ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``, each in [0, 1].
    """
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), tokenizer=_UnicodeWords())
    totals = dict.fromkeys(kinds, 0.0)
    for hyp, ref in zip(hypotheses, references):
        scores = scorer.score(ref, hyp)
        for kind in kinds:
            totals[kind] += scores[kind].fmeasure
    n = max(len(hypotheses), 1)
    return {kind: totals[kind] / n for kind in kinds}


class _UnicodeWords:
    """A ``rouge-score`` tokenizer: lowercased runs of Unicode word characters."""

    def tokenize(self, text):
        import re

        return re.findall(r"\w+", text.lower())
