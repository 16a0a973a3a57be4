"""The sampler noise: a counter-based hash of (seed, position, token).

Every sampler in the zoo (in-process on TensorFlow, JAX and PyTorch, and the
exported graph) draws its Gumbel noise from ``uniform_noise`` below, written
once in ``keras.ops`` (on PyTorch the integer steps use the tensors' own
operators, see ``_Words``). The noise is a pure function of the integers
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


class _Words:
    """The integer primitives of the hash, on the current backend's words.

    On PyTorch they are the tensors' own operators: the hash is some twenty
    elementwise operations per sampled token, and Keras' per-op dispatch in
    eager PyTorch cost more than the arithmetic. Elsewhere they are
    ``keras.ops`` with constants of the word dtype (so JAX keeps uint32).
    Both compute the same values.
    """

    def __init__(self):
        self.dtype = word_dtype()
        self.native = keras.backend.backend() == "torch"

    def const(self, value):
        return value if self.native else ops.convert_to_tensor(value, dtype=self.dtype)

    def xor(self, a, b):
        return a ^ b if self.native else ops.bitwise_xor(a, b)

    def shift(self, x, bits):
        return x >> bits if self.native else ops.right_shift(x, self.const(bits))

    def mul(self, x, c):
        """``x * c`` mod 2**32 (uint32 products already wrap)."""
        if self.native:
            return (x * c) & _MASK
        product = ops.multiply(x, self.const(c))
        return product if self.dtype == "uint32" else ops.bitwise_and(product, self.const(_MASK))

    def add(self, a, b):
        """``a + b`` mod 2**32."""
        if self.native:
            return (a + b) & _MASK
        total = ops.add(a, b)
        return total if self.dtype == "uint32" else ops.bitwise_and(total, self.const(_MASK))

    def of(self, x):
        """``x`` (any int tensor) as words: its value mod 2**32."""
        x = ops.cast(x, self.dtype)
        if self.dtype == "uint32":
            return x
        return x & _MASK if self.native else ops.bitwise_and(x, self.const(_MASK))


def _mix(w, x):
    """lowbias32 of words ``x``."""
    x = w.xor(x, w.shift(x, 16))
    x = w.mul(x, _MIX[0])
    x = w.xor(x, w.shift(x, 15))
    x = w.mul(x, _MIX[1])
    return w.xor(x, w.shift(x, 16))


def hash32(x):
    """The lowbias32 mixer of 32-bit words.

    Args:
        x: a tensor of ``word_dtype()`` holding values in ``[0, 2**32)``.

    Returns:
        A tensor of the same shape and dtype, values in ``[0, 2**32)``.
    """
    return _mix(_Words(), x)


def uniform_noise(seeds, index, vocab_size):
    """Uniform draws in (0, 1), one per (row, token), from (seed, index, token).

    Args:
        seeds: int32 ``(rows,)``, each row's seed (any int32; taken mod ``2**32``).
        index: int32 scalar, the position being chosen.
        vocab_size: int, the number of tokens (static).

    Returns:
        float32 ``(rows, vocab_size)``, identical on every backend.
    """
    w = _Words()
    row = _mix(w, w.of(seeds))
    row = _mix(w, w.xor(row, w.of(index)))
    tokens = ops.arange(vocab_size, dtype=w.dtype)
    spread = w.mul(row, _TOKEN_STRIDE)
    bits = _mix(w, w.add(spread[:, None], tokens[None, :]))
    odd = ops.cast(w.shift(bits, 32 - _KEPT_BITS), "float32") * 2.0 + 1.0
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
    return ops.bitwise_and(ops.cast(seed, "int32") + offsets, ops.convert_to_tensor(0x7FFFFFFF, dtype="int32"))
