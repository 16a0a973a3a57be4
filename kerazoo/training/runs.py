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


def final_dir(runs_dir, name):
    """The first free ``runs/<name>``, ``runs/<name>-2``, ... (never overwrites)."""
    candidate, n = os.path.join(runs_dir, name), 1
    while os.path.exists(candidate):
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

    file = os.path.join(path, "model.keras") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise ValueError(f"no model found at {path} (expected a run folder with model.keras, or a .keras file)")
    try:
        return keras.saving.load_model(file, safe_mode=True, compile=False)
    except (OSError, ValueError, KeyError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load {file}: {first_line}") from None
