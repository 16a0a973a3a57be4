"""The ``serve`` suite: the exported SavedModel's signatures vs in-process generation.

One process (TensorFlow backend) exports a kerazoo ``gpt`` with the same
dimensions as the ``generate`` suite (vocab 1000, 4 layers, 4 heads, 256
dim, 512 context, float32, random weights) and a unigram tokenizer trained
on ``builtin:pydocs``, loads the SavedModel with ``tf.saved_model.load``,
and sends the same requests, text in and text out, to

- ``generate``: the portable graph, what TF Serving runs without an XLA flag
  (tokenizer, decoding loop and detokenizer in the graph);
- ``generate_xla``: the same request, its decoding loop compiled by XLA
  (``jit_compile=True``), what TF Serving runs when started with
  ``--xla_cpu_compilation_enabled=true``;
- ``kerazoo.inference.generate`` on the Keras model: the in-process loop,
  compiled with XLA, tokenizing and detokenizing in Python.
- the same two signatures of a second export with ``quantize="int8"``
  (Keras' weight-only int8), whose greedy text is checked against
  in-process decoding of an int8 copy of the model.

All decode greedily, so they produce the same tokens (checked). The first
request of each signature after loading (TF Serving's warm-up pays it) is
timed on its own; then requests are timed one at a time, the paths taking
turns. The figures are requests/s, p50 and p99 latency, new tokens/s, and
each signature's p50 latency over in-process.
"""

import tempfile
import time

import numpy as np

from kerazoo.lab.generate_suite import CONFIG

BATCHES = (1, 8)
NEW_TOKENS = 64
REQUESTS = {1: 12, 8: 6}


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
        int8_path = export(model, name="bench_int8", base_dir=base, quantize="int8")
        int8_model = _quantized_copy(model, base)
        loaded = {"float32": tf.saved_model.load(path), "int8": tf.saved_model.load(int8_path)}

        def call_saved(name, weights="float32"):
            served = loaded[weights].signatures[name]

            def call(prompts):
                rows = len(prompts)
                out = served(
                    prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], new_tokens),
                    temperature=tf.zeros([rows]), top_k=tf.zeros([rows], tf.int32),
                    top_p=tf.ones([rows]), seed=tf.zeros([rows], tf.int32),
                    stop=tf.constant([[""]]), num_beams=tf.constant([1]),
                )
                return [t.decode("utf-8") for t in out["texts"].numpy()], out["token_counts"].numpy()

            return call

        paths = {"portable": call_saved("generate"), "xla": call_saved("generate_xla"),
                 "portable_int8": call_saved("generate", "int8"), "xla_int8": call_saved("generate_xla", "int8")}
        rows = []
        for batch in batches:
            prompts = _prompts(batch)
            first_ms = {}
            for key, call in paths.items():
                started = time.perf_counter()
                texts, counts = call(prompts)
                first_ms[key] = 1000 * (time.perf_counter() - started)
            expected = generate(model, prompts, max_new_tokens=new_tokens)
            expected_int8 = generate(int8_model, prompts, max_new_tokens=new_tokens)
            same = all(call(prompts)[0] == (expected_int8 if key.endswith("int8") else expected)
                       for key, call in paths.items())
            in_process = lambda p: generate(model, p, max_new_tokens=new_tokens)  # noqa: E731
            timed = _latencies([*paths.values(), in_process], prompts, requests[batch])
            summaries = dict(zip([*paths, "in_process"], map(_summary, timed)))
            rows.append({
                "batch": batch, "new_tokens": new_tokens, "requests": requests[batch],
                "new_tokens_per_request": int(counts.sum()), "same_text": bool(same),
                **summaries, "first_request_ms": first_ms,
                "latency_ratio": {k: summaries[k]["p50_ms"] / summaries["in_process"]["p50_ms"] for k in paths},
                "export_seconds": export_seconds,
            })
    return rows


def _quantized_copy(model, folder):
    """An int8 copy of ``model`` (reloaded from a saved copy, then quantized): in-process int8."""
    import os

    from kerazoo.models.quantize import quantize
    from kerazoo.training.runs import load_run

    file = os.path.join(folder, "float.keras")
    model.save(file)
    return quantize(load_run(file))


def run(requests=None):
    """Runs the suite in a TensorFlow-backend subprocess (exports need TF)."""
    from kerazoo.lab import per_backend

    return per_backend.run("kerazoo.lab.serve_suite", "run_current_backend", {"requests": requests}, ["tensorflow"], "serve")


def markdown(rows):
    """The results as a Markdown table."""
    labels = (("portable", "SavedModel `generate` (portable, no XLA)"),
              ("xla", "SavedModel `generate_xla` (XLA)"),
              ("portable_int8", "int8 SavedModel `generate` (portable)"),
              ("xla_int8", "int8 SavedModel `generate_xla` (XLA)"),
              ("in_process", "in-process kerazoo.inference.generate"))
    lines = [
        "| batch | path | requests/s | p50 latency (ms) | p99 latency (ms) | new tokens/s | p50 ÷ in-process |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for key, label in labels:
            s = r[key]
            ratio = f"{r['latency_ratio'][key]:.2f}x" if key in r["latency_ratio"] else "1"
            lines.append(
                f"| {r['batch']} | {label} | {s['requests_per_s']:.2f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | "
                f"{s['requests_per_s'] * r['new_tokens_per_request']:,.0f} | {ratio} |"
            )
    lines.append("")
    for r in rows:
        first = ", ".join(f"{k} {v:,.0f} ms" for k, v in r["first_request_ms"].items())
        lines.append(
            f"- batch {r['batch']}: {r['requests']} timed requests of {r['new_tokens']} new tokens per prompt; "
            f"same text on every path (int8 ones: as in-process int8): {'yes' if r['same_text'] else 'NO'}; "
            f"first request after loading "
            f"(what warm-up pays; XLA compiles there): {first}"
        )
    lines.append(f"- export time: {rows[0]['export_seconds']:.1f} s")
    return "\n".join(lines) + "\n"
