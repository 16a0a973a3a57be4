"""A quiet command line: no framework start-up lines on stderr, and help without a framework."""

import os
import pathlib
import subprocess
import sys

import pytest

from kerazoo import quiet

ROOT = pathlib.Path(__file__).resolve().parent.parent
FRAMEWORKS = ("keras", "tensorflow", "jax", "torch")
STARTUP_LINES = (
    "absl::InitializeLog",
    "oneDNN custom operations",
    "cuda drivers",
    "cuInit",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
)


def _run(args, **env_overrides):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the user's own setting would decide otherwise
    env.update(env_overrides)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _startup_lines(stderr):
    return [line for line in stderr.splitlines() if any(text in line for text in STARTUP_LINES)]


@pytest.mark.parametrize(
    "args",
    [["-c", "import kerazoo"], ["-m", "kerazoo.cli", "models"]],
    ids=["import", "cli-models"],
)
def test_no_framework_startup_lines_on_stderr(args):
    proc = _run(args)
    assert proc.returncode == 0, proc.stderr
    assert not _startup_lines(proc.stderr), proc.stderr


def test_the_user_can_still_see_every_native_line():
    # With TF_CPP_MIN_LOG_LEVEL=0 nothing is filtered; on this CPU machine TensorFlow
    # then prints at least one INFO line of its own while it loads.
    quiet_proc = _run(["-c", "import kerazoo"])
    loud_proc = _run(["-c", "import kerazoo"], TF_CPP_MIN_LOG_LEVEL="0")
    assert loud_proc.returncode == 0, loud_proc.stderr
    assert len(loud_proc.stderr.splitlines()) > len(quiet_proc.stderr.splitlines())


def test_python_warnings_still_reach_stderr():
    # A warning raised while stderr is captured comes back; stderr works after it.
    code = (
        "import os, warnings\n"
        "from kerazoo import quiet\n"
        "with quiet.native_stderr_filtered(level=2):\n"
        "    os.write(2, b'I0000 00:00:1.5    7 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "    warnings.warn('warned-while-captured')\n"
        "import kerazoo\n"
        "warnings.warn('warned-after-import')\n"
    )
    proc = _run(["-c", code])
    assert proc.returncode == 0, proc.stderr
    assert "warned-while-captured" in proc.stderr and "warned-after-import" in proc.stderr
    assert not _startup_lines(proc.stderr), proc.stderr


_LOADED_AFTER_HELP = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_module("kerazoo.cli", run_name="__main__")
except SystemExit as stop:
    assert stop.code == 0, stop.code
print(sorted(name for name in sys.modules if name.split(".")[0] in {frameworks!r}))
"""


@pytest.mark.parametrize("argv", [["kerazoo", "--help"], ["kerazoo", "train", "--help"], ["kerazoo", "generate", "-h"]])
def test_help_imports_no_framework(argv):
    # sys.argv as the installed `kerazoo` script sees it.
    proc = _run(["-c", _LOADED_AFTER_HELP.format(argv=argv, frameworks=FRAMEWORKS)])
    assert proc.returncode == 0, proc.stderr
    assert "usage: kerazoo" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def test_python_m_help_imports_no_framework():
    proc = _run(["-X", "importtime", "-m", "kerazoo.cli", "export", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "usage: kerazoo export" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "kerazoo" in imported
    assert not imported & set(FRAMEWORKS), sorted(imported & set(FRAMEWORKS))


def test_filter_keeps_what_is_not_startup_noise():
    captured = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796335796.136718    7670 port.cc:153] oneDNN custom operations are on.\n"
        b"I0000 00:00:1796335796.136995    7670 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
        b"I0000 00:00:1796335796.1    7670 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        b"To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n"
        b"E0000 00:00:1796335796.2    7670 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n"
        b"E0000 00:00:1796335796.3    7670 some_op.cc:12] a real error\n"
        b"/x.py:1: UserWarning: a Python warning\n"
        b"To enable the following instructions is ordinary text here\n"
    )
    kept = quiet.filter_startup_lines(captured, 2)
    assert kept == (
        b"E0000 00:00:1796335796.3    7670 some_op.cc:12] a real error\n"
        b"/x.py:1: UserWarning: a Python warning\n"
        b"To enable the following instructions is ordinary text here\n"
    )
    assert quiet.filter_startup_lines(captured, 0) == captured
    assert b"real error" not in quiet.filter_startup_lines(captured, 3)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/bin/kerazoo", "--help"], True),
        (["/venv/bin/kerazoo"], True),
        (["/venv/bin/kerazoo", "train", "-h"], True),
        (["/venv/bin/kerazoo", "train", "r.toml"], False),
        (["kerazoo.cli", "models"], False),
        (["myscript.py", "--help"], False),
    ],
)
def test_cli_help_only(argv, expected):
    assert quiet.cli_help_only(argv) is expected
