"""Where a ``recipes/shakespeare_char.toml`` training step spends its time, on the current backend.

    KERAS_BACKEND=tensorflow python -m kerazoo.lab.profile_fit --steps 250
    KERAS_BACKEND=jax python -m kerazoo.lab.profile_fit --steps 150 --jax-parts

Times ``model.fit`` in one process under several settings, one after the
other after a warm-up ``fit`` that compiles each: ``plain`` (no callbacks),
``standard`` (the callbacks every kerazoo run has), ``fixed`` (one batch
repeated: no input pipeline), ``spe25`` (``steps_per_execution=25``). Each
line gives wall time and CPU time (user + system of the whole process,
``os.times()``) per step; on a machine other jobs load, the CPU time moves
much less than the wall time. ``--jax-parts`` also times the jitted forward
pass and forward + backward of the same model alone, with XLA's cost
analysis (FLOPs, bytes accessed), for 1 to 4 layers, and the same GPT
written in plain ``jax.numpy`` as a floor.
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np


def _timed(fn, steps):
    t0, c0 = time.perf_counter(), os.times()
    fn()
    wall, c1 = time.perf_counter() - t0, os.times()
    cpu = c1.user + c1.system - c0.user - c0.system
    return wall / steps * 1000, cpu / steps * 1000


def profile_fit(steps, modes):
    import tensorflow as tf

    from kerazoo.training import lifecycle
    from kerazoo.training.optim import build_optimizer
    from kerazoo.training.recipes import load_recipe
    from kerazoo.training.tasks.causal_lm import CausalLM

    recipe = load_recipe(os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "shakespeare_char.toml"))
    task = CausalLM()
    data = task.prepare(recipe, None, lambda *_: None)
    for mode in modes:
        keras.utils.set_random_seed(1)
        model = task.build_model(recipe, data)
        ds, cbs = data.train_ds, []
        if mode == "spe25":
            model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=model.jit_compile,
                          steps_per_execution=25)
        if mode == "standard":
            cbs = lifecycle.standard_callbacks(recipe.train, tempfile.mkdtemp())[0]
        if mode == "fixed":
            ds = tf.data.Dataset.from_tensors(next(iter(ds))).repeat()
        build_optimizer(model)
        model.fit(ds, epochs=1, steps_per_epoch=25, verbose=0)  # compiles
        wall, cpu = _timed(lambda: model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=cbs), steps)
        print(f"{keras.backend.backend()} fit {mode}: {wall:.1f} ms wall, {cpu:.1f} ms CPU per step "
              f"({12 * 64 / wall * 1000:,.0f} tokens/s)", flush=True)


def profile_jax_parts(calls=60):
    import jax
    import jax.numpy as jnp

    from kerazoo.models import build

    x = np.random.default_rng(0).integers(0, 68, (12, 64)).astype("int32")
    for layers in (1, 2, 3, 4):
        m = build("gpt", vocab_size=68, max_length=64, num_layers=layers, num_heads=4, hidden_dim=128, dropout=0.0)
        m(x)
        tv, ntv = [v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables]

        def loss(tv, x):
            logits = m.stateless_call(tv, ntv, x)[0]
            return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, x[..., None], -1)[..., 0])

        for name, fn in (("forward", jax.jit(lambda tv, x: m.stateless_call(tv, ntv, x)[0])),
                         ("forward+backward", jax.jit(jax.value_and_grad(loss)))):
            jax.block_until_ready(fn(tv, x))
            wall, cpu = _timed(lambda: jax.block_until_ready([fn(tv, x) for _ in range(calls)]), calls)
            cost = fn.lower(tv, x).compile().cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            print(f"jax {layers} layers {name}: {wall:.1f} ms wall, {cpu:.1f} ms CPU; "
                  f"{cost.get('flops', 0) / 1e9:.2f} GFLOP, {cost.get('bytes accessed', 0) / 1e9:.3f} GB accessed",
                  flush=True)


def profile_jax_reference(calls=50):
    """The same GPT written in plain ``jax.numpy``: what XLA makes of this model without Keras.

    A floor beside ``profile_jax_parts``: 4 pre-norm blocks of width 128, 4
    heads, context 64, batch 12, exact GELU, tied output embedding, the
    recipe's shapes. If the model's jitted forward + backward costs about
    what this one does, the time goes to XLA's CPU code for these products,
    not to the graph the Keras layers build.
    """
    import jax
    import jax.numpy as jnp

    batch, t, width, heads, layers, vocab = 12, 64, 128, 4, 4, 68
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 64))

    def normal(*shape):
        return jax.random.normal(next(keys), shape) * 0.02

    def block_params():
        return {"wqkv": normal(width, 3 * width), "bqkv": jnp.zeros(3 * width), "wo": normal(width, width),
                "bo": jnp.zeros(width), "w1": normal(width, 4 * width), "b1": jnp.zeros(4 * width),
                "w2": normal(4 * width, width), "b2": jnp.zeros(width), "g1": jnp.ones(width),
                "n1": jnp.zeros(width), "g2": jnp.ones(width), "n2": jnp.zeros(width)}

    params = {"wte": normal(vocab, width), "wpe": normal(t, width), "blocks": [block_params() for _ in range(layers)],
              "g": jnp.ones(width), "n": jnp.zeros(width)}
    causal = jnp.tril(jnp.ones((t, t), bool))

    def norm(x, g, b):
        mean = x.mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * g + b

    def forward(p, ids):
        x = p["wte"][ids] + p["wpe"][None]
        for b in p["blocks"]:
            q, k, v = jnp.split(norm(x, b["g1"], b["n1"]) @ b["wqkv"] + b["bqkv"], 3, -1)
            q, k, v = (a.reshape(batch, t, heads, width // heads) for a in (q, k, v))
            s = jnp.where(causal, jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(width // heads), -1e9)
            a = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(s, -1), v).reshape(batch, t, width)
            x = x + a @ b["wo"] + b["bo"]
            h = jax.nn.gelu(norm(x, b["g2"], b["n2"]) @ b["w1"] + b["b1"], approximate=False)
            x = x + h @ b["w2"] + b["b2"]
        return norm(x, p["g"], p["n"]) @ p["wte"].T

    def loss(p, ids):
        logits = forward(p, ids)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, ids[..., None], -1)[..., 0])

    ids = jnp.asarray(np.random.default_rng(0).integers(0, vocab, (batch, t)).astype("int32"))
    for name, fn in (("forward", jax.jit(forward)), ("forward+backward", jax.jit(jax.value_and_grad(loss)))):
        jax.block_until_ready(fn(params, ids))
        wall, cpu = _timed(lambda: jax.block_until_ready([fn(params, ids) for _ in range(calls)]), calls)
        print(f"jax plain GPT (4 layers) {name}: {wall:.1f} ms wall, {cpu:.1f} ms CPU", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--modes", default="plain,standard,fixed,spe25")
    parser.add_argument("--jax-parts", action="store_true")
    args = parser.parse_args()
    profile_fit(args.steps, args.modes.split(","))
    if args.jax_parts and keras.backend.backend() == "jax":
        profile_jax_parts()
        profile_jax_reference()
