"""Import of local Hugging Face Llama and Qwen2 checkpoints: tokenizer, logits and greedy parity, refusals."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.cli import main
from kerazoo.interop.hf import import_checkpoint, load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

# Qwen2's pre-tokenizer expression (Llama 3's has \p{N}{1,3} where this has \p{N}).
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS = ("The quick brown fox jumps over the lazy dog. It's 2024, and we'VE got 12345 apples!\n"
          "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？\n"
          "Emoji: 😀👍🏽 🚀🚀  done.\n") * 20
TEXTS = ["The quick brown fox, 2024 apples!", "学而时习之，不亦说乎？", "Emoji: 😀👍🏽 🚀  done.\n\n  next",
         "  spaced   out\ttext \u3000 here "]
SPECIALS = ["<|endoftext|>", "<|begin_of_text|>", "<|im_start|>"]


def _tokenizer(split):
    """A byte-level BPE trained on CORPUS, as Llama 3 / Qwen2 build theirs."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    if split == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:  # GPT-2's expression, inside ByteLevel
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    return tok


class _SentencePiece:
    """A Llama 2-style SentencePiece BPE (<unk> 0, <s> 1, </s> 2, byte fallback) behind the calls the tests make."""

    def __init__(self, folder):
        import io

        import sentencepiece as spm

        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS.splitlines()), model_writer=proto,
                                       model_type="bpe", vocab_size=400, byte_fallback=True, unk_id=0, bos_id=1,
                                       eos_id=2, pad_id=-1, character_coverage=1.0, minloglevel=2)
        with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
            f.write(proto.getvalue())
        self.sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())

    def token_to_id(self, token):
        return {"<|endoftext|>": 2, "<|begin_of_text|>": 1}[token]

    def id_to_token(self, i):
        return self.sp.id_to_piece(i)

    def get_vocab_size(self):
        return self.sp.get_piece_size()

    def encode(self, text, add_special_tokens=False):
        return type("Encoding", (), {"ids": self.sp.encode(text)})

    def decode(self, ids):
        return self.sp.decode(ids)


def _checkpoint(folder, model_type, split, tie):
    if split == "sentencepiece":
        tok = _SentencePiece(folder)
    else:
        tok = _tokenizer(split)
        tok.save(os.path.join(folder, "tokenizer.json"))
    eos, bos = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|begin_of_text|>")
    common = dict(vocab_size=tok.get_vocab_size() + 3, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rope_theta=500.0,
                  eos_token_id=eos, bos_token_id=bos, tie_word_embeddings=tie)
    if model_type == "qwen2":
        hf = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
    torch.manual_seed(0)
    with torch.no_grad():  # larger weights than the 0.02 init, so logits and greedy outputs vary
        for p in hf.parameters():
            p.normal_(0.0, 0.3) if p.ndim > 1 else p.uniform_(0.5, 1.5)
    hf.eval().save_pretrained(folder)
    return hf, tok


@pytest.fixture(scope="module", params=[("llama", "gpt2", False), ("qwen2", "qwen2", True),
                                        ("llama", "sentencepiece", True)],
                ids=["llama-untied", "qwen2-tied", "llama-sentencepiece"])
def imported(request, tmp_path_factory):
    model_type, split, tie = request.param
    folder = str(tmp_path_factory.mktemp(model_type))
    hf, tok = _checkpoint(folder, model_type, split, tie)
    model, info = load_model(folder, log=lambda *_: None)
    return folder, hf, tok, model, {**info, "tokenizer": "sp" if split == "sentencepiece" else "json"}


def _zoo_ids(model, tok, hf_ids):
    """Zoo ids of checkpoint ids, through the imported tokenizer's vocabulary."""
    vocabulary = {token: i for i, token in enumerate(model.tokenizer.get_vocabulary())}
    specials = {tok.token_to_id("<|endoftext|>"): 3, tok.token_to_id("<|begin_of_text|>"): 2}
    return [specials.get(i, vocabulary.get(tok.id_to_token(i), 1)) for i in hf_ids]


def test_tokenizer_ids_equal_the_tokenizers_library(imported):
    _, _, tok, model, info = imported
    assert info["arch"] == "llama" and model.tokenizer.kind == ("bpe" if info["tokenizer"] == "sp" else "bpe_json")
    for text in TEXTS:
        hf_ids = tok.encode(text, add_special_tokens=False).ids
        ours = model.tokenizer.tokenize(text).numpy().tolist()
        assert ours == _zoo_ids(model, tok, hf_ids), text
        # The checkpoint's own decoding (SentencePiece's NFKC normalizer folds full-width punctuation).
        assert model.tokenizer.detokenize(ours).numpy().decode("utf-8") == tok.decode(hf_ids)


def test_logits_match_to_1e_4_and_greedy_matches(imported):
    _, hf, tok, model, _ = imported
    eos = hf.config.eos_token_id
    hf_ids = [eos] + tok.encode(TEXTS[0] + TEXTS[1], add_special_tokens=False).ids
    with torch.no_grad():
        expected = hf(torch.tensor([hf_ids])).logits.numpy()[..., :tok.get_vocab_size()]
    logits = keras.ops.convert_to_numpy(model(np.array([_zoo_ids(model, tok, hf_ids)], np.int32)))
    order = _zoo_ids(model, tok, range(tok.get_vocab_size()))
    np.testing.assert_allclose(logits[..., order], expected, atol=1e-4, rtol=1e-4)
    assert logits[..., [0, 4]].max() < -1e8  # <pad> and <mask>: no checkpoint token

    prompt = "The quick"
    prompt_ids = [eos] + tok.encode(prompt, add_special_tokens=False).ids
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt_ids]), max_new_tokens=10, do_sample=False, eos_token_id=eos,
                          pad_token_id=eos)
    new = [i for i in out[0, len(prompt_ids):].tolist() if i != eos]
    assert len(new) >= 3
    assert kz.generate(model, prompt, max_new_tokens=10) == tok.decode(new)


def test_import_hf_writes_a_run_that_reloads_and_decodes_the_same(imported, tmp_path):
    folder, _, _, model, _ = imported
    path = import_checkpoint(folder, "tiny", str(tmp_path / "runs"), log=lambda *_: None)
    again = kz.load_run(path)
    assert json.load(open(os.path.join(path, "metrics.json")))["arch"] == "llama"
    ids = np.array([[3, 10, 20, 30]], np.int32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(ids)), keras.ops.convert_to_numpy(model(ids)))
    assert kz.generate(again, TEXTS[1], 6) == kz.generate(model, TEXTS[1], 6)


def _broken(src, tmp_path, edit_config=None, edit_tokenizer=None, drop=None):
    folder = tmp_path / "broken"
    shutil.copytree(src, folder)
    if edit_config:
        config = json.loads((folder / "config.json").read_text())
        edit_config(config)
        (folder / "config.json").write_text(json.dumps(config))
    if edit_tokenizer:
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        edit_tokenizer(spec)
        (folder / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    if drop:
        from safetensors.numpy import load_file, save_file

        state = load_file(str(folder / "model.safetensors"))
        drop(state)
        save_file(state, str(folder / "model.safetensors"))
    return str(folder)


def _grow_vocab(spec):
    spec["added_tokens"].append({"id": 1000, "content": "<|extra|>", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": False, "special": True})


CASES = {
    "sliding": (dict(edit_config=lambda c: c.update(use_sliding_window=True, sliding_window=16)), "sliding-window"),
    "moe": (dict(edit_config=lambda c: c.update(num_local_experts=8)), "mixture-of-experts"),
    "model_type": (dict(edit_config=lambda c: c.update(model_type="mamba")), "model_type 'mamba' is not supported"),
    "rope": (dict(edit_config=lambda c: c.update(rope_parameters={"rope_type": "llama3", "rope_theta": 1.0})),
             "rope type 'llama3'"),
    "missing": (dict(drop=lambda s: s.pop("model.layers.1.mlp.up_proj.weight")), "no tensor 'model.layers.1.mlp.up_proj"),
    "mismatched": (dict(drop=lambda s: s.update({"model.norm.weight": np.ones(7, np.float32)})), "model.norm.weight"),
    "extra layer": (dict(edit_config=lambda c: c.update(num_hidden_layers=1)), "does not use"),
    "vocab": (dict(edit_tokenizer=_grow_vocab), "does not match the weights"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_uncovered_or_broken_checkpoints_are_refused_with_one_line(imported, tmp_path, case):
    kwargs, message = CASES[case]
    if imported[4]["model_type"] != "llama" or imported[4]["tokenizer"] != "json":
        pytest.skip("one checkpoint is enough")
    folder = _broken(imported[0], tmp_path, **kwargs)
    with pytest.raises(ValueError, match=message):
        load_model(folder, log=lambda *_: None)


def test_cli_refuses_an_uncovered_config_with_exit_2_and_writes_nothing(imported, tmp_path, capsys):
    if imported[4]["model_type"] != "llama" or imported[4]["tokenizer"] != "json":
        pytest.skip("one checkpoint is enough")
    folder = _broken(imported[0], tmp_path, edit_config=lambda c: c.update(num_experts=4))
    runs = tmp_path / "runs"
    code = main(["import-hf", folder, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kerazoo: error:") and "mixture-of-experts" in lines[0]
    assert not runs.exists() or not os.listdir(runs)
