"""``kerazoo curves``: bad input and the plot (training itself is covered by the runner tests)."""

import pytest

from kerazoo import cli
from kerazoo.lab import curves

HISTORY = [{"loss": 5.0, "val_loss": 5.1}, {"loss": 4.0, "val_loss": 4.3}]


def test_unknown_backend_is_a_user_error(tiny_recipe, capsys):
    assert cli.main(["curves", tiny_recipe("gpt"), "--backends", "tensorflow,tf"]) == cli.USER_ERROR
    assert "unknown backend 'tf'" in capsys.readouterr().err


def test_bad_recipe_fails_before_training(tmp_path, capsys):
    assert cli.main(["curves", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "p.png")]) == cli.USER_ERROR
    assert "does not exist" in capsys.readouterr().err


def test_plot_and_gap(tmp_path):
    pytest.importorskip("matplotlib")
    other = [{"loss": 5.2, "val_loss": 5.0}, {"loss": 4.1, "val_loss": 4.3}]
    out = tmp_path / "curves.png"
    curves.plot({"tensorflow": HISTORY, "jax": other}, 10, "tiny", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert curves.max_gap({"tensorflow": HISTORY, "jax": other}, "loss") == pytest.approx(0.2)
