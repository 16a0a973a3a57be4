"""Translation (any sequence-to-sequence task) with a ``seq2seq`` model.

The source texts are tokenized with the model's tokenizer, end with ``</s>``
and are right-padded into a bucketed buffer; the encoder runs once
(``model.start_cache``, compiled per shape bucket) and leaves the
cross-attention keys and values in the decoding cache. The decoder then
starts from ``<s>`` and is decoded by the very loops that decode causal LMs
(``kerazoo.decoding.loop`` for greedy, ``kerazoo.decoding.beam`` for beam search), one
compiled loop per shape bucket.
"""

import numpy as np
import tensorflow as tf
from keras import ops

from kerazoo.decoding import compiler
from kerazoo.decoding import loop as decoding
from kerazoo.inference.generate import decode_text, resolve_model
from kerazoo.decoding.sampling import SamplerSpec
from kerazoo.text import packing
from kerazoo.text.special import PAD_ID

# Sources are decoded in chunks of at most this many rows, which bounds the
# memory of one loop (the cache grows with batch x source x target length).
DEFAULT_BATCH_SIZE = 64


def is_seq2seq(model):
    """Whether a model is an encoder–decoder that ``translate`` can decode."""
    return hasattr(model, "start_cache") and hasattr(model, "max_source_length")


def encode_sources(tokenizer, texts, max_source_length):
    """Source ids ending with the end token, cut to the encoder's length.

    A source longer than ``max_source_length - 1`` tokens keeps its first
    tokens (the end token is always kept), as in training.

    Args:
        tokenizer: the model's tokenizer.
        texts: list of strings.
        max_source_length: the encoder's longest input.

    Returns:
        ``(ids, truncated)``: a list of id lists, and how many were cut.
    """
    ids = tokenizer.tokenize(tf.constant(texts, dtype=tf.string))
    rows = ids.to_list() if hasattr(ids, "to_list") else [list(r) for r in np.asarray(ids)]
    packed = [packing.source_ids(row, max_source_length) for row in rows]
    return [ids for ids, _ in packed], sum(cut for _, cut in packed)


def pad_sources(sources, rows, max_source_length):
    """Right-pads source ids into a bucketed ``(rows, width)`` int32 buffer.

    The width rounds up to a multiple of ``decoding.LENGTH_BUCKET`` (within
    ``max_source_length``) so nearby lengths share one compiled encoder;
    extra rows copy row 0 and are dropped after decoding.
    """
    longest = max(len(s) for s in sources)
    width = min(-(-longest // decoding.LENGTH_BUCKET) * decoding.LENGTH_BUCKET, max_source_length)
    buffer = np.full((rows, width), PAD_ID, np.int32)
    for row in range(rows):
        ids = sources[row] if row < len(sources) else sources[0]
        buffer[row, : len(ids)] = ids
    return buffer


def _start_fn(model, length):
    """The compiled ``start_cache`` of a model for a self-attention cache of ``length``."""
    per_model = compiler.compiled_for(model)
    key = ("seq2seq_start", length)
    if key not in per_model:
        per_model[key] = compiler.compile_fn(model, lambda source_ids: model.start_cache(source_ids, length))
    return per_model[key]


def _cache_fn(model, sources):
    """``cache_fn(batch, length)`` for the decoding loops: the encoded sources."""

    def make(batch, length):
        buffer = pad_sources(sources, batch, model.max_source_length)
        with compiler.inference():
            return _start_fn(model, length)(ops.convert_to_tensor(buffer))

    return make


def translate_ids(model, sources, max_new_tokens, num_beams=1):
    """Decodes target ids for a batch of source id lists.

    Args:
        model: a ``seq2seq`` model.
        sources: list of source id lists (each ending with the end token,
            at most ``model.max_source_length`` long).
        max_new_tokens: target tokens per row at most.
        num_beams: 1 for greedy decoding, more for beam search.

    Returns:
        A list of lists of target ids, end token excluded.
    """
    prompts = [packing.decoder_ids([]) for _ in sources]
    cache_fn = _cache_fn(model, sources)
    if num_beams > 1:
        from kerazoo.decoding.beam import beam_search

        return beam_search(model, prompts, max_new_tokens, num_beams, cache_fn=cache_fn)
    state = decoding.DecodeState(model, prompts, max_new_tokens, SamplerSpec("greedy"), 0, cache_fn=cache_fn)
    state.advance()
    return state.new_ids()


def translate(model, texts, max_new_tokens=64, num_beams=1, tokenizer=None, batch_size=DEFAULT_BATCH_SIZE):
    """Translates one text or a batch of texts with a ``seq2seq`` model.

    Args:
        model: a ``seq2seq`` model, a run folder or a ``.keras`` file.
        texts: a string, or a list of strings (any lengths; decoded in
            batches, each row as if alone).
        max_new_tokens: output tokens per text at most (below the model's
            ``max_length``).
        num_beams: 1 is greedy decoding; more runs beam search.
        tokenizer: overrides the model's own tokenizer.
        batch_size: rows decoded together at most.

    Returns:
        The output text: a string for a string, a list of strings for a list.

    Raises:
        ValueError: not a seq2seq model, no texts, or a bad setting.

    Example:
        >>> kerazoo.translate("runs/eng_fra_seq2seq", ["Hello.", "I am cold."], num_beams=4)
    """
    single = isinstance(texts, str)
    texts = [texts] if single else texts
    model = resolve_model(model)
    if not is_seq2seq(model):
        raise ValueError(f"translate needs a seq2seq model; this is '{model.name}' (use kerazoo.inference.generate)")
    tokenizer = tokenizer or getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("the model carries no tokenizer; pass tokenizer=")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a string or a non-empty list of strings")
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens < model.max_length:
        raise ValueError(
            f"max_new_tokens must be an int in [1, {model.max_length - 1}] "
            f"(the model's target context minus the start token), got {max_new_tokens!r}"
        )
    if not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive int, got {num_beams!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    sources, _ = encode_sources(tokenizer, texts, model.max_source_length)
    out = []
    for start in range(0, len(sources), batch_size):
        for ids in translate_ids(model, sources[start:start + batch_size], max_new_tokens, num_beams):
            out.append(decode_text(tokenizer, ids) if ids else "")
    return out[0] if single else out
