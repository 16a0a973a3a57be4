"""Import of a local Hugging Face GPT-2 checkpoint folder into the zoo's ``gpt`` arch.

The folder holds ``config.json``, ``model.safetensors`` (or
``pytorch_model.bin``), ``vocab.json`` and ``merges.txt``, as written by
``transformers``' ``save_pretrained``. Nothing is downloaded.

What maps to what:

- tokenizer: GPT-2's byte-level BPE becomes a ``GPT2Tokenizer`` on the zoo's
  id layout (``gpt2_tokenizer.gpt2_zoo_vocabulary``): ``<|endoftext|>`` is the
  zoo's ``</s>`` (id 3), so generation starts from it, as GPT-2's does, and
  stops at it; GPT-2 id ``i`` is zoo id ``i + 5``. ``<s>`` (id 2) gets the
  ``<|endoftext|>`` embedding (GPT-2 uses it as its start token too);
  ``<pad>``, ``<unk>`` and ``<mask>`` get zero embeddings.
- model: ``gpt`` with GPT-2's sizes, ``gelu_approximate`` for
  ``activation_function = "gelu_new"``, tied embeddings, and a logit bias
  that is 0 for every GPT-2 token and -1e9 for the four ids GPT-2 lacks, so
  they are never predicted (the logits of GPT-2's tokens are unchanged).
- weights: GPT-2's ``Conv1D`` layers store ``(in, out)`` kernels, which are
  Keras' ``Dense`` layout; ``c_attn`` is split into the query, key and value
  projections of keras_hub's attention, reshaped per head.
"""

import json
import os

import numpy as np

from kerazoo.models.gpt.model import GPT
from kerazoo.interop.hf.checks import check_layers, check_rows, config_float, config_int
from kerazoo.interop.hf.gpt2_tokenizer import GPT2_END_OF_TEXT, GPT2Tokenizer, gpt2_zoo_vocabulary
from kerazoo.text.special import BOS_ID, EOS_ID

# The logit of the zoo ids GPT-2 has no token for.
UNUSED_LOGIT = -1e9
_ACTIVATIONS = {"gelu_new": True, "gelu_pytorch_tanh": True, "gelu": False}


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: a GPT-2 checkpoint folder holds config.json, "
                         "model.safetensors (or pytorch_model.bin), vocab.json and merges.txt") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg})") from None


def _read_merges(path):
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: GPT-2's BPE needs its merges.txt")
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    # The first line of GPT-2's file is a "#version: 0.2" header.
    merges = [line for line in lines if line.strip() and not line.startswith("#version")]
    if not merges:  # the BPE layer would fail deep inside TensorFlow
        raise ValueError(f"{path} holds no merges")
    return merges


def _read_weights(folder):
    """The checkpoint's tensors as numpy arrays, names without the ``transformer.`` prefix."""
    safetensors_path = os.path.join(folder, "model.safetensors")
    torch_path = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        from safetensors.numpy import load_file

        state = load_file(safetensors_path)
    elif os.path.isfile(torch_path):
        import torch

        state = {k: v.float().numpy() for k, v in torch.load(torch_path, map_location="cpu", weights_only=True).items()}
    else:
        raise ValueError(f"{folder} holds no weights (model.safetensors or pytorch_model.bin)")
    return {(k[len("transformer."):] if k.startswith("transformer.") else k): np.asarray(v, np.float32)
            for k, v in state.items()}


def import_gpt2(folder):
    """Builds a zoo ``gpt`` with the weights and tokenizer of a GPT-2 checkpoint folder.

    Args:
        folder: a local folder from ``GPT2LMHeadModel.save_pretrained`` plus
            its tokenizer files (``vocab.json``, ``merges.txt``).

    Returns:
        A ``kerazoo.models.GPT`` carrying a ``GPT2Tokenizer``; its logits for
        GPT-2's tokens equal the checkpoint's (zoo id = GPT-2 id + 5).

    Raises:
        ValueError: a missing file, a config this arch cannot reproduce, or
            weights of the wrong shape.

    Example:
        >>> model = import_gpt2("checkpoints/gpt2")
        >>> kerazoo.generate(model, "Hello, my name is", max_new_tokens=16)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"no checkpoint folder at {folder}")
    config = _read_json(os.path.join(folder, "config.json"))
    if config.get("model_type") not in (None, "gpt2"):
        raise ValueError(f"{folder} holds a '{config.get('model_type')}' checkpoint, not GPT-2")
    activation = config.get("activation_function", "gelu_new")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"config.json: activation_function '{activation}' is not supported (gelu_new, gelu)")
    for key, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                           ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if config.get(key, supported) != supported:
            raise ValueError(f"config.json: {key} = {config[key]} is not supported by the gpt arch")
    hidden, heads, layers = (config_int(config, key) for key in ("n_embd", "n_head", "n_layer"))
    positions = config_int(config, "n_positions")
    inner = config_int(config, "n_inner", 4 * hidden) if config.get("n_inner") is not None else 4 * hidden
    if hidden % heads:
        raise ValueError(f"config.json: n_embd {hidden} is not a multiple of n_head {heads}")
    hf_vocabulary = _read_json(os.path.join(folder, "vocab.json"))
    merges = _read_merges(os.path.join(folder, "merges.txt"))
    vocabulary, source_ids = gpt2_zoo_vocabulary(hf_vocabulary, GPT2_END_OF_TEXT)
    tokenizer = GPT2Tokenizer(vocabulary=vocabulary, merges=merges)

    weights = _read_weights(folder)
    check_layers(weights, r"h\.(\d+)\.", layers, "n_layer")
    check_rows(weights, "wpe.weight", positions, "n_positions")
    wte = weights.get("wte.weight")
    if wte is None or wte.shape[1] != hidden or wte.shape[0] <= max(source_ids):
        raise ValueError(f"wte.weight has shape {None if wte is None else wte.shape}; "
                         f"expected ({max(source_ids) + 1}+, {hidden}) for this vocab.json and config")
    model = GPT(
        vocab_size=len(vocabulary),
        max_length=positions,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hidden,
        intermediate_dim=inner,
        dropout=config_float(config, "resid_pdrop", 0.1, upper=1.0),
        tie_embeddings=True,
        layer_norm_epsilon=config_float(config, "layer_norm_epsilon", 1e-5),
        gelu_approximate=_ACTIVATIONS[activation],
        logit_bias=True,
        tokenizer=tokenizer,
    )

    ids = np.asarray(source_ids)
    embeddings = np.where((ids >= 0)[:, None], wte[np.maximum(ids, 0)], 0.0).astype(np.float32)
    embeddings[BOS_ID] = wte[source_ids[EOS_ID]]
    bias = np.where(ids >= 0, 0.0, UNUSED_LOGIT).astype(np.float32)

    def take(name, shape=None):
        if name not in weights:
            raise ValueError(f"the checkpoint has no tensor '{name}'")
        value = weights[name]
        return value if shape is None else value.reshape(shape)

    def assign(variable, value):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(f"{variable.path}: checkpoint shape {value.shape}, model shape {tuple(variable.shape)}")
        variable.assign(value)

    head_dim = hidden // heads
    assign(model.token_embedding.embeddings, embeddings)
    assign(model.head_bias.bias, bias)
    assign(model.position_embedding.position_embeddings, take("wpe.weight"))
    for i, block in enumerate(model.transformer_layers):
        prefix = f"h.{i}."
        attn = block._self_attention_layer
        kernel, qkv_bias = take(prefix + "attn.c_attn.weight"), take(prefix + "attn.c_attn.bias")
        for j, dense in enumerate((attn._query_dense, attn._key_dense, attn._value_dense)):
            assign(dense.kernel, kernel[:, j * hidden:(j + 1) * hidden].reshape(hidden, heads, head_dim))
            assign(dense.bias, qkv_bias[j * hidden:(j + 1) * hidden].reshape(heads, head_dim))
        assign(attn._output_dense.kernel, take(prefix + "attn.c_proj.weight").reshape(heads, head_dim, hidden))
        assign(attn._output_dense.bias, take(prefix + "attn.c_proj.bias"))
        for norm, name in ((block._self_attention_layer_norm, "ln_1"), (block._feedforward_layer_norm, "ln_2")):
            assign(norm.gamma, take(prefix + name + ".weight"))
            assign(norm.beta, take(prefix + name + ".bias"))
        for dense, name in ((block._feedforward_intermediate_dense, "mlp.c_fc"),
                            (block._feedforward_output_dense, "mlp.c_proj")):
            assign(dense.kernel, take(prefix + name + ".weight"))
            assign(dense.bias, take(prefix + name + ".bias"))
    assign(model.final_norm.gamma, take("ln_f.weight"))
    assign(model.final_norm.beta, take("ln_f.bias"))
    return model
