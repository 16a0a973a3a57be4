"""The ``quantize`` suite: int8 weights against float32, in decoding speed and in bits per byte.

Speed: the ``generate`` suite's gpt and llama (vocab 1000, 4 layers, 4
heads, 256 dim, 512 context, random weights), decoded greedily in process
from a one-token prompt, float32 and then the same model after
``kerazoo.quantize`` (Keras' weight-only int8), timed after a warm-up call
that compiles each, at each batch size. Only the current Keras backend is
measured; ``run_all`` runs one process per backend.

Quality (``--run``): a trained run's validation split (the recipe's own
source, fraction, seed and split mode), scored document by document with
``kerazoo.score``, before and after quantizing: bits per byte of each and
the relative change. Documents are read up to ``max_docs`` so that a
large corpus's check stays short; the count is reported.
"""

from kerazoo.lab.generate_suite import CONFIG, best_time

BATCHES = (1, 16)
NEW_TOKENS = 128
ARCHS = ("gpt", "llama")
FLOORS = ("float32", "int8_widened", "int8_products")


def _decoder(arch, int8):
    """A kerazoo ``gpt``/``llama`` of the generate suite's size and a function decoding ``new`` tokens."""
    import keras

    from kerazoo.decoding import loop as decoding
    from kerazoo.decoding.sampling import SamplerSpec
    from kerazoo.models import build
    from kerazoo.models.llama.model import default_intermediate_dim
    from kerazoo.models.quantize import quantize

    keras.utils.set_random_seed(0)
    config = CONFIG if arch == "gpt" else dict(
        CONFIG, num_kv_heads=CONFIG["num_heads"] // 2, intermediate_dim=default_intermediate_dim(CONFIG["hidden_dim"]))
    model = build(arch, dropout=0.0, **config)
    if int8:
        quantize(model)

    def run(batch, new):
        state = decoding.DecodeState(model, [[5]] * batch, new, SamplerSpec("greedy"), stop_at_eos=False)
        state.advance()

    run.model = model
    run.weight_bytes = sum(v.numpy().nbytes if hasattr(v, "numpy") else 0 for v in model.weights)
    return run


def _floor(model, kind):
    """The fastest a decoder of ``model`` could go with one kind of product: its matmuls alone.

    As the generate suite's floor: a compiled loop doing per new token only
    the step's matrix products on the model's own weights (query, key,
    value, attention output, the MLP, the output head) and feeding the
    argmax back in. ``kind``:

    - ``"float32"``: float weights (the float model);
    - ``"int8_widened"``: int8 weights widened to float in the loop (what
      the decoding step does, through ``kerazoo.models.weights``);
    - ``"int8_products"``: int8 weights multiplied as int8 (activations
      rounded to int8 per row, int32 sums): the best an int8 product of
      this backend's compiler can do.

    Under XLA (TensorFlow, JAX) only: an eager loop would time dispatch.

    Returns:
        ``run(batch, new)``, or None on PyTorch.
    """
    import keras
    import numpy as np
    from keras import ops

    from kerazoo.decoding.compiler import compile_fn
    from kerazoo.models import weights

    if keras.backend.backend() == "torch":
        return None

    def products(block):
        attn = block._self_attention_layer
        denses = [attn._query_dense, attn._key_dense, attn._value_dense]
        dims = [(d, model.hidden_dim) for d in denses] + [(attn._output_dense, model.hidden_dim)]
        dims += [(block._feedforward_intermediate_dense, model.hidden_dim),
                 (block._feedforward_output_dense, model.intermediate_dim)]
        if kind == "int8_products":
            parts = [weights.int8_columns(layer, n) for layer, n in dims]
            qkv = (ops.concatenate([p[0] for p in parts[:3]], axis=1), ops.concatenate([p[1] for p in parts[:3]]))
        else:
            parts = [ops.reshape(weights.kernel(layer), (n, -1)) for layer, n in dims]
            qkv = ops.concatenate(parts[:3], axis=1)
        # One fused query/key/value product, as the decoding step runs it.
        return [qkv] + parts[3:]

    def product(x, w):
        if not isinstance(w, tuple):
            return ops.matmul(x, w)
        columns, scales = w
        x_scale = 127.0 / ops.maximum(ops.max(ops.abs(x), axis=-1, keepdims=True), 1e-6)
        y = ops.matmul(ops.cast(ops.round(x * x_scale), "int8"), columns)  # int32 sums
        return ops.cast(y, "float32") / (x_scale * scales)

    def loop(x, steps):
        blocks = [products(block) for block in model.transformer_layers]
        head = (weights.int8_head(model.token_embedding) if kind == "int8_products"
                else ops.transpose(weights.embeddings(model.token_embedding)))

        def body(i, x):
            for qkv, o, inner, outer in blocks:
                x = x + product(product(x, qkv)[:, :model.hidden_dim], o)
                x = x + product(product(x, inner), outer)
            # The chosen ids feed the next step, so no step can be hoisted.
            ids = ops.argmax(product(x, head), axis=-1)
            return x + ops.cast(ids[:, None], x.dtype) * 1e-9

        return ops.fori_loop(0, steps, body, x)

    compiled = {}

    def run(batch, new):
        if batch not in compiled:
            compiled[batch] = compile_fn(model, loop, batch)
        x = ops.ones((batch, model.hidden_dim)) * 0.01
        ops.convert_to_numpy(compiled[batch](x, ops.convert_to_tensor(np.int32(new))))

    return run


def run_current_backend(repeats=2, batches=BATCHES, new_tokens=NEW_TOKENS, archs=ARCHS):
    """Times float32 and int8 decoding on the current backend.

    Args:
        repeats: timed calls per setting (the best is kept).
        batches: batch sizes.
        new_tokens: tokens decoded per call.
        archs: which of ``ARCHS`` to time.

    Returns:
        One dict per (arch, batch): tokens/s of each and int8's speed-up.
    """
    import keras

    rows = []
    for arch in archs:
        runs = {"float32": _decoder(arch, False), "int8": _decoder(arch, True)}
        floors = {}
        if arch == "gpt" and keras.backend.backend() != "torch":
            floors = {kind: _floor(runs["int8" if kind.startswith("int8") else "float32"].model, kind)
                      for kind in FLOORS}
        for batch in batches:
            seconds = {k: best_time(run, batch, new_tokens, repeats) for k, run in runs.items()}
            floor = {k: batch * new_tokens / best_time(run, batch, new_tokens, repeats) for k, run in floors.items()}
            rows.append({
                "backend": keras.backend.backend(), "model": arch, "batch": batch, "new_tokens": new_tokens,
                "float32_tokens_per_s": batch * new_tokens / seconds["float32"],
                "int8_tokens_per_s": batch * new_tokens / seconds["int8"],
                "speedup": seconds["float32"] / seconds["int8"],
                "float32_weight_mb": runs["float32"].weight_bytes / 1e6,
                "int8_weight_mb": runs["int8"].weight_bytes / 1e6,
                "floor_tokens_per_s": floor,
            })
    return rows


def quality(run_dir, max_docs=2000):
    """Validation bits per byte of a trained run, float32 and int8.

    Args:
        run_dir: a causal-LM run folder (gpt or llama).
        max_docs: validation documents scored at most.

    Returns:
        A dict: documents, bytes, both bits-per-byte figures and the
        relative change.
    """
    import math
    import os

    from kerazoo.data import read_corpus, split_corpus
    from kerazoo.inference.metrics import score
    from kerazoo.models.quantize import quantize
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.runs import load_run

    recipe = load_recipe(os.path.join(run_dir, "recipe.toml"))
    d = recipe.data
    _, docs = split_corpus(read_corpus(d.source, d.column, d.boundary), d.val_fraction, d.seed, d.split)
    docs = [doc for doc in docs if doc][:max_docs]
    model = load_run(run_dir)
    n_bytes = sum(len(doc.encode("utf-8")) for doc in docs)

    def bpb():
        nats = -sum(r["log_likelihood"] for r in score(model, docs))
        return nats / math.log(2) / n_bytes

    before = bpb()
    quantize(model)
    after = bpb()
    return {"run": run_dir, "documents": len(docs), "bytes": n_bytes, "float32_bits_per_byte": before,
            "int8_bits_per_byte": after, "relative_change": after / before - 1}


def run_all(backends, repeats=2):
    """Runs the speed part in one subprocess per backend and gathers the results."""
    from kerazoo.lab import per_backend

    return per_backend.run("kerazoo.lab.quantize_suite", "run_current_backend", {"repeats": repeats},
                           backends, "quantize")


def markdown(rows, quality_row=None):
    """The results as Markdown: the speed table, then the quality line when measured."""
    lines = [
        "| model | backend | batch | new tokens | float32 tokens/s | int8 tokens/s | int8 speed-up "
        "| weights float32 → int8 (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['batch']} | {r['new_tokens']} | {r['float32_tokens_per_s']:,.0f} "
            f"| {r['int8_tokens_per_s']:,.0f} | {r['speedup']:.2f}x "
            f"| {r['float32_weight_mb']:.1f} → {r['int8_weight_mb']:.1f} |"
        )
    floored = [r for r in rows if r.get("floor_tokens_per_s")]
    if floored:
        lines += ["", "Matmul floors of the gpt (tokens/s of a compiled loop doing only the step's products; "
                      "int8 widened: int8 weights widened to float per step, as the decoding step does; "
                      "int8 products: int8 × int8 products with int32 sums):", "",
                  "| backend | batch | float32 | int8 widened | int8 products | best int8 ÷ float32 |",
                  "|---|---|---|---|---|---|"]
        for r in floored:
            f = r["floor_tokens_per_s"]
            best = max(f["int8_widened"], f["int8_products"]) / f["float32"]
            lines.append(f"| {r['backend']} | {r['batch']} | {f['float32']:,.0f} | {f['int8_widened']:,.0f} "
                         f"| {f['int8_products']:,.0f} | {best:.2f}x |")
    if quality_row:
        q = quality_row
        lines += ["", f"Validation bits per byte of `{q['run']}` ({q['documents']:,} documents, {q['bytes']:,} bytes): "
                      f"float32 {q['float32_bits_per_byte']:.4f}, int8 {q['int8_bits_per_byte']:.4f} "
                      f"({100 * q['relative_change']:+.2f}%)."]
    return "\n".join(lines) + "\n"
