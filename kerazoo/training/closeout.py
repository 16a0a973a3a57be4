"""A run's close-out after its commit: the steps that finish a trained, evaluated run.

``metrics.json`` (``COMMIT_FILE``) is written last of a run's files; once it
and ``history.json`` are in the partial folder, only ``close_out`` remains,
and every step of it is atomic and safe to repeat after a SIGKILL.
"""

import os

from kerazoo.training import checkpointing
from kerazoo.training import runs

# Written last of a run's files: a partial folder holding it has finished
# training and evaluation, and only the idempotent close-out steps remain.
COMMIT_FILE = "metrics.json"


def close_out(work_dir, runs_dir, name):
    """The steps after the close-out commit: each one atomic, and the whole safe to repeat.

    ``backup/`` is renamed aside first (a kill during a plain ``rmtree``
    leaves a backup whose metadata names deleted files), then deleted file
    by file; debris of killed writers is swept; the folder is renamed.

    Args:
        work_dir: the partial folder, its ``metrics.json`` written.
        runs_dir: the runs folder.
        name: the run name.

    Returns:
        The final folder path.
    """
    backup, trash = os.path.join(work_dir, "backup"), runs.trash_dir(work_dir)
    if os.path.isdir(backup):
        runs.remove_tree(trash)  # a trash from an earlier close-out killed midway
        os.rename(backup, trash)
        checkpointing.fault_point("closeout.backup_trashed")
    runs.remove_tree(trash, after_each=lambda: checkpointing.fault_point("closeout.deleting"))
    runs.sweep_temporaries(work_dir)
    checkpointing.fault_point("closeout.renaming")
    return runs.finish(work_dir, runs_dir, name)


def committed(work_dir):
    """Whether a partial folder's close-out was committed.

    ``history.json`` too: kerazoo before this order wrote ``metrics.json``
    before ``history.json`` and the artifacts, so a folder of that version
    killed between them is resumed the long way (evaluated again).

    Args:
        work_dir: the partial folder.

    Returns:
        True when only the steps of ``close_out`` remain.
    """
    return all(os.path.isfile(os.path.join(work_dir, f)) for f in (COMMIT_FILE, "history.json"))
