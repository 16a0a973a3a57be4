"""``kerazoo leaderboard``: one corpus, one tokenizer, one token budget for every causal arch."""

import json
import os

import pytest

from kerazoo import cli
from kerazoo.lab import leaderboard

TINY = ["train.seq_len=32", "train.batch_size=4", "model.hidden_dim=16", "model.num_layers=1"]


def test_every_arch_gets_the_same_budget_and_tokenizer(tmp_path, text_file):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lb"
    argv = ["leaderboard", "--source", text_file, "--archs", "lstm,gpt", "--tokenizer", "byte", "--tokens", "768",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]
    for item in TINY:
        argv += ["--set", item]
    assert cli.main(argv) == 0
    rows = json.loads((out / "leaderboard.json").read_text())
    assert sorted(r["arch"] for r in rows) == ["gpt", "lstm"]
    assert [r["val_bits_per_byte"] for r in rows] == sorted(r["val_bits_per_byte"] for r in rows)
    assert {r["tokens_seen"] for r in rows} == {768}  # 6 steps of 4x32 each
    assert {r["tokenizer"] for r in rows} == {"byte"}
    assert all(os.path.isdir(r["run"]) for r in rows)
    table = (out / "leaderboard.md").read_text()
    assert "| 1 |" in table and "| 2 |" in table
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_or_non_causal_arch_is_a_user_error(capsys):
    assert cli.main(["leaderboard", "--archs", "gpt,bert"]) == cli.USER_ERROR
    assert "non-causal arch 'bert'" in capsys.readouterr().err


def test_budget_too_small_fails_before_training(tmp_path, capsys):
    assert cli.main(["leaderboard", "--tokens", "100", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == cli.USER_ERROR
    assert "less than 3 batches" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_steps_cannot_be_overridden():
    with pytest.raises(ValueError, match="use --tokens"):
        leaderboard.recipe_for("gpt", "builtin:pydocs", "byte", None, 10**6, ["train.steps=5"])


def test_every_causal_arch_has_settings():
    from kerazoo.models.registry import ARCHS

    assert sorted(leaderboard.causal_archs()) == sorted(n for n, a in ARCHS.items() if a.causal)
