"""Import of a local Hugging Face GPT-2 checkpoint: tokenizer, logits and greedy parity."""

import json
import os

import keras
import numpy as np
import pytest

import kerazoo as kz
from kerazoo.interop.hf import import_checkpoint
from kerazoo.interop.hf.gpt2 import import_gpt2
from kerazoo.text.special import NUM_SPECIAL_TOKENS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MERGES = ["Ġ t", "h e", "Ġt he", "i s", "Ġ a", "o n"]
TEXTS = ["the cat is on the mat", "Hello, world! 你好"]


def _byte_characters():
    """GPT-2's printable stand-in character for each of the 256 bytes, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _byte_vocabulary():
    tokens = _byte_characters()
    for merge in MERGES:
        a, b = merge.split(" ")
        tokens.append(a + b)
    tokens.append("<|endoftext|>")
    return {token: i for i, token in enumerate(tokens)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small random GPT-2 saved with save_pretrained, plus a tiny BPE vocabulary."""
    folder = str(tmp_path_factory.mktemp("gpt2"))
    vocab = _byte_vocabulary()
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    eot = vocab["<|endoftext|>"]
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     bos_token_id=eot, eos_token_id=eot)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so greedy outputs vary
        hf.transformer.wte.weight.mul_(20.0)
    hf.save_pretrained(folder)
    hf_tokenizer = transformers.GPT2Tokenizer(vocab=dict(vocab), merges=[tuple(m.split(" ")) for m in MERGES])
    return folder, hf, hf_tokenizer


@pytest.fixture(scope="module")
def imported(checkpoint):
    return import_gpt2(checkpoint[0])


def test_tokenizer_matches_hugging_face(checkpoint, imported):
    _, _, hf_tokenizer = checkpoint
    tokenizer = imported.tokenizer
    assert tokenizer.kind == "gpt2" and tokenizer.eos_id == 3
    for text in TEXTS:
        ours = tokenizer.tokenize(text).numpy().tolist()
        assert ours == [i + NUM_SPECIAL_TOKENS for i in hf_tokenizer.encode(text)]
        assert tokenizer.detokenize(ours).numpy().decode("utf-8") == text


def test_logits_match_to_1e_4_and_greedy_matches(checkpoint, imported):
    _, hf, hf_tokenizer = checkpoint
    model = imported
    eot = hf.config.eos_token_id
    hf_ids = [eot] + hf_tokenizer.encode(TEXTS[0])
    with torch.no_grad():
        expected = hf(torch.tensor([hf_ids])).logits.numpy()
    zoo_ids = np.array([[3] + [i + NUM_SPECIAL_TOKENS for i in hf_ids[1:]]], np.int32)
    logits = keras.ops.convert_to_numpy(model(zoo_ids))
    # zoo id of every GPT-2 id: i + 5, and <|endoftext|> -> 3.
    order = [i + NUM_SPECIAL_TOKENS for i in range(eot)] + [3]
    np.testing.assert_allclose(logits[..., order], expected, atol=1e-4, rtol=1e-4)

    prompt = "the cat"
    with torch.no_grad():
        out = hf.generate(torch.tensor([[eot] + hf_tokenizer.encode(prompt)]), max_new_tokens=8, do_sample=False,
                          eos_token_id=eot, pad_token_id=eot)
    new = [i for i in out[0, len(hf_tokenizer.encode(prompt)) + 1:].tolist() if i != eot]
    expected_text = hf_tokenizer.decode(new, clean_up_tokenization_spaces=False)
    assert len(new) >= 3
    assert kz.generate(model, prompt, max_new_tokens=8) == expected_text


def test_import_checkpoint_writes_a_run_that_reloads(checkpoint, imported, tmp_path):
    folder, _, _ = checkpoint
    path = import_checkpoint(folder, "tiny_gpt2", str(tmp_path / "runs"))
    model = kz.load_run(path)
    assert model.logit_bias and model.gelu_approximate and model.tokenizer.kind == "gpt2"
    assert kz.load_tokenizer(os.path.join(path, "tokenizer")).tokenize("the cat").numpy().tolist() == \
        model.tokenizer.tokenize("the cat").numpy().tolist()
    ids = np.array([[3, 10, 20, 30]], np.int32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(ids)), keras.ops.convert_to_numpy(imported(ids)))
    with pytest.raises(ValueError, match="no config.json"):
        import_checkpoint(str(tmp_path), "x", str(tmp_path / "runs"))


def test_import_takes_the_run_lock_of_train(checkpoint, tmp_path, monkeypatch):
    """``import-hf`` writes under ``runs/.<name>.lock`` (train's lock): a holder stops it, before or after the read."""
    import subprocess
    import sys

    import kerazoo.interop.hf as hf
    from kerazoo.training import checkpointing, locks, runs
    from tests.training.test_locks import HOLDER

    folder, runs_dir = checkpoint[0], tmp_path / "runs"
    runs_dir.mkdir()
    lock = runs.lock_path(str(runs_dir), "held")
    holders = []

    def hold_elsewhere():
        holders.append(subprocess.Popen([sys.executable, "-c", HOLDER, lock], stdout=subprocess.PIPE, text=True))
        assert holders[-1].stdout.readline().strip() == "locked"

    real_load, real_save = hf.load_model, checkpointing.save_model
    try:
        hold_elsewhere()  # held before the import starts: refused before the checkpoint is read
        monkeypatch.setattr(hf, "load_model", lambda *a: pytest.fail("read the checkpoint of a locked run"))
        with pytest.raises(locks.LockedError, match=rf"the run 'held' .*PID {holders[-1].pid},"):
            import_checkpoint(folder, "held", str(runs_dir))
        holders[-1].kill()
        holders[-1].wait()

        # Taken while the checkpoint was read: refused when the import takes the lock to write.
        monkeypatch.setattr(hf, "load_model", lambda *a: (real_load(*a), hold_elsewhere())[0])
        with pytest.raises(locks.LockedError) as refused:
            import_checkpoint(folder, "held", str(runs_dir))
        assert f"PID {holders[-1].pid}," in str(refused.value)
        assert os.listdir(runs_dir) == [".held.lock"], "nothing but the lock file was written"
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()

    monkeypatch.setattr(hf, "load_model", real_load)
    held_while_saving = []
    monkeypatch.setattr(checkpointing, "save_model",
                        lambda model, path: (held_while_saving.append(locks.holds(lock)), real_save(model, path)))
    assert import_checkpoint(folder, "held", str(runs_dir)) == str(runs_dir / "held")
    assert held_while_saving == [True]
    assert os.listdir(runs_dir) == ["held"], "the lock file goes with the lock"
