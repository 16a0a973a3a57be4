"""The compiled decoding loops (TensorFlow and JAX, under XLA), in keras.ops.

Each iteration runs ONE position through the model with its cache (a KV
cache, or an RNN's state), picks the next token and applies the position
rule (``positions.choose``). A row whose prompt is longer than the first
position simply copies its own prompt tokens until it reaches its end, so
rows of any length share one loop, compiled once per shape bucket.

A ``ChunkedLM`` (``gpt``) is decoded by ``chunked_loop_fn``, which does not
rewrite the whole cache per token; any other ``CachedLM`` by ``loop_fn``.
All loops share one signature:

    run(tokens, prompt_mask, row_end, cache, done, index, stop_index,
        temperature, top_p, seed) -> (tokens, cache, done, index)
"""

from keras import ops

from kerazoo.decoding import plan, positions, sampling
from kerazoo.decoding.protocol import ChunkedLM


def choose_next(logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id):
    """Samples position ``index`` of every row and writes it into ``tokens`` by the position rule.

    Args:
        logits: float32 ``(batch, 1, vocab)`` of position ``index - 1``.
        tokens: int32 ``(batch, width)`` buffer.
        prompt_mask: bool ``(batch, width)``, prompt positions.
        row_end: int32 ``(batch,)``.
        done: bool ``(batch,)``.
        index: int32 scalar.
        spec: the ``SamplerSpec``.
        params: ``(temperature, top_p, seed)`` scalar tensors.
        eos_id: the end token (-1: never stop at one).

    Returns:
        ``(tokens, done)``.
    """
    temperature, top_p, seed = params
    batch = tokens.shape[0]
    chosen = sampling.next_token(logits[:, 0, :], spec, temperature, top_p, seed, index)
    forced = ops.slice(prompt_mask, [0, index], [batch, 1])[:, 0]
    current = ops.slice(tokens, [0, index], [batch, 1])[:, 0]
    chosen, done = positions.choose(chosen, current, forced, done, index, row_end, eos_id)
    return ops.slice_update(tokens, [0, index], chosen[:, None]), done


def is_chunked(model):
    """Whether the compiled loop decodes ``model`` chunk by chunk (a ``ChunkedLM``)."""
    return isinstance(model, ChunkedLM)


def loop_fn(model, spec, eos_id):
    """The decoding loop for one model and sampler: the chunked one for a ``ChunkedLM``."""
    if is_chunked(model):
        return chunked_loop_fn(model, spec, eos_id)

    def run(tokens, prompt_mask, row_end, cache, done, index, stop_index, *params):
        batch = tokens.shape[0]

        def cond(tokens, cache, done, index):
            return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

        def body(tokens, cache, done, index):
            previous = ops.slice(tokens, [0, index - 1], [batch, 1])
            logits, cache = model.call_with_cache(previous, cache, index - 1)
            tokens, done = choose_next(logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id)
            return tokens, cache, done, index + 1

        return ops.while_loop(cond, body, (tokens, cache, done, index))

    return run


def chunked_loop_fn(model, spec, eos_id):
    """The decoding loop as an outer loop over chunks of ``plan.CHUNK`` positions.

    XLA on CPU copies a loop-carried buffer that the body both reads and
    updates, so a loop carrying the whole KV cache paid O(cache) copying per
    token. Here the inner loop carries only a ``CHUNK``-position slice of
    the cache (``model.read_chunk``) and reads the big cache unchanged; the
    outer loop writes the chunk back once per ``CHUNK`` tokens.

    Reading the big cache costs memory traffic in proportion to its width,
    so each chunk attends over the shortest prefix of ``plan.visible_widths``
    that holds every earlier position: an ``ops.switch`` picks one of a few
    compiled inner loops.
    """
    chunk_size = plan.CHUNK

    def run(tokens, prompt_mask, row_end, cache, done, index, stop_index, *params):
        batch = tokens.shape[0]
        widths = plan.visible_widths(cache[0].shape[2], batch)
        # Re-laid-out weights (a fused query/key/value kernel), made once here
        # rather than in every iteration of the loop.
        weights = model.decode_weights()

        def decode_chunk(width, tokens, cache, chunk, done, index, start, chunk_stop):
            visible = model.read_chunk(cache, 0, width)

            def cond(tokens, chunk, done, index):
                return ops.logical_and(index < chunk_stop, ops.logical_not(ops.all(done)))

            def body(tokens, chunk, done, index):
                previous = ops.slice(tokens, [0, index - 1], [batch, 1])
                logits, chunk = model.call_with_chunk(previous, visible, chunk, index - 1, start, weights)
                tokens, done = choose_next(logits, tokens, prompt_mask, row_end, done, index, spec, params, eos_id)
                return tokens, chunk, done, index + 1

            return ops.while_loop(cond, body, (tokens, chunk, done, index))

        branches = [lambda *args, w=w: decode_chunk(w, *args) for w in widths]

        def cond(tokens, cache, done, index):
            return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

        def outer(tokens, cache, done, index):
            # Position index - 1 is fed next; its chunk starts at a multiple of CHUNK.
            start = (index - 1) // chunk_size * chunk_size
            chunk_stop = ops.minimum(stop_index, start + chunk_size + 1)
            chunk = model.read_chunk(cache, start, chunk_size)
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
