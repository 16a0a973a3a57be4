"""The cached-LM protocol: what a model provides to be decoded.

Every decoding loop (the XLA loops of ``loop_xla``, the PyTorch loop of
``loop_torch``, the exported graph's loop of ``loop_graph`` and beam search)
talks to a model only through these methods, and finds out what it can do
from the classes it declares, never by probing attributes:

    init_cache(batch, length)              -> cache
    call_with_cache(ids, cache, index)     -> (logits, cache)    the step
    prefill(ids, cache)                    -> cache
    prefills_prompt                        Transformers: True; RNNs: False

The step runs ``ids`` (``(batch, t)``) at positions ``index ...`` and writes
their keys and values (or the new state) into the cache: a whole-cache
write is the special case of a chunk that starts at ``index``. A model
whose ``prefills_prompt`` is True fills its cache for the first positions of
the prompt buffer in one ``prefill`` pass, and the loop starts after them;
one that is False carries a state that must step through every prompt
token, and the loop starts at position 1.

``ChunkedLM`` adds the chunked step of the compiled XLA loop: the loop carries
a small chunk of the cache and only reads the big one (see
``loop_xla.chunked_loop_fn``).
"""


class CachedLM:
    """A causal LM decodable with a cache (a mix-in that declares the protocol).

    Attributes:
        prefills_prompt: whether ``prefill`` consumes the prompt (Transformers)
            or leaves the cache as it is (state-carrying RNNs, which step
            through their prompt).
    """

    prefills_prompt = True

    def init_cache(self, batch_size, length):
        """An empty cache for ``batch_size`` rows of ``length`` positions.

        Args:
            batch_size: rows decoded together.
            length: positions the cache holds (ignored by recurrent models).

        Returns:
            The cache (a tensor or a tuple of tensors, batch first).
        """
        raise NotImplementedError(f"{type(self).__name__} makes no empty cache")

    def call_with_cache(self, token_ids, cache, index):
        """The step: runs ``token_ids`` at positions ``index ...``, writing the cache.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: from ``init_cache`` (or a previous step).
            index: position of ``token_ids[:, 0]`` (int or scalar tensor).

        Returns:
            ``(logits, cache)``: float32 ``(batch, t, vocab)`` and the cache
            with positions ``index ... index + t - 1`` written.
        """
        raise NotImplementedError

    def prefill(self, token_ids, cache):
        """Fills the cache for a whole (padded) prompt buffer in one pass.

        Positions past a row's prompt hold keys of padding; decoding rewrites
        each of them before any later position can attend to it. Models that
        do not prefill (``prefills_prompt`` False) return ``cache`` unchanged.

        Args:
            token_ids: int tensor ``(batch, t)``, positions ``0 ... t - 1``.
            cache: from ``init_cache``.

        Returns:
            The filled cache.
        """
        if not self.prefills_prompt:
            return cache
        _, cache = self.call_with_cache(token_ids, cache, 0)
        return cache

    def torch_step(self, rows=1):
        """The step for the eager PyTorch loop (the plain step unless overridden).

        Args:
            rows: the batch it will decode.

        Returns:
            ``step(token_ids, cache, index) -> (logits, cache)``.
        """
        return self.call_with_cache


class ChunkedLM(CachedLM):
    """A ``CachedLM`` whose step can write into a chunk of its cache.

    The compiled XLA loop decodes such models chunk by chunk: it reads a
    chunk (``read_chunk``), steps into it (``call_with_chunk``) while only
    reading the cache, and writes it back once per chunk (``write_chunk``).
    """

    def read_chunk(self, cache, start, size):
        """The cache's positions ``start ... start + size - 1`` (a cache of ``size`` positions)."""
        raise NotImplementedError

    def write_chunk(self, cache, chunk, start):
        """The cache with ``chunk`` written back at position ``start``."""
        raise NotImplementedError

    def call_with_chunk(self, token_ids, cache, chunk, index, start, weights=None):
        """The step writing into ``chunk`` (which starts at ``start``) and reading ``cache``.

        Args:
            token_ids: int tensor ``(batch, t)``.
            cache: the cache, valid for positions before ``start``.
            chunk: from ``read_chunk(cache, start, size)``.
            index: position of ``token_ids[:, 0]``; ``index + t <= start + size``.
            start: first position of the chunk.
            weights: ``decode_weights()``, made once outside the token loop.

        Returns:
            ``(logits, chunk)``.
        """
        raise NotImplementedError

    def decode_weights(self):
        """Weights re-laid out for the chunked step, made once per decoding call (None: none)."""
        return None
