"""Next-token selection inside the compiled decoding loop.

Every sampler here is written with ``keras.ops`` on a batch of logits, so it
runs inside ``tf.function``, ``jax.jit`` and eager PyTorch alike. Sampling uses
the Gumbel-max trick, ``argmax(logits / T + Gumbel noise)``, which draws
exactly from ``softmax(logits / T)``. Its noise is a pure function of
``(seed, position)``, so a seeded generation is reproducible and the loop
carries no random-generator state (Keras' ``SeedGenerator`` would have to be
threaded through ``jax.jit`` by hand, and Keras' random functions do not take
a traced seed).
"""

import dataclasses

import keras
from keras import ops

SAMPLERS = ("greedy", "temperature", "top_k", "top_p", "beam")
# Smallest uniform draw: keeps -log(-log(u)) finite.
_TINY = 1e-7


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """How the next token is chosen.

    Attributes:
        kind: ``greedy``, ``temperature``, ``top_k``, ``top_p`` or ``beam``.
        temperature: softmax temperature of the sampling kinds.
        top_k: candidates kept by ``top_k``.
        top_p: probability mass kept by ``top_p`` (nucleus sampling).
        num_beams: beams of ``beam``.
    """

    kind: str = "greedy"
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.9
    num_beams: int = 4

    def validate(self):
        """Raises ValueError on an unknown kind or an impossible setting."""
        if self.kind not in SAMPLERS:
            raise ValueError(f"unknown sampler '{self.kind}'; valid: {', '.join(SAMPLERS)}")
        if self.kind != "greedy" and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.kind == "top_k" and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.kind == "top_p" and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.kind == "beam" and self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        return self


def uniform_noise(shape, seed, index):
    """Uniform draws in (0, 1) that depend only on ``(seed, index)``.

    Args:
        shape: static output shape.
        seed: int32 scalar tensor.
        index: int32 scalar tensor (the decoding position).

    Returns:
        A float32 tensor of ``shape``.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, seed=tf.stack([seed, index]), minval=_TINY, maxval=1.0)
    if backend == "jax":
        import jax

        key = jax.random.fold_in(jax.random.key(seed), index)
        return jax.random.uniform(key, shape, minval=_TINY, maxval=1.0)
    if backend == "torch":
        import torch

        generator = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(index))
        noise = torch.rand(shape, generator=generator) * (1.0 - _TINY) + _TINY
        return ops.convert_to_tensor(noise)
    raise ValueError(f"sampling is not supported on the '{backend}' backend")


def _mask_top_k(logits, k):
    """Keeps the ``k`` largest logits of each row; the rest become -inf."""
    k = min(k, logits.shape[-1])
    kth = ops.top_k(logits, k)[0][:, -1:]
    return ops.where(logits < kth, -1e9, logits)


def _mask_top_p(logits, top_p):
    """Keeps the smallest set of logits whose probabilities reach ``top_p``."""
    sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)
    probs = ops.softmax(sorted_logits, axis=-1)
    # A token is kept if the mass before it is still below top_p, so the most
    # likely token is always kept.
    mass_before = ops.cumsum(probs, axis=-1) - probs
    kept = ops.cast(mass_before < top_p, "int32")
    n_kept = ops.maximum(ops.sum(kept, axis=-1, keepdims=True), 1)
    threshold = ops.take_along_axis(sorted_logits, n_kept - 1, axis=-1)
    return ops.where(logits < threshold, -1e9, logits)


def next_token(logits, spec, temperature, top_p, seed, index):
    """Chooses one token per row.

    Args:
        logits: float32 ``(batch, vocab)``.
        spec: the ``SamplerSpec`` (its kind and ``top_k`` are static).
        temperature: float32 scalar tensor.
        top_p: float32 scalar tensor.
        seed: int32 scalar tensor.
        index: int32 scalar tensor, the position being chosen.

    Returns:
        int32 ``(batch,)``.
    """
    if spec.kind in ("greedy", "beam"):
        return ops.cast(ops.argmax(logits, axis=-1), "int32")
    logits = logits / temperature
    if spec.kind == "top_k":
        logits = _mask_top_k(logits, spec.top_k)
    elif spec.kind == "top_p":
        logits = _mask_top_p(logits, top_p)
    gumbel = -ops.log(-ops.log(uniform_noise(tuple(logits.shape), seed, index)))
    return ops.cast(ops.argmax(logits + gumbel, axis=-1), "int32")
