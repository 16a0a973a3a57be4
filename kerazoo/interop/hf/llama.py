"""Import of local Hugging Face Llama-family checkpoints into the zoo's ``llama`` arch.

Covered exactly: ``LlamaForCausalLM`` (``model_type`` "llama") and
``Qwen2ForCausalLM`` ("qwen2") with SiLU MLPs, full (not sliding-window)
attention and default rotary positions; anything else is refused with one
line naming the setting. A folder holds ``config.json``, the weights
(``model.safetensors``, or shards listed by ``model.safetensors.index.json``)
and the tokenizer: ``tokenizer.json`` (byte-level BPE, see
``bpe_tokenizer``) or, for SentencePiece models (Llama 2's), ``tokenizer.model``
(see ``sp_tokenizer``), which is used whenever the folder holds one.

The zoo's five special ids come first (``kerazoo.text.special``): the
checkpoint's end token becomes ``</s>`` (id 3, which opens and ends every
document in the zoo), its start token ``<s>`` and its unknown token
``<unk>``; every other token keeps its order after them (for a tokenizer
whose specials come last, as Qwen2's: zoo id = checkpoint id + 5). The
embedding and head rows follow the same map, and a logit bias of -1e9 keeps
the zoo ids the checkpoint has no token for (``<pad>``, ``<mask>``) out of
reach, so the logits of every checkpoint token are the checkpoint's.
"""

import glob
import json
import os

import numpy as np

from kerazoo.interop.hf.checks import check_layers, config_float, config_int
from kerazoo.interop.hf.bpe_tokenizer import GPT2_SPLIT, ByteLevelBPETokenizer, compile_split
from kerazoo.interop.hf.sp_tokenizer import read_sentencepiece
from kerazoo.models.llama.model import Llama
from kerazoo.text.special import BOS_ID, EOS_ID, NUM_SPECIAL_TOKENS, SPECIAL_TOKENS, UNK_ID

ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
UNUSED_LOGIT = -1e9
# Config keys whose presence (truthy) means an architecture the llama arch does not cover.
_UNCOVERED = {
    "num_local_experts": "mixture-of-experts layers", "num_experts": "mixture-of-experts layers",
    "moe_intermediate_size": "mixture-of-experts layers", "use_sliding_window": "sliding-window attention",
    "attention_bias": "a bias on the attention output (attention_bias)", "mlp_bias": "MLP biases (mlp_bias)",
    "logits_soft_cap": "soft-capped logits", "final_logit_softcapping": "soft-capped logits",
}


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def check_config(config):
    """The llama arch's hyper-parameters of a checkpoint's ``config.json``.

    Raises:
        ValueError: an unknown ``model_type`` or a setting the arch does not
            reproduce exactly (sliding windows, MoE, rope scaling, ...).
    """
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"model_type {model_type!r} is not a Llama-family checkpoint the llama arch covers "
                         f"({', '.join(ARCHITECTURES)})")
    for key, what in _UNCOVERED.items():
        if config.get(key):
            raise ValueError(f"config.json: {key} = {config[key]!r}: {what} is not covered by the llama arch")
    if config.get("sliding_window") and model_type != "qwen2":
        raise ValueError(f"config.json: sliding_window = {config['sliding_window']}: sliding-window attention "
                         "is not covered by the llama arch")
    if any(kind != "full_attention" for kind in config.get("layer_types") or []):
        raise ValueError(f"config.json: layer_types {sorted(set(config['layer_types']))}: only full attention "
                         "is covered by the llama arch")
    if config.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json: hidden_act {config['hidden_act']!r} is not supported (silu)")
    rope = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type != "default":
        raise ValueError(f"config.json: rope type {rope_type!r} (rope scaling) is not covered by the llama arch")
    theta = rope.get("rope_theta", config.get("rope_theta", 10000.0))

    def need(key):
        return config_int(config, key)

    hidden, heads = need("hidden_size"), need("num_attention_heads")
    return dict(
        max_length=need("max_position_embeddings"), num_layers=need("num_hidden_layers"), num_heads=heads,
        num_kv_heads=config_int(config, "num_key_value_heads", heads), hidden_dim=hidden,
        head_dim=config_int({"head_dim": config.get("head_dim") or hidden // heads}, "head_dim"),
        intermediate_dim=need("intermediate_size"),
        rope_theta=config_float({"rope_theta": theta}, "rope_theta", None),
        rms_norm_epsilon=config_float(config, "rms_norm_eps", 1e-6),
        qkv_bias=model_type == "qwen2", tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )


def read_weights(folder):
    """The checkpoint's tensors as float32 numpy arrays (one file or safetensors shards)."""
    from safetensors.numpy import load_file

    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise ValueError(f"{folder} holds no safetensors weights (model.safetensors)")
    state = {}
    for path in files:
        try:
            # bfloat16 checkpoints: numpy has no bfloat16, so go through torch when present.
            state.update(load_file(path))
        except (TypeError, ValueError):
            import torch
            from safetensors.torch import load_file as load_torch

            state.update({k: v.to(torch.float32).numpy() for k, v in load_torch(path).items()})
    return {k: np.asarray(v, np.float32) for k, v in state.items()}


def read_tokenizer(folder):
    """``(hf_vocabulary, merges, split_pattern, nfc, ignore_merges)`` of a ``tokenizer.json`` byte-level BPE.

    Raises:
        ValueError: no ``tokenizer.json``, or a tokenizer this cannot reproduce.
    """
    path = os.path.join(folder, "tokenizer.json")
    spec = _read_json(path, "a Llama-family checkpoint folder needs its tokenizer.json")
    model = spec.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ValueError(f"{path}: a {model.get('type')} model{' with byte fallback' * bool(model.get('byte_fallback'))}"
                         " is not a byte-level BPE (a SentencePiece model needs its tokenizer.model)")
    normalizer = spec.get("normalizer")
    if normalizer not in (None, {"type": "NFC"}):
        raise ValueError(f"{path}: normalizer {normalizer.get('type')!r} is not supported (none or NFC)")
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex", True):
        pattern = GPT2_SPLIT
        byte_level = steps[0]
    elif (len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel"
          and not steps[1].get("use_regex", True) and "Regex" in steps[0].get("pattern", {})
          and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert")):
        pattern = steps[0]["pattern"]["Regex"]
        byte_level = steps[1]
    else:
        raise ValueError(f"{path}: pre_tokenizer {json.dumps(pre)[:120]} is not a byte-level split this can reproduce")
    if byte_level.get("add_prefix_space"):
        raise ValueError(f"{path}: add_prefix_space is not supported")
    compile_split(pattern)
    vocabulary = dict(model.get("vocab") or {})
    for added in spec.get("added_tokens", []):
        vocabulary[added["content"]] = int(added["id"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ignore_merges = model.get("ignore_merges", False)
    if not isinstance(ignore_merges, bool):
        raise ValueError(f"{path}: model.ignore_merges must be true or false, got {ignore_merges!r}")
    return vocabulary, merges, pattern, normalizer is not None, ignore_merges


def zoo_vocabulary(hf_vocabulary, eos_id, bos_id=None, unk_id=None):
    """Maps a checkpoint vocabulary onto the zoo's id layout.

    Args:
        hf_vocabulary: ``{token: checkpoint id}``.
        eos_id, bos_id, unk_id: the checkpoint's end, start and unknown ids
            (None: it has none), which become ``</s>``, ``<s>`` and ``<unk>``.

    Returns:
        ``(vocabulary, source_ids)``: the zoo's ``{token: id}`` and, per zoo
        id, the checkpoint id it stands for (-1: none).

    Raises:
        ValueError: ids that are not in the vocabulary, or a token named like
            a zoo special token that is not the checkpoint's special.
    """
    by_id = {i: t for t, i in hf_vocabulary.items()}
    if len(by_id) != len(hf_vocabulary):
        raise ValueError("the tokenizer gives one id to two tokens")
    source_ids = [-1] * NUM_SPECIAL_TOKENS
    for zoo_id, hf_id in ((EOS_ID, eos_id), (BOS_ID, bos_id), (UNK_ID, unk_id)):
        if hf_id is None:
            continue
        if hf_id not in by_id:
            raise ValueError(f"special token id {hf_id} is not in the tokenizer's vocabulary")
        if hf_id not in source_ids:
            source_ids[zoo_id] = hf_id
    vocabulary = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for hf_id in sorted(by_id):
        if hf_id in source_ids:
            continue
        token = by_id[hf_id]
        if token in vocabulary:
            raise ValueError(f"the tokenizer holds the zoo's special token '{token}' as an ordinary token")
        vocabulary[token] = len(source_ids)
        source_ids.append(hf_id)
    return vocabulary, source_ids


def _special_id(config, key):
    value = config.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def import_llama(folder, config, log=print):
    """Builds a zoo ``llama`` with the weights and tokenizer of a checkpoint folder.

    Args:
        folder: a local folder from ``save_pretrained`` (config, safetensors,
            ``tokenizer.json``).
        config: its ``config.json``.
        log: where progress lines go.

    Returns:
        ``(model, info)``: a ``kerazoo.models.Llama`` carrying a
        ``ByteLevelBPETokenizer``, whose logits for the checkpoint's tokens
        equal the checkpoint's, and a dict describing the import.

    Raises:
        ValueError: an uncovered config, a missing or mismatched tensor, or a
            tokenizer that does not match the weights' vocabulary.
    """
    hparams = check_config(config)
    eos_id, bos_id = _special_id(config, "eos_token_id"), _special_id(config, "bos_token_id")
    if eos_id is None:
        raise ValueError("config.json has no eos_token_id")
    if os.path.isfile(os.path.join(folder, "tokenizer.model")):
        tokenizer, source_ids = read_sentencepiece(folder, eos_id, bos_id)
    else:
        hf_vocabulary, merges, pattern, nfc, ignore_merges = read_tokenizer(folder)
        vocabulary, source_ids = zoo_vocabulary(hf_vocabulary, eos_id, bos_id)
        tokenizer = ByteLevelBPETokenizer(vocabulary=vocabulary, merges=merges, split_pattern=pattern, nfc=nfc,
                                          ignore_merges=ignore_merges)
    weights = read_weights(folder)
    check_layers(weights, r"model\.layers\.(\d+)\.", hparams["num_layers"], "num_hidden_layers")
    used = set()

    def take(name, shape):
        if name not in weights:
            raise ValueError(f"the checkpoint has no tensor '{name}'")
        value = weights[name]
        if value.shape != tuple(shape):
            raise ValueError(f"tensor '{name}' has shape {value.shape}; the config needs {tuple(shape)}")
        used.add(name)
        return value

    hidden, heads, kv = hparams["hidden_dim"], hparams["num_heads"], hparams["num_kv_heads"]
    head_dim, inter = hparams["head_dim"], hparams["intermediate_dim"]
    vocab_rows = config_int(config, "vocab_size")
    embed = take("model.embed_tokens.weight", (vocab_rows, hidden))
    if max(source_ids) >= vocab_rows:
        raise ValueError(f"the tokenizer has ids up to {max(source_ids)} but the weights hold {vocab_rows} rows "
                         "(vocab_size): the tokenizer does not match the weights")
    ids = np.asarray(source_ids)

    def rows(matrix):
        return np.where((ids >= 0)[:, None], matrix[np.maximum(ids, 0)], 0.0).astype(np.float32)

    model = Llama(vocab_size=len(source_ids), logit_bias=True, tokenizer=tokenizer, **hparams)

    def assign(variable, value):
        variable.assign(np.asarray(value, np.float32).reshape(tuple(variable.shape)))

    assign(model.token_embedding.embeddings, rows(embed))
    assign(model.head_bias.bias, np.where(ids >= 0, 0.0, UNUSED_LOGIT))
    if not hparams["tie_embeddings"]:
        head = take("lm_head.weight", (vocab_rows, hidden))
        assign(model.token_embedding.reverse_embeddings, rows(head).T)
    for i, block in enumerate(model.transformer_layers):
        p = f"model.layers.{i}."
        for dense, name, n in ((block.query_dense, "q_proj", heads), (block.key_dense, "k_proj", kv),
                               (block.value_dense, "v_proj", kv)):
            assign(dense.kernel, take(f"{p}self_attn.{name}.weight", (n * head_dim, hidden)).T)
            if hparams["qkv_bias"]:
                assign(dense.bias, take(f"{p}self_attn.{name}.bias", (n * head_dim,)))
        assign(block.output_dense.kernel, take(f"{p}self_attn.o_proj.weight", (hidden, heads * head_dim)).T)
        for dense, name, shape in ((block.gate_dense, "gate_proj", (inter, hidden)),
                                   (block.up_dense, "up_proj", (inter, hidden)),
                                   (block.down_dense, "down_proj", (hidden, inter))):
            assign(dense.kernel, take(f"{p}mlp.{name}.weight", shape).T)
        assign(block.attention_norm.scale, take(f"{p}input_layernorm.weight", (hidden,)))
        assign(block.mlp_norm.scale, take(f"{p}post_attention_layernorm.weight", (hidden,)))
    assign(model.final_norm.scale, take("model.norm.weight", (hidden,)))
    # A tied checkpoint may still store its head; rotary tables are recomputed.
    unused = sorted(k for k in set(weights) - used
                    if not k.endswith("rotary_emb.inv_freq") and not (hparams["tie_embeddings"] and k == "lm_head.weight"))
    if unused:
        raise ValueError(f"the checkpoint holds {len(unused)} tensor(s) the config does not use, "
                         f"e.g. '{unused[0]}' (num_hidden_layers = {hparams['num_layers']})")
    log(f"{ARCHITECTURES[config['model_type']]}: {hparams['num_layers']} layers, {heads} heads "
        f"({kv} key/value), width {hidden}, vocabulary {len(source_ids)} ({tokenizer.kind} tokenizer)")
    return model, {"arch": "llama", "model_type": config["model_type"]}
