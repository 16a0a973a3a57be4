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
    assert len(rows) == 1 and rows[0]["text"] == "builtin:pydocs"
    row = rows[0]
    assert row["corpus_mb"] == pytest.approx(0.3, abs=0.01)
    assert row["prepare_mb_per_s"] > 0 and row["raw_mb_per_s"] > 0 and row["raw_tokens"] > 10_000
    # No upper bound here: inside a pytest worker the peak includes earlier tests; `bench data` reports it.
    assert row["prepare_peak_rss_mb"] > 50 and row["raw_peak_rss_mb"] > 5
    assert "| corpus MB |" in (tmp_path / "data.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "data.md"]
