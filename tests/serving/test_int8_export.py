"""``kerazoo export --quantize int8`` and ``kerazoo generate --quantize int8`` on a run.

In a file of its own, so that the test runner can schedule this export beside
``test_serving.py``'s.
"""

import json
import os

import pytest
import tensorflow as tf

import kerazoo as kz
from kerazoo.serving import exporter

NEW = 8


def _generate(signature, prompts):
    rows = len(prompts)
    out = signature(
        prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], NEW), temperature=tf.zeros([rows]),
        top_k=tf.zeros([rows], tf.int32), top_p=tf.ones([rows]), seed=tf.zeros([rows], tf.int32),
        stop=tf.constant([[""]]), num_beams=tf.constant([1]),
    )
    return [t.decode("utf-8") for t in out["texts"].numpy()], out["token_counts"].numpy()


def test_cli_int8_export_and_generate_of_a_run(tiny_run_and_export, tmp_path, capsys):
    """``--quantize int8``: int8 variables in the SavedModel, served greedy equal to in-process int8 greedy."""
    from kerazoo.cli import main

    run, _ = tiny_run_and_export
    base = str(tmp_path / "saved")
    assert main(["export", run, "--base-dir", base, "--name", "int8", "--quantize", "int8",
                 "--max-new-tokens", "5"]) == 0
    path = os.path.join(base, "int8", "1")
    dtypes = tf.train.load_checkpoint(os.path.join(path, "variables", "variables")).get_variable_to_dtype_map()
    assert sum(d == tf.int8 for d in dtypes.values()) >= 5  # 4 attention + 2 MLP kernels per block, the embedding
    with open(os.path.join(path, exporter.METADATA_FILE), encoding="utf-8") as f:
        assert json.load(f)["quantize"] == "int8"
    prompts = ["the ", ""]
    texts, _ = _generate(tf.saved_model.load(path).signatures["serving_default"], prompts)
    assert texts == kz.generate(kz.quantize(run), prompts, max_new_tokens=NEW)
    capsys.readouterr()
    assert main(["generate", run, "--quantize", "int8", "--prompt", "the ", "--max-new-tokens", "3",
                 "--no-stream"]) == 0
    assert capsys.readouterr().out.strip()
    with pytest.raises(SystemExit) as refused:
        main(["export", run, "--base-dir", base, "--quantize", "int4"])
    assert refused.value.code == 2
