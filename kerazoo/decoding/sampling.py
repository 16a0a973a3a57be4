"""Next-token selection inside the compiled decoding loop.

Every sampler here is written with ``keras.ops`` on a batch of logits, so it
runs inside ``tf.function``, ``jax.jit`` and eager PyTorch alike. Sampling uses
the Gumbel-max trick, ``argmax(logits / T + Gumbel noise)``, which draws
exactly from ``softmax(logits / T)``. Its noise is ``kerazoo.decoding.noise``:
a counter-based hash of ``(seed, position, token)``, the same on every
backend and in the exported graph, so a seed gives the same text everywhere,
and the loop carries no random-generator state (Keras' ``SeedGenerator``
would have to be threaded through ``jax.jit`` by hand).
"""

import dataclasses

from keras import ops

from kerazoo.decoding import noise

SAMPLERS = ("greedy", "temperature", "top_k", "top_p", "beam")
# The value of a masked logit (the exported graph's samplers use the same).
MASKED = -1e9


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

    Row ``r`` draws ``noise.uniform_noise`` with seed ``seed + r`` (see
    ``noise.row_seeds``).

    Args:
        shape: static ``(rows, vocab)``.
        seed: int32 scalar tensor.
        index: int32 scalar tensor (the decoding position).

    Returns:
        A float32 tensor of ``shape``.
    """
    rows, vocab_size = shape
    return noise.uniform_noise(noise.row_seeds(seed, rows), index, vocab_size)


def mass_before(sorted_probs):
    """The probability mass before each token of a descending sort.

    Written once for the in-process and the served samplers, so both round
    the same way.
    """
    return ops.cumsum(sorted_probs, axis=-1) - sorted_probs


def _mask_top_k(logits, k):
    """Keeps the ``k`` largest logits of each row; the rest become -inf."""
    k = min(k, logits.shape[-1])
    kth = ops.top_k(logits, k)[0][:, -1:]
    return ops.where(logits < kth, MASKED, logits)


def _mask_top_p(logits, top_p):
    """Keeps the smallest set of logits whose probabilities reach ``top_p``."""
    sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)
    probs = ops.softmax(sorted_logits, axis=-1)
    # A token is kept if the mass before it is still below top_p, so the most
    # likely token is always kept.
    kept = ops.cast(mass_before(probs) < top_p, "int32")
    n_kept = ops.maximum(ops.sum(kept, axis=-1, keepdims=True), 1)
    threshold = ops.take_along_axis(sorted_logits, n_kept - 1, axis=-1)
    return ops.where(logits < threshold, MASKED, logits)


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
    rows, vocab_size = logits.shape
    gumbel = noise.gumbel(noise.row_seeds(seed, rows), index, vocab_size)
    return ops.cast(ops.argmax(logits + gumbel, axis=-1), "int32")
