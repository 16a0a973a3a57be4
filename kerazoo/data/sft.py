"""Prompt/response exchanges for instruction tuning (``[task] kind = "sft"``).

    exchange_rows(source, prompt_column, response_column)   -> (prompt, response) rows, streamed
    read_exchanges(...)                                     -> the same as a list (small sets, tests)
    exchange_row(tokenizer, prompt_ids, response_ids, ...)  -> one row's x, y (labels only on the response)
    exchange_arrays(tokenizer, exchanges, seq_len)          -> x, y of many rows, cut count
    sft_dataset(x, y, batch_size, ...)                      -> tf.data of (x, y) batches (in memory)
    store_dataset(source, target, tokenizer, seq_len, ...)  -> the same batches from a row store

Training reads a row store (``kerazoo.data.rows``, as seq2seq does: source =
the formatted prompt, target = the response), never a whole list.

The chat template itself (role tokens, where ``</s>`` goes) is
``kerazoo.text.chat``; here rows become training arrays. Labels outside the
response are ``<pad>``, which the loss ignores (``ignore_class``), so the
model learns to answer, not to write prompts.
"""

import numpy as np
import tensorflow as tf

from kerazoo.data import readers, row_datasets, windows
from kerazoo.data import sources as sources_lib
from kerazoo.text import chat
from kerazoo.text.special import EOS_ID, PAD_ID

# Rows tokenized per call.
TOKENIZE_BATCH = 256


def exchange_rows(source, prompt_column="prompt", response_column="response", header=True, prompt_format="{}"):
    """Streams prompt/response rows, one at a time; every row must have a response.

    Args:
        source: ``.tsv`` / ``.csv`` / ``.jsonl`` files (a file, folder or
            glob, each possibly compressed), or a built-in pair corpus
            (``builtin:docstrings``, ``builtin:pydocs-reverse``; small,
            generated in memory).
        prompt_column: the column (or JSON field) of the prompt.
        response_column: the column (or JSON field) of the response.
        header: whether a CSV / TSV starts with a header row (else columns
            are named "1", "2", ... by position).
        prompt_format: the instruction around each prompt, ``{}`` standing for
            it (``"Translate to French: {}"``).

    Yields:
        ``(prompt, response)``: the stripped prompt in ``prompt_format``, the stripped response.

    Raises:
        ValueError: a missing file or column, another format, an empty
            response (naming its file and row).
    """
    if "{}" not in prompt_format:
        raise ValueError(f"task.prompt_format must contain {{}} where the prompt goes, got {prompt_format!r}")
    if source.startswith(readers.BUILTIN_PREFIX):
        from kerazoo.data.pairs import read_pairs

        rows = ((None, 0, p, r) for p, r in read_pairs(source))
    else:
        rows = _file_exchanges(readers.expand_source(source), [prompt_column, response_column], header)
    for path, i, prompt, response in rows:
        if path and not response.strip():
            raise ValueError(f"{path}: row {i} has an empty response ('{response_column}'); "
                             "every exchange needs one to learn from")
        yield prompt_format.replace("{}", prompt.strip()), response.strip()


def _file_exchanges(paths, columns, header):
    for path in paths:
        if sources_lib.base_suffix(path) not in (".jsonl", ".ndjson", ".csv", ".tsv"):
            raise ValueError(f"{path}: exchanges come from .tsv, .csv or .jsonl files, not '{path.rsplit('.', 1)[-1]}'")
        for i, (prompt, response) in enumerate(sources_lib.file_rows(path, columns, header), start=1):
            yield path, i, prompt, response


def read_exchanges(source, prompt_column="prompt", response_column="response", header=True, prompt_format="{}"):
    """``exchange_rows`` as a list, in file order (for small sets; training streams them).

    Raises:
        ValueError: as ``exchange_rows``, and a source with no rows.
    """
    rows = list(exchange_rows(source, prompt_column, response_column, header, prompt_format))
    if not rows:
        raise ValueError(f"{source} holds no prompt/response rows")
    return rows


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
            cut += exchange_row(tokenizer, p, r, seq_len, x[row], y[row])
    return x, y, cut


def exchange_row(tokenizer, prompt_ids, response_ids, seq_len, x_row, y_row):
    """Writes one exchange's inputs and labels into ``x_row`` / ``y_row`` (``exchange_arrays`` for one row).

    Args:
        tokenizer: a ``ChatTokenizer``.
        prompt_ids, response_ids: the tokenized prompt and response.
        seq_len: the model's window.
        x_row, y_row: int32 ``(seq_len,)`` rows filled with ``<pad>``.

    Returns:
        True when the exchange was cut to fit.
    """
    room = seq_len + 1 - 4  # </s>, the two role tokens, the closing </s>
    r = response_ids[:max(room - 1, 1)]  # keep at least one prompt id
    p = prompt_ids[-(room - len(r)):] if room - len(r) > 0 else []
    ids, is_response = chat.exchange_ids(tokenizer, p, r)
    ids = np.concatenate([[EOS_ID], ids])[: seq_len + 1]
    is_response = np.concatenate([[False], is_response])[: seq_len + 1]
    x_row[: len(ids) - 1] = ids[:-1]
    y_row[: len(ids) - 1] = np.where(is_response[1:], ids[1:], PAD_ID)
    return len(p) + len(r) < len(prompt_ids) + len(response_ids)


def cut_and_response_tokens(prompt_lengths, response_lengths, seq_len):
    """How many exchanges ``exchange_row`` cuts, and the response tokens it labels (``</s>`` included).

    From the token counts alone (a row store's offsets index), no ids read.
    """
    room = seq_len + 1 - 4
    kept = np.minimum(response_lengths, max(room - 1, 1))
    cut = (kept < response_lengths) | (prompt_lengths > np.maximum(room - kept, 0))
    return int(cut.sum()), int((kept + 1).sum())


def store_arrays(source, target, tokenizer, seq_len, start, stop):
    """``exchange_arrays`` of the stored rows ``[start, stop)`` (``RowField`` prompts and responses)."""
    prompts, responses = source.rows(start, stop), target.rows(start, stop)
    x = np.full((len(prompts), seq_len), PAD_ID, np.int32)
    y = np.full((len(prompts), seq_len), PAD_ID, np.int32)
    for row, (p, r) in enumerate(zip(prompts, responses)):
        exchange_row(tokenizer, p.tolist(), r.tolist(), seq_len, x[row], y[row])
    return x, y


def store_dataset(source, target, tokenizer, seq_len, batch_size, shuffle=True, seed=0, repeat=False, n_rows=None):
    """``sft_dataset`` over a row store: rows read by index, each built by ``exchange_row``.

    Args:
        source, target: the split's prompt and response ``RowField``.
        tokenizer: the ``ChatTokenizer`` the ids come from.
        seq_len: the model's window.
        batch_size: exchanges per batch (the last partial batch dropped when ``repeat``).
        shuffle, seed, repeat: see ``row_datasets.row_indices`` (the order
            ``sft_dataset`` gives the same rows in memory).
        n_rows: use only the first ``n_rows`` rows.

    Returns:
        A ``tf.data.Dataset`` of ``(x, y)`` int32 ``(batch, seq_len)`` batches.
    """
    n = len(source) if n_rows is None else min(n_rows, len(source))

    def fetch(rows):
        x = np.full((len(rows), seq_len), PAD_ID, np.int32)
        y = np.full((len(rows), seq_len), PAD_ID, np.int32)
        for k, i in enumerate(rows):
            exchange_row(tokenizer, source.row(int(i)).tolist(), target.row(int(i)).tolist(), seq_len, x[k], y[k])
        return x, y

    def read(rows):
        x, y = tf.numpy_function(fetch, [rows], (tf.int32, tf.int32), stateful=False)
        return tf.ensure_shape(x, [None, seq_len]), tf.ensure_shape(y, [None, seq_len])

    ds = row_datasets.row_indices(n, shuffle, seed, repeat).batch(batch_size, drop_remainder=repeat)
    return ds.map(read).prefetch(tf.data.AUTOTUNE)


def sft_dataset(x, y, batch_size, shuffle=True, seed=0, repeat=False):
    """Batches of ``(x, y)`` rows as ``tf.data``; reshuffled each pass when ``shuffle``."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)
