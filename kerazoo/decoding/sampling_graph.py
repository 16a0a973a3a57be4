"""Next-token choice inside an exported graph, with settings per row.

The in-process samplers (``kerazoo.decoding.sampling``) fix the sampler kind when the
loop is compiled. A served model gets its settings in the request instead,
and TF Serving's batching merges requests along the batch axis, so here every
setting is a per-row tensor:

    temperature <= 0     greedy (argmax); otherwise logits / temperature
    top_k <= 0           no top-k cut; otherwise keep the k most likely
    top_p >= 1 or <= 0   no nucleus cut; otherwise keep the smallest set of
                         tokens whose probability reaches top_p

Sampling is the Gumbel-max trick, as in-process, with the same noise
(``kerazoo.decoding.noise``, a counter-based hash of (seed, position,
token)): a request with the same seed, prompt and settings gives the same
text whichever other rows share its batch, and the same text as in-process
``generate`` with that seed on any backend. The graph is traced on the
TensorFlow backend, where the ``keras.ops`` of the shared pieces are TF ops.
"""

import tensorflow as tf

from kerazoo.decoding import noise
from kerazoo.decoding.sampling import MASKED as _MASKED
from kerazoo.decoding.sampling import mass_before


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
    before = mass_before(probs)
    n_kept = tf.maximum(tf.reduce_sum(tf.cast(before < top_p[:, None], tf.int32), axis=-1), 1)
    threshold = tf.gather(sorted_logits, n_kept - 1, batch_dims=1)
    return tf.where(active[:, None] & (logits < threshold[:, None]), _MASKED, logits)


def _sample(logits, temperature, top_k, top_p, seed, index):
    """Gumbel-max sampling of the rows' filtered, tempered logits."""
    scaled = logits / tf.maximum(temperature, 1e-6)[:, None]
    sorted_logits = tf.sort(scaled, axis=-1, direction="DESCENDING")
    scaled, sorted_logits = _cut_top_k(scaled, sorted_logits, top_k)
    scaled = _cut_top_p(scaled, sorted_logits, top_p)
    gumbel = noise.gumbel(seed, index, logits.shape[-1])
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
