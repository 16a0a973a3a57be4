"""Cached decoding in-process: one compiled loop per (model, shape bucket, sampler).

The flow for a batch of prompts of different lengths (the plan is
``kerazoo.decoding.plan``):

    tokens   (batch, width)  prompt ids, right-padded; new ids are written in place
    prefill  one pass over the first prompt positions fills the cache
             (models whose ``prefills_prompt`` is True: Transformers)
    loop     each iteration runs ONE position through the model with its
             cache, picks the next token and applies the position rule

The loop is compiled once per shape bucket: ``tf.function(jit_compile=True)``
on TensorFlow, ``jax.jit`` on JAX (``loop_xla``). On PyTorch it runs eagerly,
written in plain torch (``loop_torch``): no graph compiler is needed for a
single-token step to be cheap once the prefix is cached, but Keras' per-op
dispatch is. Models take part by declaring the cached-LM protocol
(``kerazoo.decoding.protocol``).

This module also re-exports the planning names its callers have always
imported from here (``batch_bucket``, ``buffer_width``, ``prefill_width``,
``pack_prompts``, ``visible_widths`` and the bucket constants).
"""

import keras
import numpy as np
from keras import ops

from kerazoo.decoding import loop_xla, positions
from kerazoo.decoding.compiler import compile_fn, compiled_for, inference
from kerazoo.decoding.plan import (  # noqa: F401  (re-exported)
    CHUNK,
    FINE_VISIBLE_MIN_ROWS,
    LENGTH_BUCKET,
    MAX_VISIBLE_WIDTHS,
    VISIBLE_BUCKET,
    batch_bucket,
    buffer_width,
    cache_width,
    first_index,
    pack_prompts,
    prefill_width,
    visible_widths,
)
from kerazoo.text.special import EOS_ID


def chunked(model):
    """Whether the in-process loop decodes ``model`` chunk by chunk.

    Compiled (XLA) loops only: eager PyTorch updates the cache in place anyway.
    """
    return loop_xla.is_chunked(model) and keras.backend.backend() != "torch"


def loop_fn(model, spec, eos_id=EOS_ID):
    """The decoding loop for one model and sampler: XLA's, or plain torch on PyTorch."""
    if keras.backend.backend() == "torch":
        from kerazoo.decoding import loop_torch

        return loop_torch.loop_fn(model, spec, eos_id)
    return loop_xla.loop_fn(model, spec, eos_id)


def compiled(model, spec, key, stop_at_eos=True):
    """The compiled (prefill, loop) pair for a model, sampler and shape bucket.

    Args:
        model: a ``CachedLM``.
        spec: the ``SamplerSpec``.
        key: ``(rows, width, prefill width)``.
        stop_at_eos: whether rows end at the end token.

    Returns:
        ``(prefill, loop)``, compiled for the current backend.
    """
    per_model = compiled_for(model)
    full_key = (keras.backend.backend(), spec.kind, spec.top_k if spec.kind == "top_k" else None, stop_at_eos) + key
    if full_key not in per_model:
        loop = loop_fn(model, spec, EOS_ID if stop_at_eos else -1)
        rows = key[0]
        prefill = lambda tokens, cache: model.prefill(tokens, cache)  # noqa: E731
        per_model[full_key] = (compile_fn(model, prefill, rows), compile_fn(model, loop, rows))
    return per_model[full_key]


class DecodeState:
    """A batch being decoded: host-side buffers plus the device cache.

    Args:
        model: a causal LM declaring the cached-LM protocol (``CachedLM``).
        prompts: list of lists of prompt ids (each non-empty).
        max_new_tokens: new tokens per row at most.
        spec: the ``SamplerSpec``.
        seed: sampler seed (row ``r`` samples with ``seed + r``).
        stop_at_eos: end a row at the end token (benchmarks turn it off to
            decode a fixed number of tokens).
        cache_fn: ``cache_fn(batch, length) -> cache`` making the initial
            cache instead of ``model.init_cache`` (a seq2seq model's holds
            its encoded sources; see ``kerazoo.inference.translate``).
    """

    def __init__(self, model, prompts, max_new_tokens, spec, seed=0, stop_at_eos=True, cache_fn=None):
        self.model, self.spec = model, spec
        self.n_rows = len(prompts)
        self.lengths = np.array([len(p) for p in prompts], np.int32)
        batch = batch_bucket(self.n_rows)
        self.width = width = buffer_width(model, self.lengths, max_new_tokens)
        self.prompt_width = prefill_width(self.lengths, width) if model.prefills_prompt else 0
        # Rows added to fill the batch bucket copy row 0 and are dropped later.
        tokens, mask = pack_prompts(prompts, batch, width)
        filler = np.full(batch - self.n_rows, self.lengths[0], np.int32)
        self.row_start = lengths = np.concatenate([self.lengths, filler])
        self.row_end = np.minimum(lengths + max_new_tokens, width).astype(np.int32)
        self.prefill, self.loop = compiled(model, spec, (batch, width, self.prompt_width), stop_at_eos)
        self.tokens = ops.convert_to_tensor(tokens)
        self.mask = ops.convert_to_tensor(mask)
        self.done = ops.convert_to_tensor(lengths >= self.row_end)
        cache = (cache_fn or model.init_cache)(batch, cache_width(chunked(model), width))
        if self.prompt_width:
            cache = self.prefill(ops.slice(self.tokens, [0, 0], [batch, self.prompt_width]), cache)
        # The prefill wrote at least the positions before the shortest prompt's last token.
        self.index = first_index(model, int(self.lengths.min()) - 1)
        self.cache = cache
        self.params = [
            ops.convert_to_tensor(np.float32(spec.temperature)),
            ops.convert_to_tensor(np.float32(spec.top_p)),
            ops.convert_to_tensor(np.int32(seed or 0)),
        ]

    @property
    def finished(self):
        return self.index >= self.width or bool(np.all(ops.convert_to_numpy(self.done)))

    def advance(self, steps=None):
        """Runs the compiled loop for up to ``steps`` positions (all if None)."""
        stop = self.width if steps is None else min(self.width, self.index + steps)
        with inference():
            self.tokens, self.cache, self.done, index = self.loop(
                self.tokens, self.mask, ops.convert_to_tensor(self.row_end), self.cache, self.done,
                ops.convert_to_tensor(np.int32(self.index)), ops.convert_to_tensor(np.int32(stop)),
                *self.params,
            )
        self.index = int(ops.convert_to_numpy(index))

    def new_ids(self):
        """The new ids of each real row, up to (not including) its end token."""
        return positions.new_ids(self.tokens, self.row_start, self.row_end, EOS_ID, self.n_rows)
