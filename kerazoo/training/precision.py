"""Mixed precision: the Keras dtype policy a model is built under, and its loss scaling.

Under ``mixed_bfloat16`` and ``mixed_float16`` layers compute in 16 bits and
keep float32 variables; the models' logits layers are pinned to float32, so
the loss and the decoding samplers see float32 either way.
"""

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy(name):
    """Builds the layers created inside under a Keras dtype policy.

    Layers keep the policy they were built with (and save it in their
    config), so the global policy is restored on exit: a float32 model built
    later in the same process stays float32.

    Args:
        name: ``"float32"``, ``"mixed_bfloat16"`` or ``"mixed_float16"``.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def scale_loss(optimizer, name):
    """Wraps the optimizer in Keras' dynamic loss scaling where it is needed.

    float16 gradients of small losses underflow to zero; bfloat16 has
    float32's exponent range and needs no scaling.

    Args:
        optimizer: a Keras optimizer.
        name: the dtype policy name.

    Returns:
        ``keras.optimizers.LossScaleOptimizer(optimizer)`` for
        ``mixed_float16``, else ``optimizer``.
    """
    if name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
