"""Attention maps of a ``gpt``: who each token looks at, in one layer.

The ``gpt`` model's keras_hub ``TransformerDecoder`` blocks do not return
their attention probabilities, and the model is not changed to expose them.
Instead they are recomputed from the model's own weights by the pieces of
the block's decoding step (``kerazoo.models.gpt.step``); a test checks that
the block's output rebuilt from these probabilities equals the real block's
output, so the two cannot drift:

    x_0 = token embedding + position embedding
    x_l = block_{l-1}(x_{l-1})                      (inference: no dropout)
    h   = LayerNorm_l(x_l)                          (pre-norm)
    A   = softmax(Q K^T / sqrt(d_head) + causal)    Q = h W_Q, K = h W_K per head

Example:
    >>> tokens, weights = kerazoo.inference.attention.attention_weights(model, "The for statement", layer=0)
    >>> weights.shape  # (heads, len(tokens), len(tokens))
"""

import numpy as np
import tensorflow as tf
from keras import ops

from kerazoo.models.gpt import step as gpt_step
from kerazoo.text import packing


def _check_gpt(model, layer):
    """Raises ValueError unless ``model`` is a gpt with a block ``layer``."""
    blocks = getattr(model, "transformer_layers", None)
    if blocks is None or not hasattr(model, "position_embedding"):
        raise ValueError(f"attention maps need a gpt model, got {type(model).__name__}")
    if not isinstance(layer, int) or not 0 <= layer < len(blocks):
        raise ValueError(f"layer must be an int in [0, {len(blocks) - 1}], got {layer!r}")


def token_ids(model, text, tokenizer=None):
    """The ids the model reads for ``text``: ``</s>`` (a document's start), then the text.

    A text longer than the context keeps its first ``max_length - 1`` tokens.

    Args:
        model: a ``gpt`` carrying its tokenizer.
        text: a string.
        tokenizer: overrides the model's own tokenizer.

    Returns:
        An int32 array ``(length,)``.
    """
    tokenizer = tokenizer or model.tokenizer
    return packing.document_ids(tokenizer.tokenize(tf.constant(text)), model.max_length)


def block_input(model, ids, layer):
    """Hidden states entering block ``layer`` (inference mode: no dropout).

    Args:
        model: a ``gpt``.
        ids: int token ids ``(batch, length)``.
        layer: index of the block.

    Returns:
        A float tensor ``(batch, length, hidden_dim)``.
    """
    _check_gpt(model, layer)
    x = model.token_embedding(ids)
    x = x + model.position_embedding(x)
    for block in model.transformer_layers[:layer]:
        x = block(x, training=False)  # causal mask is the block's default
    return x


def attention_probabilities(block, x):
    """The causal self-attention probabilities of one pre-norm decoder block.

    Args:
        block: a ``keras_hub.layers.TransformerDecoder`` with
            ``normalize_first=True`` (a ``gpt`` block).
        x: hidden states entering the block, ``(batch, length, dim)``.

    Returns:
        A float32 tensor ``(batch, heads, length, length)``: row ``q`` is how
        position ``q`` spreads its attention over positions ``k <= q``.
    """
    # The decoding step's own pieces: its LayerNorm, projections and softmax
    # (in float32 even under mixed precision), so the maps show exactly what
    # the block computes.
    h = gpt_step.layer_norm(x, block._self_attention_layer_norm)
    query, key, _ = gpt_step.projections(block, h, "float32")
    causal = gpt_step.causal(ops.shape(x)[1])
    return gpt_step.probabilities(ops.cast(query, "float32"), [(key, None, causal)])


def attention_weights(model, text, layer=0, tokenizer=None):
    """The attention map of one layer of a ``gpt`` over one text.

    Args:
        model: a ``gpt`` model of the zoo (``kerazoo.build("gpt", ...)``,
            ``kerazoo.load_run(...)``).
        text: the sentence to look at.
        layer: which block (0 is the first).
        tokenizer: overrides the model's own tokenizer.

    Returns:
        ``(tokens, weights)``: ``tokens`` the token strings the model reads
        (``"</s>"`` first: the start of a document), ``weights`` a float32
        numpy array ``(heads, len(tokens), len(tokens))`` whose rows sum to 1
        and are zero above the diagonal (a token never sees later ones).

    Raises:
        ValueError: not a gpt, or no such layer.
    """
    _check_gpt(model, layer)
    tokenizer = tokenizer or model.tokenizer
    ids = token_ids(model, text, tokenizer)
    x = block_input(model, ids[None], layer)
    probs = attention_probabilities(model.transformer_layers[layer], x)
    tokens = [tokenizer.id_to_token(int(i)) for i in ids]
    return tokens, np.asarray(ops.convert_to_numpy(probs[0]), dtype=np.float32)
