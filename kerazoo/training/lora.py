"""LoRA fine-tuning on Keras' own ``layer.enable_lora``: only the adapters train, the run keeps merged weights.

    built model (fresh, or [model] init_from = "runs/NAME")
      -> enable_lora(rank, alpha) on its Dense / EinsumDense layers named by train.lora_targets
      -> every other variable frozen: the optimizer sees the adapters A (in x r) and B (r x out) only
      -> model.fit as always (the lifecycle's callbacks, resume, checkpoints)
      -> merged: kernel + (alpha / r) A B written into a plain copy of the model,
         which is what model.keras, the evaluation and an export hold

Keras' ``enable_lora`` does the adapter arithmetic (its ``kernel`` property
is the merged kernel, so the cached decoding steps, which read ``kernel``,
see the adapted weights during training too). What it leaves to us, and
this module does: choosing the layers, freezing everything else (Keras
freezes only the adapted kernels), and merging back into a model without
adapters (Keras has no "disable LoRA"; the zoo's models rebuild from their
hyper-parameters, so a copy from ``get_config`` has none).
"""

import fnmatch

import keras
import numpy as np

# The layers whose kernels take adapters: Keras' projections (attention's q/k/v/o are EinsumDense).
ELIGIBLE = (keras.layers.Dense, keras.layers.EinsumDense)
# Attention's query and value projections: the LoRA paper's choice, and keras_hub's default.
DEFAULT_TARGETS = "query,value"


def _layers(model):
    # Keras has no public recursive layer list; keras_hub's own enable_lora walks
    # the same private one. The tokenizer is not tracked, so it is not in it.
    return model._flatten_layers(include_self=False, recursive=True)


def target_layers(model, targets=DEFAULT_TARGETS):
    """The layers of ``model`` that LoRA adapts.

    Args:
        model: a built Keras model.
        targets: comma-separated ``fnmatch`` patterns of layer names
            (``"query,value"``, ``"*dense*"``, ``"*"``).

    Returns:
        The matching Dense / EinsumDense layers, in model order.

    Raises:
        ValueError: none matches (naming the layers that could).
    """
    patterns = [p.strip() for p in targets.split(",") if p.strip()]
    eligible = [layer for layer in _layers(model) if isinstance(layer, ELIGIBLE)]
    chosen = [layer for layer in eligible if any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)]
    if not chosen:
        names = sorted({layer.name for layer in eligible})
        arch = type(model).__name__
        if not names:
            raise ValueError(f"train.lora_rank: the {arch} model has no Dense or EinsumDense layer "
                             "to put LoRA adapters on; train it without train.lora_rank")
        raise ValueError(f"train.lora_targets '{targets}' matches no Dense/EinsumDense layer of the {arch} model; "
                         f"its layers that can take adapters: {', '.join(names[:12])}")
    return chosen


def adapters(model):
    """The LoRA variables (A and B of every adapted layer) of ``model``."""
    out = []
    for layer in _layers(model):
        if getattr(layer, "lora_enabled", False):
            out += [layer.lora_kernel_a, layer.lora_kernel_b]
    return out


def trainable_params(model):
    """Number of trainable parameters (what the optimizer updates)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def apply(model, train):
    """Puts LoRA adapters on ``model`` as ``[train]`` says; freezes the rest.

    Args:
        model: a built zoo model.
        train: the recipe's ``TrainSection`` (``lora_rank``, ``lora_alpha``,
            ``lora_targets``). ``lora_rank = 0`` leaves the model untouched.

    Returns:
        ``{}`` without LoRA, else ``{"lora_rank", "lora_alpha", "lora_layers"}``.

    Raises:
        ValueError: no layer to adapt.
    """
    if not train.lora_rank:
        return {}
    alpha = train.lora_alpha or float(train.lora_rank)  # Keras' default: alpha = rank (scale 1)
    for layer in target_layers(model, train.lora_targets):
        layer.enable_lora(train.lora_rank, lora_alpha=alpha)
    keep = {id(v) for v in adapters(model)}
    for variable in model.weights:
        if id(variable) not in keep:
            variable.trainable = False
    return {"lora_rank": train.lora_rank, "lora_alpha": alpha, "lora_layers": len(keep) // 2}


def merged(model):
    """A copy of ``model`` without adapters whose kernels hold ``kernel + (alpha / r) A B``.

    Args:
        model: a zoo model, with or without LoRA.

    Returns:
        ``model`` itself when it has no adapters; else the merged copy, rebuilt
        from its config (with its tokenizer), every weight trainable again.
    """
    layers = [layer for layer in _layers(model) if getattr(layer, "lora_enabled", False)]
    if not layers:
        return model
    merged_kernel = {}
    for layer in layers:
        # ``layer.kernel`` is the merged kernel too, but cast to the compute dtype;
        # merge in float32 so a mixed-precision run keeps float32 weights.
        a, b = (keras.ops.convert_to_numpy(v).astype(np.float32) for v in (layer.lora_kernel_a, layer.lora_kernel_b))
        base = keras.ops.convert_to_numpy(layer._kernel)
        merged_kernel[id(layer._kernel)] = (base.astype(np.float32) + (layer.lora_alpha / layer.lora_rank)
                                            * np.matmul(a, b)).astype(base.dtype)
    skip = {id(v) for v in adapters(model)}
    values = [merged_kernel.get(id(v), None) if id(v) in merged_kernel else keras.ops.convert_to_numpy(v)
              for v in model.weights if id(v) not in skip]
    plain = type(model).from_config(model.get_config())
    if getattr(model, "tokenizer", None) is not None:
        plain.tokenizer = model.tokenizer  # from_config rebuilt it without its vocabulary files
    if len(plain.weights) != len(values):
        raise RuntimeError(f"merging LoRA: the rebuilt model has {len(plain.weights)} weights, not {len(values)}")
    for variable, value in zip(plain.weights, values):
        if tuple(variable.shape) != value.shape:
            raise RuntimeError(f"merging LoRA: {variable.path} is {tuple(variable.shape)}, the value {value.shape}")
        variable.assign(value)
    return plain
