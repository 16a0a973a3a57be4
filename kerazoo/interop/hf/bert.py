"""Hugging Face BERT checkpoints -> the zoo's ``bert`` arch and WordPiece tokenizer.

The zoo's tokenizers keep their five special tokens at ids 0..4
(``<pad> <unk> <s> </s> <mask>``), while a BERT vocabulary has ``[PAD]`` at 0
and ``[UNK] [CLS] [SEP] [MASK]`` at 100..103. The import therefore reorders
the vocabulary: ids 0..4 become BERT's ``[PAD] [UNK] [CLS] [SEP] [MASK]``
(renamed to the zoo's names), and every other token keeps its order after
them. The word-embedding rows are permuted the same way, so each token still
meets its own trained vector: ``<s> text </s>`` in the zoo is exactly
``[CLS] text [SEP]`` in the checkpoint.
"""

import os

import numpy as np

from kerazoo.interop.hf.checks import check_layers, check_rows, config_float, config_int
from kerazoo.text.special import SPECIAL_TOKENS

# The checkpoint's special token (tokenizer_config key) behind each zoo id 0..4.
_BERT_SPECIALS = (("pad_token", "[PAD]"), ("unk_token", "[UNK]"), ("cls_token", "[CLS]"),
                  ("sep_token", "[SEP]"), ("mask_token", "[MASK]"))
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
                "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh"}


def _read_json(path):
    import json

    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_weights(folder):
    """The checkpoint's tensors as numpy arrays, without a ``bert.`` prefix.

    Reads ``model.safetensors`` (preferred) or ``pytorch_model.bin`` (needs
    torch, loaded with ``weights_only=True``).

    Raises:
        ValueError: no weights file, or the library to read it is missing.
    """
    safetensors = os.path.join(folder, "model.safetensors")
    binary = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(safetensors):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ValueError("reading model.safetensors needs the 'safetensors' package") from None
        tensors = load_file(safetensors)
    elif os.path.isfile(binary):
        try:
            import torch
        except ImportError:
            raise ValueError("reading pytorch_model.bin needs torch (pip install 'kerazoo[torch]')") from None
        tensors = {k: v.float().numpy() for k, v in torch.load(binary, map_location="cpu", weights_only=True).items()}
    else:
        raise ValueError(f"{folder} holds no model.safetensors or pytorch_model.bin")
    return {(k[len("bert."):] if k.startswith("bert.") else k): np.asarray(v, np.float32) for k, v in tensors.items()}


def vocabulary_order(tokens, special_names):
    """The zoo order of a BERT vocabulary.

    Args:
        tokens: the checkpoint's vocab.txt tokens (id = position).
        special_names: the checkpoint's pad, unk, cls, sep and mask tokens.

    Returns:
        ``(vocabulary, order)``: the zoo vocabulary (the 5 zoo specials, then
        the other tokens in their order) and ``order[new_id] = checkpoint id``.

    Raises:
        ValueError: a special token missing from the vocabulary, or a zoo
            special name used by an ordinary token.
    """
    index = {}
    for i, token in enumerate(tokens):
        index.setdefault(token, i)
    special_ids = []
    for name in special_names:
        if name not in index:
            raise ValueError(f"vocab.txt has no special token {name!r}")
        special_ids.append(index[name])
    clash = [t for t in SPECIAL_TOKENS if t in index]
    if clash:
        raise ValueError(f"vocab.txt uses the zoo's special token name {clash[0]!r} for an ordinary token")
    taken = set(special_ids)
    rest = [i for i in range(len(tokens)) if i not in taken]
    vocabulary = list(SPECIAL_TOKENS) + [tokens[i] for i in rest]
    return vocabulary, np.asarray(special_ids + rest, np.int64)


def load_tokenizer(folder):
    """The zoo WordPiece tokenizer of a BERT checkpoint, and its id order.

    Lowercasing follows ``tokenizer_config.json``'s ``do_lower_case`` (accents
    are stripped with it, as BERT's uncased tokenizer does, unless
    ``strip_accents`` is false).

    Returns:
        ``(tokenizer, order)``; see ``vocabulary_order``.
    """
    from kerazoo.text import WordPieceTokenizer

    path = os.path.join(folder, "vocab.txt")
    if not os.path.isfile(path):
        raise ValueError(f"{folder} holds no vocab.txt (the WordPiece vocabulary)")
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n").rstrip("\r") for line in f]
    while tokens and tokens[-1] == "":
        tokens.pop()
    settings = _read_json(os.path.join(folder, "tokenizer_config.json"))
    special_map = _read_json(os.path.join(folder, "special_tokens_map.json"))
    names = []
    for key, default in _BERT_SPECIALS:
        value = settings.get(key, special_map.get(key, default))
        names.append(value.get("content", default) if isinstance(value, dict) else value)
    vocabulary, order = vocabulary_order(tokens, names)
    lowercase = bool(settings.get("do_lower_case", True))
    strip_accents = settings.get("strip_accents")
    strip_accents = lowercase if strip_accents is None else bool(strip_accents)
    tokenizer = WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents,
                                   split_on_cjk=bool(settings.get("tokenize_chinese_chars", True)))
    return tokenizer, order


def hparams_of(config):
    """The ``bert`` arch hyper-parameters of a checkpoint's config.json.

    Raises:
        ValueError: settings the arch cannot represent.
    """
    activation = config.get("hidden_act", "gelu")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"config.json: hidden_act {activation!r} is not supported; "
                         f"supported: {', '.join(_ACTIVATIONS)}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("config.json: only absolute position embeddings are supported")
    if config.get("is_decoder"):
        raise ValueError("config.json: is_decoder BERT checkpoints are not encoders")
    return {
        "max_length": config_int(config, "max_position_embeddings"),
        "num_layers": config_int(config, "num_hidden_layers"),
        "num_heads": config_int(config, "num_attention_heads"),
        "hidden_dim": config_int(config, "hidden_size"),
        "intermediate_dim": config_int(config, "intermediate_size"),
        "dropout": config_float(config, "hidden_dropout_prob", 0.1, upper=1.0),
        "num_segments": config_int(config, "type_vocab_size", 2),
        "activation": _ACTIVATIONS[activation],
        "layer_norm_epsilon": config_float(config, "layer_norm_eps", 1e-12),
    }


def _layer_norm(weights, prefix):
    """gamma, beta of a LayerNorm (``weight/bias`` or the old ``gamma/beta`` names)."""
    if f"{prefix}.weight" in weights:
        return [weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]]
    return [weights[f"{prefix}.gamma"], weights[f"{prefix}.beta"]]


def port_weights(model, weights, order):
    """Copies checkpoint tensors into a zoo ``BERT``.

    Args:
        model: a ``BERT`` built with ``hparams_of(config)``.
        weights: from ``read_weights``.
        order: ``order[new_id] = checkpoint id`` (``vocabulary_order``).

    Returns:
        Whether the checkpoint had a masked-LM head (else the model's head
        keeps its random initialisation).

    Raises:
        ValueError: a missing tensor or a shape that does not fit.
    """
    d, h = model.hidden_dim, model.num_heads

    def get(key):
        if key not in weights:
            raise ValueError(f"the checkpoint has no tensor {key!r}")
        return weights[key]

    def set_layer(layer, values):
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(f"{layer.name}/{variable.name}: checkpoint shape {value.shape}, "
                                 f"model shape {tuple(variable.shape)}")
            variable.assign(value)

    set_layer(model.token_embedding, [get("embeddings.word_embeddings.weight")[order]])
    set_layer(model.position_embedding, [get("embeddings.position_embeddings.weight")[: model.max_length]])
    set_layer(model.segment_embedding, [get("embeddings.token_type_embeddings.weight")])
    set_layer(model.embeddings_norm, _layer_norm(weights, "embeddings.LayerNorm"))
    for i, block in enumerate(model.transformer_layers):
        p = f"encoder.layer.{i}"
        attention = block._self_attention_layer
        for dense, name in ((attention.query_dense, "query"), (attention.key_dense, "key"),
                            (attention.value_dense, "value")):
            kernel = get(f"{p}.attention.self.{name}.weight").T.reshape(d, h, d // h)
            set_layer(dense, [kernel, get(f"{p}.attention.self.{name}.bias").reshape(h, d // h)])
        set_layer(attention.output_dense, [get(f"{p}.attention.output.dense.weight").T.reshape(h, d // h, d),
                                           get(f"{p}.attention.output.dense.bias")])
        set_layer(block._self_attention_layer_norm, _layer_norm(weights, f"{p}.attention.output.LayerNorm"))
        set_layer(block._feedforward_intermediate_dense, [get(f"{p}.intermediate.dense.weight").T,
                                                          get(f"{p}.intermediate.dense.bias")])
        set_layer(block._feedforward_output_dense, [get(f"{p}.output.dense.weight").T, get(f"{p}.output.dense.bias")])
        set_layer(block._feedforward_layer_norm, _layer_norm(weights, f"{p}.output.LayerNorm"))
    head = "cls.predictions.transform"
    if f"{head}.dense.weight" in weights:
        set_layer(model.mlm_dense, [get(f"{head}.dense.weight").T, get(f"{head}.dense.bias")])
        set_layer(model.mlm_norm, _layer_norm(weights, f"{head}.LayerNorm"))
        return True
    return False


def import_bert(folder, config, log=print):
    """Builds the zoo ``bert`` of a Hugging Face BERT checkpoint folder.

    Args:
        folder: the checkpoint folder.
        config: its parsed config.json.
        log: where progress lines go.

    Returns:
        ``(model, info)``: the ``BERT`` carrying its WordPiece tokenizer, and
        ``{"arch": "bert", "hparams": ..., "mlm_head": bool, ...}``.
    """
    from kerazoo.models import build

    hparams = hparams_of(config)
    tokenizer, order = load_tokenizer(folder)
    if "vocab_size" in config and config_int(config, "vocab_size") != len(order):
        raise ValueError(f"config.json vocab_size {config['vocab_size']} does not match vocab.txt ({len(order)} tokens)")
    weights = read_weights(folder)
    check_layers(weights, r"encoder\.layer\.(\d+)\.", hparams["num_layers"], "num_hidden_layers")
    check_rows(weights, "embeddings.position_embeddings.weight", hparams["max_length"], "max_position_embeddings")
    model = build("bert", tokenizer=tokenizer, **hparams)
    has_head = port_weights(model, weights, order)
    if not has_head:
        log("note: the checkpoint has no masked-LM head; the model's head is freshly initialised "
            "(the encoder is the checkpoint's)")
    info = {"arch": "bert", "hparams": hparams, "mlm_head": has_head,
            "special_token_ids_in_checkpoint": {zoo: int(order[i]) for i, zoo in enumerate(SPECIAL_TOKENS)}}
    return model, info
