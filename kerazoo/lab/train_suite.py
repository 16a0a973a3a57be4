"""The ``train`` suite: training speed side by side with a peer, and MFU.

Two comparisons, each on identical dimensions, random weights and the same
random token batch every step (so the input pipeline costs nothing and both
sides do exactly the same work):

- kerazoo ``gpt`` against a keras_hub ``GPT2Backbone`` causal LM
  (``GPT2CausalLM`` without a preprocessor);
- kerazoo ``lstm`` against the plain Keras ``Sequential`` model
  Embedding -> LSTM -> Dense.

Both sides compile with the same optimizer (AdamW), loss and ``jit_compile``
(kerazoo's default, ``runner.jit_compile_for``: XLA on TensorFlow and JAX),
and train with ``model.fit``, so the ratio compares the models' code. On
TensorFlow, where Keras' own default trains without XLA on a machine without
a GPU, a third row times the keras_hub model as Keras compiles it by default:
what a keras_hub user gets there. Each side is timed over ``steps`` steps after a warm-up
``fit`` that compiles it; the two sides alternate, ``repeats`` times, and the
best time of each is kept (the least disturbed by other load).

FLOPs per token, the matmul peak and MFU are defined in ``kerazoo.lab.flops``.

"""

import time

import numpy as np

from kerazoo.lab.flops import gpt_flops_per_token, gpt_matmul_shapes, lstm_flops_per_token, matmul_floor_seconds, matmul_peak

GPT_CONFIG = dict(vocab_size=2048, num_layers=4, num_heads=4, hidden_dim=256, max_length=256)
GPT_BATCH, GPT_SEQ = 16, 256
LSTM_CONFIG = dict(vocab_size=2048, embed_dim=128, hidden_dim=256, num_layers=1)
LSTM_BATCH, LSTM_SEQ = 16, 128


def kerazoo_jit_compile():
    """The ``jit_compile`` kerazoo's runner trains a causal LM with by default."""
    from kerazoo.training.recipes import TrainSection
    from kerazoo.training.runner import jit_compile_for

    return jit_compile_for(TrainSection())


def _compile(model, jit_compile):
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def _kerazoo_gpt():
    from kerazoo.models import build

    # keras_hub's GPT-2 uses the tanh GELU; so does this side, for identical work.
    return _compile(build("gpt", dropout=0.0, gelu_approximate=True, **GPT_CONFIG), kerazoo_jit_compile())


def _keras_hub_gpt(jit_compile):
    import keras
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=GPT_CONFIG["vocab_size"], num_layers=GPT_CONFIG["num_layers"],
        num_heads=GPT_CONFIG["num_heads"], hidden_dim=GPT_CONFIG["hidden_dim"],
        intermediate_dim=4 * GPT_CONFIG["hidden_dim"], max_sequence_length=GPT_CONFIG["max_length"], dropout=0.0,
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    # keras.Model.compile, not the task's: the task adds an accuracy metric,
    # which would make its side do more work than ours.
    keras.Model.compile(
        lm, optimizer=keras.optimizers.AdamW(learning_rate=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return lm


def _kerazoo_lstm():
    from kerazoo.models import build

    return _compile(build("lstm", dropout=0.0, **LSTM_CONFIG), kerazoo_jit_compile())


def _keras_lstm():
    import keras

    c = LSTM_CONFIG
    return _compile(keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),
        keras.layers.Embedding(c["vocab_size"], c["embed_dim"]),
        keras.layers.LSTM(c["hidden_dim"], return_sequences=True),
        keras.layers.Dense(c["vocab_size"]),
    ]), kerazoo_jit_compile())


def _batch(batch, seq_len, vocab_size, padding_mask=False):
    """One random ``(x, y)`` batch, repeated forever as a ``tf.data`` pipeline."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    ids = rng.integers(4, vocab_size, size=(batch, seq_len + 1), dtype=np.int32)
    x, y = ids[:, :-1], ids[:, 1:]
    if padding_mask:
        x = {"token_ids": x, "padding_mask": np.ones_like(x, dtype=bool)}
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def _fit_seconds(model, data, steps):
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - started


def _side_by_side(ours, peer, steps, warmup, repeats):
    """Best ``fit`` time of each side over ``steps`` steps, alternating.

    The order flips every repeat (ours, peer, then peer, ours, ...): on a
    shared machine the position in a pair can cost more than the
    difference being measured, and a fixed order would charge it to one side.

    Returns:
        ``(best, pair_ratios)``: each side's best time, and per repeat the
        peer's time over ours (kerazoo's speed-up within that pair). The
        two runs of a pair are seconds apart, so a slow spell of the host
        that spans both cancels out of their ratio; the median of these
        is steadier than the ratio of the bests, which can take each side's
        best from a different spell.
    """
    sides = (ours, peer)
    for model, data in sides:
        _fit_seconds(model, data, warmup)  # compiles
    best, pair_ratios = [float("inf"), float("inf")], []
    for r in range(repeats):
        pair = [0.0, 0.0]
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            model, data = sides[i]
            pair[i] = _fit_seconds(model, data, steps)
            best[i] = min(best[i], pair[i])
        pair_ratios.append(pair[1] / pair[0])
    return best, pair_ratios


def _row(name, peer_name, timed, steps, tokens_per_step, flops, peak, floor_seconds=None, xla=None):
    import keras

    (ours, peer), pair_ratios = timed
    ours_tps, peer_tps = tokens_per_step * steps / ours, tokens_per_step * steps / peer
    return {
        "backend": keras.backend.backend(), "model": name, "peer": peer_name,
        "kerazoo_tokens_per_s": ours_tps, "peer_tokens_per_s": peer_tps, "ratio": ours_tps / peer_tps,
        "median_pair_ratio": float(np.median(pair_ratios)), "pair_ratios": pair_ratios,
        "flops_per_token": flops, "kerazoo_mfu": ours_tps * flops / peak, "peer_mfu": peer_tps * flops / peak,
        "peak_flops": peak,
        # The MFU of the step's matmuls alone (matmul_floor_seconds); None where not measured.
        "floor_mfu": tokens_per_step * flops / floor_seconds / peak if floor_seconds else None,
        # Each side's resolved jit_compile (XLA or not).
        "kerazoo_xla": bool(xla[0]) if xla else None, "peer_xla": bool(xla[1]) if xla else None,
    }


def run_current_backend(steps=20, warmup=3, repeats=3, models=("gpt", "lstm")):
    """Measures both comparisons on the current backend.

    Args:
        steps: timed optimizer steps per ``fit``.
        warmup: steps of the compiling ``fit``.
        repeats: timed ``fit`` calls per side (the best is kept).
        models: which comparisons to run (``gpt``, ``lstm``).

    Returns:
        One result dict per comparison.
    """
    import keras

    peak = matmul_peak()
    rows = []
    if "gpt" in models:
        c = GPT_CONFIG
        ours = (_kerazoo_gpt(), _batch(GPT_BATCH, GPT_SEQ, c["vocab_size"]))
        hub_data = _batch(GPT_BATCH, GPT_SEQ, c["vocab_size"], padding_mask=True)
        peer = (_keras_hub_gpt(ours[0].jit_compile), hub_data)
        timed = _side_by_side(ours, peer, steps, warmup, repeats)
        flops = gpt_flops_per_token(c["num_layers"], c["hidden_dim"], GPT_SEQ, c["vocab_size"])
        floor = matmul_floor_seconds(gpt_matmul_shapes(
            c["num_layers"], c["hidden_dim"], c["num_heads"], GPT_BATCH, GPT_SEQ, c["vocab_size"]),
            repeats, jit_compile=ours[0].jit_compile)
        xla = (ours[0].jit_compile, peer[0].jit_compile)
        rows.append(_row("gpt", "keras_hub GPT2CausalLM", timed, steps, GPT_BATCH * GPT_SEQ, flops, peak, floor, xla))
        default_peer = _keras_hub_gpt("auto") if keras.backend.backend() == "tensorflow" else None
        if default_peer is not None and default_peer.jit_compile != ours[0].jit_compile:
            # Keras' default differs from kerazoo's here (TensorFlow on a CPU): time what keras_hub's users get.
            timed = _side_by_side(ours, (default_peer, hub_data), steps, warmup, repeats)
            rows.append(_row("gpt", "keras_hub GPT2CausalLM, Keras' default compile", timed, steps,
                             GPT_BATCH * GPT_SEQ, flops, peak, xla=(ours[0].jit_compile, default_peer.jit_compile)))
    if "lstm" in models:
        c = LSTM_CONFIG
        data = _batch(LSTM_BATCH, LSTM_SEQ, c["vocab_size"])
        ours, peer = _kerazoo_lstm(), _keras_lstm()
        timed = _side_by_side((ours, data), (peer, data), steps, warmup, repeats)
        flops = lstm_flops_per_token(c["embed_dim"], c["hidden_dim"], c["num_layers"], c["vocab_size"])
        rows.append(_row("lstm", "Keras Sequential LSTM", timed, steps, LSTM_BATCH * LSTM_SEQ, flops, peak,
                         xla=(ours.jit_compile, peer.jit_compile)))
    return rows


def run_all(backends, steps=20, repeats=3):
    """Runs the suite in one subprocess per backend and gathers the results."""
    from kerazoo.lab import per_backend

    kwargs = {"steps": steps, "repeats": repeats}
    return per_backend.run("kerazoo.lab.train_suite", "run_current_backend", kwargs, backends, "train")


def markdown(rows):
    """The results as a Markdown table."""
    lines = [
        f"gpt: {GPT_CONFIG['num_layers']} layers, {GPT_CONFIG['num_heads']} heads, {GPT_CONFIG['hidden_dim']} dim, "
        f"vocab {GPT_CONFIG['vocab_size']}, batch {GPT_BATCH} x {GPT_SEQ} tokens. lstm: embed {LSTM_CONFIG['embed_dim']}, "
        f"hidden {LSTM_CONFIG['hidden_dim']}, {LSTM_CONFIG['num_layers']} layer, vocab {LSTM_CONFIG['vocab_size']}, "
        f"batch {LSTM_BATCH} x {LSTM_SEQ}. float32, AdamW, model.fit.",
        "",
        "| backend | model | peer | XLA (kerazoo / peer) | kerazoo tokens/s | peer tokens/s | ratio | median pair ratio "
        "| kerazoo MFU | peer MFU | matmul-only MFU | train GFLOP/token | matmul peak GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor, median = r.get("floor_mfu"), r.get("median_pair_ratio")
        xla = "–" if r.get("kerazoo_xla") is None else " / ".join(
            "yes" if r[k] else "no" for k in ("kerazoo_xla", "peer_xla"))
        lines.append(
            f"| {r['backend']} | {r['model']} | {r['peer']} | {xla} | {r['kerazoo_tokens_per_s']:,.0f} | "
            f"{r['peer_tokens_per_s']:,.0f} | {r['ratio']:.2f}x | {f'{median:.2f}x' if median else '–'} | "
            f"{100 * r['kerazoo_mfu']:.1f}% | "
            f"{100 * r['peer_mfu']:.1f}% | {f'{100 * floor:.1f}%' if floor else '–'} | "
            f"{r['flops_per_token'] / 1e9:.4f} | {r['peak_flops'] / 1e9:,.0f} |"
        )
    lines += ["", "ratio: of the best times; median pair ratio: the median over repeats of the peer's time over "
              "kerazoo's within one back-to-back pair. matmul-only MFU: a step that did nothing but the model's "
              "matmuls (forward and both backward products of each), timed on the same backend and counted the "
              "same way. XLA: whether the side's train step is compiled with XLA (jit_compile)."]
    return "\n".join(lines) + "\n"


def plot(rows, path):
    """Bar charts of tokens/s and MFU, kerazoo against its peer, per backend and model.

    Args:
        rows: ``run_all`` output.
        path: the PNG file to write.

    Returns:
        ``path``.
    """
    import matplotlib

    from kerazoo.training import runs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\n{r['model']}" + ("\n(peer: Keras default)" if "default" in r["peer"] else "")
              for r in rows]
    x = np.arange(len(rows))
    # About an inch per bar pair, so that the backend / model labels do not run together.
    fig, axes = plt.subplots(1, 2, figsize=(max(12, 2.3 * len(rows)), 4))
    for ax, (ours, peer, title) in zip(axes, [
        ("kerazoo_tokens_per_s", "peer_tokens_per_s", "training tokens/s"),
        ("kerazoo_mfu", "peer_mfu", "model FLOPs utilisation"),
    ]):
        ax.bar(x - 0.2, [r[ours] for r in rows], 0.4, label="kerazoo")
        ax.bar(x + 0.2, [r[peer] for r in rows], 0.4, label="peer (keras_hub GPT2 / Keras LSTM)")
        ax.set_xticks(x, labels)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
    axes[1].axhline(0.5, color="gray", linestyle="--", linewidth=1)  # the 50% MFU target
    floors = [(i, r["floor_mfu"]) for i, r in enumerate(rows) if r.get("floor_mfu")]
    if floors:
        axes[1].scatter([i for i, _ in floors], [f for _, f in floors], marker="_", s=900, color="black",
                        label="matmul-only ceiling")
    # Room above the bars for the legend, which would hide a ceiling mark.
    axes[1].set_ylim(0, 1.5 * max([r["kerazoo_mfu"] for r in rows] + [r["peer_mfu"] for r in rows]
                                  + [f for _, f in floors]))
    axes[1].legend(loc="upper right", fontsize="small")
    axes[0].legend()
    fig.tight_layout()
    return runs.save_figure(fig, path, dpi=100)
