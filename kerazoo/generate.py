"""Text generation from a causal LM: greedy and temperature sampling.

This is the simple decoder: each new token re-runs the model over a fixed-size
buffer (right-padded, which a causal model never attends to), so one compiled
forward function serves every step without retracing. Cached decoding with a
KV cache / RNN state is a separate piece of work.
"""

import numpy as np
import tensorflow as tf

# Buffers grow in steps of this many tokens so that nearby lengths share one
# compiled forward function.
_BUCKET = 64


def _bucket(length, limit):
    """Rounds a buffer length up to the bucket size, capped at ``limit``."""
    length = -(-length // _BUCKET) * _BUCKET
    return min(length, limit) if limit else length


def _pick(logits, temperature, rng):
    """Chooses the next token from one row of logits."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _encode(tokenizer, prompt):
    """Prompt ids, preceded by the document separator the model trained with."""
    ids = tokenizer.tokenize(tf.constant([prompt]))
    ids = ids.to_list()[0] if hasattr(ids, "to_list") else list(np.asarray(ids[0]).tolist())
    return [int(tokenizer.eos_id)] + [int(i) for i in ids]


def generate_ids(model, prompt_ids, max_new_tokens, temperature=0.0, eos_id=None, seed=None):
    """Extends one prompt by up to ``max_new_tokens`` tokens.

    Args:
        model: causal LM, ids ``(1, t)`` -> logits ``(1, t, vocab)``.
        prompt_ids: non-empty list of int ids.
        max_new_tokens: how many tokens to add at most.
        temperature: 0 for greedy, otherwise softmax temperature.
        eos_id: stop when this id is produced (it is not returned).
        seed: seed of the sampler, for reproducible sampling.

    Returns:
        The list of new ids.
    """
    rng = np.random.default_rng(seed)
    limit = getattr(model, "max_length", None)
    size = _bucket(len(prompt_ids) + max_new_tokens, limit)
    context = list(prompt_ids)[-size:]
    new = []
    for _ in range(max_new_tokens):
        buffer = np.zeros((1, size), np.int32)
        buffer[0, : len(context)] = context
        logits = np.asarray(model.predict_on_batch(buffer))[0, len(context) - 1]
        token = _pick(logits, temperature, rng)
        if eos_id is not None and token == eos_id:
            break
        new.append(token)
        context.append(token)
        if len(context) > size:  # slide the window past the context limit
            context = context[1:]
    return new


def generate(model, prompt, max_new_tokens=64, temperature=0.0, seed=None, tokenizer=None):
    """Continues a text prompt.

    Args:
        model: a causal LM of the zoo (it carries its tokenizer).
        prompt: the text to continue (may be empty).
        max_new_tokens: how many tokens to add at most.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        seed: sampler seed.
        tokenizer: overrides the model's own tokenizer.

    Returns:
        The generated continuation (without the prompt).
    """
    tokenizer = tokenizer or model.tokenizer
    if tokenizer is None:
        raise ValueError("the model carries no tokenizer; pass tokenizer=")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    new = generate_ids(model, _encode(tokenizer, prompt), max_new_tokens, temperature, int(tokenizer.eos_id), seed)
    if not new:
        return ""
    text = tokenizer.detokenize(tf.constant([new], tf.int32))
    text = np.asarray(text).reshape(-1)[0]
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
