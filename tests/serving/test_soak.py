"""The serving soak command: a short real run (the long one is in the README, not in CI)."""

import json

from kerazoo.cli import main
from kerazoo.serving.soak import _report, _slope_mb_per_min


def test_short_soak_sends_requests_and_reports_memory(tiny_run_and_export, tmp_path, capsys):
    out = tmp_path / "soak.json"
    code = main(["soak", tiny_run_and_export[1], "--seconds", "6", "--interval", "0.5", "--concurrency", "2",
                 "--max-new-tokens", "4", "--tolerance-mb", "256", "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code == 0, printed
    assert report["requests"] > 0 and report["errors"] == 0
    assert report["rss_start_mb"] > 0 and report["rss_end_mb"] > 0 and len(report["samples"]) >= 3
    assert "RSS: start" in printed and "verdict: no memory growth" in printed


def test_growth_verdict_and_slope():
    flat = [(t, 500.0) for t in range(0, 600, 5)]
    leaking = [(t, 500.0 + t / 6) for t in range(0, 600, 5)]  # 10 MB per minute
    assert not _report(flat, 60, [0.01], [], 16, 600, 1, ".")["grew"]
    grown = _report(leaking, 60, [0.01], [], 16, 600, 1, ".")
    assert grown["grew"] and abs(grown["slope_mb_per_min"] - 10) < 1e-6
    assert abs(_slope_mb_per_min(flat)) < 1e-9


def test_soak_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    assert main(["soak", str(tmp_path), "--seconds", "1"]) == 2
    assert "not a SavedModel folder" in capsys.readouterr().err
