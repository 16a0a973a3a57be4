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
import tempfile
import time

import numpy as np
import pytest

import kerazoo as kz
from kerazoo.training import distribute
from kerazoo.training.recipes import RecipeError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "training", "distribute_worker.py")


def _env(backend, **extra):
    return dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _worker(recipe, out, strategies, env):
    # Output to a file, not a pipe: _finish_cluster polls, and a full pipe would block the worker.
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, WORKER, recipe, str(out), *strategies], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def _output(proc):
    proc.log.seek(0)
    return proc.log.read()


def _finish(*procs):
    for proc in procs:
        proc.wait()
        assert proc.returncode == 0, _output(proc)[-3000:]


# What a worker prints when another process took its port between
# _free_port's probe and the worker's own bind (tests run in parallel).
PORT_TAKEN = ("Could not start gRPC server", "Failed to add port", "Address already in use")


def _finish_cluster(start, attempts=3):
    """Runs a cluster's workers to the end; starts it again on fresh ports after a lost port.

    A worker that cannot bind its port exits while its peers wait for it, so
    the first failure stops the others.

    Args:
        start: picks ports and starts the workers; returns their ``Popen`` objects.
        attempts: starts before a lost port counts as a failure.
    """
    for attempt in range(attempts):
        procs = start()
        while any(p.poll() is None for p in procs) and all(p.poll() in (None, 0) for p in procs):
            time.sleep(0.2)
        failed = [p for p in procs if p.poll() not in (None, 0)]
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not failed:
            return
        out = _output(failed[0])
        if attempt + 1 == attempts or not any(m in out for m in PORT_TAKEN):
            raise AssertionError(out[-3000:])


def _losses(result):
    return np.array([[h["loss"], h["val_loss"]] for h in result["history"]])


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _check_two_devices(results):
    one, two = results["none"], results["data_parallel"]
    assert (one["metrics"]["devices"], two["metrics"]["devices"]) == (1, 2)
    np.testing.assert_allclose(_losses(two), _losses(one), atol=1e-5, rtol=0)
    assert abs(two["metrics"]["val_loss"] - one["metrics"]["val_loss"]) < 1e-5


def test_two_tensorflow_devices_give_the_loss_of_one(tiny_recipe, tmp_path):
    out = tmp_path / "out.json"
    _finish(_worker(tiny_recipe("gpt"), out, ["none", "data_parallel"], _env("tensorflow", KERAZOO_TEST_CPUS="2")))
    _check_two_devices(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def jax_runs(tmp_path_factory):
    """One process with 2 devices (one device, then both), and 2 processes of 1 device as two hosts."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    from tests.conftest import ENGLISH, CHINESE, tiny_recipe_text

    root = tmp_path_factory.mktemp("jax_runs")
    (root / "corpus.txt").write_text((ENGLISH + CHINESE) * 40, encoding="utf-8")
    recipe = root / "tiny_gpt.toml"
    # Written here, trained on JAX: the default jit_compile, not the TensorFlow tests' false.
    recipe.write_text(tiny_recipe_text(str(root / "corpus.txt"), "gpt", extra='jit_compile = "auto"'))

    def start():
        hosts = dict(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"localhost:{_free_port()}", KERAS_DISTRIBUTION_NUM_PROCESSES="2")
        procs = [_worker(str(recipe), root / f"host{i}.json", ["data_parallel"],
                         _env("jax", KERAS_DISTRIBUTION_PROCESS_ID=str(i), **hosts)) for i in range(2)]
        return procs + [_worker(str(recipe), root / "devices.json", ["none", "data_parallel"],
                                _env("jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"))]

    _finish_cluster(start)
    return {name: json.loads((root / f"{name}.json").read_text()) for name in ("host0", "host1", "devices")}


def test_two_jax_devices_give_the_loss_of_one(jax_runs):
    _check_two_devices(jax_runs["devices"])


def test_two_jax_processes_train_like_one(jax_runs):
    """Two hosts on localhost (keras.distribution.initialize), one CPU device each."""
    chief, other = jax_runs["host0"]["data_parallel"], jax_runs["host1"]["data_parallel"]
    one = jax_runs["devices"]["none"]
    assert chief["chief"] and not other["chief"], "only the first process keeps a run folder"
    assert chief["metrics"]["devices"] == 2 and chief["metrics"]["steps"] == one["metrics"]["steps"]
    assert chief["metrics"]["val_loss"] == pytest.approx(other["metrics"]["val_loss"], abs=1e-6)
    np.testing.assert_allclose(_losses(chief), _losses(one), atol=1e-5, rtol=0)
    assert abs(chief["metrics"]["val_loss"] - one["metrics"]["val_loss"]) < 1e-5


def test_two_tensorflow_workers_train_like_one(tiny_recipe):
    """Two workers on localhost (TF_CONFIG, MultiWorkerMirroredStrategy), one CPU device each."""
    root = os.path.dirname(tiny_recipe("gpt"))
    recipe = tiny_recipe("gpt")

    def start():
        cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
        procs = [_worker(recipe, os.path.join(root, f"worker{i}.json"), ["data_parallel"],
                         _env("tensorflow", TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})))
                 for i in range(2)]
        return procs + [_worker(recipe, os.path.join(root, "one.json"), ["none"], _env("tensorflow"))]

    _finish_cluster(start)
    chief, other, one = (json.loads(open(os.path.join(root, f"{n}.json")).read())
                         for n in ("worker0", "worker1", "one"))
    chief, other, one = chief["data_parallel"], other["data_parallel"], one["none"]
    assert chief["chief"] and not other["chief"], "only worker 0 keeps a run folder"
    assert chief["metrics"]["devices"] == 2 and chief["metrics"]["steps"] == one["metrics"]["steps"]
    assert chief["metrics"]["val_loss"] == pytest.approx(other["metrics"]["val_loss"], abs=1e-6)
    np.testing.assert_allclose(_losses(chief), _losses(one), atol=1e-5, rtol=0)


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


def test_torch_gives_a_clear_error(tiny_recipe, monkeypatch):
    recipe = kz.load_recipe(tiny_recipe("gpt", extra='[distribute]\nstrategy = "data_parallel"'))
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "torch")
    with pytest.raises(RecipeError, match="not supported on the torch backend"):
        distribute.setup(recipe.distribute, 4, recipe.path)


def test_tf_config_with_a_device_count_is_refused(tiny_recipe, monkeypatch):
    recipe = kz.load_recipe(tiny_recipe("gpt", extra='[distribute]\nstrategy = "data_parallel"\ndevices = 1'))
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}')
    monkeypatch.setattr(distribute.keras.backend, "backend", lambda: "tensorflow")
    with pytest.raises(RecipeError, match="'distribute.devices' \\(1\\) is not supported with TF_CONFIG"):
        distribute.setup(recipe.distribute, 4, recipe.path)
