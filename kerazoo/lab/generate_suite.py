"""The ``generate`` suite: kerazoo's cached decoding vs keras_hub's GPT-2 and Llama.

Each pair has identical dimensions (vocab 1000, 4 layers, 4 heads, 256
dim, 512 context, float32; the llamas with 2 key/value heads and keras_hub's
untied head) and random weights, decode from a one-token
prompt without stopping at an end token, and are timed after a warm-up call
that compiles them. A second part times an ``lstm``'s cached decoding
(one cell step per token) against re-running the whole prefix through the
model for every new token. Only the current Keras backend is measured;
``run_all`` runs one process per backend.
"""

import time

import numpy as np

CONFIG = dict(vocab_size=1000, num_layers=4, num_heads=4, hidden_dim=256, max_length=512)
BATCHES = (1, 16)
NEW_TOKENS = (128, 511)  # 511: a one-token prompt fills the 512-token context
PROMPT = 1
# The recurrent part: a small LSTM, so that the re-run baseline (quadratic in
# the output length) finishes in seconds; 512 new tokens, batch 1.
LSTM_CONFIG = dict(vocab_size=1000, embed_dim=64, hidden_dim=128, num_layers=2)
LSTM_NEW_TOKENS = 512
RERUN_BUCKET = 64


MODELS = ("gpt", "llama", "lstm")


def _llama_config():
    """The llama pair's dimensions: CONFIG with half as many key/value heads as query heads."""
    from kerazoo.models.llama.model import default_intermediate_dim

    return dict(CONFIG, num_kv_heads=max(1, CONFIG["num_heads"] // 2),
                intermediate_dim=default_intermediate_dim(CONFIG["hidden_dim"]), tie_embeddings=False)


def _kerazoo_decoder(arch="gpt"):
    """A kerazoo ``gpt`` or ``llama`` and a function decoding ``new`` tokens for ``batch`` rows."""
    from kerazoo.decoding import loop as decoding
    from kerazoo.models import build
    from kerazoo.decoding.sampling import SamplerSpec

    model = build(arch, dropout=0.0, **(CONFIG if arch == "gpt" else _llama_config()))

    def run(batch, new):
        prompts = [[5] * PROMPT for _ in range(batch)]
        state = decoding.DecodeState(model, prompts, new, SamplerSpec("greedy"), stop_at_eos=False)
        state.advance()
        assert state.index == PROMPT + new, "decoded every position"

    run.model = model
    return run


def _weight_floor(model):
    """The fastest any float32 decoder of ``model`` could go: its matmuls alone.

    A compiled loop that per new token does only the decoding step's matrix
    products on the model's own weights (the fused query/key/value kernel,
    the attention output, the MLP, the output head) and feeds the argmax
    back in: no attention, norms, sampling or cache. At batch 1 each step
    reads every weight once, so this is the memory-bandwidth floor that
    bounds kerazoo and keras_hub alike; ``floor tokens/s ÷ keras_hub
    tokens/s`` is the largest speed-up over keras_hub that any float32
    implementation could show. Measured under XLA (TensorFlow, JAX) only:
    an eager loop would time Python dispatch, not the floor.

    Returns:
        ``run(batch, new)``, or None on PyTorch.
    """
    import keras
    from keras import ops

    from kerazoo.decoding.compiler import compile_fn
    from kerazoo.models.gpt import step as gpt_decode

    if keras.backend.backend() == "torch":
        return None

    def matrices():
        layers = []
        for block in model.transformer_layers:
            output = gpt_decode.weight(block._self_attention_layer._output_dense.kernel)
            layers.append((
                gpt_decode.fused_qkv(block)[0], ops.reshape(output, (-1, output.shape[-1])),
                gpt_decode.weight(block._feedforward_intermediate_dense.kernel),
                gpt_decode.weight(block._feedforward_output_dense.kernel),
            ))
        return layers

    def loop(x, steps):
        layers, head = matrices(), gpt_decode.weight(model.token_embedding.embeddings)

        def body(i, x):
            for qkv, output, inner, outer in layers:
                x = x + ops.matmul(ops.matmul(x, qkv)[:, :output.shape[0]], output)
                x = x + ops.matmul(ops.matmul(x, inner), outer)
            return ops.take(head, ops.argmax(gpt_decode.matmul_t(x, head), axis=-1), axis=0)

        return ops.fori_loop(0, steps, body, x)

    compiled = {}  # per batch, compiled with the decoder's options for that batch

    def run(batch, new):
        if batch not in compiled:
            compiled[batch] = compile_fn(model, loop, batch)
        x = ops.zeros((batch, model.hidden_dim))
        ops.convert_to_numpy(compiled[batch](x, ops.convert_to_tensor(np.int32(new))))

    return run


def _keras_hub_decoder(arch="gpt"):
    """keras_hub's GPT2CausalLM (``gpt``) or LlamaCausalLM (``llama``) of the same dimensions."""
    import keras_hub

    if arch == "gpt":
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=CONFIG["vocab_size"], num_layers=CONFIG["num_layers"], num_heads=CONFIG["num_heads"],
            hidden_dim=CONFIG["hidden_dim"], intermediate_dim=4 * CONFIG["hidden_dim"],
            max_sequence_length=CONFIG["max_length"], dropout=0.0,
        )
        lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    else:
        config = _llama_config()
        backbone = keras_hub.models.LlamaBackbone(
            vocabulary_size=config["vocab_size"], num_layers=config["num_layers"],
            num_query_heads=config["num_heads"], hidden_dim=config["hidden_dim"],
            intermediate_dim=config["intermediate_dim"], num_key_value_heads=config["num_kv_heads"], dropout=0,
        )
        lm = keras_hub.models.LlamaCausalLM(backbone=backbone, preprocessor=None)

    def run(batch, new):
        width = PROMPT + new
        ids = np.zeros((batch, width), np.int32)
        ids[:, :PROMPT] = 5
        mask = np.zeros((batch, width), bool)
        mask[:, :PROMPT] = True
        lm.generate({"token_ids": ids, "padding_mask": mask}, stop_token_ids=None)

    return run


def _lstm_decoders():
    """An lstm's cached decoding, and the cost of re-running the prefix per token.

    The re-run baseline feeds the model the tokens so far for every new
    token, right-padded to a multiple of ``RERUN_BUCKET`` so that it compiles
    once per bucket, not per length (the model is causal: padding after a
    position does not change its logits). Its cost is the sum, over the new
    positions, of the measured time of one forward pass at that position's
    padded width: each width is timed (best of ``repeats``, after a compiling
    call) rather than run 64 times over, because on PyTorch the whole re-run
    would take ten minutes. The host-side argmax it would also need is left
    out, in the baseline's favour.

    Returns:
        ``(cached, rerun_seconds)``: ``cached(batch, new)`` decodes; and
        ``rerun_seconds(batch, new, repeats)`` returns the re-run's time.
    """
    from keras import ops

    from kerazoo.decoding import loop as decoding
    from kerazoo.models import build
    from kerazoo.decoding.sampling import SamplerSpec

    model = build("lstm", dropout=0.0, **LSTM_CONFIG)
    forward = decoding.compile_fn(model, lambda ids: model(ids, training=False))

    def cached(batch, new):
        state = decoding.DecodeState(model, [[5] * PROMPT] * batch, new, SamplerSpec("greedy"), stop_at_eos=False)
        state.advance()
        assert state.index == PROMPT + new, "decoded every position"

    def rerun_seconds(batch, new, repeats):
        widths = [min(-(-t // RERUN_BUCKET) * RERUN_BUCKET, PROMPT + new) for t in range(PROMPT, PROMPT + new)]
        total = 0.0
        for width in sorted(set(widths)):
            ids = ops.convert_to_tensor(np.full((batch, width), 5, np.int32))
            one_pass = best_time(lambda *_: ops.convert_to_numpy(forward(ids)), batch, width, repeats)
            total += widths.count(width) * one_pass
        return total

    return cached, rerun_seconds


def run_lstm(repeats=2, new=LSTM_NEW_TOKENS):
    """Cached lstm decoding vs re-running the prefix, batch 1, on the current backend.

    Returns:
        One result dict.
    """
    import keras

    cached, rerun_seconds = _lstm_decoders()
    t_cached, t_rerun = best_time(cached, 1, new, repeats), rerun_seconds(1, new, repeats)
    return {
        "backend": keras.backend.backend(), "model": "lstm", "batch": 1, "new_tokens": new,
        "cached_tokens_per_s": new / t_cached, "rerun_tokens_per_s": new / t_rerun, "speedup": t_rerun / t_cached,
    }


def best_time(run, batch, new, repeats):
    """Best wall time of ``repeats`` calls after one warm-up (compile) call.

    Args:
        run: ``run(batch, new)``, the call to time.
        batch: rows.
        new: new tokens.
        repeats: timed calls (the best is kept).

    Returns:
        Seconds.
    """
    run(batch, new)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(batch, new)
        best = min(best, time.perf_counter() - started)
    return best


def _alternate(ours, peer, batch, new, repeats):
    """Best wall times of two decoders timed in turns, and the median ratio of back-to-back pairs.

    One warm-up (compiling) call each, then ``repeats`` pairs whose order
    flips every repeat (ours, peer; then peer, ours), as the training suite
    times its pairs: a slow spell of a shared machine lands on both sides.

    Returns:
        ``(t_ours, t_peer, median of t_peer / t_ours over the pairs)``.
    """
    ours(batch, new)
    peer(batch, new)
    best, ratios = {"ours": float("inf"), "peer": float("inf")}, []
    for repeat in range(repeats):
        pair = {}
        for side in (("ours", "peer") if repeat % 2 == 0 else ("peer", "ours")):
            started = time.perf_counter()
            (ours if side == "ours" else peer)(batch, new)
            pair[side] = time.perf_counter() - started
            best[side] = min(best[side], pair[side])
        ratios.append(pair["peer"] / pair["ours"])
    return best["ours"], best["peer"], float(np.median(ratios))


def run_current_backend(repeats=2, batches=BATCHES, new_tokens=NEW_TOKENS, models=MODELS):
    """Measures the decoders on the current backend.

    Args:
        repeats: timed calls per setting (the best is kept).
        batches: batch sizes.
        new_tokens: new-token counts.
        models: which of ``MODELS`` to time.

    Returns:
        A list of result dicts, per model (``gpt``, ``llama``) one per
        (batch, new tokens), then the lstm's (see ``run_lstm``).
    """
    rows = [row for arch in ("gpt", "llama") if arch in models
            for row in _transformer_rows(arch, repeats, batches, new_tokens)]
    return rows + ([run_lstm(repeats)] if "lstm" in models else [])


def _transformer_rows(arch, repeats, batches, new_tokens):
    """kerazoo's ``arch`` against keras_hub's, per batch and new-token count (the floor: gpt only)."""
    import keras

    ours, peer = _kerazoo_decoder(arch), _keras_hub_decoder(arch)
    floor = _weight_floor(ours.model) if arch == "gpt" else None
    rows = []
    for batch in batches:
        for new in new_tokens:
            t_ours, t_peer, pair_ratio = _alternate(ours, peer, batch, new, repeats)
            t_floor = best_time(floor, batch, new, repeats) if floor else None
            rows.append({
                "backend": keras.backend.backend(), "model": arch, "batch": batch, "new_tokens": new,
                "kerazoo_tokens_per_s": batch * new / t_ours, "keras_hub_tokens_per_s": batch * new / t_peer,
                "speedup": t_peer / t_ours, "median_pair_speedup": pair_ratio,
                "kerazoo_ms_per_token": 1000 * t_ours / new,
                "keras_hub_ms_per_token": 1000 * t_peer / new,
                "floor_tokens_per_s": batch * new / t_floor if floor else None,
                "floor_speedup": t_peer / t_floor if floor else None,
            })
    return rows


def flatness(rows):
    """Time per new token at the longest output ÷ at the shortest, per backend and batch."""
    out = {}
    for r in _gpt_rows(rows):
        out.setdefault((r["backend"], r["batch"]), {})[r["new_tokens"]] = r["kerazoo_ms_per_token"]
    return {k: v[max(v)] / v[min(v)] for k, v in out.items() if len(v) > 1}


def _gpt_rows(rows):
    return [r for r in rows if r.get("model", "gpt") == "gpt"]


def run_all(backends, repeats=2, models=MODELS):
    """Runs the suite in one subprocess per backend and gathers the results."""
    from kerazoo.lab import per_backend

    return per_backend.run("kerazoo.lab.generate_suite", "run_current_backend",
                           {"repeats": repeats, "models": list(models)}, backends, "generate")


def markdown(rows):
    """The results as a Markdown table plus the flatness figures."""
    lines = [
        "| model | backend | batch | new tokens | kerazoo tokens/s | keras_hub tokens/s | speed-up "
        "| median pair speed-up | matmul floor tokens/s | floor ÷ keras_hub |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r.get("model", "gpt") != "lstm"):
        floor = r.get("floor_tokens_per_s")
        peer = "GPT2CausalLM" if r.get("model", "gpt") == "gpt" else "LlamaCausalLM"
        lines.append(
            f"| {r.get('model', 'gpt')} vs {peer} | {r['backend']} | {r['batch']} | {r['new_tokens']} | "
            f"{r['kerazoo_tokens_per_s']:,.0f} | {r['keras_hub_tokens_per_s']:,.0f} | {r['speedup']:.1f}x | "
            + (f"{r['median_pair_speedup']:.1f}x | " if "median_pair_speedup" in r else "– | ")
            + (f"{floor:,.0f} | {r['floor_speedup']:.1f}x |" if floor else "– | – |")
        )
    lines.append("")
    if _gpt_rows(rows):
        lengths = sorted({r["new_tokens"] for r in _gpt_rows(rows)})
        lines.append(f"Flat cost (kerazoo gpt's time per new token at {lengths[-1]} ÷ at {lengths[0]} new tokens):")
        lines.append("")
        for (backend, batch), ratio in sorted(flatness(rows).items()):
            lines.append(f"- {backend}, batch {batch}: {ratio:.2f}")
    lstm = [r for r in rows if r.get("model") == "lstm"]
    if lstm:
        lines += [
            "",
            "lstm (vocab 1000, embed 64, hidden 128, 2 layers), batch 1: cached decoding vs re-running the "
            "prefix for every new token:",
            "",
            "| backend | new tokens | cached tokens/s | re-run tokens/s | speed-up |",
            "|---|---|---|---|---|",
        ]
        for r in lstm:
            lines.append(
                f"| {r['backend']} | {r['new_tokens']} | {r['cached_tokens_per_s']:,.0f} | "
                f"{r['rerun_tokens_per_s']:,.1f} | {r['speedup']:.1f}x |"
            )
    return "\n".join(lines) + "\n"
