"""The export lock and the clean-up of staging folders left by dead exports."""

import os
import subprocess
import sys

import pytest

from kerazoo.serving import exporter
from kerazoo.training import locks

HOLDER = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
          "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode()); "
          "print('locked', flush=True); time.sleep(120)")


@pytest.fixture
def fresh_locks(monkeypatch):
    monkeypatch.setattr(locks, "_HELD", {})
    yield
    for path in list(locks._HELD):
        locks.release(path)


def _export_killed_when_staged(run, base):
    """A real ``kerazoo export`` SIGKILLed with its version staged, checked, not yet renamed (``export.staged``)."""
    import signal

    from kerazoo.training import checkpointing

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **{checkpointing.FAULT_ENV: "export.staged"})
    done = subprocess.run([sys.executable, "-m", "kerazoo.cli", "export", run, "--name", "demo",
                           "--base-dir", str(base), "--max-new-tokens", "2"],
                          env=env, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_a_sigkilled_export_shows_no_version_and_its_staging_is_removed_only_under_the_lock(
        tiny_run_and_export, tmp_path, fresh_locks):
    run, _ = tiny_run_and_export
    model_dir = tmp_path / "saved" / "demo"
    _export_killed_when_staged(run, tmp_path / "saved")
    left = sorted(os.listdir(model_dir))
    staged = [n for n in left if n.startswith(".export-")]
    assert len(staged) == 1 and left == sorted([".lock"] + staged), left
    assert (model_dir / staged[0] / "saved_model.pb").is_file(), "killed with the whole version staged"
    assert not locks.is_locked(str(model_dir / ".lock")), "the kernel dropped the dead export's lock"
    # And the debris of an export killed while writing.
    stale = model_dir / ".export-dead1234"
    (stale / "variables").mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half written")

    # While another process holds the name, its staging folders are left alone and the export is refused.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(model_dir / ".lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(ValueError, match=f"export name 'demo' .*PID {holder.pid},"):
            exporter.export(run, name="demo", base_dir=str(tmp_path / "saved"), max_new_tokens=2)
        assert stale.exists() and (model_dir / staged[0]).exists()
    finally:
        holder.kill()
        holder.wait()
    assert not [n for n in os.listdir(model_dir) if n.isdigit()], "TF Serving sees no version, whole or partial"

    # The holder is dead: the next export takes the lock, removes the debris and publishes version 1.
    path = exporter.export(run, name="demo", base_dir=str(tmp_path / "saved"), max_new_tokens=2)
    assert path == str(model_dir / "1")
    assert sorted(os.listdir(model_dir)) == [".lock", "1"]
    assert (model_dir / ".lock").read_text().strip() == str(os.getpid())
    assert not locks.is_locked(str(model_dir / ".lock")), "released when the export ends (a notebook keeps no lock)"


@pytest.mark.parametrize("value", [0, 2**31, 2**32 + 3, True])
def test_export_token_counts_are_range_checked(value, tiny_run_and_export, tmp_path):
    with pytest.raises(ValueError, match="must be an integer from 1 to"):
        exporter.export(tiny_run_and_export[0], base_dir=str(tmp_path), max_new_tokens_cap=value)
    assert not os.listdir(tmp_path), "nothing is written before the checks"

