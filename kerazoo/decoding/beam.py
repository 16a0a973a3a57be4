"""Beam search on the cached decoding path, with keras_hub's ``BeamSampler``.

keras_hub's beam sampler owns its loop (it reorders the cache by beam every
step); we hand it the model's single-position cached step and compile the
whole search the same way as the sampling loop.
"""

import keras_hub
import numpy as np
from keras import ops

from kerazoo.decoding import plan, positions
from kerazoo.decoding.compiler import compile_fn, compiled_for, inference
from kerazoo.text.special import EOS_ID


def _search_fn(model, num_beams):
    sampler = keras_hub.samplers.BeamSampler(num_beams=num_beams)

    def search(tokens, prompt_mask, cache, index):
        def next_fn(prompt, cache, index):
            batch = ops.shape(prompt)[0]
            previous = ops.slice(prompt, [0, index - 1], [batch, 1])
            logits, cache = model.call_with_cache(previous, cache, index - 1)
            return logits[:, 0, :], None, cache

        # The sampler forces prompt tokens by ``mask`` and stops at the end
        # token itself; the end-token cut of the result is ``positions.new_ids``.
        return sampler(next_fn, tokens, cache=cache, index=index, mask=prompt_mask, stop_token_ids=[EOS_ID])

    return search


def beam_search(model, prompts, max_new_tokens, num_beams, cache_fn=None):
    """Returns the most likely continuation of each prompt under beam search.

    Args:
        model: a causal LM declaring the cached-LM protocol.
        prompts: list of lists of prompt ids.
        max_new_tokens: new tokens per row at most.
        num_beams: beams per prompt (1 is greedy decoding).
        cache_fn: ``cache_fn(batch, length) -> cache`` instead of
            ``model.init_cache`` (seq2seq: the encoded sources).

    Returns:
        A list of lists of new ids, end token excluded.
    """
    lengths = np.array([len(p) for p in prompts], np.int32)
    width = plan.buffer_width(model, lengths, max_new_tokens)
    batch = len(prompts)
    tokens, mask = plan.pack_prompts(prompts, batch, width)
    key = ("beam", num_beams, batch, width)
    per_model = compiled_for(model)
    if key not in per_model:
        per_model[key] = compile_fn(model, _search_fn(model, num_beams))
    cache = (cache_fn or model.init_cache)(batch, width)
    tokens_t = ops.convert_to_tensor(tokens)
    prefilled = plan.prefill_width(lengths, width) if model.prefills_prompt else 0
    if prefilled:
        cache = model.prefill(tokens_t[:, :prefilled], cache)
    start = plan.first_index(model, int(lengths.min()) - 1)
    with inference():
        out = per_model[key](tokens_t, ops.convert_to_tensor(mask), cache, ops.convert_to_tensor(np.int32(start)))
    return positions.new_ids(out, lengths, lengths + max_new_tokens, EOS_ID)
