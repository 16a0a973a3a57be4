"""Locks on runs and exports, stale-lock takeover, a child that dies with its parent, and close-out pieces.

The locks are real ``flock`` locks held by real other processes (small
Python processes, no framework), so each test costs well under a second.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest

from kerazoo.training import closeout, lifecycle, locks, runs

LOCKS_FILE = locks.__file__
HOLDER = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
          "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, str(os.getpid()).encode()); "
          "print('locked', flush=True); time.sleep(120)")


def _hold_elsewhere(path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def fresh_locks(monkeypatch):
    """This process's held locks, emptied for the test and released after it."""
    monkeypatch.setattr(locks, "_HELD", {})
    yield
    for path in list(locks._HELD):
        locks.release(path)


def test_a_held_lock_names_its_holder(tmp_path, fresh_locks):
    path = tmp_path / ".x.lock"
    holder = _hold_elsewhere(path)
    try:
        with pytest.raises(locks.LockedError, match=rf"the run 'x' is in use by another kerazoo process \(PID {holder.pid},"):
            locks.hold(str(path), "the run 'x'")
        assert locks.is_locked(str(path)) and not locks.holds(str(path))
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, fresh_locks):
    path = tmp_path / ".x.lock"
    holder = _hold_elsewhere(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert path.read_text() == str(holder.pid), "the dead holder's PID is still in the file"
    assert not locks.is_locked(str(path))
    locks.hold(str(path), "x")
    assert path.read_text().strip() == str(os.getpid()) and locks.holds(str(path))
    # Held for the whole process: a second take by this process is a no-op, another process is refused.
    locks.hold(str(path), "x")
    done = subprocess.run([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                           "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(path)], capture_output=True)
    assert done.returncode != 0 and b"BlockingIOError" in done.stderr
    locks.release(str(path))
    assert not locks.is_locked(str(path)) and path.exists(), "released, and the file stays"


def test_open_run_is_refused_while_another_process_holds_the_run(tmp_path, fresh_locks):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    holder = _hold_elsewhere(runs.lock_path(str(runs_dir), "demo"))
    try:
        for resume in (False, True):
            with pytest.raises(ValueError, match=f"PID {holder.pid}"):
                lifecycle.open_run(str(runs_dir), "demo", resume)
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(runs_dir) == [".demo.lock"], "nothing was written"
    assert lifecycle.open_run(str(runs_dir), "demo", False).endswith(".demo.partial")
    assert os.listdir(runs_dir) == [".demo.lock"], "open_run only checks"


def test_holding_removes_its_file_and_a_waiter_never_keeps_a_removed_one(tmp_path, fresh_locks):
    path = str(tmp_path / ".x.lock")
    with locks.holding(path, "x"):
        assert locks.holds(path) and os.path.exists(path)
    assert not locks.holds(path) and not os.path.exists(path)
    # A file replaced after it was opened: hold() must end up on the file at the path.
    real_open, swapped = os.open, []

    def open_then_replace(p, *args, **kwargs):
        fd = real_open(p, *args, **kwargs)
        if p == path and not swapped:
            swapped.append(1)
            os.unlink(p)
            real_open(p, os.O_CREAT | os.O_RDWR)
        return fd

    import unittest.mock

    with unittest.mock.patch.object(locks.os, "open", open_then_replace):
        locks.hold(path, "x")
    assert swapped and os.path.samestat(os.fstat(locks._HELD[path]), os.stat(path))


def test_a_dangling_symlink_at_the_final_name_is_refused_before_training(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    os.symlink(tmp_path / "elsewhere", runs_dir / "demo")
    with pytest.raises(ValueError, match="symbolic link .* does not exist"):
        runs.check_runs_dir(str(runs_dir), "demo")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        runs.check_runs_dir(str(tmp_path / "file"), "demo")
    # A dangling link never becomes the published name.
    assert runs.final_dir(str(runs_dir), "demo").endswith("demo-2")


def test_close_out_can_be_repeated_after_a_kill_at_any_step(tmp_path):
    runs_dir = tmp_path / "runs"
    work = runs_dir / ".demo.partial"
    (work / "backup").mkdir(parents=True)
    (work / "checkpoints").mkdir()
    for name in ("state-000002.weights.h5", "state-000002.rng.npz", "training_metadata.json"):
        (work / "backup" / name).write_text("x")
    (work / "metrics.json").write_text("{}")
    (work / "checkpoints" / ".tmp-abc.keras").write_text("debris of a killed save")
    (work / ".tokenizer.tmp-0f").mkdir()
    # A kill halfway through deleting the trash: the backup is already renamed, one file is gone.
    os.rename(work / "backup", work / ".backup.trash")
    os.unlink(work / ".backup.trash" / "state-000002.rng.npz")
    final = closeout.close_out(str(work), str(runs_dir), "demo")
    assert final == str(runs_dir / "demo") and not work.exists()
    assert sorted(os.listdir(final)) == ["checkpoints", "metrics.json"]
    assert os.listdir(os.path.join(final, "checkpoints")) == []


def test_remove_tree_reports_each_file_and_resumes(tmp_path):
    tree = tmp_path / "t"
    (tree / "a" / "b").mkdir(parents=True)
    for name in ("1", "a/2", "a/b/3"):
        (tree / name).write_text("x")
    seen = []
    runs.remove_tree(str(tree), after_each=lambda: seen.append(1))
    assert not tree.exists() and len(seen) == 3
    runs.remove_tree(str(tree))  # nothing left: a no-op


def _load_locks_module_source():
    """A parent script that loads kerazoo/training/locks.py by path (no framework import)."""
    return (
        "import importlib.util, os, subprocess, sys, time\n"
        f"spec = importlib.util.spec_from_file_location('zoo_locks', {LOCKS_FILE!r})\n"
        "locks = importlib.util.module_from_spec(spec); spec.loader.exec_module(locks)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " preexec_fn=locks.die_with_parent(os.getpid()))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent_even_on_sigkill():
    assert importlib.util.find_spec("ctypes")
    parent = subprocess.Popen([sys.executable, "-c", _load_locks_module_source()], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    os.kill(child_pid, 0)  # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        # A zombie still answers kill(0); reap it if it is ours (it is not: it was the parent's).
        with open(f"/proc/{child_pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                return
        time.sleep(0.05)
    pytest.fail(f"child {child_pid} outlived its SIGKILLed parent")


def test_a_close_out_is_committed_by_metrics_and_history(tmp_path):
    work = tmp_path / ".demo.partial"
    work.mkdir()
    (work / "metrics.json").write_text("{}")
    assert not closeout.committed(str(work)), "an older kerazoo wrote metrics.json before history.json"
    (work / "history.json").write_text("[]")
    assert closeout.committed(str(work))
