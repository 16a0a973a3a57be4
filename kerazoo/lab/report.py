"""Tables of finished runs, built from their ``metrics.json`` files."""

import os

COLUMNS = [
    ("arch", "arch", "{}"),
    ("params", "params", "{:,}"),
    ("tokenizer", "tokenizer", "{}"),
    ("val bits/byte", "val_bits_per_byte", "{:.4f}"),
    ("val loss (nats/token)", "val_loss", "{:.4f}"),
    ("val perplexity", "val_perplexity", "{:.2f}"),
    ("train tokens/s", "tokens_per_sec", "{:,.0f}"),
    ("train time (s)", "train_seconds", "{:.0f}"),
    ("tokens seen", "tokens_seen", "{:,}"),
    ("backend", "backend", "{}"),
]


def read_metrics(run_dir):
    """Reads a run folder's ``metrics.json``.

    Args:
        run_dir: a finished run folder.

    Returns:
        The metrics dict, with ``run`` set to the folder name.
    """
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir} is not a finished run folder (no metrics.json)")
    from kerazoo.training.inputs import read_json

    metrics = read_json(path, "metrics file", expect=dict)
    metrics["run"] = os.path.basename(os.path.normpath(run_dir))
    return metrics


def _cell(value, fmt):
    return "-" if value is None else fmt.format(value)


def markdown_table(run_dirs):
    """A Markdown table comparing runs.

    Args:
        run_dirs: finished run folders.

    Returns:
        The table as text, one row per run, in the given order.
    """
    rows = [read_metrics(d) for d in run_dirs]
    header = ["run"] + [title for title, _, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in rows:
        cells = [m["run"]] + [_cell(m.get(key), fmt) for _, key, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
