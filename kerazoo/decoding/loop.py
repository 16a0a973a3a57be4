"""Cached decoding: one compiled loop per (model, shape bucket, sampler).

The flow for a batch of prompts of different lengths:

    tokens   (batch, total)  prompt ids, right-padded; new ids are written in place
    prefill  one pass over the prompt buffer fills the KV cache (Transformers)
    loop     ``ops.while_loop``: each iteration runs ONE position through the
             model with its cache (a KV cache, or an RNN's state), picks the
             next token, and writes it unless that position is still prompt

A row whose prompt is longer than ``start`` simply copies its own prompt
tokens until it reaches its end, so rows of any length share one loop. The
loop is compiled once per shape bucket: ``tf.function(jit_compile=True)`` on
TensorFlow, ``jax.jit`` on JAX. On PyTorch it runs eagerly, written in plain
torch (``decoding_torch``): no graph compiler is needed for a single-token
step to be cheap once the prefix is cached, but Keras' per-op dispatch is.

Models with ``read_chunk`` / ``call_with_chunk`` / ``write_chunk`` (``gpt``)
are decoded by the chunked loop of ``_chunked_loop_fn`` under XLA, which
does not rewrite the whole cache per token.

Models take part by providing ``init_cache(batch, length)``,
``call_with_cache(token_ids, cache, index) -> (logits, cache)`` and
``prefill(token_ids, cache) -> cache``; ``prefills`` tells whether the
prefill consumes the prompt (Transformers) or not (RNNs, which step through it).
"""

import contextlib
import weakref

import keras
import numpy as np
from keras import ops

from kerazoo.decoding import sampling
from kerazoo.text.special import EOS_ID, PAD_ID

# Lengths are rounded up to a multiple of this, so nearby lengths share one
# compiled function; batches are rounded up to a power of two.
LENGTH_BUCKET = 64
# Positions per chunk of the chunked loop (see _chunked_loop_fn); divides
# LENGTH_BUCKET, so caches are already whole chunks unless the context is not.
CHUNK = 32
# The chunked loop attends over cache prefixes of multiples of this width
# (see visible_widths) when it decodes fewer than FINE_VISIBLE_MIN_ROWS rows,
# and of CHUNK from that many rows up; coarser where that would make more
# than MAX_VISIBLE_WIDTHS widths (each one is compiled).
VISIBLE_BUCKET = 128
FINE_VISIBLE_MIN_ROWS = 4
MAX_VISIBLE_WIDTHS = 16

_COMPILED = weakref.WeakKeyDictionary()


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


def batch_bucket(n):
    """The smallest power of two >= n."""
    return 1 << max(0, (n - 1).bit_length())


def _prefills(model):
    """Whether the model's prefill consumes the prompt (Transformers do)."""
    return getattr(model, "max_length", None) is not None


def _choose(model_logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id):
    """Picks position ``index`` of every row and writes it into ``tokens``.

    A row still inside its prompt keeps its prompt token; a finished row
    gets padding.

    Returns:
        ``(tokens, done)``.
    """
    temperature, top_p, seed = params
    batch = tokens.shape[0]
    chosen = sampling.next_token(model_logits[:, 0, :], spec, temperature, top_p, seed, index)
    forced = ops.slice(prompt_mask, [0, index], [batch, 1])[:, 0]
    current = ops.slice(tokens, [0, index], [batch, 1])[:, 0]
    chosen = ops.where(forced, current, chosen)
    chosen = ops.where(done, ops.zeros_like(chosen) + PAD_ID, chosen)
    tokens = ops.slice_update(tokens, [0, index], chosen[:, None])
    finished = ops.logical_and(ops.logical_not(forced), ops.equal(chosen, eos_id))
    done = ops.logical_or(done, ops.logical_or(finished, index + 1 >= row_end))
    return tokens, done


def _chunked(model):
    """Whether the loop decodes into small chunks (see ``_chunked_loop_fn``).

    Compiled (XLA) loops only: eager PyTorch updates the cache in place anyway.
    """
    return hasattr(model, "call_with_chunk") and keras.backend.backend() != "torch"


def _loop_fn(model, spec, eos_id=EOS_ID):
    """The decoding loop for one model and sampler, in keras.ops (plain torch on PyTorch)."""
    if keras.backend.backend() == "torch":
        from kerazoo.decoding import loop_torch as decoding_torch

        return decoding_torch.loop_fn(model, spec, eos_id)
    if _chunked(model):
        return _chunked_loop_fn(model, spec, eos_id)

    def run(tokens, prompt_mask, row_end, cache, done, index, stop_index, *params):
        batch = tokens.shape[0]

        def cond(tokens, cache, done, index):
            return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

        def body(tokens, cache, done, index):
            previous = ops.slice(tokens, [0, index - 1], [batch, 1])
            logits, cache = model.call_with_cache(previous, cache, index - 1)
            tokens, done = _choose(logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id)
            return tokens, cache, done, index + 1

        return ops.while_loop(cond, body, (tokens, cache, done, index))

    return run


def visible_widths(cache_width, rows=1):
    """The static cache prefixes the chunked loop attends over.

    Each width is one compiled inner loop (a branch of an ``ops.switch``),
    and a chunk attends over the shortest one that holds every earlier
    position, reading the cache up to that width on every token. For a few
    rows the cache is small (at one row and 512 positions, 4 MB, which fits
    a typical L3 cache) and coarse widths keep compilation short.
    From ``FINE_VISIBLE_MIN_ROWS`` rows the cache streams from memory on
    every token (67 MB at 16 rows), so widths step by ``CHUNK``: each chunk
    reads exactly the positions before it. That reads less memory per
    token at the price of more compiled branches; at one row the saving is
    lost in noise while the compilation still grows, so few rows keep the
    coarse widths. Widths are widened (in steps of ``CHUNK``) where there
    would be more than ``MAX_VISIBLE_WIDTHS`` of them, which bounds the
    compile time of long contexts.

    Args:
        cache_width: positions the cache holds.
        rows: rows decoded together (the batch bucket).

    Returns:
        Increasing widths, the last one ``cache_width``.
    """
    step = CHUNK if rows >= FINE_VISIBLE_MIN_ROWS else VISIBLE_BUCKET
    step = max(step, _round_up(-(-cache_width // MAX_VISIBLE_WIDTHS), CHUNK))
    return [w for w in range(step, cache_width, step)] + [cache_width]


def _chunked_loop_fn(model, spec, eos_id=EOS_ID):
    """The decoding loop as an outer loop over chunks of ``CHUNK`` positions.

    XLA on CPU copies a loop-carried buffer that the body both reads and
    updates, so a loop carrying the whole KV cache paid O(cache) copying per
    token. Here the inner loop carries only a ``CHUNK``-position slice of
    the cache (``model.read_chunk``) and reads the big cache unchanged; the
    outer loop writes the chunk back once per ``CHUNK`` tokens.

    Reading the big cache costs memory traffic in proportion to its width
    (at batch 16 and 512 positions, 67 MB per token), so each chunk attends
    over the shortest prefix of ``visible_widths`` that holds every earlier
    position: an ``ops.switch`` picks one of a few compiled inner loops.
    """

    def run(tokens, prompt_mask, row_end, cache, done, index, stop_index, *params):
        batch = tokens.shape[0]
        widths = visible_widths(cache[0].shape[2], batch)
        # Re-laid-out weights (a fused query/key/value kernel), made once here
        # rather than in every iteration of the loop.
        weights = model.decode_weights() if hasattr(model, "decode_weights") else None

        def decode_chunk(width, tokens, cache, chunk, done, index, start, chunk_stop):
            visible = model.read_chunk(cache, 0, width)

            def cond(tokens, chunk, done, index):
                return ops.logical_and(index < chunk_stop, ops.logical_not(ops.all(done)))

            def body(tokens, chunk, done, index):
                previous = ops.slice(tokens, [0, index - 1], [batch, 1])
                logits, chunk = model.call_with_chunk(previous, visible, chunk, index - 1, start, weights)
                tokens, done = _choose(logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id)
                return tokens, chunk, done, index + 1

            return ops.while_loop(cond, body, (tokens, chunk, done, index))

        branches = [lambda *args, w=w: decode_chunk(w, *args) for w in widths]

        def cond(tokens, cache, done, index):
            return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

        def outer(tokens, cache, done, index):
            # Position index - 1 is fed next; its chunk starts at a multiple of CHUNK.
            start = (index - 1) // CHUNK * CHUNK
            chunk_stop = ops.minimum(stop_index, start + CHUNK + 1)
            chunk = model.read_chunk(cache, start, CHUNK)
            args = (tokens, cache, chunk, done, index, start, chunk_stop)
            if len(branches) == 1:
                tokens, chunk, done, index = branches[0](*args)
            else:
                # The first width that holds positions 0 ... start - 1.
                branch = ops.sum(ops.cast(ops.convert_to_tensor(widths[:-1]) < start, "int32"))
                tokens, chunk, done, index = ops.switch(branch, branches, *args)
            return tokens, model.write_chunk(cache, chunk, start), done, index

        return ops.while_loop(cond, outer, (tokens, cache, done, index))

    return run


def _prefill_fn(model):
    def prefill(tokens, cache):
        return model.prefill(tokens, cache)

    return prefill


def _compile(model, fn, rows=None):
    """Compiles a keras.ops function of the model for the current backend.

    Args:
        rows: the batch it decodes, when known (see ``_jax_cpu_options``).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True, reduce_retracing=False)
    if backend == "jax":
        import jax

        variables = model.variables

        # jax.jit needs pure functions: weights go in as arguments and are
        # bound to the model's variables by a StatelessScope while tracing.
        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        options = _jax_cpu_options(rows)
        jitted = jax.jit(stateless, compiler_options=options) if options else jax.jit(stateless)
        return lambda *args: jitted([v.value for v in variables], *args)
    if backend == "torch":
        import torch

        def eager(*args):
            with torch.no_grad():
                return fn(*args)

        return eager
    raise ValueError(f"decoding is not supported on the '{backend}' backend")


def _jax_cpu_options(rows):
    """XLA options for a JAX decoding function of ``rows`` rows on CPU (None: the defaults).

    XLA's CPU compiler hands the loop body's products and reductions to
    YNNPACK by default. From a few rows up that made the step's weight
    products slower than XLA's own (Eigen) ones, and each YNNPACK call
    waits on its thread pool. Turned off, several-row decoding is faster
    in alternating runs, while a single row is a little slower with it off,
    so one row keeps the default. The option is per compiled function: training and
    the user's own code keep the default.
    """
    import jax

    # The option exists from jax 0.10; older XLA builds may not know it.
    if rows is None or rows < 2 or jax.default_backend() != "cpu" or jax.__version_info__ < (0, 10):
        return None
    return {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiled(model, spec, key, stop_at_eos=True):
    """The compiled (prefill, loop) pair for a model, sampler and shape bucket."""
    per_model = _COMPILED.setdefault(model, {})
    full_key = (keras.backend.backend(), spec.kind, spec.top_k if spec.kind == "top_k" else None, stop_at_eos) + key
    if full_key not in per_model:
        loop = _loop_fn(model, spec, EOS_ID if stop_at_eos else -1)
        rows = key[0]
        per_model[full_key] = (_compile(model, _prefill_fn(model), rows), _compile(model, loop, rows))
    return per_model[full_key]


def buffer_width(model, lengths, max_new_tokens):
    """The token-buffer length for prompts of ``lengths``: bucketed, within the context."""
    width = _round_up(int(max(lengths)) + max_new_tokens, LENGTH_BUCKET)
    limit = getattr(model, "max_length", None)
    return width if limit is None else min(width, limit)


def prefill_width(lengths, width):
    """How many leading positions the prefill runs: bucketed, 0 for none.

    The decoding loop's first step runs position ``min(lengths) - 1`` and
    then every later one (a row still inside its longer prompt copies its
    prompt tokens), rewriting the cache there. So the prefill needs only
    the positions before that one; running it over the longest prompt, as
    before, computed positions the loop then computed again. A one-token
    prompt (a start token, or the bench's) needs no prefill at all, which
    saves a whole bucketed prefill pass per call.

    Args:
        lengths: prompt lengths (each at least 1).
        width: the token buffer's length.

    Returns:
        A multiple of ``LENGTH_BUCKET`` (or ``width``), at least
        ``min(lengths) - 1``.
    """
    return min(_round_up(int(min(lengths)) - 1, LENGTH_BUCKET), width)


def pack_prompts(prompts, rows, width):
    """Right-pads prompts into a token buffer and a mask of prompt positions.

    Args:
        prompts: list of lists of ids.
        rows: buffer rows (at least ``len(prompts)``); extra rows copy row 0.
        width: buffer length.

    Returns:
        ``(tokens, mask)``: int32 and bool numpy arrays ``(rows, width)``.
    """
    tokens = np.full((rows, width), PAD_ID, np.int32)
    mask = np.zeros((rows, width), bool)
    for row, ids in enumerate(prompts):
        tokens[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    tokens[len(prompts):], mask[len(prompts):] = tokens[0], mask[0]
    return tokens, mask


class DecodeState:
    """A batch being decoded: host-side buffers plus the device cache.

    Args:
        model: a causal LM with the cached-decoding methods.
        prompts: list of lists of prompt ids (each non-empty).
        max_new_tokens: new tokens per row at most.
        spec: the ``SamplerSpec``.
        seed: sampler seed.
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
        self.prompt_width = prefill_width(self.lengths, width)
        # Rows added to fill the batch bucket copy row 0 and are dropped later.
        tokens, mask = pack_prompts(prompts, batch, width)
        lengths = np.concatenate([self.lengths, np.full(batch - self.n_rows, self.lengths[0], np.int32)])
        self.row_end = np.minimum(lengths + max_new_tokens, width).astype(np.int32)
        self.prefill, self.loop = compiled(model, spec, (batch, width, self.prompt_width), stop_at_eos)
        self.tokens = ops.convert_to_tensor(tokens)
        self.mask = ops.convert_to_tensor(mask)
        self.done = ops.convert_to_tensor(lengths >= self.row_end)
        cache = (cache_fn or model.init_cache)(batch, _round_up(width, CHUNK) if _chunked(model) else width)
        if _prefills(model):
            if self.prompt_width:
                cache = self.prefill(ops.slice(self.tokens, [0, 0], [batch, self.prompt_width]), cache)
            self.index = int(self.lengths.min())
        else:
            self.index = 1
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
        with _inference():
            self.tokens, self.cache, self.done, index = self.loop(
                self.tokens, self.mask, ops.convert_to_tensor(self.row_end), self.cache, self.done,
                ops.convert_to_tensor(np.int32(self.index)), ops.convert_to_tensor(np.int32(stop)),
                *self.params,
            )
        self.index = int(ops.convert_to_numpy(index))

    def new_ids(self):
        """The new ids of each real row, up to (not including) its end token."""
        tokens = ops.convert_to_numpy(self.tokens)
        out = []
        for row in range(self.n_rows):
            ids = tokens[row, self.lengths[row]: self.row_end[row]].tolist()
            ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
            out.append([i for i in ids if i != PAD_ID])
        return out


@contextlib.contextmanager
def _inference():
    """No autograd bookkeeping on PyTorch; nothing to do elsewhere."""
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            yield
    else:
        yield
