"""Replies of an instruction-tuned (``sft``) model: held-out answers in batches, and chat turns streamed.

Both build the chat template's ids (``kerazoo.text.chat``), decode them with
the zoo's one compiled loop (``kerazoo.decoding.loop.DecodeState``), which
stops a row at ``</s>``: the end of the assistant's turn.
"""

from kerazoo.decoding import loop as decoding
from kerazoo.decoding.sampling import SamplerSpec
from kerazoo.inference.generate import STREAM_CHUNK, decode_text
from kerazoo.text import chat
from kerazoo.text.special import EOS_ID


def chat_tokenizer(model):
    """The model's ``ChatTokenizer``, or a clear error for a model not tuned with the chat template."""
    tokenizer = getattr(model, "tokenizer", None)
    if not isinstance(tokenizer, chat.ChatTokenizer):
        raise ValueError("this model was not instruction-tuned: its tokenizer has no chat tokens "
                         "(train it with [task] kind = \"sft\")")
    return tokenizer


def fit_context(model, ids, max_new_tokens):
    """Cuts prompt ids from the left so that ``max_new_tokens`` still fit the model's context.

    Raises:
        ValueError: ``max_new_tokens`` alone fills the context.
    """
    limit = getattr(model, "max_length", None)
    if limit is None:
        return ids
    if max_new_tokens >= limit - 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} does not fit the model's context of {limit} tokens")
    keep = limit - max_new_tokens
    return ids if len(ids) <= keep else [EOS_ID] + ids[-(keep - 1):]


def answers(model, prompts, max_new_tokens=64, batch_size=64):
    """Greedy replies to single-turn prompts (each a new conversation).

    Args:
        model: an ``sft``-trained causal LM.
        prompts: user messages (already in the recipe's prompt format).
        max_new_tokens: reply length at most.
        batch_size: prompts decoded together.

    Returns:
        The replies, one string each.
    """
    tokenizer = chat_tokenizer(model)
    spec = SamplerSpec("greedy").validate()
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = [fit_context(model, chat.conversation_ids(tokenizer, [], p), max_new_tokens)
                for p in prompts[start:start + batch_size]]
        state = decoding.DecodeState(model, rows, max_new_tokens, spec)
        state.advance()
        out += [decode_text(tokenizer, r) if r else "" for r in state.new_ids()]
    return out


def history_ids(model, tokenizer, turns, prompt, max_new_tokens):
    """The conversation's ids, dropping the oldest exchanges until the reply fits the context.

    Returns:
        ``(ids, turns kept)``.
    """
    limit = getattr(model, "max_length", None)
    turns = list(turns)
    ids = chat.conversation_ids(tokenizer, turns, prompt)
    while turns and limit is not None and len(ids) + max_new_tokens > limit:
        turns = turns[1:]
        ids = chat.conversation_ids(tokenizer, turns, prompt)
    return fit_context(model, ids, max_new_tokens), turns


def stream_reply(model, turns, prompt, max_new_tokens=64, spec=None, seed=0):
    """Yields the reply to ``prompt`` after the exchanges ``turns``, piece by piece.

    Args:
        model: an ``sft``-trained causal LM.
        turns: the ``(user, assistant)`` exchanges so far (the oldest are
            dropped when they no longer fit the context).
        prompt: the new user message.
        max_new_tokens: reply length at most.
        spec: a ``SamplerSpec`` (greedy by default).
        seed: sampler seed.

    Yields:
        Pieces of the reply's text; it ends at the end of the turn.
    """
    tokenizer = chat_tokenizer(model)
    ids, _ = history_ids(model, tokenizer, turns, prompt, max_new_tokens)
    state = decoding.DecodeState(model, [ids], max_new_tokens, spec or SamplerSpec("greedy").validate(), seed)
    shown = ""
    while not state.finished:
        state.advance(steps=STREAM_CHUNK)
        new = state.new_ids()[0]
        text = decode_text(tokenizer, new) if new else ""
        # Hold back a trailing replacement character: a multi-byte character may be half decoded.
        ready = text if state.finished else text.rstrip("\ufffd")
        if len(ready) > len(shown) and ready.startswith(shown):
            yield ready[len(shown):]
            shown = ready
    final = decode_text(tokenizer, state.new_ids()[0]) if state.new_ids()[0] else ""
    if len(final) > len(shown) and final.startswith(shown):
        yield final[len(shown):]
