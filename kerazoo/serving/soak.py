"""Soak test of a served model: continuous requests for a bounded time, memory watched.

    kerazoo soak saved_models/pydocs_gpt/1 --minutes 20 --concurrency 2 --out soak.json

The SavedModel is loaded with ``tf.saved_model.load`` and its
``serving_default`` signature is called the way TF Serving calls it: batches
of 1 to 4 varied prompts (empty, short, long, non-ASCII) with varied
settings, from ``concurrency`` threads, until the time is up. The resident
set size (RSS) of this process is sampled at the start, every ``interval``
seconds and at the end. Memory "grew" when the RSS at the end exceeds the RSS
after warm-up by more than ``tolerance_mb`` and 2%; the slope of a
least-squares line through the post-warm-up samples is reported too.

Warm-up is the first half of the run. Every new combination of batch size,
prompt length and new-token count the mix reaches makes TensorFlow and
oneDNN build and cache kernels for its shapes, so RSS climbs for minutes and
then levels off; a leak keeps climbing. Judging the second half tells the two
apart, and the report keeps every sample for a closer look.
"""

import json
import math
import os
import random
import threading
import time

import numpy as np

from kerazoo.serving.rest import load_saved_model
from kerazoo.serving.exporter import METADATA_FILE

# The most request threads of one soak.
MAX_CONCURRENCY = 256

PROMPTS = ["", "def", "The", "import os\n", "class Foo:", "学而时习之", "🙂 emoji", "a" * 200,
           "return self.", "# comment\n" * 5, "\t\n ", "über naïve café"]


def _rss_mb(process):
    return process.memory_info().rss / (1 << 20)


def _export_metadata(export_dir):
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _request(specs, rng, cap):
    """One varied request for the signature's inputs (as TF Serving would pass them)."""
    import tensorflow as tf

    n = rng.randint(1, 4)
    values = {}
    for name, spec in specs.items():
        if name == "stop":
            values[name] = [[rng.choice(["", "\n", "the", "."])] for _ in range(n)]
        elif name == "num_beams":
            values[name] = [rng.choice([1, 1, 1, 2]) for _ in range(n)]
        elif spec.dtype == tf.string:
            values[name] = [rng.choice(PROMPTS) + rng.choice(PROMPTS) for _ in range(n)]
        elif name == "max_new_tokens":
            values[name] = [rng.randint(1, cap) for _ in range(n)]
        elif name == "top_k":
            values[name] = [rng.choice([0, 1, 5, 50]) for _ in range(n)]
        elif name == "top_p":
            values[name] = [rng.choice([1.0, 0.9, 0.5]) for _ in range(n)]
        elif name == "temperature":
            values[name] = [rng.choice([0.0, 0.7, 1.0, 1.5]) for _ in range(n)]
        else:  # seeds and other ints
            values[name] = [rng.randint(0, 2**31 - 1) for _ in range(n)]
    return {k: tf.constant(v, dtype=specs[k].dtype) for k, v in values.items()}


def _slope_mb_per_min(samples):
    """Least-squares slope of RSS over time, MB per minute (0 with fewer than 2 samples)."""
    if len(samples) < 2:
        return 0.0
    t = np.array([s[0] for s in samples]) / 60.0
    rss = np.array([s[1] for s in samples])
    return float(np.polyfit(t, rss, 1)[0]) if np.ptp(t) > 0 else 0.0


def soak(export_dir, seconds, concurrency=1, interval=5.0, tolerance_mb=16.0, max_new_tokens=16, seed=0,
         log=print):
    """Sends continuous generate requests to a SavedModel and watches this process's memory.

    Args:
        export_dir: a version folder written by ``kerazoo export``.
        seconds: how long to send requests.
        concurrency: threads sending requests at once.
        interval: seconds between RSS samples.
        tolerance_mb: RSS growth after warm-up still counted as none.
        max_new_tokens: most new tokens a request asks for (capped by the export).
        seed: seed of the request mix.
        log: where progress lines go.

    Returns:
        A dict: ``rss_start_mb``, ``rss_after_warmup_mb``, ``rss_end_mb``,
        ``growth_mb``, ``slope_mb_per_min``, ``grew``, ``requests``,
        ``errors``, latency percentiles and the RSS ``samples``.

    Raises:
        ValueError: psutil missing, bad arguments, or not a loadable SavedModel.
    """
    try:
        import psutil
    except ImportError:
        raise ValueError("kerazoo soak needs psutil: pip install 'kerazoo[soak]'") from None
    if not seconds > 0:
        raise ValueError(f"the soak time must be positive, got {seconds} seconds")
    if concurrency < 1 or max_new_tokens < 1:
        raise ValueError("--concurrency and --max-new-tokens must be at least 1 and --interval positive")
    # One thread each: a million would fail part way, after starting thousands of request loops.
    if concurrency > MAX_CONCURRENCY:
        raise ValueError(f"--concurrency {concurrency:,} is too many threads: at most {MAX_CONCURRENCY}")
    # NaN passes a plain comparison: --interval nan failed in time.sleep, --tolerance-mb nan never saw growth.
    if not math.isfinite(interval) or interval <= 0:
        raise ValueError(f"--interval must be a positive number of seconds, got {interval}")
    if not math.isfinite(tolerance_mb) or tolerance_mb < 0:
        raise ValueError(f"--tolerance-mb must be a finite number of MB from 0, got {tolerance_mb}")
    process = psutil.Process()
    samples = [(0.0, _rss_mb(process))]
    loaded = load_saved_model(export_dir)
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{export_dir} has no serving_default signature")
    signature = loaded.signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    cap = min(max_new_tokens, int(_export_metadata(export_dir).get("max_new_tokens_cap", max_new_tokens)))
    warmup = seconds / 2
    started = time.monotonic()
    deadline = started + seconds
    latencies, errors, lock = [], [], threading.Lock()

    def worker(index):
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            request = _request(specs, rng, cap)
            t0 = time.perf_counter()
            try:
                signature(**request)
            except Exception as e:  # a valid request failing is what a soak is for: count it, go on
                with lock:
                    errors.append(f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    next_log = started + max(60.0, interval)
    while any(t.is_alive() for t in threads):
        time.sleep(min(interval, max(deadline - time.monotonic(), 0.05)))
        now = time.monotonic()
        samples.append((now - started, _rss_mb(process)))
        if now >= next_log:
            log(f"soak: {now - started:.0f}s, {len(latencies)} requests, RSS {samples[-1][1]:.1f} MB")
            next_log = now + 60.0
    for thread in threads:
        thread.join()
    samples.append((time.monotonic() - started, _rss_mb(process)))
    return _report(samples, warmup, latencies, errors, tolerance_mb, seconds, concurrency, export_dir)


def _report(samples, warmup, latencies, errors, tolerance_mb, seconds, concurrency, export_dir):
    """The soak's verdict and numbers from its RSS samples and request latencies."""
    after = [s for s in samples if s[0] >= warmup] or samples[-1:]
    warm_rss, end_rss = after[0][1], samples[-1][1]
    growth = end_rss - warm_rss
    ms = sorted(1000 * x for x in latencies)
    return {
        "export_dir": os.path.abspath(export_dir),
        "seconds": seconds,
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "latency_ms_p50": ms[len(ms) // 2] if ms else None,
        "latency_ms_p95": ms[int(len(ms) * 0.95)] if ms else None,
        "warmup_seconds": warmup,
        "rss_start_mb": samples[0][1],
        "rss_after_warmup_mb": warm_rss,
        "rss_end_mb": end_rss,
        "rss_peak_mb": max(s[1] for s in samples),
        "growth_mb": growth,
        "slope_mb_per_min": _slope_mb_per_min(after),
        "tolerance_mb": tolerance_mb,
        "grew": growth > max(tolerance_mb, 0.02 * warm_rss),
        "samples": [[round(t, 2), round(r, 2)] for t, r in samples],
    }
