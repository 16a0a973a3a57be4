"""The decoding loop in plain PyTorch, for the torch backend.

Keras on PyTorch runs eagerly, and every ``keras.ops`` call pays tens of
microseconds of dispatch; the generic loop of ``kerazoo.decoding.loop`` spends
more time there than in arithmetic. This loop does the same work per
position in torch, under ``torch.inference_mode``: the model's
``torch_step`` (the plain-torch mirror of a GPT's step; other models'
``call_with_cache``) and the position rule ``positions.choose`` on torch
tensors. It looks at the "every row is done" flag only every ``DONE_CHECK_EVERY``
positions. Positions decoded after every row is done write padding, so the
result is the same as stopping at once.
"""

import contextlib

import torch
from keras import ops

from kerazoo.decoding import positions, sampling

DONE_CHECK_EVERY = 8
# Batches up to this size decode with one intra-op thread. Their products
# are small and gain nothing from a second thread, while on a busy machine a
# step waits for a descheduled partner thread. From batch 8 on the products
# are large enough to share (``kerazoo bench generate`` measures both).
SINGLE_THREAD_MAX_BATCH = 4


def _greedy(logits, *unused):
    return logits.argmax(dim=-1).to(torch.int32)


def _chooser(spec):
    """``(logits, temperature, top_p, seed, index) -> ids``: torch for greedy, keras.ops otherwise."""
    if spec.kind in ("greedy", "beam"):
        return _greedy

    def sample(logits, temperature, top_p, seed, index):
        chosen = sampling.next_token(logits, spec, temperature, top_p, seed, index)
        return ops.convert_to_tensor(chosen).to(torch.int32)

    return sample


@contextlib.contextmanager
def _threads_for(batch):
    """One intra-op thread for small batches (see SINGLE_THREAD_MAX_BATCH), restored after."""
    before = torch.get_num_threads()
    if batch <= SINGLE_THREAD_MAX_BATCH:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def loop_fn(model, spec, eos_id):
    """The decoding loop for one model and sampler (the signature of ``loop_xla``'s loops)."""
    choose = _chooser(spec)

    def run(tokens, prompt_mask, row_end, cache, done, index, stop_index, temperature, top_p, seed):
        step = model.torch_step(tokens.shape[0])
        tokens, done = tokens.clone(), done.clone()
        row_end = torch.as_tensor(row_end)
        # Every row is done at its end position at the latest: stop there exactly.
        position, stop = int(index), min(int(stop_index), int(row_end.max()))
        with torch.inference_mode(), _threads_for(tokens.shape[0]):
            while position < stop:
                logits, cache = step(tokens[:, position - 1:position].long(), cache, position - 1)
                chosen = choose(logits[:, 0, :], temperature, top_p, seed, position)
                chosen, done = positions.choose(
                    chosen, tokens[:, position], prompt_mask[:, position], done, position, row_end, eos_id, torch.where
                )
                tokens[:, position] = chosen
                position += 1
                if position % DONE_CHECK_EVERY == 0 and bool(done.all()):
                    break
        return tokens, cache, done, position

    return run
