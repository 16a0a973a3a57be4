"""Text generation for every causal LM of the zoo.

``generate`` decodes a batch of prompts with the cached, compiled loop of
``kerazoo.decoding.loop``; ``stream`` yields the text of one prompt piece by piece
as it is produced. Both stop at the end token, and never return text past a
stop string.
"""

import os

import numpy as np
import tensorflow as tf

from kerazoo.decoding import loop as decoding
from kerazoo.decoding.sampling import SamplerSpec
from kerazoo.text import packing

# Streaming decodes this many positions per call of the compiled loop.
STREAM_CHUNK = 8


def resolve_model(model):
    """A model, or the model of a run folder / .keras file.

    Args:
        model: a ``keras.Model``, or the path of a run folder or ``.keras`` file.

    Returns:
        The model (loaded in safe mode when given a path).
    """
    if isinstance(model, (str, os.PathLike)):
        from kerazoo.training.runs import load_run

        return load_run(str(model))
    return model


def _encode(tokenizer, prompts):
    """Prompt ids, each preceded by the document separator the model trained with."""
    ids = tokenizer.tokenize(tf.constant(prompts, dtype=tf.string))
    rows = ids.to_list() if hasattr(ids, "to_list") else [list(r) for r in np.asarray(ids)]
    return packing.document_rows(rows)


def decode_text(tokenizer, ids):
    """Text of a list of ids.

    Args:
        tokenizer: a zoo tokenizer.
        ids: a non-empty list of token ids.

    Returns:
        The text (undecodable bytes replaced).
    """
    text = np.asarray(tokenizer.detokenize(tf.constant([ids], tf.int32))).reshape(-1)[0]
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)


def cut_at_stop(text, stop):
    """Truncates text before the first occurrence of any stop string.

    Args:
        text: generated text.
        stop: list of stop strings (may be empty).

    Returns:
        ``(text, stopped)``.
    """
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _hold_back(text, stop):
    """The part of streamed text that is safe to show.

    A trailing partial character (an incomplete UTF-8 run, shown as U+FFFD)
    and any tail that could be the start of a stop string are held back until
    the next piece decides them.
    """
    text = text.rstrip("\ufffd")
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                return text[:-n]
    return text


def _fit_context(model, prompts, max_new_tokens):
    """Keeps the end of prompts that would overflow a Transformer's context."""
    limit = getattr(model, "max_length", None)
    if limit is None:
        return prompts
    if max_new_tokens >= limit:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} does not fit the model's context of {limit} tokens"
        )
    keep = limit - max_new_tokens
    return [p if len(p) <= keep else p[-keep:] for p in prompts]


def _check_args(prompts, max_new_tokens, stop):
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a string or a list of strings")
    if not prompts:
        raise ValueError("no prompts given")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if isinstance(stop, str) or not all(isinstance(s, str) for s in stop):
        raise ValueError("stop must be a list of strings")


def _resolve_sampler(sampler, temperature):
    """The sampler to use: greedy unless sampling was asked for.

    A temperature with no sampler means temperature sampling (as on the
    command line); a temperature with greedy or beam search has no effect,
    so it is refused rather than silently ignored.
    """
    if sampler is None:
        sampler = "greedy" if temperature is None else "temperature"
    if sampler in ("greedy", "beam") and temperature is not None:
        raise ValueError(f"temperature has no effect with sampler='{sampler}'; use a sampling sampler")
    return sampler, 1.0 if temperature is None else temperature


def _resolve_seed(seed):
    """The given seed, or a fresh random one: no seed means new text each call."""
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return int(seed) & 0x7FFFFFFF


def _start(model, prompts, max_new_tokens, sampler, temperature, top_k, top_p, num_beams, stop, seed, tokenizer):
    """Validates arguments and sets up a decoding batch."""
    model = resolve_model(model)
    tokenizer = tokenizer or getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("the model carries no tokenizer; pass tokenizer=")
    if isinstance(stop, str):
        raise ValueError("stop must be a list of strings, e.g. stop=[\"\\n\\n\"]")
    stop = list(stop or [])
    _check_args(prompts, max_new_tokens, stop)
    sampler, temperature = _resolve_sampler(sampler, temperature)
    spec = SamplerSpec(sampler, float(temperature), int(top_k), float(top_p), int(num_beams)).validate()
    ids = _fit_context(model, _encode(tokenizer, prompts), max_new_tokens)
    return model, tokenizer, spec, ids, stop, _resolve_seed(seed)


def generate(
    model,
    prompts,
    max_new_tokens=64,
    sampler=None,
    temperature=None,
    top_k=50,
    top_p=0.9,
    num_beams=4,
    stop=None,
    seed=None,
    tokenizer=None,
):
    """Continues one prompt or a batch of prompts of any lengths.

    Args:
        model: a causal LM of the zoo, a run folder or a ``.keras`` file.
        prompts: a string, or a list of strings (decoded together).
        max_new_tokens: new tokens per prompt at most.
        sampler: ``greedy``, ``temperature``, ``top_k``, ``top_p`` or ``beam``;
            None means greedy, or ``temperature`` when a temperature is given.
        temperature: softmax temperature of the sampling kinds (default 1).
        top_k: candidates kept by ``top_k``.
        top_p: probability mass kept by ``top_p``.
        num_beams: beams of ``beam`` search.
        stop: stop strings; the output ends before the first one.
        seed: sampler seed (same seed, same text); None draws a fresh one.
        tokenizer: overrides the model's own tokenizer.

    Returns:
        The continuation (without the prompt): a string for a string prompt,
        a list of strings for a list.

    Example:
        >>> kerazoo.generate("runs/pydocs_gpt", ["The for", "A class"], sampler="top_p", seed=1)
    """
    single = isinstance(prompts, str)
    prompts = [prompts] if single else prompts
    model, tokenizer, spec, ids, stop, seed = _start(
        model, prompts, max_new_tokens, sampler, temperature, top_k, top_p, num_beams, stop, seed, tokenizer
    )
    # One beam is greedy search, and is decoded as such: the beam sampler
    # ranks float32 log-probabilities, whose resolution near log(1 / vocab)
    # (~5e-7) cannot order tokens whose logits differ by less, which argmax
    # on the logits does (an untrained torch-seeded LSTM hit such a tie).
    if getattr(model, "counted", False):  # the n-gram samples on the host from its tables (models/ngram.py)
        new_ids = [model.sample_spec(r, max_new_tokens, spec, seed + i) for i, r in enumerate(ids)]
    elif spec.kind == "beam" and spec.num_beams > 1:
        from kerazoo.decoding.beam import beam_search

        new_ids = beam_search(model, ids, max_new_tokens, spec.num_beams)
    else:
        state = decoding.DecodeState(model, ids, max_new_tokens, spec, seed)
        while not state.finished:
            # With stop strings, check between chunks so decoding ends soon
            # after every row has produced one. A row with no new ids yet (a
            # recurrent model still reading a long prompt) has not stopped.
            state.advance(steps=4 * STREAM_CHUNK if stop else None)
            if stop and all(r and cut_at_stop(decode_text(tokenizer, r), stop)[1] for r in state.new_ids()):
                break
        new_ids = state.new_ids()
    texts = [cut_at_stop(decode_text(tokenizer, r), stop)[0] if r else "" for r in new_ids]
    return texts[0] if single else texts


def stream(
    model,
    prompt,
    max_new_tokens=64,
    sampler=None,
    temperature=None,
    top_k=50,
    top_p=0.9,
    stop=None,
    seed=None,
    tokenizer=None,
):
    """Yields the continuation of one prompt in pieces, as it is decoded.

    The same compiled loop as ``generate`` runs ``STREAM_CHUNK`` positions per
    call; the pieces joined equal ``generate``'s output for the same settings.

    Args:
        model, prompt, max_new_tokens, sampler, temperature, top_k, top_p,
        stop, seed, tokenizer: as for ``generate`` (one prompt, no beams).

    Yields:
        Pieces of text.
    """
    model, tokenizer, spec, ids, stop, seed = _start(
        model, [prompt], max_new_tokens, sampler, temperature, top_k, top_p, 1, stop, seed, tokenizer
    )
    if spec.kind == "beam":
        raise ValueError("beam search cannot stream: the best beam is known only at the end")
    if getattr(model, "counted", False):  # the n-gram: sampled whole on the host, one piece
        new = model.sample_spec(ids[0], max_new_tokens, spec, seed)
        text = cut_at_stop(decode_text(tokenizer, new), stop)[0] if new else ""
        if text:
            yield text
        return
    state = decoding.DecodeState(model, ids, max_new_tokens, spec, seed)
    shown = ""
    while not state.finished:
        state.advance(steps=STREAM_CHUNK)
        new = state.new_ids()[0]
        text, stopped = cut_at_stop(decode_text(tokenizer, new), stop) if new else ("", False)
        ready = text if stopped or state.finished else _hold_back(text, stop)
        if len(ready) > len(shown) and ready.startswith(shown):
            yield ready[len(shown):]
            shown = ready
        if stopped:
            return
    final = cut_at_stop(decode_text(tokenizer, state.new_ids()[0]), stop)[0] if state.new_ids()[0] else ""
    if len(final) > len(shown) and final.startswith(shown):
        yield final[len(shown):]
