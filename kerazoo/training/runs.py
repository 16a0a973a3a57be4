"""Run folders: where a training run writes, atomically.

A run is written into ``runs/.<name>.partial/`` and renamed to ``runs/<name>``
only when everything is in place, so a folder named after a run is always
complete. A crash leaves only the hidden partial folder, which ``--resume``
continues (Keras' ``BackupAndRestore`` state lives there).
"""

import json
import os
import shutil
import tempfile


def partial_dir(runs_dir, name):
    """The hidden folder a run writes into until it is finished."""
    return os.path.join(runs_dir, f".{name}.partial")


def lock_path(runs_dir, name):
    """The lock file of a run name (``kerazoo.training.locks``): next to, not inside, the folder that gets renamed."""
    return os.path.join(runs_dir, f".{name}.lock")


def trash_dir(work_dir):
    """Where a run's ``backup/`` goes (one atomic rename) before it is deleted."""
    return os.path.join(work_dir, ".backup.trash")


def check_runs_dir(runs_dir, name):
    """Fails before any training when the run could not be published.

    Args:
        runs_dir: the runs folder (created later if missing).
        name: the run name.

    Raises:
        ValueError: ``runs_dir`` is not a folder or not writable, or
            ``runs_dir/<name>`` is a dangling symbolic link (a rename onto it
            would fail only after the whole training).
    """
    if os.path.lexists(runs_dir) and not os.path.isdir(runs_dir):
        raise ValueError(f"--runs-dir {runs_dir} is not a folder")
    if os.path.isdir(runs_dir) and not os.access(runs_dir, os.W_OK | os.X_OK):
        raise ValueError(f"--runs-dir {runs_dir} is not writable (permission denied)")
    target = os.path.join(runs_dir, name)
    if os.path.islink(target) and not os.path.exists(target):
        raise ValueError(f"{target} is a symbolic link to {os.readlink(target)!r}, which does not exist; "
                         "remove the link or create its target")


def final_dir(runs_dir, name):
    """The first free ``runs/<name>``, ``runs/<name>-2``, ... (never overwrites; a dangling link counts as taken)."""
    candidate, n = os.path.join(runs_dir, name), 1
    while os.path.lexists(candidate):
        n += 1
        candidate = os.path.join(runs_dir, f"{name}-{n}")
    return candidate


def _umask():
    """The process umask (reading it means setting it, so set it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj):
    """Writes JSON atomically: a temporary file in the same folder, then a rename."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path, text):
    """Writes text atomically (temporary file, fsync, rename)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
    """Writes bytes atomically: a temporary file in the same folder, fsync, then a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, path, dpi=100):
    """Saves a matplotlib figure as PNG atomically and closes it.

    Args:
        fig: the figure.
        path: the PNG file.
        dpi: resolution.

    Returns:
        ``path``.
    """
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())  # a half-written PNG never takes the final name
    return path


def finish(work_dir, runs_dir, name):
    """Renames a completed partial folder to its final name.

    Args:
        work_dir: the partial folder.
        runs_dir: the runs folder.
        name: the run name.

    Returns:
        The final folder path.
    """
    target = final_dir(runs_dir, name)
    os.replace(work_dir, target)
    return target


def discard(path):
    """Removes a folder if it exists."""
    shutil.rmtree(path, ignore_errors=True)


def remove_tree(path, after_each=None):
    """Deletes a folder file by file, bottom up; safe to call again after a kill midway.

    Args:
        path: the folder (missing: nothing to do).
        after_each: called after each file is deleted (a fault point).
    """
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            os.unlink(os.path.join(folder, name))
            if after_each:
                after_each()
        os.rmdir(folder)


def sweep_temporaries(work_dir):
    """Deletes the temporary files a killed writer left in a run folder.

    ``write_bytes`` and ``checkpointing.save_model`` write ``.tmp-*`` files
    and the tokenizer writes ``.tokenizer.tmp-*`` folders; a SIGKILL before
    their rename leaves them behind. Only the run's own process (holding the
    run's lock) calls this, so none of them belongs to a live writer.

    Args:
        work_dir: the partial run folder.

    Returns:
        The paths removed.
    """
    removed = []
    for folder, dirs, files in os.walk(work_dir):
        for name in files + dirs:
            if name.startswith(".") and ".tmp-" in name:
                path = os.path.join(folder, name)
                remove_tree(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if os.path.isdir(os.path.join(folder, d))]
    return removed


def resolve_tokenizer_path(path):
    """A tokenizer folder, or the ``tokenizer/`` folder inside a run folder.

    Args:
        path: a tokenizer folder or a run folder.

    Returns:
        The tokenizer folder.
    """
    inner = os.path.join(path, "tokenizer")
    return inner if os.path.isdir(inner) else path


def load_run(path):
    """Loads the model of a run folder (or a ``.keras`` file), in safe mode.

    Args:
        path: a run folder or a ``.keras`` file.

    Returns:
        The ``keras.Model``, carrying its tokenizer.

    Raises:
        ValueError: no model there, or it cannot be loaded.
    """
    import keras

    # Registers the zoo's layers, models and tokenizers with Keras before loading.
    import kerazoo.models  # noqa: F401
    import kerazoo.text  # noqa: F401

    from kerazoo.training.inputs import check_keras_archive

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.lexists(file) or os.path.isdir(file):
        raise ValueError(f"no model found at {path} (expected a run folder with model.keras, or a .keras file)")
    check_keras_archive(file)
    try:
        model = keras.saving.load_model(file, safe_mode=True, compile=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        # TypeError / AttributeError: a config naming a class that is not a
        # Keras object (Keras calls its from_config or constructor blindly).
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load {file}: {first_line}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"cannot load {file}: it holds a {type(model).__name__}, not a Keras model")
    return model
