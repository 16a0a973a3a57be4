"""Masked-LM masking of token windows."""

import tensorflow as tf

def mask_tokens(generator, windows):
    """Applies a ``keras_hub.layers.MaskedLMMaskGenerator`` to a batch of windows.

    Args:
        generator: the mask generator (built with ``mask_selection_length``
            equal to the window length, so its outputs are dense).
        windows: int ``(batch, seq_len)`` tensor of original ids.

    Returns:
        ``(masked_ids, original_ids, weights)``: the model input, the targets
        and float32 weights, 1.0 at the selected positions, else 0.0.
    """
    out = generator(windows)
    seq_len = tf.shape(windows)[1]
    hits = tf.one_hot(out["mask_positions"], seq_len) * tf.cast(out["mask_weights"], tf.float32)[..., None]
    weights = tf.minimum(tf.reduce_sum(hits, axis=1), 1.0)
    return tf.cast(out["token_ids"], tf.int32), windows, weights
