"""The decoding loop of an exported causal LM, in plain TensorFlow.

In-process decoding (``kerazoo.decoding.loop``) compiles one XLA loop per shape
bucket, with the sampler fixed at compile time. An exported graph must run
without XLA and without Python, for any batch size, prompt length and
per-request settings, so this module traces one ``tf.while_loop`` over
dynamic shapes instead. It calls the same model methods (the cached-LM
protocol), follows the same plan (``plan.prefill_positions``,
``plan.first_index``), the same position rule and end-token cut
(``positions``) and the same sampler noise, so its output equals
``kerazoo.inference.generate``'s token for token for the same seed:

    prompts -> [end token] + ids      (the document start the model trained with)
            -> keep the last tokens   when prompt + new tokens overflow the context
    buffer  (batch, width) prompt ids, right-padded; new ids written in place
    prefill Transformers fill the cache for the shortest prompt in chunks of
            static sizes (32, then 16, 8, 4, 2), so the model's shapes stay static
    loop    one position per iteration for all rows; rows still inside their
            prompt copy it, the others sample; a row ends at the end token
            or after its new tokens
"""

import tensorflow as tf

from kerazoo.decoding import plan, positions
from kerazoo.decoding import sampling_graph as graph_sampling
from kerazoo.decoding.protocol import ChunkedLM
from kerazoo.text import packing
from kerazoo.text.special import EOS_ID, PAD_ID

# The largest prefill chunk of a Transformer (smaller powers of two fill the
# rest of the shortest prompt; the loop steps through longer prompts' tails).
PREFILL_CHUNK = 32


def valid_utf8(strings):
    """Replaces invalid UTF-8 sequences with U+FFFD, so every string decodes."""
    return tf.strings.unicode_transcode(
        strings, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace", replacement_char=0xFFFD
    )


def encode(tokenizer, texts):
    """Token ids of texts, each preceded by the end token (the document start).

    Args:
        tokenizer: a kerazoo tokenizer layer.
        texts: string ``(batch,)``.

    Returns:
        int32 RaggedTensor ``(batch, None)``.
    """
    return packing.document_ids_tf(tokenizer.tokenize(valid_utf8(texts)))


def clamp_new_tokens(max_new_tokens, cap):
    """Per-row new-token budgets clamped into ``[0, cap]``."""
    return tf.clip_by_value(tf.cast(max_new_tokens, tf.int32), 0, cap)


def fit_prompts(ids, new_tokens, context):
    """Right-padded prompt buffer, keeping each prompt's end within the context.

    Args:
        ids: int32 RaggedTensor ``(batch, None)``.
        new_tokens: int32 ``(batch,)`` budgets (already clamped).
        context: the model's context length, or None (no limit).

    Returns:
        ``(tokens, lengths)``: int32 ``(batch, longest kept prompt)`` and the
        kept lengths ``(batch,)``.
    """
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    dense = ids.to_tensor(default_value=PAD_ID)
    if context is None:
        return dense, lengths
    kept = tf.minimum(lengths, context - new_tokens)
    start = lengths - kept
    # At least 0: the max of an empty batch is the smallest int.
    kept_at = start[:, None] + tf.range(tf.maximum(tf.reduce_max(kept), 0))[None, :]
    inside = kept_at < lengths[:, None]
    tokens = tf.gather(dense, tf.minimum(kept_at, tf.shape(dense)[1] - 1), batch_dims=1)
    return tf.where(inside, tokens, PAD_ID), kept


def _prefill_chunk(model, tokens, cache, start, size):
    """Runs positions ``[start, start + size)`` through the model into the cache."""
    chunk = tf.slice(tokens, [0, start], [-1, size])
    _, cache = model.call_with_cache(chunk, cache, start)
    return start + size, cache


def _prefill(model, tokens, cache, n_positions):
    """Fills the cache for positions ``[0, n_positions)`` (all but at most one).

    Whole ``PREFILL_CHUNK`` chunks first, then one chunk of each smaller power
    of two that still fits: the model only ever sees static chunk lengths.

    Returns:
        ``(cache, filled)``: the cache and the number of positions filled.
    """
    filled, cache = tf.while_loop(
        lambda start, cache: start + PREFILL_CHUNK <= n_positions,
        lambda start, cache: _prefill_chunk(model, tokens, cache, start, PREFILL_CHUNK),
        (tf.constant(0), cache),
    )
    size = PREFILL_CHUNK // 2
    while size > 1:
        filled, cache = tf.cond(
            filled + size <= n_positions,
            lambda size=size: _prefill_chunk(model, tokens, cache, filled, size),
            lambda: (filled, cache),
        )
        size //= 2
    return cache, filled


def decode(model, tokens, lengths, new_tokens, settings, cache=None, padded=False):
    """Runs the decoding loop over a prompt buffer.

    Args:
        model: a causal LM of the zoo (``init_cache`` / ``call_with_cache``).
        tokens: int32 ``(batch, prompt width)`` right-padded prompt ids.
        lengths: int32 ``(batch,)`` prompt lengths (at least 1).
        new_tokens: int32 ``(batch,)`` new-token budgets.
        settings: dict of per-row ``temperature``, ``top_k``, ``top_p``,
            ``seed`` tensors (see ``graph_sampling.next_token``).
        cache: an initial cache of ``width`` positions instead of
            ``model.init_cache`` (a seq2seq model's holds its encoded sources).
        padded: ``tokens`` is already the whole buffer (``width`` columns,
            at least ``lengths + new_tokens``): its shape, not the data,
            sets the width, as XLA needs (see ``decode_xla``).

    Returns:
        int32 ``(batch, width)``: prompts followed by the chosen tokens
        (``PAD_ID`` after a row's end).
    """
    batch = tf.shape(tokens)[0]
    row_end = lengths + new_tokens
    if padded:
        width = tf.shape(tokens)[1]
    else:
        width = tf.reduce_max(row_end)
        tokens = tf.pad(tokens, [[0, 0], [0, width - tf.shape(tokens)[1]]], constant_values=PAD_ID)
    columns = tf.range(width)[None, :]
    prompt_mask = columns < lengths[:, None]
    if cache is None:
        cache = model.init_cache(batch, width)
    filled = tf.constant(0)
    if model.prefills_prompt:
        cache, filled = _prefill(model, tokens, cache, plan.prefill_positions(tf.reduce_min(lengths)))
    done = lengths >= row_end

    def cond(tokens, cache, done, index):
        return (index < width) & tf.logical_not(tf.reduce_all(done))

    # A ChunkedLM steps with its re-laid-out weights (one fused query/key/value
    # product per block), made once per request, not per token; the chunk it
    # writes is the whole cache (start 0), so attention reads one source.
    weights = model.decode_weights() if isinstance(model, ChunkedLM) else None

    def step(previous, cache, index):
        if weights is None:
            return model.call_with_cache(previous, cache, index)
        return model.call_with_chunk(previous, cache, cache, index, 0, weights)

    def body(tokens, cache, done, index):
        previous = tf.slice(tokens, [0, index - 1], [-1, 1])
        logits, cache = step(previous, cache, index - 1)
        chosen = graph_sampling.next_token(logits[:, 0, :], index=index, **settings)
        chosen, done = positions.choose(
            chosen, tokens[:, index], prompt_mask[:, index], done, index, row_end, EOS_ID, tf.where
        )
        tokens = tf.where(columns == index, chosen[:, None], tokens)
        return tokens, cache, done, index + 1

    start = plan.first_index(model, filled)
    tokens, _, _, _ = tf.while_loop(cond, body, (tokens, cache, done, start))
    return tokens


def bucketed_width(tokens, lengths, new_tokens, context):
    """``tokens`` right-padded to ``plan.buffer_width``'s width: the longest row rounded up to ``LENGTH_BUCKET``, within the context."""
    bucket = plan.LENGTH_BUCKET
    width = (tf.reduce_max(lengths + new_tokens) + bucket - 1) // bucket * bucket
    if context is not None:
        width = tf.minimum(width, context)
    width = tf.maximum(width, tf.shape(tokens)[1])
    return tf.pad(tokens, [[0, 0], [0, width - tf.shape(tokens)[1]]], constant_values=PAD_ID)


def xla_buffer(tokens, lengths, new_tokens, settings, context):
    """Pads a request to bucketed shapes for the XLA loop: rows and width.

    XLA compiles one program per input shape, so the buffer's width is the
    longest row rounded up to ``plan.LENGTH_BUCKET`` (within the context)
    and its rows are a power of two, the extra rows copying row 0, as the
    in-process loop buckets them (``plan.buffer_width``,
    ``plan.batch_bucket``): a server compiles a handful of programs, not one
    per request.

    Args:
        tokens: int32 ``(batch, prompt width)`` from ``fit_prompts``.
        lengths, new_tokens: int32 ``(batch,)``.
        settings: dict of per-row setting tensors.
        context: the model's context length, or None.

    Returns:
        ``(tokens, lengths, new_tokens, settings)`` of the bucketed shape.
    """
    rows = tf.shape(tokens)[0]
    tokens = bucketed_width(tokens, lengths, new_tokens, context)
    # The smallest power of two >= rows (an empty batch stays empty).
    below = tf.reduce_sum(tf.cast(tf.bitwise.left_shift(1, tf.range(31)) < rows, tf.int32))
    padded_rows = tf.where(rows > 0, tf.bitwise.left_shift(1, below), 0)
    take = tf.where(tf.range(padded_rows) < rows, tf.range(padded_rows), 0)
    pick = lambda t: tf.gather(t, take)  # noqa: E731
    return pick(tokens), pick(lengths), pick(new_tokens), {k: pick(v) for k, v in settings.items()}


def decode_xla(model, tokens, lengths, new_tokens, settings, context, num_beams=1):
    """``decode`` compiled by XLA (``jit_compile=True``) on bucketed shapes.

    The same loop, position rule and sampler as the portable graph, so the
    same tokens; XLA fuses each step's small ops into a few kernels, which is
    what makes in-process decoding fast. Tokenizing and detokenizing stay
    outside (TF Text's kernels have no XLA form).

    Args:
        model, tokens, lengths, new_tokens, settings: as for ``decode``.
        context: the model's context length, or None.
        num_beams: above 1, ``beam_decode`` with that many beams instead.

    Returns:
        int32 ``(batch, width)``, as ``decode``.
    """
    rows = tf.shape(tokens)[0]
    names = sorted(settings)
    buffer, lengths, new_tokens, settings = xla_buffer(tokens, lengths, new_tokens, settings, context)

    @tf.function(jit_compile=True, autograph=False)
    def compiled(buffer, lengths, new_tokens, *values):
        if num_beams > 1:
            return beam_decode(model, buffer, lengths, new_tokens, num_beams, context, padded=True)
        return decode(model, buffer, lengths, new_tokens, dict(zip(names, values)), padded=True)

    return compiled(buffer, lengths, new_tokens, *(settings[k] for k in names))[:rows]


def new_tokens_of(tokens, lengths, new_tokens):
    """The generated ids of each row, up to (not including) its end token.

    Returns:
        int32 RaggedTensor ``(batch, None)``.
    """
    keep = positions.new_token_mask(tokens, lengths, lengths + new_tokens, EOS_ID)
    return tf.ragged.boolean_mask(tokens, keep)


def beam_decode(model, tokens, lengths, new_tokens, num_beams, context, padded=False):
    """Beam search over a prompt buffer, in graph ops (keras_hub's ``BeamSampler``).

    The same search as in-process ``beam.beam_search``: a buffer of the same
    bucketed width (the search runs to its end or until every beam has ended,
    and ranks beams over the whole width), the same prefill and first
    position, the same sampler; then ``new_tokens_of`` cuts each row at its
    budget and end token.

    Args:
        model: a causal LM of the zoo.
        tokens, lengths, new_tokens: as for ``decode``.
        num_beams: a Python int (each beam count is one traced search).
        context: the model's context length, or None.
        padded: ``tokens`` already has the bucketed width (``xla_buffer``).

    Returns:
        int32 ``(batch, width)``: the best beam of each row.
    """
    import keras_hub

    if not padded:
        tokens = bucketed_width(tokens, lengths, new_tokens, context)
    width = tf.shape(tokens)[1]
    prompt_mask = tf.range(width)[None, :] < lengths[:, None]
    cache = model.init_cache(tf.shape(tokens)[0], width)
    filled = tf.constant(0)
    if model.prefills_prompt:
        cache, filled = _prefill(model, tokens, cache, plan.prefill_positions(tf.reduce_min(lengths)))

    def next_fn(prompt, cache, index):
        previous = tf.slice(prompt, [0, index - 1], [-1, 1])
        logits, cache = model.call_with_cache(previous, cache, index - 1)
        return logits[:, 0, :], None, cache

    sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams)
    return sampler(next_fn, tokens, cache=cache, index=plan.first_index(model, filled), mask=prompt_mask,
                   stop_token_ids=[EOS_ID])
