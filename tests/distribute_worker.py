"""Subprocess side of ``test_distribute.py``: devices must be set before the backend starts.

    python tests/distribute_worker.py RECIPE OUT.json [--set section.key=value ...]

With ``KERAZOO_TEST_CPUS=N`` TensorFlow gets N logical CPU devices (JAX gets
them from ``XLA_FLAGS=--xla_force_host_platform_device_count=N``). Runs the
recipe and writes its history and metrics to ``OUT.json``.
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

if __name__ == "__main__":
    recipe_path, out, *rest = sys.argv[1:]
    overrides = [rest[i + 1] for i in range(0, len(rest), 2) if rest[i] == "--set"]
    recipe = kz.load_recipe(recipe_path, overrides)
    with tempfile.TemporaryDirectory() as runs:
        result = kz.run_recipe(recipe, runs, verbose=0, log=lambda *_: None)
        with open(os.path.join(result.path, "history.json")) if result.path else open(os.devnull) as f:
            history = json.load(f) if result.path else None
    with open(out, "w") as f:
        json.dump({"metrics": result.metrics, "history": history, "chief": bool(result.path)}, f)
