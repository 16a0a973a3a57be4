"""Determinism: the same recipe and seed on the same backend give the same metrics, exactly."""

import json
import os

import numpy as np

import kerazoo as kz

QUIET = dict(verbose=0, log=lambda *_: None)
# Wall-clock numbers differ run to run by nature; everything else must match bit for bit.
# Measured, not computed: times and the process's peak memory vary run to run.
TIMING = {"tokens_per_sec", "steady_tokens_per_sec", "train_seconds", "wall_seconds", "peak_rss_mb"}


def _run(tiny_recipe, runs_dir, seed):
    path = tiny_recipe("gpt", extra=f"seed = {seed}")
    text = open(path).read().replace("dropout = 0.0", "dropout = 0.1")  # dropout draws from the seed too
    open(path, "w").write(text)
    return kz.run_recipe(kz.load_recipe(path), runs_dir, **QUIET)


def test_same_recipe_same_seed_same_metrics_exactly(tiny_recipe, tmp_path):
    a = _run(tiny_recipe, str(tmp_path / "a"), seed=3)
    b = _run(tiny_recipe, str(tmp_path / "b"), seed=3)
    ma, mb = (json.load(open(os.path.join(r.path, "metrics.json"))) for r in (a, b))
    assert {k: v for k, v in ma.items() if k not in TIMING} == {k: v for k, v in mb.items() if k not in TIMING}
    assert json.load(open(os.path.join(a.path, "history.json"))) == json.load(open(os.path.join(b.path, "history.json")))
    assert a.sample == b.sample
    for wa, wb in zip(kz.load_run(a.path).get_weights(), kz.load_run(b.path).get_weights()):
        np.testing.assert_array_equal(wa, wb)

