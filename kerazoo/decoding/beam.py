"""Beam search on the cached decoding path, with keras_hub's ``BeamSampler``.

keras_hub's beam sampler owns its loop (it reorders the cache by beam every
step); we hand it the model's single-position cached step and compile the
whole search the same way as the sampling loop.
"""

import keras_hub
import numpy as np
from keras import ops

from kerazoo.decoding import loop as decoding
from kerazoo.text.special import EOS_ID, PAD_ID


def _search_fn(model, num_beams):
    sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams)

    def search(tokens, prompt_mask, cache, index):
        def next_fn(prompt, cache, index):
            batch = ops.shape(prompt)[0]
            previous = ops.slice(prompt, [0, index - 1], [batch, 1])
            logits, cache = model.call_with_cache(previous, cache, index - 1)
            return logits[:, 0, :], None, cache

        return sampler(next_fn, tokens, cache=cache, index=index, mask=prompt_mask, stop_token_ids=[EOS_ID])

    return search


def beam_search(model, prompts, max_new_tokens, num_beams, cache_fn=None):
    """Returns the most likely continuation of each prompt under beam search.

    Args:
        model: a causal LM with the cached-decoding methods.
        prompts: list of lists of prompt ids.
        max_new_tokens: new tokens per row at most.
        num_beams: beams per prompt (1 is greedy decoding).
        cache_fn: ``cache_fn(batch, length) -> cache`` instead of
            ``model.init_cache`` (seq2seq: the encoded sources).

    Returns:
        A list of lists of new ids, end token excluded.
    """
    lengths = np.array([len(p) for p in prompts], np.int32)
    width = decoding.buffer_width(model, lengths, max_new_tokens)
    batch = len(prompts)
    tokens, mask = decoding.pack_prompts(prompts, batch, width)
    key = ("beam", num_beams, batch, width)
    per_model = decoding._COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = decoding._compile(model, _search_fn(model, num_beams))
    cache = (cache_fn or model.init_cache)(batch, width)
    tokens_t = ops.convert_to_tensor(tokens)
    if decoding._prefills(model):
        prefilled = decoding.prefill_width(lengths, width)
        if prefilled:
            cache = model.prefill(tokens_t[:, :prefilled], cache)
        start = int(lengths.min())
    else:
        start = 1
    with decoding._inference():
        out = per_model[key](tokens_t, ops.convert_to_tensor(mask), cache, ops.convert_to_tensor(np.int32(start)))
    out = ops.convert_to_numpy(out)
    results = []
    for row in range(batch):
        ids = out[row, lengths[row]: lengths[row] + max_new_tokens].tolist()
        ids = ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids
        results.append([i for i in ids if i != PAD_ID])
    return results
