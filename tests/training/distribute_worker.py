"""Subprocess side of ``test_distribute.py``: devices must be set before the backend starts.

    python tests/training/distribute_worker.py RECIPE OUT.json STRATEGY [STRATEGY ...]

Runs the recipe once per ``distribute.strategy`` value given (``none``,
``data_parallel``), with ``train.eval_every = 1``, and writes ``{strategy: {"history", "metrics", "chief"}}``
to ``OUT.json``. With ``KERAZOO_TEST_CPUS=N`` TensorFlow gets N logical CPU
devices; JAX gets them from ``XLA_FLAGS=--xla_force_host_platform_device_count=N``.
"""

import json
import os
import sys
import tempfile

cpus = int(os.environ.get("KERAZOO_TEST_CPUS", "0"))
if cpus and os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpus)

import kerazoo as kz  # noqa: E402


def run(recipe_path, strategy):
    # A validation check after every step, so histories compare step by step.
    recipe = kz.load_recipe(recipe_path, [f"distribute.strategy={strategy}", "train.eval_every=1"])
    with tempfile.TemporaryDirectory() as runs:
        result = kz.run_recipe(recipe, runs, verbose=0, log=lambda *_: None)
        history = None
        if result.path:  # only the chief of several processes keeps a run folder
            with open(os.path.join(result.path, "history.json")) as f:
                history = json.load(f)
    return {"metrics": result.metrics, "history": history, "chief": bool(result.path)}


if __name__ == "__main__":
    recipe_path, out, *strategies = sys.argv[1:]
    results = {s: run(recipe_path, s) for s in strategies}
    with open(out, "w") as f:
        json.dump(results, f)
