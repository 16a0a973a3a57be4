"""The optimizer and compile settings every training task shares.

AdamW with a linear warm-up then cosine decay (``make_optimizer``), the
``jit_compile`` a recipe asks for (``jit_compile_for``), and the pre-build of
the optimizer's variables before ``fit`` (``build_optimizer``).
"""

import keras

from kerazoo.training import precision

# AdamW's second-moment decay. 0.99 rather than Keras' 0.999: small models on
# small corpora train more stably with it (nanoGPT's choice as well).
ADAM_BETA_2 = 0.99


def make_optimizer(t):
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio``.

    Args:
        t: the recipe's ``TrainSection``.

    Returns:
        A ``keras.optimizers.AdamW`` (wrapped for loss scaling under
        ``mixed_float16``).
    """
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if t.warmup_steps else t.learning_rate,
        decay_steps=t.steps - t.warmup_steps,
        alpha=t.min_lr_ratio,
        warmup_target=t.learning_rate if t.warmup_steps else None,
        warmup_steps=t.warmup_steps,
    )
    # Keras' ``clipnorm`` clips each weight's gradient by its own norm;
    # ``global_clipnorm`` clips all of them by their joint norm, as nanoGPT's
    # ``grad_clip`` (torch's ``clip_grad_norm_``) does. The joint clip is also
    # the cheaper one on PyTorch, where each per-weight clip is several eager ops.
    clip = {"global_clipnorm" if t.clip_global else "clipnorm": t.clipnorm or None}
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=t.weight_decay,
        beta_2=ADAM_BETA_2,
        **clip,
    )
    # Decay matrices only: decaying biases and LayerNorm scales hurts and is
    # not what GPT-2 / nanoGPT do.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return precision.scale_loss(optimizer, t.precision)


def jit_compile_for(t, xla_when_auto=True):
    """The ``jit_compile`` to give ``model.compile`` for ``train.jit_compile``.

    An explicit ``true`` / ``false`` is passed on. ``"auto"`` compiles a
    causal LM's train step with XLA on TensorFlow and JAX. Keras' own
    ``"auto"`` turns XLA off for TensorFlow on a machine without a GPU;
    kerazoo's models compile under XLA (their decoding loops already do), and
    the main job (``recipes/pydocs_gpt.toml``) trains faster on a CPU with XLA
    than without, to the same loss. The other tasks (``xla_when_auto=False``:
    classify buckets its batches by length, so XLA would compile once per
    bucket; seq2seq and masked LM are not measured under XLA on TensorFlow
    yet), a distribution strategy on TensorFlow, and PyTorch (where ``True``
    means ``torch.compile``) keep Keras' choice.

    Args:
        t: the recipe's ``TrainSection``.
        xla_when_auto: whether ``"auto"`` means XLA (on TensorFlow and JAX) for this task.

    Returns:
        ``True``, ``False`` or ``"auto"`` (Keras decides).
    """
    if t.jit_compile != "auto":
        return t.jit_compile
    backend = keras.backend.backend()
    if backend == "torch" or not xla_when_auto:
        return "auto"
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return "auto"
    return True


def build_optimizer(model):
    """Creates the optimizer's variables now, before ``fit`` traces its train step.

    Keras' TensorFlow trainer leaves this to the first trace of the train step
    when no distribution strategy is set; ``tf.function`` then sees variables
    created during tracing and traces the whole step a second time (half of a
    tiny run's start-up). Building here is what Keras itself does under a
    strategy. It also gives a resumed run optimizer variables for
    ``BackupAndRestore`` to restore into before the first step.

    Args:
        model: a compiled, built model.
    """
    if model.built and model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
