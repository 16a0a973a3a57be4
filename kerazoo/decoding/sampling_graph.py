"""Next-token choice inside an exported graph, with settings per row.

The in-process samplers (``kerazoo.decoding.sampling``) fix the sampler kind when the
loop is compiled. A served model gets its settings in the request instead,
and TF Serving's batching merges requests along the batch axis, so here every
setting is a per-row tensor:

    temperature <= 0     greedy (argmax); otherwise logits / temperature
    top_k <= 0           no top-k cut; otherwise keep the k most likely
    top_p >= 1 or <= 0   no nucleus cut; otherwise keep the smallest set of
                         tokens whose probability reaches top_p

Sampling is the Gumbel-max trick, as in-process. Its noise is a counter-based
hash of (seed, position, token), so a request with the same seed, prompt and
settings gives the same text, whichever other rows share its batch.
"""

import tensorflow as tf

_MASKED = -1e9


def _hash32(x):
    """A 32-bit integer mixer (after Wellons' lowbias32) on int64 lanes.

    Multipliers stay below 2**31 so every product fits in an int64.
    """
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = (x * 0x7FEB352D) & mask
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = (x * 0x6B43A9B5) & mask
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform_noise(seed, index, vocab_size):
    """Uniform draws in (0, 1), one per (row, token), from (seed, index).

    Args:
        seed: int32 ``(batch,)``.
        index: int32 scalar, the position being chosen.
        vocab_size: int, the number of tokens.

    Returns:
        float32 ``(batch, vocab_size)``.
    """
    mask = tf.constant(0xFFFFFFFF, tf.int64)
    row = _hash32(tf.cast(seed, tf.int64) & mask)
    row = _hash32(row ^ tf.cast(index, tf.int64))
    tokens = tf.range(vocab_size, dtype=tf.int64)
    bits = _hash32((row[:, None] * 0x27D4EB2F + tokens[None, :]) & mask)
    return tf.cast((tf.cast(bits, tf.float64) + 0.5) / 2.0**32, tf.float32)


def _cut_top_k(logits, sorted_logits, top_k):
    """Masks logits below each row's k-th largest (rows with top_k <= 0 keep all)."""
    vocab_size = tf.shape(logits)[-1]
    active = (top_k > 0) & (top_k < vocab_size)
    kth = tf.gather(sorted_logits, tf.clip_by_value(top_k - 1, 0, vocab_size - 1), batch_dims=1)
    cut = active[:, None] & (logits < kth[:, None])
    return tf.where(cut, _MASKED, logits), tf.where(active[:, None] & (sorted_logits < kth[:, None]), _MASKED, sorted_logits)


def _cut_top_p(logits, sorted_logits, top_p):
    """Keeps the smallest set of tokens whose probability reaches top_p."""
    active = (top_p > 0) & (top_p < 1)
    probs = tf.nn.softmax(sorted_logits, axis=-1)
    # A token is kept while the mass before it is below top_p, so the most
    # likely token always is.
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    n_kept = tf.maximum(tf.reduce_sum(tf.cast(mass_before < top_p[:, None], tf.int32), axis=-1), 1)
    threshold = tf.gather(sorted_logits, n_kept - 1, batch_dims=1)
    return tf.where(active[:, None] & (logits < threshold[:, None]), _MASKED, logits)


def _sample(logits, temperature, top_k, top_p, seed, index):
    """Gumbel-max sampling of the rows' filtered, tempered logits."""
    scaled = logits / tf.maximum(temperature, 1e-6)[:, None]
    sorted_logits = tf.sort(scaled, axis=-1, direction="DESCENDING")
    scaled, sorted_logits = _cut_top_k(scaled, sorted_logits, top_k)
    scaled = _cut_top_p(scaled, sorted_logits, top_p)
    gumbel = -tf.math.log(-tf.math.log(uniform_noise(seed, index, tf.shape(logits)[-1])))
    return tf.argmax(scaled + gumbel, axis=-1, output_type=tf.int32)


def next_token(logits, temperature, top_k, top_p, seed, index):
    """Chooses one token per row under that row's settings.

    Args:
        logits: float32 ``(batch, vocab)``.
        temperature: float32 ``(batch,)``; <= 0 means greedy.
        top_k: int32 ``(batch,)``; <= 0 means no top-k cut.
        top_p: float32 ``(batch,)``; outside (0, 1) means no nucleus cut.
        seed: int32 ``(batch,)``.
        index: int32 scalar, the position being chosen.

    Returns:
        int32 ``(batch,)``.
    """
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sampling = temperature > 0
    # A batch of greedy rows skips the sort and the noise altogether.
    return tf.cond(
        tf.reduce_any(sampling),
        lambda: tf.where(sampling, _sample(logits, temperature, top_k, top_p, seed, index), greedy),
        lambda: greedy,
    )
