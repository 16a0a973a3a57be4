"""The sampler noise: a counter-based hash of (seed, position, token).

Every sampler in the zoo (in-process on TensorFlow, JAX and PyTorch, and the
exported graph) draws its Gumbel noise from ``uniform_noise`` below, written
once in ``keras.ops``. The noise is a pure function of the integers
``(seed, index, token id)``, with no random-generator state and no float
arithmetic until the last, exact conversion, so a seed gives the same noise
bit for bit on every backend, and a served request the same noise whichever
other rows share its batch.

The hash is Wellons' ``lowbias32`` integer mixer. Its words are uint32 on
JAX (whose int64 needs the x64 flag) and int64 masked to 32 bits on
TensorFlow and PyTorch (which lack uint32 products and shifts): both compute
the same 32-bit values, because every multiplier is below ``2**31`` and so
every int64 product of a 32-bit word stays below ``2**63``.
"""

import keras
from keras import ops

_MASK = 0xFFFFFFFF
_MIX = (0x7FEB352D, 0x6B43A9B5)
# Spreads a row's hash before the token id is added (odd, below 2**31).
_TOKEN_STRIDE = 0x27D4EB2F
# The uniform draw keeps 23 bits of the hash: (2k + 1) / 2**24 is exact in
# float32 (2k + 1 < 2**24) and lies strictly inside (0, 1).
_KEPT_BITS = 23


def word_dtype():
    """The integer dtype the hash computes in on the current backend."""
    return "uint32" if keras.backend.backend() == "jax" else "int64"


def _const(value, dtype):
    return ops.convert_to_tensor(value, dtype=dtype)


def _wrap(x, dtype):
    """``x`` mod 2**32 (a no-op for uint32, whose products already wrap)."""
    return x if dtype == "uint32" else ops.bitwise_and(x, _const(_MASK, dtype))


def _xorshift(x, bits, dtype):
    return ops.bitwise_xor(x, ops.right_shift(x, _const(bits, dtype)))


def hash32(x):
    """The lowbias32 mixer of 32-bit words.

    Args:
        x: a tensor of ``word_dtype()`` holding values in ``[0, 2**32)``.

    Returns:
        A tensor of the same shape and dtype, values in ``[0, 2**32)``.
    """
    dtype = word_dtype()
    x = _xorshift(x, 16, dtype)
    x = _wrap(ops.multiply(x, _const(_MIX[0], dtype)), dtype)
    x = _xorshift(x, 15, dtype)
    x = _wrap(ops.multiply(x, _const(_MIX[1], dtype)), dtype)
    return _xorshift(x, 16, dtype)


def uniform_noise(seeds, index, vocab_size):
    """Uniform draws in (0, 1), one per (row, token), from (seed, index, token).

    Args:
        seeds: int32 ``(rows,)``, each row's seed (non-negative).
        index: int32 scalar, the position being chosen.
        vocab_size: int, the number of tokens (static).

    Returns:
        float32 ``(rows, vocab_size)``, identical on every backend.
    """
    dtype = word_dtype()
    row = hash32(_wrap(ops.cast(seeds, dtype), dtype))
    row = hash32(ops.bitwise_xor(row, ops.cast(index, dtype)))
    tokens = ops.arange(vocab_size, dtype=dtype)
    spread = _wrap(ops.multiply(row, _const(_TOKEN_STRIDE, dtype)), dtype)
    bits = hash32(_wrap(ops.add(spread[:, None], tokens[None, :]), dtype))
    kept = ops.right_shift(bits, _const(32 - _KEPT_BITS, dtype))
    odd = ops.cast(kept, "float32") * 2.0 + 1.0
    return odd / float(2 ** (_KEPT_BITS + 1))


def gumbel(seeds, index, vocab_size):
    """Gumbel(0, 1) noise ``-log(-log(u))`` of ``uniform_noise``.

    Args:
        seeds, index, vocab_size: as for ``uniform_noise``.

    Returns:
        float32 ``(rows, vocab_size)``.
    """
    return -ops.log(-ops.log(uniform_noise(seeds, index, vocab_size)))


def row_seeds(seed, rows):
    """The seeds of ``rows`` rows decoded in-process with one ``seed``.

    Row ``r`` samples with ``seed + r`` (mod ``2**31``): rows of one call get
    different noise (a batch of one prompt repeated gives different
    samples), and row ``r`` gives the text a served request with seed
    ``seed + r`` gives.

    Args:
        seed: int32 scalar.
        rows: int, the batch size (static).

    Returns:
        int32 ``(rows,)``.
    """
    offsets = ops.arange(rows, dtype="int32")
    return ops.bitwise_and(ops.cast(seed, "int32") + offsets, _const(0x7FFFFFFF, "int32"))
