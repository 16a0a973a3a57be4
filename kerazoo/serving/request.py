"""The optional inputs of a served generate request: stop strings and beams, in graph ops.

Both inputs have defaults stored in the SignatureDef (``stop`` ``[[""]]``,
``num_beams`` ``[1]``): TF Serving fills an input a request leaves out from
them (``GetInputValues`` in TensorFlow's ``cc/saved_model/util.cc``), so a
request written for the signature without them stays valid. A default is
one row, so any input given with one row applies to every prompt
(``per_row``).

    stop        string (batch, k): each row's stop strings, "" = none; the
                text ends before the first occurrence of any of them, as
                in-process ``kerazoo.generate(stop=...)``
    num_beams   int32 (batch,): <= 1 decodes with the row's sampler; 2 ...
                MAX_BEAMS is beam search; larger is clamped to MAX_BEAMS
"""

import tensorflow as tf

# The most beams a request gets: each beam count is one search traced into the graph.
MAX_BEAMS = 4
DEFAULTS = {"stop": [[""]], "num_beams": [1]}


def per_row(values, rows, fill):
    """``values`` with one entry per row: row ``i`` takes entry ``min(i, n - 1)``.

    A one-row input (a default) thus applies to every row, and a request
    whose inputs disagree on the batch is answered rather than failed.

    Args:
        values: a tensor whose first axis holds the rows' entries.
        rows: int32 scalar, the batch.
        fill: the entry used when ``values`` has no rows.

    Returns:
        ``values`` with ``rows`` entries on its first axis.
    """
    fill = tf.cast(tf.fill(tf.concat([[1], tf.shape(values)[1:]], 0), fill), values.dtype)
    values = tf.cond(tf.shape(values)[0] > 0, lambda: values, lambda: fill)
    return tf.gather(values, tf.minimum(tf.range(rows), tf.shape(values)[0] - 1))


def beams(num_beams, rows):
    """Per-row beam counts clamped into ``[1, MAX_BEAMS]``."""
    return tf.clip_by_value(per_row(tf.cast(num_beams, tf.int32), rows, 1), 1, MAX_BEAMS)


def cut_at_stop(texts, stop, valid_utf8):
    """Each text up to (not including) the first occurrence of any of its row's stop strings.

    Args:
        texts: string ``(batch,)``.
        stop: string ``(rows, k)``; empty strings are no stop.
        valid_utf8: the function making stop strings valid UTF-8.

    Returns:
        string ``(batch,)``.
    """
    rows = tf.shape(texts)[0]
    stop = valid_utf8(per_row(tf.reshape(stop, [tf.shape(stop)[0], -1]), rows, ""))
    k = tf.shape(stop)[1]

    def first_piece(pair):
        text, sep = pair
        return tf.cond(tf.strings.length(sep) > 0,
                       lambda: tf.strings.split(text, sep=sep, maxsplit=1)[0], lambda: text)

    pieces = tf.map_fn(first_piece, (tf.repeat(texts, k), tf.reshape(stop, [-1])), fn_output_signature=tf.string)
    # Every piece is a prefix of its text, so the shortest ends at the first stop.
    pieces = tf.concat([texts[:, None], tf.reshape(pieces, [rows, k])], axis=1)
    shortest = tf.argmin(tf.strings.length(pieces), axis=1, output_type=tf.int32)
    return tf.gather(pieces, shortest, batch_dims=1)


def by_beams(beam_counts, run, empty):
    """Runs ``run(rows, k)`` on the rows of each beam count and stitches the outputs.

    Args:
        beam_counts: int32 ``(batch,)`` from ``beams``.
        run: ``run(row_indices, k) -> {name: tensor with a row per index}``;
            ``k`` is 1 (the row's sampler) or a beam count.
        empty: ``{name: tensor with no rows}``, the outputs of a count no
            row asks for (its search is skipped, not run on no rows).

    Returns:
        ``{name: tensor (batch, ...)}`` in row order.
    """
    rows = tf.shape(beam_counts)[0]
    parts = tf.dynamic_partition(tf.range(rows), beam_counts - 1, MAX_BEAMS)
    outputs = [
        tf.cond(tf.size(index) > 0, lambda index=index, k=k: run(index, k), lambda: empty)
        for k, index in enumerate(parts, start=1)
    ]
    return {name: tf.dynamic_stitch(parts, [o[name] for o in outputs]) for name in empty}
