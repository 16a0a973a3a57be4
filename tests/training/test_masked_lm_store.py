"""Masked LM reads its corpus from the token store: the same ids as the in-memory path, never a whole-corpus list."""

import numpy as np
import pytest

import kerazoo.data as data_lib
from kerazoo.training.recipes import load_recipe
from kerazoo.training.tasks import causal_lm
from kerazoo.training.tasks.masked_lm import MaskedLM
from tests.conftest import tiny_recipe_text


def _whole_corpus(*args, **kwargs):
    raise AssertionError("the masked LM listed the whole corpus in memory")


def _recipe(tmp_path, text_file, extra=""):
    path = tmp_path / "mlm.toml"
    text = tiny_recipe_text(text_file, "bert", "byte").replace('name = "tiny_bert"', 'name = "mlm_store"')
    path.write_text(text.replace("[train]\n", "[train]\n" + extra, 1))
    return load_recipe(str(path))


def test_masked_lm_streams_from_the_store_with_the_in_memory_ids(tmp_path, text_file, monkeypatch):
    recipe = _recipe(tmp_path, text_file)
    reference = causal_lm.prepare(recipe, log=lambda *_: None)  # the old path, before the guard
    monkeypatch.setattr(data_lib, "read_corpus", _whole_corpus)
    monkeypatch.setattr(data_lib, "tokenize_documents", _whole_corpus)
    monkeypatch.setattr(data_lib, "mlm_windows", _guarded_windows(len(reference.val_ids)))

    data = MaskedLM().prepare(recipe, None, lambda *_: None)
    seq_len = recipe.train.seq_len
    assert data.extra["store"].manifest["totals"]["train"]["tokens"] == len(reference.train_ids)
    # Validation: the same windows as the in-memory path, whole split (under train.eval_tokens).
    _, vy, vw = data.extra["val"]
    np.testing.assert_array_equal(vy, data_lib.windows.mlm_windows(reference.val_ids, seq_len))
    assert vw.sum() > 0
    # Training: windows of the train ids, masked (unmasked positions keep their ids).
    x, y, w = (t.numpy() for t in next(iter(data.train_ds)))
    assert x.shape == y.shape == w.shape == (recipe.train.batch_size, seq_len)
    train_windows = {tuple(row) for row in data_lib.windows.mlm_windows(reference.train_ids, seq_len)}
    assert all(tuple(row) in train_windows for row in y)
    assert (x[w == 0] == y[w == 0]).all()


def _guarded_windows(limit):
    """``mlm_windows`` that refuses more ids than the validation split holds (never the train split)."""
    def windows(ids, seq_len):
        assert len(ids) <= limit, f"mlm_windows got {len(ids)} ids"
        return data_lib.windows.mlm_windows(ids, seq_len)
    return windows


def test_masked_lm_validation_is_capped_by_eval_tokens(tmp_path, text_file):
    logs = []
    recipe = _recipe(tmp_path, text_file, "eval_tokens = 64\n")
    data = MaskedLM().prepare(recipe, None, logs.append)
    assert data.extra["val"][1].size == 64  # 64 tokens: whole windows of seq_len
    assert any("train.eval_tokens=64" in line for line in logs)


def test_too_little_text_for_a_batch_is_one_clear_error(tmp_path):
    corpus = tmp_path / "small.txt"
    corpus.write_text("a tiny corpus\n" * 3)
    with pytest.raises(ValueError, match="too little text"):
        MaskedLM().prepare(_recipe(tmp_path, str(corpus)), None, lambda *_: None)
