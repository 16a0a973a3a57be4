"""``kerazoo bench data`` at a tiny size: prepare and the raw encoder side by side, with peak RSS."""

import json

import pytest

from kerazoo.cli import main
from kerazoo.lab import data_suite


def test_parse_sizes():
    assert data_suite.parse_sizes("10MB, 1GB,300KB") == [10_000_000, 1_000_000_000, 300_000]
    with pytest.raises(ValueError, match="not a size"):
        data_suite.parse_sizes("10 parsecs")


def test_bench_data_tiny(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAZOO_BENCH_TEXT", "builtin-only-please")  # CPython's docs: offline, small
    assert main(["bench", "data", "--sizes", "300KB", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "data.json").read_text())
    assert [r["kind"] for r in rows] == ["unigram", "bpe"] and rows[0]["text"] == "builtin:pydocs"
    assert [r["prepare_engine"] for r in rows] == ["tf_text", "sentencepiece"]
    for row in rows:
        assert row["corpus_mb"] == pytest.approx(0.3, abs=0.01)
        assert row["prepare_mb_per_s"] > 0 and row["raw_mb_per_s"] > 0 and row["op_mb_per_s"] > 0
        assert row["op_1mb_pieces_mb_per_s"] > 0
        assert row["raw_tokens_in_floor"] > 10_000
        # The launcher measures each process alone: the library's encoder never loads TensorFlow,
        # prepare does (a child forked from this pytest process would report this process's peak).
        assert 5 < row["raw_peak_rss_mb"] < 400 < row["prepare_peak_rss_mb"]
    assert "| corpus MB |" in (tmp_path / "data.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "data.md"]
