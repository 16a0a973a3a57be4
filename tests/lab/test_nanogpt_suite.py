"""``kerazoo bench nanogpt``: reading nanoGPT's log, and its bad input."""

import pytest

from kerazoo.cli import main
from kerazoo.lab import nanogpt_suite

LOG = """tokens per iteration will be: 768
step 0: train loss 4.2000, val loss 4.1900
iter 0: loss 4.2100, time 900.00ms, mfu -100.00%
iter 1: loss 4.0000, time 40.00ms, mfu -100.00%
iter 2: loss 3.9000, time 60.00ms, mfu 0.01%
step 3: train loss 3.1000, val loss 3.2000
iter 3: loss 3.1000, time 700.00ms, mfu 0.01%
iter 4: loss 3.0000, time 50.00ms, mfu 0.01%
"""


def test_nanogpt_rate_leaves_out_its_evaluation_iterations():
    got = nanogpt_suite.parse_nanogpt(LOG, eval_every=3)
    # Iterations 1, 2 and 4: 3 x 768 tokens in 150 ms; 0 and 3 also evaluated.
    assert got["tokens_per_sec"] == pytest.approx(3 * 768 / 0.150)
    assert got["val_loss"] == 3.2
    assert nanogpt_suite.parse_nanogpt("", eval_every=3) == {"tokens_per_sec": None, "val_loss": None}


@pytest.mark.parametrize("extra,message", [
    ([], "needs --nanogpt DIR"),
    (["--nanogpt", "."], "not a nanoGPT checkout"),
    (["--nanogpt", ".", "--steps", "0"], "--steps must be at least 1"),
])
def test_bad_nanogpt_arguments(extra, message, capsys):
    assert main(["bench", "nanogpt", "--backend", "tensorflow", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kerazoo: error:") and message in err[0], err
