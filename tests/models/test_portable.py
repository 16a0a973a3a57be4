"""Portable weights: a model saved on one backend loads on the others.

For every (saving backend, loading backend) pair and both model families, the loaded
model gives the same logits (to 1e-4) and the same greedy text as the saved
one did on its own backend. ``KERAS_BACKEND`` is fixed per process, so each
side runs in its own subprocess (``portable_worker.py``: one per backend for
both the train and the load phase).
"""

import importlib.util
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.models.portable_worker import HPARAMS

BACKENDS = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b) is not None]
PAIRS = list(itertools.permutations(BACKENDS, 2))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "models", "portable_worker.py")


def _start_workers():
    """One worker per backend; each takes both phases' commands on its stdin."""
    procs = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        procs[backend] = subprocess.Popen([sys.executable, WORKER], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return procs


def _run_all(procs, argv_by_backend):
    """Runs one command in every backend's worker, together, and fails with a failed worker's output."""
    for backend, argv in argv_by_backend.items():
        procs[backend].stdin.write(json.dumps(argv) + "\n")
        procs[backend].stdin.flush()
    for backend, proc in procs.items():
        out = []
        for line in proc.stdout:
            if line.strip() == "portable_worker: done":
                break
            out.append(line)
        else:
            proc.wait()
            pytest.fail(f"{backend} worker failed (exit {proc.returncode}):\n{''.join(out)[-3000:]}")


def _stop_workers(procs):
    for backend, proc in procs.items():
        proc.stdin.close()
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, f"{backend} worker failed on exit:\n{rest[-3000:]}"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """``{(saved_on, loaded_on): {arch: npz}}``; loaded_on == saved_on is the original."""
    if len(BACKENDS) < 2:
        pytest.skip("needs at least two backends installed (pip install -e '.[jax,torch]')")
    root = tmp_path_factory.mktemp("portable")
    saved = {b: root / f"saved_{b}" for b in BACKENDS}
    loaded = {b: root / f"loaded_{b}" for b in BACKENDS}
    for d in [*saved.values(), *loaded.values()]:
        d.mkdir()
    procs = _start_workers()
    try:
        _run_all(procs, {b: ["train", str(saved[b])] for b in BACKENDS})
        _run_all(procs, {b: ["load", str(loaded[b])] + [str(saved[a]) for a in BACKENDS if a != b] for b in BACKENDS})
        _stop_workers(procs)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = {}
    for a in BACKENDS:
        for b in BACKENDS:
            folder = saved[a] if a == b else loaded[b]
            out[a, b] = {arch: np.load(folder / f"{arch}.{a}.npz") for arch in HPARAMS}
    return out


@pytest.mark.parametrize("arch", list(HPARAMS))
@pytest.mark.parametrize("saved_on, loaded_on", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_same_logits_and_greedy_text_on_another_backend(results, saved_on, loaded_on, arch):
    original, moved = results[saved_on, saved_on][arch], results[saved_on, loaded_on][arch]
    np.testing.assert_allclose(moved["logits"], original["logits"], atol=1e-4, rtol=0)
    assert str(moved["greedy"]) == str(original["greedy"])


@pytest.mark.parametrize("arch", list(HPARAMS))
@pytest.mark.parametrize("saved_on", BACKENDS)
def test_same_weights_train_the_same_on_every_backend(results, saved_on, arch):
    """From the same weights on the same batches, every backend gives the same losses.

    Curves differ between backends only through their initial weights (each
    backend draws its own); a backend whose optimizer step differs (e.g.
    gradients that leak between steps) shows up here.
    """
    losses = {b: results[saved_on, b][arch]["losses"] for b in BACKENDS if b != saved_on}
    first, *others = losses.values()
    assert len(first) == 4
    for other in others:
        np.testing.assert_allclose(other, first, atol=1e-4, rtol=0)
