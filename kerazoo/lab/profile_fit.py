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
analysis (FLOPs, bytes accessed), for 1 to 4 layers, and the same four
feed-forward layers written in plain ``jax.numpy`` as a reference.
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
    """The four blocks' feed-forward layers alone, in plain ``jax.numpy``: what XLA makes of the same products.

    A reference beside ``profile_jax_parts``: if the model's backward pass is
    slower per FLOP than this one, the difference is in the graph the layers
    build, not in XLA's matrix products.
    """
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (12, 64, 128))
    params = (jax.random.normal(key, (128, 512)) * 0.05, jnp.zeros(512),
              jax.random.normal(key, (512, 128)) * 0.05, jnp.zeros(128))

    def loss(params, x):
        w1, b1, w2, b2 = params
        for _ in range(4):
            x = x + jax.nn.gelu(x @ w1 + b1, approximate=False) @ w2 + b2
        return jnp.sum(x * x)

    for name, fn in (("forward", jax.jit(loss)), ("forward+backward", jax.jit(jax.grad(loss)))):
        jax.block_until_ready(fn(params, x))
        wall, cpu = _timed(lambda: jax.block_until_ready([fn(params, x) for _ in range(calls)]), calls)
        print(f"jax plain feed-forward x4 {name}: {wall:.1f} ms wall, {cpu:.1f} ms CPU", flush=True)


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
