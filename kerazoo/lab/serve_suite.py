"""The ``serve`` suite: the exported SavedModel vs in-process generation.

One process (TensorFlow backend) exports a kerazoo ``gpt`` with the same
dimensions as the ``generate`` suite (vocab 1000, 4 layers, 4 heads, 256
dim, 512 context, float32, random weights) and a unigram tokenizer trained
on ``builtin:pydocs``, loads the SavedModel with ``tf.saved_model.load``,
and sends the same requests, text in and text out, to

- the SavedModel's ``serving_default`` signature: the graph TF Serving runs,
  without XLA (tokenizer, decoding loop and detokenizer in the graph);
- ``kerazoo.inference.generate`` on the Keras model: the in-process loop, compiled
  with XLA, tokenizing and detokenizing in Python.

Both decode greedily, so they produce the same tokens. Requests are timed
one at a time, the two paths taking turns, after warm-up requests. The
figures are requests/s, p50 and p99 latency, and the ratio of the
SavedModel's p50 latency to in-process.
"""

import tempfile
import time

import numpy as np

from kerazoo.lab.generate_suite import CONFIG

BATCHES = (1, 16)
NEW_TOKENS = 64
REQUESTS = {1: 20, 16: 8}


def _prompts(n):
    """``n`` prompts: the openings of the built-in corpus's documents."""
    from kerazoo.data import read_corpus

    docs = read_corpus("builtin:pydocs")
    return [" ".join(d.split()[:12]) for d in docs[:n]]


def _model():
    """The benchmark gpt with a trained unigram tokenizer of its vocabulary."""
    import keras

    from kerazoo.data import read_corpus
    from kerazoo.models import build
    from kerazoo.text import train_tokenizer

    tokenizer = train_tokenizer(read_corpus("builtin:pydocs"), "unigram", CONFIG["vocab_size"])
    keras.utils.set_random_seed(0)
    return build("gpt", tokenizer=tokenizer, dropout=0.0, **CONFIG)


def _latencies(calls, prompts, n_requests):
    """Wall seconds of ``n_requests`` calls of each function, after two warm-ups.

    The functions take turns request by request, so a busy machine slows
    both alike and their ratio stays fair.

    Returns:
        One list of seconds per function.
    """
    for call in calls:
        call(prompts)
        call(prompts)
    out = [[] for _ in calls]
    for _ in range(n_requests):
        for call, seconds in zip(calls, out):
            started = time.perf_counter()
            call(prompts)
            seconds.append(time.perf_counter() - started)
    return out


def _summary(seconds):
    seconds = np.asarray(seconds)
    return {
        "requests_per_s": len(seconds) / seconds.sum(),
        "p50_ms": 1000 * float(np.percentile(seconds, 50)),
        "p99_ms": 1000 * float(np.percentile(seconds, 99)),
    }


def run_current_backend(batches=BATCHES, new_tokens=NEW_TOKENS, requests=None):
    """Exports the benchmark model and times both paths (TensorFlow backend).

    Args:
        batches: prompts per request.
        new_tokens: new tokens per prompt.
        requests: timed requests per batch size (default ``REQUESTS``).

    Returns:
        A list of result dicts, one per batch size.
    """
    import tensorflow as tf

    from kerazoo.inference.generate import generate
    from kerazoo.serving import export

    # JSON (the subprocess hand-over) turns int keys into strings.
    requests = {int(k): v for k, v in (requests or REQUESTS).items()}
    model = _model()
    with tempfile.TemporaryDirectory() as base:
        started = time.perf_counter()
        path = export(model, name="bench", base_dir=base)
        export_seconds = time.perf_counter() - started
        served = tf.saved_model.load(path).signatures["serving_default"]

        def call_saved(prompts):
            rows = len(prompts)
            out = served(
                prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], new_tokens),
                temperature=tf.zeros([rows]), top_k=tf.zeros([rows], tf.int32),
                top_p=tf.ones([rows]), seed=tf.zeros([rows], tf.int32),
            )
            return [t.decode("utf-8") for t in out["texts"].numpy()], out["token_counts"].numpy()

        rows = []
        for batch in batches:
            prompts = _prompts(batch)
            texts, counts = call_saved(prompts)
            same = texts == generate(model, prompts, max_new_tokens=new_tokens)
            in_process = lambda p: generate(model, p, max_new_tokens=new_tokens)  # noqa: E731
            saved, keras_side = map(_summary, _latencies([call_saved, in_process], prompts, requests[batch]))
            rows.append({
                "batch": batch, "new_tokens": new_tokens, "requests": requests[batch],
                "new_tokens_per_request": int(counts.sum()), "same_text": bool(same),
                "saved_model": saved, "in_process": keras_side,
                "latency_ratio": saved["p50_ms"] / keras_side["p50_ms"],
                "export_seconds": export_seconds,
            })
    return rows


def run(requests=None):
    """Runs the suite in a TensorFlow-backend subprocess (exports need TF)."""
    from kerazoo.lab import per_backend

    return per_backend.run("kerazoo.lab.serve_suite", "run_current_backend", {"requests": requests}, ["tensorflow"], "serve")


def markdown(rows):
    """The results as a Markdown table."""
    lines = [
        "| batch | path | requests/s | p50 latency (ms) | p99 latency (ms) | new tokens/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, key in (("SavedModel, no XLA", "saved_model"), ("in-process kerazoo.inference.generate", "in_process")):
            s = r[key]
            lines.append(
                f"| {r['batch']} | {label} | {s['requests_per_s']:.2f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | "
                f"{s['requests_per_s'] * r['new_tokens_per_request']:,.0f} |"
            )
    lines.append("")
    for r in rows:
        lines.append(
            f"- batch {r['batch']}: SavedModel p50 latency ÷ in-process = {r['latency_ratio']:.2f}x "
            f"({r['requests']} timed requests of {r['new_tokens']} new tokens per prompt; "
            f"same text: {'yes' if r['same_text'] else 'NO'})"
        )
    lines.append(f"- export time: {rows[0]['export_seconds']:.1f} s")
    return "\n".join(lines) + "\n"
