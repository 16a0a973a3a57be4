"""Same recipe, same seed, every backend: loss curves side by side.

``kerazoo curves RECIPE --backends tensorflow,jax,torch --out plot.png`` trains
the recipe once per backend, each in its own process (``KERAS_BACKEND`` is
fixed per process), and plots their training and validation losses.
"""

import json
import os
import subprocess
import sys
import tempfile

from kerazoo.training import runs

BACKENDS = ("tensorflow", "jax", "torch")


def parse_backends(text):
    """``"tensorflow,jax"`` -> ``["tensorflow", "jax"]``, or a clear error."""
    backends = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"--backends: unknown backend '{(unknown or [text])[0]}'; valid: {', '.join(BACKENDS)}")
    return backends


def train_on(backend, recipe_path, overrides, runs_dir):
    """Trains the recipe in a subprocess under ``backend``.

    Args:
        backend: ``tensorflow``, ``jax`` or ``torch``.
        recipe_path: the recipe file.
        overrides: ``--set`` values.
        runs_dir: where the run folder goes.

    Returns:
        The run's ``(history, metrics)``: a list of per-check dicts and the metrics dict.

    Raises:
        RuntimeError: the run failed; the message ends with its output.
    """
    command = [sys.executable, "-m", "kerazoo.cli", "train", recipe_path, "--runs-dir", runs_dir, "--quiet"]
    for item in overrides:
        command += ["--set", item]
    env = dict(os.environ, KERAS_BACKEND=backend)
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"training on {backend} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    (name,) = [d for d in os.listdir(runs_dir) if not d.startswith(".")]
    with open(os.path.join(runs_dir, name, "history.json")) as f:
        history = json.load(f)
    with open(os.path.join(runs_dir, name, "metrics.json")) as f:
        metrics = json.load(f)
    return history, metrics


def plot(curves, eval_every, title, out):
    """Draws training and validation loss per backend, side by side.

    Args:
        curves: ``{backend: history}``.
        eval_every: steps between checks (the x axis is in steps).
        title: the figure title.
        out: the image file to write.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for backend, history in curves.items():
        steps = [(i + 1) * eval_every for i in range(len(history))]
        for ax, key in zip(axes, ("loss", "val_loss")):
            ax.plot(steps, [h[key] for h in history], marker="o", markersize=3, label=backend)
    for ax, label in zip(axes, ("training loss (mean since the last check)", "validation loss")):
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("nats / token")
    axes[1].legend()
    fig.suptitle(title)
    fig.tight_layout()
    runs.save_figure(fig, out, dpi=100)


def max_gap(curves, key):
    """The largest difference of ``key`` between any two backends at any check."""
    series = list(curves.values())
    n = min(len(h) for h in series)
    return max(max(h[i][key] for h in series) - min(h[i][key] for h in series) for i in range(n))


def run(recipe_path, backends, overrides, out, log=print):
    """Trains on every backend and writes the plot.

    Args:
        recipe_path: the recipe file.
        backends: backend names.
        overrides: ``--set`` values, applied on every backend.
        out: the image file.
        log: where progress lines go.

    Returns:
        ``{backend: {"history": ..., "metrics": ...}}``.
    """
    from kerazoo.training.recipes import load_recipe

    recipe = load_recipe(recipe_path, overrides)  # fail on a bad recipe before any training
    curves, results = {}, {}
    for backend in backends:
        log(f"training {recipe.name} on {backend} ...")
        with tempfile.TemporaryDirectory(prefix="kerazoo-curves-") as runs_dir:
            history, metrics = train_on(backend, recipe_path, overrides, runs_dir)
        curves[backend] = history
        results[backend] = {"history": history, "metrics": metrics}
        log(f"  {backend}: final training loss {history[-1]['loss']:.4f}, "
            f"validation loss {metrics['val_loss']:.4f}, {metrics['train_seconds']:.0f}s of training")
    title = f"{recipe.name}: {recipe.arch}, {recipe.train.steps} steps of {recipe.train.batch_size}x{recipe.train.seq_len}, seed {recipe.train.seed}"
    plot(curves, recipe.train.eval_every, title, out)
    if len(curves) > 1:
        log(f"largest gap between backends: training loss {max_gap(curves, 'loss'):.4f}, "
            f"validation loss {max_gap(curves, 'val_loss'):.4f} nats/token")
    return results
