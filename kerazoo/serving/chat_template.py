"""The chat template as TensorFlow ops, for an export's ``chat`` signature (messages in, reply out).

An instruction-tuned (``sft``) model's tokenizer is a ``ChatTokenizer``;
its export gets a ``chat`` signature beside ``generate``: each row is a
conversation, given as its past exchanges (``history``, ``(rows, pairs,
2)`` strings: user message, assistant reply) and the new user message
(``prompts``). The ids are those of ``kerazoo.text.chat.conversation_ids``,
which ``kerazoo chat`` decodes::

    </s> U user_1 A reply_1 </s> ... U prompt A     <- the model continues here

built here in the graph so that a server, not its client, applies the
template; the reply ends at the end of the turn (``</s>``), where every
decoding loop stops a row. A pair of two empty strings is padding (rows
with fewer exchanges than the widest), skipped. A conversation too long
for the context keeps its last tokens (as a ``generate`` prompt does),
where ``kerazoo chat`` drops whole exchanges, oldest first.
"""

import tensorflow as tf

from kerazoo.decoding.loop_graph import valid_utf8
from kerazoo.text.chat import ChatTokenizer
from kerazoo.text.special import EOS_ID


def is_chat(tokenizer):
    """Whether ``tokenizer`` carries the chat template's role tokens (the model was ``sft``-tuned)."""
    return isinstance(tokenizer, ChatTokenizer)


def conversation_ids(tokenizer, history, prompts):
    """The chat template's ids of a batch of conversations.

    Args:
        tokenizer: a ``ChatTokenizer``.
        history: string ``(rows, pairs, 2)``: past (user, assistant)
            exchanges, oldest first; ``("", "")`` pairs are padding.
        prompts: string ``(rows,)``: the new user messages.

    Returns:
        int32 RaggedTensor ``(rows, None)``, each row ending in ``<|assistant|>``.
    """
    rows, pairs = tf.shape(history, out_type=tf.int64)[0], tf.shape(history, out_type=tf.int64)[1]
    flat = tf.reshape(history, [-1, 2])

    def ids(texts):
        return tf.cast(tokenizer.tokenize(valid_utf8(texts)), tf.int32)

    def token(value, n):
        return tf.RaggedTensor.from_tensor(tf.fill([n, 1], tf.constant(value, tf.int32)))

    n = tf.shape(flat)[0]
    exchanges = tf.concat([token(tokenizer.user_id, n), ids(flat[:, 0]), token(tokenizer.assistant_id, n),
                           ids(flat[:, 1]), token(EOS_ID, n)], axis=1)
    kept = tf.reduce_any(tf.strings.length(flat) > 0, axis=1)
    exchanges = tf.RaggedTensor.from_uniform_row_length(exchanges, pairs, nrows=rows)
    exchanges = tf.ragged.boolean_mask(exchanges, tf.reshape(kept, tf.stack([rows, pairs]))).merge_dims(1, 2)
    return tf.concat([token(EOS_ID, rows), exchanges, token(tokenizer.user_id, rows), ids(prompts),
                      token(tokenizer.assistant_id, rows)], axis=1)
