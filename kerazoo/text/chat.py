"""The chat template and ``ChatTokenizer``: any zoo tokenizer plus two turn tokens.

One exchange, as ids (``U`` = ``<|user|>``, ``A`` = ``<|assistant|>``, both new):

    </s> U  prompt ids  A  response ids  </s>
    ^ document start       ^ loss here only ^ end of turn (the decoder stops at </s>)

A conversation chains exchanges, each turn ended by ``</s>``:

    </s> U p1 A r1 </s> U p2 A r2 </s> U p3 A   <- the model continues here

The end of a turn is the zoo's end token ``</s>`` on purpose: every decoding
loop of the zoo (and the exported graph) already stops a row there, so a
reply ends at the end of its turn with no new stopping rule. The two role
tokens get ids after the wrapped tokenizer's vocabulary (``V`` and ``V + 1``):
the base tokenizer and every run made with it are unchanged. They are never
produced from text (tokenizing ``"<|user|>"`` gives its characters), so a
user's message cannot forge a turn; the template inserts them as ids.
"""

import keras
import keras_hub
import numpy as np

from kerazoo.text.base import ZooTokenizer
from kerazoo.text.special import EOS_ID

USER_TOKEN = "<|user|>"
ASSISTANT_TOKEN = "<|assistant|>"
CHAT_TOKENS = (USER_TOKEN, ASSISTANT_TOKEN)


@keras.saving.register_keras_serializable(package="kerazoo")
class ChatTokenizer(ZooTokenizer, keras_hub.tokenizers.Tokenizer):
    """A zoo tokenizer with the chat template's role tokens appended to its vocabulary.

    Args:
        base: the wrapped tokenizer (a zoo tokenizer layer, or its serialized config).

    Raises:
        ValueError: a role token is already a piece of the base vocabulary
            (its id would be ambiguous).

    Example:
        >>> chat = ChatTokenizer(train_tokenizer(texts, "byte"))
        >>> chat.user_id, chat.assistant_id
        (261, 262)
    """

    def __init__(self, base, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="int32", **kwargs)
        if isinstance(base, dict):
            base = keras.saving.deserialize_keras_object(base)
        if isinstance(base, ChatTokenizer):
            raise ValueError("the tokenizer already has the chat tokens")
        if not isinstance(base, ZooTokenizer):
            raise ValueError(f"ChatTokenizer wraps a kerazoo tokenizer, not a {type(base).__name__}")
        # Tracked (a sub-layer): an export's graph captures its lookup tables through it.
        self._base = base
        self.kind = base.kind
        self.lowercase = getattr(base, "lowercase", False)
        self.sequence_length = None
        self._checked = False

    @property
    def base(self):
        """The wrapped tokenizer."""
        return self._base

    def _check_vocabulary(self):
        if self._checked:
            return
        vocabulary = set(self._base.get_vocabulary())
        clash = [t for t in CHAT_TOKENS if t in vocabulary]
        if clash:
            raise ValueError(f"the chat template token {clash[0]} is already in the tokenizer's vocabulary; "
                             "train the tokenizer without it (it would tokenize to two meanings)")
        self._checked = True

    @property
    def user_id(self):
        """Id of ``<|user|>``: the base vocabulary size."""
        return int(self._base.vocabulary_size())

    @property
    def assistant_id(self):
        """Id of ``<|assistant|>``: the base vocabulary size + 1."""
        return int(self._base.vocabulary_size()) + 1

    def vocabulary_size(self):
        """The base vocabulary size + 2."""
        return int(self._base.vocabulary_size()) + len(CHAT_TOKENS)

    def get_vocabulary(self):
        return list(self._base.get_vocabulary()) + list(CHAT_TOKENS)

    def id_to_token(self, id):
        self._check_id(id)
        return CHAT_TOKENS[id - self.user_id] if id >= self.user_id else self._base.id_to_token(id)

    def token_to_id(self, token):
        return self.user_id + CHAT_TOKENS.index(token) if token in CHAT_TOKENS else self._base.token_to_id(token)

    def tokenize(self, inputs):
        """The base tokenizer's ids: text never yields a role token."""
        self._check_vocabulary()
        return self._base.tokenize(inputs)

    def detokenize(self, inputs):
        """The base tokenizer's text; role tokens, like all special ids, are dropped."""
        return self._base.detokenize(inputs)

    def get_config(self):
        return {"name": self.name, "base": keras.saving.serialize_keras_object(self._base)}

    def save_assets(self, dir_path):
        self._base.save_assets(dir_path)

    def load_assets(self, dir_path):
        self._base.load_assets(dir_path)


def with_chat_tokens(tokenizer):
    """``tokenizer`` ready for the chat template (itself when it already is).

    Raises:
        ValueError: a role token clashes with the vocabulary.
    """
    chat = tokenizer if isinstance(tokenizer, ChatTokenizer) else ChatTokenizer(tokenizer)
    chat._check_vocabulary()
    return chat


def exchange_ids(tokenizer, prompt_ids, response_ids=None):
    """One exchange as ids, and which of them the loss is on.

    Args:
        tokenizer: a ``ChatTokenizer``.
        prompt_ids: the user's message, tokenized.
        response_ids: the reply, tokenized; None for the open turn the model
            is to continue (no reply, no closing ``</s>``).

    Returns:
        ``(ids, is_response)``: ``U prompt A [response </s>]`` and a boolean
        array, True on the response ids and their closing ``</s>``.
    """
    head = [tokenizer.user_id, *map(int, prompt_ids), tokenizer.assistant_id]
    tail = [] if response_ids is None else [*map(int, response_ids), EOS_ID]
    return np.asarray(head + tail, np.int32), np.asarray([False] * len(head) + [True] * len(tail))


def conversation_ids(tokenizer, turns, prompt):
    """A conversation's ids for the model to continue: ``</s>``, past exchanges, the open one.

    Args:
        tokenizer: a ``ChatTokenizer``.
        turns: past ``(user text, assistant text)`` pairs, oldest first.
        prompt: the new user message.

    Returns:
        A list of int ids ending in ``<|assistant|>``.
    """
    ids = [EOS_ID]
    for user, reply in turns:
        ids += exchange_ids(tokenizer, _ids(tokenizer, user), _ids(tokenizer, reply))[0].tolist()
    return ids + exchange_ids(tokenizer, _ids(tokenizer, prompt))[0].tolist()


def _ids(tokenizer, text):
    return np.asarray(tokenizer.tokenize(text)).reshape(-1).tolist()
