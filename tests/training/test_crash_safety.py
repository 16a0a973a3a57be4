"""Crash-safe training: SIGKILL a real ``kerazoo train`` at several moments, resume, compare.

The uninterrupted reference runs in this process; the interrupted run is a
chain of ``kerazoo train`` processes, each killed with SIGKILL at another
moment (from outside, and through ``KERAZOO_FAULT`` at exact points of the
checkpoint code), then resumed with ``--resume`` until it finishes. The
fault-point processes are forked by ``fault_worker.py`` (one import for the
chain); the one killed from outside is a ``python -m kerazoo.cli train``.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import kerazoo as kz
from kerazoo.training import checkpointing
from tests.conftest import tiny_recipe_text

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Dropout on: the resumed run must also restore the dropout generator's state.
RECIPE_EXTRA = "seed = 7\n"
# Metrics that must agree; timings and throughput never do.
COMPARED = ("val_loss", "val_perplexity", "val_bits_per_byte", "train_loss", "steps", "tokens_seen", "params")
TOLERANCE = 1e-5


def _recipe(tmp_path, text_file):
    text = tiny_recipe_text(text_file, "gpt", extra=RECIPE_EXTRA)
    text = text.replace("dropout = 0.0", "dropout = 0.1").replace("steps = 4", "steps = 8")
    path = tmp_path / "crash.toml"
    path.write_text(text.replace('name = "tiny_gpt"', 'name = "crash"'))
    return str(path)


# The close-out, point by point: each kill leaves a partial folder that the next resume completes.
CLOSE_OUT_FAULTS = ["closeout.model_saved", "closeout.committed", "closeout.backup_trashed",
                    "closeout.deleting:2", "closeout.renaming"]


def _train(recipe, runs_dir, resume=False, fault=None):
    """Starts ``kerazoo train`` in a subprocess."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop(checkpointing.FAULT_ENV, None)
    if fault:
        env[checkpointing.FAULT_ENV] = fault
    cmd = [sys.executable, "-m", "kerazoo.cli", "train", recipe, "--runs-dir", runs_dir, "--quiet"]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _committed_epoch(partial):
    meta = checkpointing.read_metadata(os.path.join(partial, "backup"))
    return meta["epoch"] if meta else 0


def _kill_when_committed(proc, partial, epoch, timeout=240):
    """SIGKILLs ``proc`` from outside as soon as ``epoch`` epochs are committed."""
    deadline = time.monotonic() + timeout
    while _committed_epoch(partial) < epoch:
        assert proc.poll() is None, f"the run ended before it was killed:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _assert_loadable_or_absent(partial):
    """Every file a later load would read is whole: nothing half-written under its real name."""
    best = os.path.join(partial, "checkpoints", "best.keras")
    if os.path.exists(best):
        kz.load_run(best)
    meta = checkpointing.read_metadata(os.path.join(partial, "backup"))
    if meta:
        assert os.path.isfile(os.path.join(partial, "backup", meta["weights"]))


@pytest.mark.slow
def test_sigkill_at_several_moments_then_resume_matches_an_uninterrupted_run(tmp_path, text_file):
    recipe = _recipe(tmp_path, text_file)
    reference = kz.run_recipe(kz.load_recipe(recipe), str(tmp_path / "ref"), verbose=0, log=lambda *_: None)

    runs_dir = str(tmp_path / "runs")
    partial = os.path.join(runs_dir, ".crash.partial")
    # The kills at fault points go through one worker that forks a real
    # ``kerazoo train`` process per point (fault_worker.py: the imports are paid
    # once); the kill from outside is a ``python -m kerazoo.cli train`` of its own.
    with _fault_worker(tmp_path, recipe, "tensorflow", runs_dir) as train:
        # 0. Killed right after claiming its folder (nothing in it yet).
        train("run.claimed", resume=False)
        assert os.listdir(partial) == []
        # 1. Killed from outside, mid-training, once the first check is committed.
        _kill_when_committed(_train(recipe, runs_dir, resume=True), partial, epoch=1)
        _assert_loadable_or_absent(partial)
        # 2. Killed while writing the backup of the next check: its files are
        #    written, its commit is not; the resume must start from check 1 again.
        committed = _committed_epoch(partial)
        train("backup.staged")
        assert _committed_epoch(partial) == committed
        _assert_loadable_or_absent(partial)
        # 3. Killed while a .keras checkpoint is written (before its rename).
        train("checkpoint.staged")
        _assert_loadable_or_absent(partial)
        # 4. Killed after the last step, while evaluating, before the folder is finished.
        train("run.fitted")
        assert _committed_epoch(partial) == 4 and not os.path.exists(os.path.join(runs_dir, "crash"))
        # 5. Killed at each moment of the close-out; every resume goes on from there.
        for fault in CLOSE_OUT_FAULTS:
            train(fault)
            _check_close_out_kill(runs_dir, partial, fault)
        # 6. The last resume finishes the planned steps.
        train()

    final = os.path.join(runs_dir, "crash")
    assert not os.path.exists(partial)
    metrics = json.load(open(os.path.join(final, "metrics.json")))
    for key in COMPARED:
        assert metrics[key] == pytest.approx(reference.metrics[key], rel=TOLERANCE, abs=TOLERANCE), key
    history = json.load(open(os.path.join(final, "history.json")))
    expected = json.load(open(os.path.join(reference.path, "history.json")))
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in expected], rel=TOLERANCE)
    assert not os.path.exists(os.path.join(final, "backup"))
    assert not [n for folder, dirs, files in os.walk(final) for n in dirs + files if n.startswith(".")], \
        "no trash or temporary file is left in the finished run"
    kz.load_run(os.path.join(final, "checkpoints", "best.keras"))


def _check_close_out_kill(runs_dir, partial, fault):
    """What a kill at a close-out point must leave: a partial folder that a resume completes."""
    assert os.path.isdir(partial) and not os.path.exists(os.path.join(runs_dir, "crash")), fault
    committed = os.path.exists(os.path.join(partial, "metrics.json"))
    # Before the commit the backup must be whole; after it, it may be gone or half gone.
    assert committed or _committed_epoch(partial) == 4, fault
    assert committed == (fault != "closeout.model_saved"), fault
    if fault == "closeout.deleting:2":
        assert os.path.isdir(os.path.join(partial, ".backup.trash")), "killed with the trash half deleted"
    _assert_loadable_or_absent(partial)


# Every fault point again under JAX. A process per point would cost ~5 s of imports and
# the XLA compilations each; the worker imports once and forks a real process per point
# (fault_worker.py), and XLA's persistent cache compiles once.
JAX_FAULTS = ["run.claimed", "backup.staged", "checkpoint.staged", "run.fitted"] + CLOSE_OUT_FAULTS
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_worker.py")


@contextlib.contextmanager
def _fault_worker(tmp_path, recipe, backend, runs_dir, **env):
    """Starts fault_worker.py on ``backend``; yields ``train(fault=None, resume=True, runs=runs_dir)``,
    which runs one forked ``kerazoo train`` and checks that a fault point killed it (or, with
    no fault, that it finished)."""
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               **env)
    env.pop(checkpointing.FAULT_ENV, None)
    log = open(tmp_path / f"worker_{backend}.log", "w+")
    worker = subprocess.Popen([sys.executable, WORKER, recipe], env=env, cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)

    def train(fault=None, resume=True, runs=runs_dir):
        worker.stdin.write(json.dumps({"runs_dir": runs, "fault": fault, "resume": resume}) + "\n")
        worker.stdin.flush()
        answer = worker.stdout.readline().strip()
        log.seek(0)
        assert answer == ("exit 0" if fault is None else "killed"), f"{fault}: {answer}\n{log.read()[-3000:]}"

    try:
        yield train
    finally:
        worker.stdin.close()
        worker.wait(timeout=60)
        log.close()


@pytest.mark.slow
def test_every_fault_point_survives_sigkill_on_a_second_backend(tmp_path, text_file):
    """Each point of the run's life under JAX: killed there, resumed, until it finishes as an uninterrupted run."""
    pytest.importorskip("jax")
    recipe = _recipe(tmp_path, text_file)
    runs_dir = str(tmp_path / "runs")
    partial = os.path.join(runs_dir, ".crash.partial")
    # XLA's own persistent cache: the first child compiles the tiny model's functions, the
    # others load them (XLA compilation is most of what a forked child would cost).
    xla_cache = dict(JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                     JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    with _fault_worker(tmp_path, recipe, "jax", runs_dir, **xla_cache) as train:
        train(runs=str(tmp_path / "ref"), resume=False)  # the uninterrupted reference, same backend
        train("run.claimed", resume=False)
        assert os.listdir(partial) == []
        train("backup.staged")  # the first check's files written, its commit not
        assert _committed_epoch(partial) == 0
        train("checkpoint.staged")  # the first check committed, its best.keras staged
        assert _committed_epoch(partial) == 1 and not os.path.exists(os.path.join(partial, "checkpoints", "best.keras"))
        _assert_loadable_or_absent(partial)
        train("run.fitted")
        assert _committed_epoch(partial) == 4 and not os.path.exists(os.path.join(runs_dir, "crash"))
        for fault in CLOSE_OUT_FAULTS:
            train(fault)
            _check_close_out_kill(runs_dir, partial, fault)
        train()

    final = os.path.join(runs_dir, "crash")
    metrics = json.load(open(os.path.join(final, "metrics.json")))
    reference = json.load(open(os.path.join(tmp_path, "ref", "crash", "metrics.json")))
    assert metrics["backend"] == "jax"
    for key in COMPARED:
        assert metrics[key] == pytest.approx(reference[key], rel=TOLERANCE, abs=TOLERANCE), key
    history = json.load(open(os.path.join(final, "history.json")))
    expected = json.load(open(os.path.join(tmp_path, "ref", "crash", "history.json")))
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in expected], rel=TOLERANCE)
    assert not os.path.exists(partial)
    assert not [n for f, dirs, files in os.walk(final) for n in dirs + files if n.startswith(".")], \
        "no backup, trash or temporary file is left"
    assert os.listdir(runs_dir) == ["crash"], "no partial folder and no lock file is left"
    kz.load_run(final)


def test_fault_point_fires_only_on_its_nth_hit(monkeypatch):
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.setenv(checkpointing.FAULT_ENV, "backup.staged:2")
    checkpointing._fault_hits.clear()
    checkpointing.fault_point("checkpoint.staged")
    checkpointing.fault_point("backup.staged")
    assert killed == []
    checkpointing.fault_point("backup.staged")
    assert killed == [signal.SIGKILL]


def test_save_model_leaves_no_file_when_saving_fails(tmp_path):
    class Broken:
        def save(self, path):
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a zip")
            raise OSError("disk full")

    target = tmp_path / "model.keras"
    with pytest.raises(OSError):
        checkpointing.save_model(Broken(), str(target))
    assert os.listdir(tmp_path) == []


def test_resume_rebuilds_the_history_from_the_committed_epochs(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    history = [{"loss": 5.0, "val_loss": 5.5}, {"loss": 4.0, "val_loss": 4.5}]
    (backup / checkpointing.METADATA_FILE).write_text(json.dumps(
        {"epoch": 2, "weights": "w.weights.h5", "rng": "r.npz", "history": history}))
    # A third row was logged but its backup never committed; the second row is cut.
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,5.0,5.5\n1,4.0,4.5\n2,3.0,3.")
    import tensorflow as tf

    ds = checkpointing.resume_train_dataset(tf.data.Dataset.range(100), str(tmp_path), steps_per_epoch=3)
    assert next(iter(ds)).numpy() == 6, "the batches of the two committed epochs are skipped"
    from kerazoo.training.lifecycle import read_history

    assert read_history(str(tmp_path / "history.csv")) == [
        {"epoch": 0.0, "loss": 5.0, "val_loss": 5.5}, {"epoch": 1.0, "loss": 4.0, "val_loss": 4.5}]
