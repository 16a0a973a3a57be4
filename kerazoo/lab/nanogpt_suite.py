"""``kerazoo bench nanogpt``: ``recipes/shakespeare_char.toml`` beside nanoGPT's own training loop.

nanoGPT (github.com/karpathy/nanoGPT) is not a dependency and none of its
code is in kerazoo: the user points ``--nanogpt`` at a checkout, and this
suite runs its ``train.py`` as its README's CPU command does (4 layers, 4
heads, 128 dim, context 64, batch 12, no dropout, no ``torch.compile``) and
``kerazoo train recipes/shakespeare_char.toml`` (the same model, batch,
schedule and data) for the same number of steps, each in its own process,
taking turns in an order that flips every repeat. The machine's load then
falls on both sides alike; the best run of each side is kept.

What is compared:

- **tokens/s of training**, set-up left out on both sides: kerazoo's
  ``metrics.json`` ``steady_tokens_per_sec`` (training steps after the first
  epoch, whose trace and XLA compile it leaves out; ``tokens_per_sec``, with
  them, is kept beside it as ``tokens_per_sec_all``); nanoGPT's from the
  per-iteration times it prints (``log_interval=1``), without the iterations
  that also ran its evaluation and without its first iteration;
- peak RSS and CPU seconds (user + system, start-up and evaluation
  included) of each process (``os.wait4``), and the final validation loss
  (kerazoo: the whole validation split; nanoGPT: its own estimate). On a
  machine that other jobs load, CPU seconds move much less than wall time,
  except where threads spin-wait for each other (PyTorch's OpenMP).

``baseline``: another kerazoo source tree (e.g. an export of an older
commit) run beside this one, for a before/after of the same command.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

RECIPE = "recipes/shakespeare_char.toml"
# nanoGPT's README, "I only have a macbook": its CPU configuration of this recipe.
NANOGPT_ARGS = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                "--n_embd=128", "--dropout=0.0"]
TOKENS_PER_STEP = 12 * 64
_ITER = re.compile(r"^iter (\d+): loss ([0-9.]+), time ([0-9.]+)ms", re.M)
_VAL = re.compile(r"^step (\d+): train loss ([0-9.]+), val loss ([0-9.]+)", re.M)


def _run(cmd, env, cwd):
    """Runs ``cmd``; returns ``(output, peak RSS in MiB, CPU seconds)`` of that process alone."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{output[-2000:]}")
    return output, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def prepare_nanogpt(nanogpt, source):
    """Writes nanoGPT's ``data/shakespeare_char`` files from ``source`` with its own ``prepare.py`` (once).

    Raises:
        ValueError: ``nanogpt`` is not a nanoGPT checkout.
    """
    folder = os.path.join(nanogpt, "data", "shakespeare_char")
    if not (os.path.isfile(os.path.join(nanogpt, "train.py")) and os.path.isdir(folder)):
        raise ValueError(f"--nanogpt {nanogpt}: not a nanoGPT checkout (no train.py and data/shakespeare_char/)")
    if not os.path.exists(os.path.join(folder, "train.bin")):
        shutil.copyfile(source, os.path.join(folder, "input.txt"))  # its prepare.py would download it
        _run([sys.executable, "prepare.py"], dict(os.environ), folder)


def run_nanogpt(nanogpt, steps, eval_every, threads):
    """One nanoGPT training run of ``steps`` iterations; its tokens/s, peak RSS and last val loss."""
    out_dir = tempfile.mkdtemp(prefix="nanogpt-bench-")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    try:
        output, rss, cpu = _run([sys.executable, "train.py", *NANOGPT_ARGS, f"--max_iters={steps}",
                            f"--warmup_iters={min(100, steps // 2)}",
                            f"--lr_decay_iters={steps}", f"--eval_interval={eval_every}", f"--out_dir={out_dir}"],
                           env, nanogpt)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return dict(parse_nanogpt(output, eval_every), peak_rss_mb=rss, cpu_seconds=cpu, steps=steps)


def parse_nanogpt(output, eval_every):
    """nanoGPT's training tokens/s and last validation loss from what its ``train.py`` printed.

    Args:
        output: its output, run with ``log_interval=1``.
        eval_every: its ``eval_interval``.

    Returns:
        ``{"tokens_per_sec", "val_loss"}`` (None where it printed none).
    """
    times = [(int(i), float(ms)) for i, _, ms in _ITER.findall(output)]
    # Iteration 0 and every eval_interval-th also ran an evaluation (and 0 the first batch's set-up).
    train_ms = [ms for i, ms in times if i % eval_every]
    vals = _VAL.findall(output)
    return {"tokens_per_sec": TOKENS_PER_STEP * len(train_ms) / (sum(train_ms) / 1000) if train_ms else None,
            "val_loss": float(vals[-1][2]) if vals else None}


def run_kerazoo(tree, backend, steps, eval_every, source):
    """One ``kerazoo train`` of the recipe from the source tree ``tree`` on ``backend``."""
    runs = tempfile.mkdtemp(prefix="kerazoo-bench-")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=tree)
    try:
        _, _, cpu = _run([sys.executable, "-m", "kerazoo.cli", "train", os.path.join(tree, RECIPE), "--quiet",
              "--runs-dir", runs, "--set", f"train.steps={steps}", "--set", f"train.eval_every={eval_every}",
              "--set", f"train.warmup_steps={min(100, steps // 2)}", "--set", f'data.source="{source}"'], env, tree)
        with open(os.path.join(runs, "shakespeare_char", "metrics.json")) as f:
            m = json.load(f)
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    # A tree from before steady_tokens_per_sec existed (a --baseline) gives the whole-run rate.
    return {"tokens_per_sec": m.get("steady_tokens_per_sec") or m["tokens_per_sec"],
            "tokens_per_sec_all": m["tokens_per_sec"], "peak_rss_mb": m["peak_rss_mb"], "val_loss": m["val_loss"],
            "cpu_seconds": cpu, "steps": m["steps"]}


def run(nanogpt, backends, steps, repeats, source, baseline=None, threads=2, log=print):
    """Runs every side ``repeats`` times, taking turns; keeps each side's best run.

    Args:
        nanogpt: a nanoGPT checkout.
        backends: kerazoo backends to run.
        steps: optimizer steps of every run (nanoGPT's recipe: 2000).
        repeats: runs per side.
        source: the tinyshakespeare text.
        baseline: another kerazoo source tree to run beside this one, or None.
        threads: nanoGPT's torch threads (``OMP_NUM_THREADS``).
        log: where a line per finished run goes.

    Returns:
        One row per side: ``side``, ``backend``, the best run's figures, and
        ``ratio`` (its tokens/s over nanoGPT's best).
    """
    source = os.path.abspath(source)
    prepare_nanogpt(nanogpt, source)
    eval_every = max(1, min(250, steps // 2))
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sides = [("nanoGPT", "torch", lambda: run_nanogpt(nanogpt, steps, eval_every, threads))]
    trees = [("kerazoo", here)] + ([("kerazoo baseline", os.path.abspath(baseline))] if baseline else [])
    for name, tree in trees:
        for b in backends:
            sides.append((name, b, lambda tree=tree, b=b: run_kerazoo(tree, b, steps, eval_every, source)))
    best = {}
    for r in range(repeats):
        for name, backend, fn in (sides if r % 2 == 0 else sides[::-1]):
            result = fn()
            log(f"{name} ({backend}), run {r + 1}: {result['tokens_per_sec']:,.0f} tokens/s, "
                f"{result['cpu_seconds']:,.0f} CPU s, "
                f"peak RSS {result['peak_rss_mb']:,.0f} MB, val loss {result['val_loss']}")
            key = (name, backend)
            if key not in best or result["tokens_per_sec"] > best[key]["tokens_per_sec"]:
                best[key] = result
    peer = best[("nanoGPT", "torch")]["tokens_per_sec"]
    return [{"side": name, "backend": backend, **best[(name, backend)],
             "ratio": best[(name, backend)]["tokens_per_sec"] / peer, "repeats": repeats}
            for name, backend, _ in sides]


def markdown(rows):
    """The rows as a Markdown table."""
    lines = ["| side | backend | steps | tokens/s (best) | ratio to nanoGPT | CPU s (whole process) | peak RSS MB "
             "| val loss |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "–"
        lines.append(f"| {r['side']} | {r['backend']} | {r['steps']} | {r['tokens_per_sec']:,.0f} | "
                     f"{r['ratio']:.2f} | {r['cpu_seconds']:,.0f} | {r['peak_rss_mb']:,.0f} | {loss} |")
    lines.append("")
    lines.append("tokens/s: training steps only, set-up left out (kerazoo: metrics.json's steady_tokens_per_sec, "
                 "the epochs after its first, which holds the trace and XLA compile; nanoGPT: its printed "
                 "iteration times without its first and the evaluation iterations). Each side's best "
                 f"of {rows[0]['repeats']} runs, taken in turns; val loss: kerazoo the whole validation split, "
                 "nanoGPT its own 20-batch estimate.")
    return "\n".join(lines) + "\n"
