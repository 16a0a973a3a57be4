"""The decoding plan: buffer shapes, buckets, packing and the prefill.

Written once for every loop (XLA, PyTorch, the exported graph, beam search):

    tokens   (batch, width)  prompt ids, right-padded; new ids are written in place
    prefill  a model that prefills (``CachedLM.prefills_prompt``) fills its
             cache for the positions before ``prefill_positions(lengths)``
             in one pass; a recurrent model fills nothing
    loop     starts at ``first_index(filled)``, one position per step

In-process loops are compiled per shape, so lengths and batches are
bucketed; the exported graph runs any shape and fills exactly
``prefill_positions`` positions (in chunks of static sizes).
"""

import numpy as np

from kerazoo.text.special import PAD_ID

# Lengths are rounded up to a multiple of this, so nearby lengths share one
# compiled function; batches are rounded up to a power of two.
LENGTH_BUCKET = 64
# Positions per chunk of the chunked loop (see loop_xla.chunked_loop_fn);
# divides LENGTH_BUCKET, so caches are already whole chunks unless the
# context is not.
CHUNK = 32
# The chunked loop attends over cache prefixes of multiples of this width
# (see visible_widths) when it decodes fewer than FINE_VISIBLE_MIN_ROWS rows,
# and of CHUNK from that many rows up; coarser where that would make more
# than MAX_VISIBLE_WIDTHS widths (each one is compiled).
VISIBLE_BUCKET = 128
FINE_VISIBLE_MIN_ROWS = 4
MAX_VISIBLE_WIDTHS = 16


def round_up(n, multiple):
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def batch_bucket(n):
    """The smallest power of two >= n."""
    return 1 << max(0, (n - 1).bit_length())


def buffer_width(model, lengths, max_new_tokens):
    """The token-buffer length for prompts of ``lengths``: bucketed, within the context."""
    width = round_up(int(max(lengths)) + max_new_tokens, LENGTH_BUCKET)
    limit = getattr(model, "max_length", None)
    return width if limit is None else min(width, limit)


def prefill_positions(shortest):
    """The positions a prefilling model must fill before the loop: ``shortest - 1``.

    The loop's first step runs position ``shortest - 1`` (the last prompt
    token of the shortest row) and then every later one, rewriting the cache
    there (a row still inside its longer prompt copies its prompt tokens),
    so the prefill needs only the positions before it.

    Args:
        shortest: the shortest prompt length (an int or a scalar tensor).

    Returns:
        The number of positions, of the same kind.
    """
    return shortest - 1


def first_index(model, filled):
    """The first position the loop chooses, after ``filled`` prefilled positions.

    Args:
        model: a ``CachedLM``.
        filled: positions its prefill wrote (an int or a scalar tensor).

    Returns:
        ``filled + 1`` for a prefilling model, else 1 (a recurrent state
        steps through the whole prompt).
    """
    return filled + 1 if model.prefills_prompt else 1


def prefill_width(lengths, width):
    """How many leading positions the in-process prefill runs: bucketed, 0 for none.

    ``prefill_positions`` rounded up to ``LENGTH_BUCKET`` (the prefill is
    compiled per width), so at least those positions: a one-token prompt (a
    start token, or the bench's) needs no prefill at all.

    Args:
        lengths: prompt lengths (each at least 1).
        width: the token buffer's length.

    Returns:
        A multiple of ``LENGTH_BUCKET`` (or ``width``), at least
        ``min(lengths) - 1``.
    """
    return min(round_up(prefill_positions(int(min(lengths))), LENGTH_BUCKET), width)


def pack_prompts(prompts, rows, width):
    """Right-pads prompts into a token buffer and a mask of prompt positions.

    Args:
        prompts: list of lists of ids.
        rows: buffer rows (at least ``len(prompts)``); extra rows copy row 0.
        width: buffer length.

    Returns:
        ``(tokens, mask)``: int32 and bool numpy arrays ``(rows, width)``.
    """
    tokens = np.full((rows, width), PAD_ID, np.int32)
    mask = np.zeros((rows, width), bool)
    for row, ids in enumerate(prompts):
        tokens[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    tokens[len(prompts):], mask[len(prompts):] = tokens[0], mask[0]
    return tokens, mask


def visible_widths(cache_width, rows=1):
    """The static cache prefixes the chunked loop attends over.

    Each width is one compiled inner loop (a branch of an ``ops.switch``),
    and a chunk attends over the shortest one that holds every earlier
    position, reading the cache up to that width on every token. For a few
    rows the cache is small enough to stay in a CPU's cache, and coarse
    widths keep compilation short. From ``FINE_VISIBLE_MIN_ROWS`` rows the
    cache streams from memory on every token, so widths step by ``CHUNK``:
    each chunk reads exactly the positions before it (measured faster at
    batch 16 for a few seconds more compilation; at batch 1 the gain was
    within noise, so few rows keep the coarse widths). Widths are widened
    (in steps of ``CHUNK``) where there would be more than
    ``MAX_VISIBLE_WIDTHS`` of them, which bounds the compile time of long
    contexts.

    Args:
        cache_width: positions the cache holds.
        rows: rows decoded together (the batch bucket).

    Returns:
        Increasing widths, the last one ``cache_width``.
    """
    step = CHUNK if rows >= FINE_VISIBLE_MIN_ROWS else VISIBLE_BUCKET
    step = max(step, round_up(-(-cache_width // MAX_VISIBLE_WIDTHS), CHUNK))
    return [w for w in range(step, cache_width, step)] + [cache_width]


def cache_width(chunked, width):
    """The positions the cache of a ``width`` buffer holds: whole chunks for a chunked loop."""
    return round_up(width, CHUNK) if chunked else width
