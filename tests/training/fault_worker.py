"""Subprocess side of ``test_crash_safety.py``'s fault points: one import, one forked process per fault point.

    KERAS_BACKEND=jax python tests/training/fault_worker.py RECIPE   # or tensorflow

Reads one JSON command a line from stdin, ``{"runs_dir": ..., "fault": ...,
"resume": ...}``. For each, it forks a child that runs ``kerazoo train RECIPE
--runs-dir RUNS_DIR --quiet [--resume]`` through ``kerazoo.cli.main`` with
``KERAZOO_FAULT=fault`` (none when null), waits for it, and answers one line:
``killed`` (the child SIGKILLed itself at the point) or ``exit N``. The
children's own output goes to stderr.

Why fork: a ``kerazoo train`` process spends most of its CPU importing
TensorFlow, Keras and JAX (about 5 s). This worker imports them once and
starts neither TensorFlow's runtime nor JAX's backend (it runs no
computation, so no framework thread pool exists yet); each child then is a
real process that starts its own runtime, trains through the real command
line and dies by a real SIGKILL, for the cost of its own work only. Each
child's CPU time goes to stderr.
"""

import json
import os
import signal
import sys
import traceback

# The frameworks are imported once, here, before any fork.
import kerazoo  # noqa: F401
import kerazoo.commands  # noqa: F401
import kerazoo.training.lifecycle  # noqa: F401
import kerazoo.training.tasks  # noqa: F401
from kerazoo import cli
from kerazoo.training import checkpointing


def run_child(recipe, command):
    """In the forked child: one ``kerazoo train``; never returns."""
    code = 1
    try:
        os.dup2(2, 1)  # stdout carries the protocol
        os.environ.pop(checkpointing.FAULT_ENV, None)
        if command.get("fault"):
            os.environ[checkpointing.FAULT_ENV] = command["fault"]
        argv = ["train", recipe, "--runs-dir", command["runs_dir"], "--quiet"]
        code = cli.main(argv + (["--resume"] if command.get("resume") else []))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def main(recipe):
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(recipe, command)
        _, status, usage = os.wait4(pid, 0)
        print(f"fault_worker: {command.get('fault')}: {usage.ru_utime + usage.ru_stime:.1f} s of CPU",
              file=sys.stderr, flush=True)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        print("killed" if killed else f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
