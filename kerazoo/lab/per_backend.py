"""Runs a benchmark function once per Keras backend, each in its own process.

``KERAS_BACKEND`` is fixed when Keras is first imported, so measuring
TensorFlow, JAX and PyTorch in one command means one child process each. The
child prints its result as one ``RESULT<json>`` line that the parent collects.
"""

import json
import os
import subprocess
import sys


def run(module, function, kwargs, backends, suite):
    """Calls ``module.function(**kwargs)`` under each backend and gathers the rows.

    Args:
        module: the module path, e.g. ``"kerazoo.lab.train_suite"``.
        function: a function returning a JSON-serialisable list of rows.
        kwargs: its keyword arguments (JSON-serialisable).
        backends: backend names.
        suite: the suite's name, for error messages.

    Returns:
        The concatenated rows, in backend order.

    Raises:
        RuntimeError: a child failed; the message ends with its last lines.
    """
    rows = []
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        code = (f"import json; from {module} import {function} as f; "
                f"print('RESULT' + json.dumps(f(**json.loads({json.dumps(json.dumps(kwargs))}))))")
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
        if proc.returncode or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{suite} benchmark on {backend} failed: {' | '.join(tail)}")
        rows += json.loads(lines[-1][len("RESULT"):])
    return rows
