"""Crash-safe checkpoints: what a SIGKILL at any moment of training leaves.

Keras' ``BackupAndRestore`` writes ``latest.weights.h5`` in place and then
``training_metadata.json``: a kill during the h5 write leaves a file that
fails to load, and a kill between the two leaves epoch-N+1 weights next to
epoch-N metadata, so a resumed run trains one check too many. It also saves
no random-generator state (dropout would draw other masks after a resume),
and it deletes its backup when ``fit`` returns, before the run folder is
complete. ``ModelCheckpoint`` writes ``best.keras`` in place, and
``model.save`` does too.

Here every state file is complete before anything refers to it: weights,
optimizer and random states go to files named after the epoch, and the
metadata file (written atomically, ``runs.write_json``) is the one commit
point. A resume reads only what the metadata names.

``KERAZOO_FAULT=POINT[:N]`` makes the process SIGKILL itself the N-th time
(default 1st) it reaches the named point, so tests can kill a run at exact
moments through the real code path. Points, in a run's order (``FAULT_POINTS``):
``run.claimed`` (the partial folder exists, nothing in it yet),
``backup.staged`` (an epoch's state files are written, the commit is not),
``checkpoint.staged`` (a ``.keras`` file is written under its temporary
name, not yet renamed), ``run.fitted`` (training is over, the run folder not
yet finished), ``closeout.model_saved`` (``model.keras`` written, the
close-out not committed), ``closeout.committed`` (``metrics.json`` written),
``closeout.backup_trashed`` (``backup/`` renamed to ``.backup.trash``),
``closeout.deleting`` (after each file of the trash is deleted: ``:2``
kills with the trash half deleted), ``closeout.renaming`` (everything in
place, the partial folder not yet renamed). ``kerazoo.training.lifecycle``
and ``kerazoo.serving.exporter`` (``export.staged``) hold the others.
"""

import csv
import io
import os
import signal
import tempfile

import keras
import numpy as np

from kerazoo.training import runs

FAULT_ENV = "KERAZOO_FAULT"
FAULT_POINTS = (
    "run.claimed", "backup.staged", "checkpoint.staged", "run.fitted", "closeout.model_saved",
    "closeout.committed", "closeout.backup_trashed", "closeout.deleting", "closeout.renaming",
    "export.staged",
)
METADATA_FILE = "training_metadata.json"
_fault_hits = {}


def fault_point(name):
    """SIGKILLs this process here when ``KERAZOO_FAULT`` names this point.

    Args:
        name: the point's name (see the module docstring).
    """
    spec = os.environ.get(FAULT_ENV, "")
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_file(path):
    """Flushes a file written by a library (h5py, zipfile) to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_model(model, path):
    """``model.save`` that never leaves a half-written ``.keras`` file at ``path``.

    The model is saved under a temporary name in the same folder, flushed to
    disk and renamed over ``path`` (an atomic rename on POSIX).

    Args:
        model: a Keras model.
        path: the ``.keras`` file to write.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        _fsync_file(tmp)
        fault_point("checkpoint.staged")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` whose ``.keras`` files appear whole or not at all.

    Keras writes the zip in place; a kill mid-write would leave a truncated
    ``best.keras`` that a later resume never replaces when the loss stops
    improving, and the finished run would ship it.
    """

    @property
    def async_safe(self):
        """Saving once per epoch, the batch hook does nothing: it may run off the training thread."""
        return self.save_freq == "epoch"

    def _save_model(self, epoch, batch, logs):
        if self.save_weights_only:
            return super()._save_model(epoch, batch, logs)
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
            save_model(self.model, filepath)


def _seed_states(model):
    """The model's random-generator state variables, by path (dropout masks)."""
    return {v.path: v for v in model.variables if "seed_generator_state" in v.path}


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` with one atomic commit per epoch (see the module docstring).

    The backup folder holds ``state-<epoch>.weights.h5`` (weights and
    optimizer), ``state-<epoch>.rng.npz`` (random-generator states) and
    ``training_metadata.json``, which names them and carries the per-epoch
    logs so the CSV history can be cut back to the committed epochs.

    Args:
        backup_dir: the folder of the backup.
    """

    def __init__(self, backup_dir):
        # The runner deletes the backup itself once the run folder is complete.
        super().__init__(backup_dir, delete_checkpoint=False)
        self.history = []

    @property
    def async_safe(self):
        """Committing once per epoch, the batch hook does nothing: it may run off the training thread."""
        return self.save_freq == "epoch"

    def on_train_begin(self, logs=None):
        # No fallback to a ``.bkp`` copy: a committed state is always whole.
        self._load_model()

    def _load_model(self):
        meta = read_metadata(self.backup_dir)
        if meta is None:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, meta["weights"]))
        with np.load(os.path.join(self.backup_dir, meta["rng"])) as saved:
            for path, variable in _seed_states(self.model).items():
                if path in saved:
                    variable.assign(saved[path])
        self.model._initial_epoch = meta["epoch"]
        self.history = list(meta["history"])

    def on_epoch_end(self, epoch, logs=None):
        self.history = self.history[:epoch] + [{k: float(v) for k, v in (logs or {}).items()}]
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        epoch = self._current_epoch
        weights, rng = f"state-{epoch:06d}.weights.h5", f"state-{epoch:06d}.rng.npz"
        self.model.save_weights(os.path.join(self.backup_dir, weights), overwrite=True)
        _fsync_file(os.path.join(self.backup_dir, weights))
        states = {p: keras.ops.convert_to_numpy(v) for p, v in _seed_states(self.model).items()}
        with open(os.path.join(self.backup_dir, rng), "wb") as f:
            np.savez(f, **states)
            f.flush()
            os.fsync(f.fileno())
        fault_point("backup.staged")
        runs.write_json(os.path.join(self.backup_dir, METADATA_FILE),
                        {"epoch": epoch, "weights": weights, "rng": rng, "history": self.history})
        for name in os.listdir(self.backup_dir):
            if name.startswith("state-") and name not in (weights, rng):
                os.unlink(os.path.join(self.backup_dir, name))


def best_committed(work_dir, monitor="val_loss"):
    """The best ``monitor`` value of the committed epochs (None before any).

    A resumed ``ModelCheckpoint`` starts from it, so it does not overwrite
    ``best.keras`` with a worse model than the one saved before the kill.
    """
    meta = read_metadata(os.path.join(work_dir, "backup"))
    values = [logs[monitor] for logs in (meta or {}).get("history", []) if monitor in logs]
    return min(values) if values else None


def read_metadata(backup_dir):
    """The committed backup state of a run, or None when there is none.

    Args:
        backup_dir: the run's backup folder.

    Returns:
        ``{"epoch", "weights", "rng", "history"}`` or None.
    """
    from kerazoo.training.inputs import read_json

    path = os.path.join(backup_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return None
    meta = read_json(path, "backup metadata", expect=dict)
    if "weights" not in meta:
        raise ValueError(f"{backup_dir} holds a backup of another format; delete the unfinished run and start again")
    problem = _metadata_problem(meta)
    if problem:
        raise ValueError(f"backup metadata {path} is damaged ({problem}); delete the unfinished run and start again")
    return meta


def _metadata_problem(meta):
    """What is wrong with a backup's metadata (it is read back from disk, so it may be edited), or None.

    The state files must be plain names inside the backup folder: a resume
    never reads a file outside its run.
    """
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 2**31:
        return f"epoch {epoch!r} is not a count of epochs"
    for key in ("weights", "rng"):
        name = meta.get(key)
        if not isinstance(name, str) or name in ("", ".", "..") or os.path.basename(name) != name:
            return f"{key} {name!r} is not a state file of the backup folder"
    history = meta.get("history")
    if not isinstance(history, list) or len(history) != epoch or not all(
            isinstance(logs, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in logs.values())
            for logs in history):
        return "its history is not one record of numbers per committed epoch"
    return None


def _history_csv(history):
    """The CSV text ``keras.callbacks.CSVLogger`` writes for these epochs."""
    out = io.StringIO()
    if history:
        keys = sorted(history[0])
        writer = csv.DictWriter(out, fieldnames=["epoch"] + keys, lineterminator="\n")
        writer.writeheader()
        for epoch, logs in enumerate(history):
            writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in keys}})
    return out.getvalue()


def resume_train_dataset(train_ds, work_dir, steps_per_epoch):
    """Prepares a run folder to resume and the training data to match it.

    The history CSV is cut back to (or rebuilt from) the committed epochs:
    a kill after ``CSVLogger`` wrote a row but before the backup committed
    would otherwise leave a check counted twice. The repeating training
    dataset skips the batches the committed epochs consumed, so a resumed
    run sees the same batches as an uninterrupted one (Keras keeps one data
    iterator across epochs when ``steps_per_epoch`` is set).

    Args:
        train_ds: the seeded, repeating training ``tf.data.Dataset``.
        work_dir: the partial run folder.
        steps_per_epoch: batches per Keras epoch (``train.eval_every``).

    Returns:
        The dataset to pass to ``fit``.
    """
    meta = read_metadata(os.path.join(work_dir, "backup"))
    history = os.path.join(work_dir, "history.csv")
    if meta is None:
        if os.path.exists(history):  # rows of a check that never committed
            os.unlink(history)
        return train_ds
    runs.write_text(os.path.join(work_dir, "history.csv"), _history_csv(meta["history"]))
    return train_ds.skip(meta["epoch"] * steps_per_epoch)
