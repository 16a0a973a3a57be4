"""Data-parallel training: the [distribute] section, and 2 devices or 2 processes agree with 1.

The device count of a backend is fixed when it starts, so every run with
several devices is a subprocess (``distribute_worker.py``): JAX gets 2 host
devices from ``XLA_FLAGS``, TensorFlow 2 logical CPU devices. The same recipe
(same seed, same global batch) runs on one device and on two.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import kerazoo as kz
from kerazoo import distribute
from kerazoo.recipes import RecipeError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "distribute_worker.py")


def _env(backend, **extra):
    return dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _worker(recipe, out, strategies, env):
    return subprocess.Popen([sys.executable, WORKER, recipe, str(out), *strategies], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(*procs):
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0, out[-3000:]


def _losses(result):
    return np.array([[h["loss"], h["val_loss"]] for h in result["history"]])


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_two_devices_give_the_loss_of_one(backend, tiny_recipe, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    devices = {"KERAZOO_TEST_CPUS": "2"} if backend == "tensorflow" \
        else {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = tmp_path / "out.json"
    _finish(_worker(tiny_recipe("gpt"), out, ["none", "data_parallel"], _env(backend, **devices)))
    results = json.loads(out.read_text())
    one, two = results["none"], results["data_parallel"]
    assert (one["metrics"]["devices"], two["metrics"]["devices"]) == (1, 2)
    np.testing.assert_allclose(_losses(two), _losses(one), atol=1e-5, rtol=0)
    assert abs(two["metrics"]["val_loss"] - one["metrics"]["val_loss"]) < 1e-5


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_jax_processes_train_like_one(tiny_recipe, tmp_path):
    """Two hosts on localhost (keras.distribution.initialize), one CPU device each."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    recipe = tiny_recipe("gpt")
    hosts = dict(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{_free_port()}", KERAS_DISTRIBUTION_NUM_PROCESSES="2")
    procs = [_worker(recipe, tmp_path / f"host{i}.json", ["data_parallel"],
                     _env("jax", KERAS_DISTRIBUTION_PROCESS_ID=str(i), **hosts)) for i in range(2)]
    single = _worker(recipe, tmp_path / "single.json", ["none"], _env("jax"))
    _finish(*procs, single)
    chief, other = (json.loads((tmp_path / f"host{i}.json").read_text())["data_parallel"] for i in range(2))
    one = json.loads((tmp_path / "single.json").read_text())["none"]
    assert chief["chief"] and not other["chief"], "only the first process keeps a run folder"
    assert chief["metrics"]["devices"] == 2 and chief["metrics"]["steps"] == one["metrics"]["steps"]
    assert chief["metrics"]["val_loss"] == pytest.approx(other["metrics"]["val_loss"], abs=1e-6)
    # Same data and initial weights; across processes the per-step losses
    # agree to ~1e-2 rather than to float precision (see README, Scaling out).
    np.testing.assert_allclose(_losses(chief), _losses(one), atol=3e-2, rtol=0)
    assert abs(chief["metrics"]["val_loss"] - one["metrics"]["val_loss"]) < 1e-2


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[distribute]\nstrategy = "horovod"', "'distribute.strategy' must be one of none, data_parallel, got 'horovod'"),
        ('[distribute]\nstrategy = "data_parallel"\ndevices = -1', "'distribute.devices' must not be negative"),
        ('[distribute]\ndevices = 2', "'distribute.devices' \\(2\\) needs distribute.strategy"),
        ('[distribute]\nstrategy = "data_parallel"\ngpus = 2', "unknown key 'distribute.gpus'"),
    ],
)
def test_bad_distribute_section_names_file_and_key(extra, message, tiny_recipe):
    path = tiny_recipe("gpt", extra=extra)
    with pytest.raises(RecipeError, match=f"{os.path.basename(path)}.*{message}"):
        kz.load_recipe(path)


def test_more_devices_than_visible_or_an_uneven_batch(tiny_recipe):
    recipe = kz.load_recipe(tiny_recipe("gpt", extra='[distribute]\nstrategy = "data_parallel"\ndevices = 64'))
    with pytest.raises(RecipeError, match="'distribute.devices' \\(64\\) exceeds the"):
        distribute.setup(recipe.distribute, recipe.train.batch_size, recipe.path)


def test_torch_and_tf_config_give_clear_errors(tiny_recipe, monkeypatch):
    recipe = kz.load_recipe(tiny_recipe("gpt", extra='[distribute]\nstrategy = "data_parallel"'))
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "torch")
    with pytest.raises(RecipeError, match="not supported on the torch backend"):
        distribute.setup(recipe.distribute, 4, recipe.path)
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "tensorflow")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}}')
    with pytest.raises(RecipeError, match="TF_CONFIG.*use KERAS_BACKEND=jax"):
        distribute.setup(recipe.distribute, 4, recipe.path)
