"""int8 weights for the causal Transformer decoders, on Keras' own ``model.quantize``.

``quantize(model)`` calls ``model.quantize("int8")`` with weight-only int8:
every ``Dense``, ``EinsumDense`` and the token ``ReversibleEmbedding`` (the
tied or untied output head too) keep int8 weights and one float32 scale per
output channel (Keras' ``AbsMaxQuantizer``); activations stay in the compute
dtype. Weight-only, because decoding at small batches is bound by streaming
the weights, not by arithmetic, and because it keeps the quality loss to the
weights' rounding (activation quantization would add a second rounding per
product for no gain in bytes moved).

The training-graph forward pass (scoring, ``kz.score``) runs Keras' own int8
kernels. The decoding steps (``gpt/step.py``, ``llama/step.py``, the torch
mirror) read raw weights instead of calling layers, so they read them
through ``kerazoo.models.weights``, which
give the float weights a quantized layer stands for (int8 times its scale):
the same products Keras' weight-only call computes, so cached decoding
stays equal to the forward pass (``tests/models/test_quantize.py``). XLA
and TF graphs see int8 variables: an exported SavedModel stores the int8
weights (about a quarter of the float32 bytes).

A quantized model is not re-saved as ``.keras``: the zoo's models build
their sub-layers without a per-layer dtype map, which Keras would need to
rebuild int8 variables on load. Quantizing is instead a deterministic step
applied after loading the float checkpoint (``kz.quantize``, ``kerazoo
export --quantize int8``, ``kerazoo generate --quantize int8``): the same
float weights always give the same int8 weights.
"""

import warnings

from kerazoo.models import weights

MODES = ("int8",)


def quantizable(model):
    """Whether ``quantize`` covers this model: the zoo's ``gpt`` and ``llama``."""
    from kerazoo.models.gpt.model import GPT
    from kerazoo.models.llama.model import Llama

    return isinstance(model, (GPT, Llama))


def quantize(model, mode="int8"):
    """Quantizes a causal Transformer decoder's weights in place.

    Args:
        model: a zoo ``gpt`` or ``llama`` (float weights), a run folder or a
            ``.keras`` file.
        mode: ``"int8"`` (weight-only, per output channel).

    Returns:
        The model, its layers now holding int8 weights.

    Raises:
        ValueError: an unknown mode, a model it does not cover, or a model
            already quantized.
    """
    import keras

    from kerazoo.inference.generate import resolve_model

    if mode not in MODES:
        raise ValueError(f"unknown quantization mode {mode!r}; choose one of: {', '.join(MODES)}")
    model = resolve_model(model)
    if not quantizable(model):
        raise ValueError(
            f"int8 quantization covers the Transformer decoders (gpt, llama), not {type(model).__name__}"
        )
    if weights.is_quantized(model):
        raise ValueError(f"the model is already quantized ({mode})")
    config = keras.quantizers.Int8QuantizationConfig(weight_quantizer=None, activation_quantizer=None)
    with warnings.catch_warnings():
        # Keras warns once per layer kind it has no int8 form for (norms,
        # dropout, position embeddings): expected, and not the user's concern.
        warnings.simplefilter("ignore", UserWarning)
        # type_check=False: keras_hub's ReversibleEmbedding subclasses Keras'
        # and is quantized by Keras' own method, which refuses subclasses
        # unless told not to check the type.
        model.quantize(mode, config=config, type_check=False)
    return model
