"""The position rule and the end-token cut, written once for every loop.

The rule, at each position ``index`` of every row:

- a row still inside its prompt keeps its prompt token (it is forced);
- a finished row gets padding;
- a row finishes after choosing the end token, or at its last position.

The XLA loops, the PyTorch loop, the exported graph's loop and beam search
all apply ``choose``; the new ids of a row are cut at its first end token by
``new_token_mask``.
"""

from keras import ops

from kerazoo.text.special import PAD_ID


def choose(chosen, current, forced, done, index, row_end, eos_id, where=ops.where):
    """Applies the position rule to the sampled tokens of position ``index``.

    Written with operators and one ``where``, so the same rule runs on
    ``keras.ops`` tensors (XLA loops, the TF graph) and on plain torch
    tensors (the eager PyTorch loop, which passes ``torch.where`` to skip
    Keras' per-op dispatch).

    Args:
        chosen: int32 ``(batch,)``, the sampler's tokens.
        current: int32 ``(batch,)``, the buffer's tokens at ``index``.
        forced: bool ``(batch,)``, whether ``index`` is inside the row's prompt.
        done: bool ``(batch,)``, rows already finished.
        index: the position (an int or a scalar tensor).
        row_end: int32 ``(batch,)``, each row's end position (exclusive).
        eos_id: the end token (-1: never stop at one).
        where: ``where(condition, x, y)`` of the tensors' framework.

    Returns:
        ``(tokens, done)``: the tokens to write at ``index`` and the rows
        finished after it.
    """
    chosen = where(forced, current, chosen)
    chosen = where(done, PAD_ID, chosen)
    finished = ~forced & (chosen == eos_id)
    return chosen, done | finished | (index + 1 >= row_end)


def new_token_mask(tokens, lengths, row_end, eos_id):
    """Which buffer positions hold a row's new ids: after its prompt, before its end token.

    Args:
        tokens: int32 ``(batch, width)``, the decoded buffer.
        lengths: int32 ``(batch,)``, prompt lengths.
        row_end: int32 ``(batch,)``, each row's end position (exclusive).
        eos_id: the end token.

    Returns:
        bool ``(batch, width)`` (a ``keras.ops`` tensor).
    """
    tokens = ops.convert_to_tensor(tokens, "int32")
    lengths = ops.convert_to_tensor(lengths, "int32")
    row_end = ops.convert_to_tensor(row_end, "int32")
    positions = ops.arange(ops.shape(tokens)[1], dtype="int32")[None, :]
    generated = ops.logical_and(positions >= lengths[:, None], positions < row_end[:, None])
    at_end = ops.cast(ops.logical_and(generated, ops.equal(tokens, eos_id)), "int32")
    ended = ops.cumsum(at_end, axis=1) > 0
    return ops.logical_and(ops.logical_and(generated, ops.logical_not(ended)), ops.not_equal(tokens, PAD_ID))


def new_ids(tokens, lengths, row_end, eos_id, rows=None):
    """The new ids of each row, up to (not including) its end token, as lists.

    Args:
        tokens, lengths, row_end, eos_id: as for ``new_token_mask``.
        rows: the first rows to return (all when None).

    Returns:
        A list of lists of ints.
    """
    tokens = ops.convert_to_numpy(tokens)
    keep = ops.convert_to_numpy(new_token_mask(tokens, lengths, row_end, eos_id))
    rows = len(tokens) if rows is None else rows
    return [tokens[r][keep[r]].tolist() for r in range(rows)]
