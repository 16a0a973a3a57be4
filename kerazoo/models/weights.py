"""Raw weights for the decoding steps, read the same way whether or not a layer is int8.

The decoding steps (``gpt/step.py``, ``llama/step.py``, the torch mirror)
read layers' weights instead of calling the layers. A layer quantized by
``kerazoo.models.quantize`` (Keras' weight-only int8) holds an int8 kernel
and a float scale per output channel; these functions give the float
weights it stands for (int8 divided by its scale), which are the products
Keras' own weight-only int8 call computes, so cached decoding stays equal
to the forward pass. For a float layer they are the plain current values.
"""

from keras import ops


def is_quantized(model):
    """Whether any layer of ``model`` holds quantized weights."""
    return any(getattr(layer, "quantization_mode", None) for layer in model._flatten_layers())



def _quantized(layer):
    return getattr(layer, "quantization_mode", None) == "int8"


def kernel(layer):
    """A ``Dense`` or ``EinsumDense`` kernel as float weights, quantized or not.

    Args:
        layer: a built ``Dense`` / ``EinsumDense``.

    Returns:
        The kernel's current value (the traced one inside a StatelessScope);
        for an int8 layer, its int8 kernel divided by its scale, in the
        compute dtype.
    """
    if not _quantized(layer):
        return layer.kernel.value
    return ops.divide(ops.cast(layer._kernel.value, layer.compute_dtype), _kernel_scale(layer))


def _kernel_scale(layer):
    """An int8 layer's kernel scale, laid out to broadcast against its kernel."""
    scale = layer.kernel_scale.value
    if hasattr(layer, "_adjust_scale_for_dequant"):
        # EinsumDense keeps its scale in the output's layout; Keras' own
        # gradient uses this method to lay it out like the kernel.
        scale = layer._adjust_scale_for_dequant(scale)
    return scale


def embeddings(layer):
    """A token embedding's ``(vocab, dim)`` table as float weights, quantized or not.

    Args:
        layer: a built ``Embedding`` / ``ReversibleEmbedding``.

    Returns:
        The table (int8 rows divided by their per-row scale when quantized).
    """
    if not _quantized(layer):
        return layer.embeddings.value
    table = ops.cast(layer._embeddings.value, layer.compute_dtype)
    return ops.divide(table, ops.expand_dims(layer.embeddings_scale.value, -1))


def reverse_embeddings(layer):
    """An untied ``ReversibleEmbedding``'s ``(dim, vocab)`` output head as float weights.

    Args:
        layer: a built untied ``ReversibleEmbedding``.

    Returns:
        The head (int8 columns divided by their per-column scale when quantized).
    """
    if not _quantized(layer):
        return layer.reverse_embeddings.value
    head = ops.cast(layer.reverse_embeddings.value, layer.compute_dtype)
    return ops.divide(head, layer.reverse_embeddings_scale.value)


def embed(layer, token_ids):
    """The token embedding's rows for ``token_ids``, quantized or not.

    Takes the int8 rows before scaling them, so a decoding step reads only
    its tokens' rows rather than the whole table.

    Args:
        layer: a built ``Embedding`` / ``ReversibleEmbedding``.
        token_ids: integer ids of any shape.

    Returns:
        ``token_ids.shape + (dim,)`` float rows.
    """
    if not _quantized(layer):
        return ops.take(layer.embeddings.value, token_ids, axis=0)
    rows = ops.cast(ops.take(layer._embeddings.value, token_ids, axis=0), layer.compute_dtype)
    return ops.divide(rows, ops.expand_dims(ops.take(layer.embeddings_scale.value, token_ids, axis=0), -1))


def int8_columns(layer, in_dim):
    """An int8 ``Dense``/``EinsumDense`` kernel as ``(in_dim, out)`` int8 columns and a scale per column.

    For products that run on the int8 values themselves (the ``quantize``
    bench's int8 floor) rather than on widened float weights.

    Args:
        layer: a built int8 ``Dense`` / ``EinsumDense``.
        in_dim: the product of the kernel's input axes.

    Returns:
        ``(int8 columns, scales)``: the float weight is ``columns / scales``.
    """
    kernel = layer._kernel.value
    scale = ops.broadcast_to(_kernel_scale(layer), ops.shape(kernel))
    return ops.reshape(kernel, (in_dim, -1)), ops.reshape(scale, (in_dim, -1))[0]


def int8_head(layer):
    """An int8 ``ReversibleEmbedding``'s output head as ``(dim, vocab)`` int8 columns and their scales.

    Args:
        layer: a built int8 ``ReversibleEmbedding`` (tied or not).

    Returns:
        ``(int8 columns, scales)``.
    """
    if layer.tie_weights:
        return ops.transpose(layer._embeddings.value), layer.embeddings_scale.value
    return layer.reverse_embeddings.value, layer.reverse_embeddings_scale.value
