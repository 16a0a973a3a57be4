"""Prompt/response exchanges for instruction tuning (``[task] kind = "sft"``).

    read_exchanges(source, prompt_column, response_column)  -> list of (prompt, response)
    exchange_arrays(tokenizer, exchanges, seq_len)          -> x, y (labels only on the response), cut count
    sft_dataset(x, y, batch_size, ...)                      -> tf.data of (x, y) batches

The chat template itself (role tokens, where ``</s>`` goes) is
``kerazoo.text.chat``; here rows become training arrays. Labels outside the
response are ``<pad>``, which the loss ignores (``ignore_class``), so the
model learns to answer, not to write prompts.
"""

import csv
import io

import numpy as np
import tensorflow as tf

from kerazoo.data import readers, windows
from kerazoo.text import chat
from kerazoo.text.special import EOS_ID, PAD_ID

# Rows tokenized per call.
TOKENIZE_BATCH = 256


def _headerless(path, columns):
    """Columns of a header-less CSV / TSV, named by 1-based position; rows keep their line numbers."""
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    rows = [row for row in csv.reader(io.StringIO(readers.read_text_file(path)), delimiter=delimiter, quoting=quoting)]
    width = max((len(r) for r in rows), default=0)
    index = []
    for column in columns:
        if not column.isdigit() or not 1 <= int(column) <= width:
            raise ValueError(f"{path}: column '{column}' not found; with data.header = false, columns are named "
                             f"by position: {', '.join(str(i) for i in range(1, width + 1))}")
        index.append(int(column) - 1)
    return [tuple(row[i] if i < len(row) else "" for i in index) for row in rows if row]


def read_exchanges(source, prompt_column="prompt", response_column="response", header=True, prompt_format="{}"):
    """Reads prompt/response rows; every row must have a response.

    Args:
        source: a ``.tsv`` / ``.csv`` / ``.jsonl`` file, or a built-in pair
            corpus (``builtin:docstrings``, ``builtin:pydocs-reverse``).
        prompt_column: the column (or JSON field) of the prompt.
        response_column: the column (or JSON field) of the response.
        header: whether a CSV / TSV starts with a header row.
        prompt_format: the instruction around each prompt, ``{}`` standing for
            it (``"Translate to French: {}"``).

    Returns:
        A list of ``(prompt, response)`` strings, in file order.

    Raises:
        ValueError: missing file or column, an empty response (naming its row), no rows.
    """
    if "{}" not in prompt_format:
        raise ValueError(f"task.prompt_format must contain {{}} where the prompt goes, got {prompt_format!r}")
    if source.startswith(readers.BUILTIN_PREFIX):
        from kerazoo.data.pairs import read_pairs

        rows = read_pairs(source)
    else:
        rows = []
        for path in readers.expand_source(source):
            lower, columns = path.lower(), [prompt_column, response_column]
            if lower.endswith((".jsonl", ".ndjson")):
                part = readers.read_jsonl(path, columns)
            elif lower.endswith((".csv", ".tsv")):
                part = readers.read_table(path, columns) if header else _headerless(path, columns)
            else:
                raise ValueError(f"{path}: exchanges come from .tsv, .csv or .jsonl files, not '{path.rsplit('.', 1)[-1]}'")
            for i, (prompt, response) in enumerate(part, start=1):
                if not response.strip():
                    raise ValueError(f"{path}: row {i} has an empty response ('{response_column}'); "
                                     "every exchange needs one to learn from")
            rows += part
    if not rows:
        raise ValueError(f"{source} holds no prompt/response rows")
    return [(prompt_format.replace("{}", p.strip()), r.strip()) for p, r in rows]


def exchange_arrays(tokenizer, exchanges, seq_len):
    """Training arrays of exchanges in the chat template, loss on the responses only.

    Each row is ``</s> <|user|> prompt <|assistant|> response </s>``; inputs
    are all but its last id, labels all but its first, and labels outside
    the response (and its closing ``</s>``) are ``<pad>`` (ignored by the
    loss). A row longer than ``seq_len + 1`` loses the start of its prompt,
    then the end of its response.

    Args:
        tokenizer: a ``kerazoo.text.chat.ChatTokenizer``.
        exchanges: ``(prompt, response)`` pairs.
        seq_len: the model's window.

    Returns:
        ``(x, y, cut)``: int32 ``(n, seq_len)`` inputs and labels (padded with
        ``<pad>``), and how many rows were cut.
    """
    n = len(exchanges)
    x = np.full((n, seq_len), PAD_ID, np.int32)
    y = np.full((n, seq_len), PAD_ID, np.int32)
    cut = 0
    for start in range(0, n, TOKENIZE_BATCH):
        chunk = exchanges[start:start + TOKENIZE_BATCH]
        prompts = windows.as_id_lists(tokenizer.tokenize(tf.constant([p for p, _ in chunk])))
        responses = windows.as_id_lists(tokenizer.tokenize(tf.constant([r for _, r in chunk])))
        for row, (p, r) in enumerate(zip(prompts, responses), start=start):
            room = seq_len + 1 - 4  # </s>, the two role tokens, the closing </s>
            r = r[:max(room - 1, 1)]  # keep at least one prompt id
            p = p[-(room - len(r)):] if room - len(r) > 0 else []
            cut += len(p) + len(r) < len(prompts[row - start]) + len(responses[row - start])
            ids, is_response = chat.exchange_ids(tokenizer, p, r)
            ids = np.concatenate([[EOS_ID], ids])[: seq_len + 1]
            is_response = np.concatenate([[False], is_response])[: seq_len + 1]
            labels = np.where(is_response[1:], ids[1:], PAD_ID)
            x[row, : len(ids) - 1] = ids[:-1]
            y[row, : len(ids) - 1] = labels
    return x, y, cut


def sft_dataset(x, y, batch_size, shuffle=True, seed=0, repeat=False):
    """Batches of ``(x, y)`` rows as ``tf.data``; reshuffled each pass when ``shuffle``."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
