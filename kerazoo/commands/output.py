"""What several commands share: checking and writing an ``--out`` file."""

import os


def emit_table(table, out):
    """Prints a Markdown table and, with ``--out``, writes it there.

    Returns:
        0 (the exit status).
    """
    print(table)
    if out:
        from kerazoo.training.runs import write_text

        write_text(out, table)
    return 0


def check_out(out):
    """Fails early when --out points into a folder that does not exist.

    Raises:
        ValueError: naming the missing folder.
    """
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ValueError(f"--out {out}: folder {os.path.dirname(os.path.abspath(out))} does not exist")
