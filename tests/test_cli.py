"""The `kerazoo` command end to end, on tiny recipes, and its bad-input contract."""

import json
import math
import os
import subprocess
import sys

import pytest

from kerazoo.cli import main


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_train_leaves_a_complete_run_folder(arch, tiny_recipe, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    code, out, err = _run(["train", tiny_recipe(arch), "--runs-dir", runs, "--quiet"], capsys)
    assert code == 0, err
    run = os.path.join(runs, f"tiny_{arch}")
    for name in ("model.keras", "metrics.json", "recipe.toml", "history.json", "sample.txt",
                 "tokenizer/config.json", "checkpoints/best.keras"):
        assert os.path.exists(os.path.join(run, name)), name
    assert not [n for n in os.listdir(runs) if n.startswith(".")], "no partial folder left"
    m = json.load(open(os.path.join(run, "metrics.json")))
    assert m["steps"] == 4 and m["tokens_seen"] == 4 * 4 * 32
    assert math.isclose(m["val_perplexity"], math.exp(m["val_loss"]), rel_tol=1e-9)
    assert math.isclose(m["val_bits_per_byte"], m["val_loss"] * m["val_tokens"] / math.log(2) / m["val_bytes"], rel_tol=1e-9)
    assert m["tokens_per_sec"] > 0 and m["steady_tokens_per_sec"] > 0  # two epochs: the second one is steady
    assert "bits/byte" in out and "perplexity" in out and "sample:" in out
    assert len(json.load(open(os.path.join(run, "history.json")))) == 2

    code, out, err = _run(["generate", run, "--prompt", "The ", "--max-new-tokens", "5"], capsys)
    assert code == 0 and out.startswith("The ")


def test_second_run_of_a_recipe_never_overwrites(tiny_recipe, tmp_path, capsys):
    runs = str(tmp_path / "runs")
    recipe = tiny_recipe("rnn")
    assert _run(["train", recipe, "--runs-dir", runs, "--quiet"], capsys)[0] == 0
    assert _run(["train", recipe, "--runs-dir", runs, "--quiet"], capsys)[0] == 0
    assert sorted(os.listdir(runs)) == ["tiny_rnn", "tiny_rnn-2"]


def test_unfinished_run_needs_resume(tiny_recipe, tmp_path, capsys):
    runs = tmp_path / "runs"
    (runs / ".tiny_gpt.partial").mkdir(parents=True)
    code, _, err = _run(["train", tiny_recipe("gpt"), "--runs-dir", str(runs)], capsys)
    assert code == 2 and "--resume" in err


def test_compare_shares_one_tokenizer_and_prints_a_table(tiny_recipe, tmp_path, capsys):
    runs, table = str(tmp_path / "runs"), str(tmp_path / "table.md")
    recipes = [tiny_recipe("gpt", "char"), tiny_recipe("gru", "char")]
    code, out, err = _run(["compare", *recipes, "--runs-dir", runs, "--out", table, "--quiet"], capsys)
    assert code == 0, err
    text = open(table).read()
    assert "| tiny_gpt | gpt |" in text and "| tiny_gru | gru |" in text
    assets = [sorted(os.listdir(os.path.join(runs, r, "tokenizer", "assets"))) for r in ("tiny_gpt", "tiny_gru")]
    assert assets[0] == assets[1] and assets[0]
    for name in assets[0]:
        a, b = (open(os.path.join(runs, r, "tokenizer", "assets", name), "rb").read() for r in ("tiny_gpt", "tiny_gru"))
        assert a == b


def test_models_lists_archs(capsys):
    code, out, _ = _run(["models"], capsys)
    assert code == 0
    for arch in ("rnn", "gru", "lstm", "gpt"):
        assert f"{arch}:" in out
    assert "num_heads" in out and "default" in out


BAD = {
    "missing corpus": ("source", "{tmp}/nope.txt", "does not exist"),
    "empty corpus": ("file", b"", "is empty"),
    "binary corpus": ("file", b"\x7fELF\x00\x00\x01", "looks binary"),
    "missing column": ("csv", b"a,b\n1,2\n", "column 'text' not found"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_corpus_exits_2_with_one_line(case, tiny_recipe, tmp_path, capsys):
    kind, payload, message = BAD[case]
    if kind == "source":
        source = payload.format(tmp=tmp_path)
    else:
        source = str(tmp_path / ("c.csv" if kind == "csv" else "c.txt"))
        open(source, "wb").write(payload)
    runs = tmp_path / "runs"
    code, _, err = _run(["train", tiny_recipe(source=source), "--runs-dir", str(runs)], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not runs.exists() or not os.listdir(runs), "nothing half-written"


@pytest.mark.parametrize(
    "override, message",
    [
        ("tokenizer.vocab_size=100000", "too large"),
        ("model.arch=mamba", "unknown arch 'mamba'"),
        ("tokenizer.kind=morse", "'tokenizer.kind' must be one of"),
    ],
)
def test_bad_settings_exit_2(override, message, tiny_recipe, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = _run(["train", tiny_recipe(kind="wordpiece"), "--runs-dir", str(runs), "--set", override], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not runs.exists() or not os.listdir(runs)


def test_invalid_toml_from_the_console_script(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\narch = 'gpt'\n")
    proc = subprocess.run([sys.executable, "-m", "kerazoo.cli", "train", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr


def test_a_backend_that_is_not_installed_exits_2_naming_it(monkeypatch, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else find_spec(name, *a))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert "KERAS_BACKEND=jax" in err and "'jax' package" in err and "pip install -e '.[jax]'" in err


def test_generate_from_a_missing_run(tmp_path, capsys):
    code, _, err = _run(["generate", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no model found" in err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny trained run shared by the generate-command tests."""
    from tests.conftest import ENGLISH, tiny_recipe_text

    root = tmp_path_factory.mktemp("gen")
    corpus = root / "c.txt"
    corpus.write_text(ENGLISH * 40, encoding="utf-8")
    recipe = root / "r.toml"
    recipe.write_text(tiny_recipe_text(str(corpus), "gpt", "byte"))
    assert main(["train", str(recipe), "--runs-dir", str(root / "runs"), "--quiet"]) == 0
    return str(root / "runs" / "tiny_gpt")


def test_generate_streams_one_prompt(trained_run, capsys):
    code, out, _ = _run(["generate", trained_run, "--prompt", "The quick", "--max-new-tokens", "6"], capsys)
    assert code == 0 and out.startswith("The quick")


def test_generate_prompts_file_prints_json_lines(trained_run, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("The\nA journey\n你好\n", encoding="utf-8")
    code, out, _ = _run(["generate", trained_run, "--prompts-file", str(prompts), "--max-new-tokens", "5",
                         "--sampler", "top_k", "--seed", "2"], capsys)
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 0 and [r["prompt"] for r in rows] == ["The", "A journey", "你好"]


def test_generate_interactive(trained_run, monkeypatch, capsys):
    answers = iter(["To be", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    code, out, _ = _run(["generate", trained_run, "--interactive", "--max-new-tokens", "4"], capsys)
    assert code == 0 and out.startswith("To be")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sampler", "top_p", "--top-p", "2"], "top_p must be in"),
        (["--max-new-tokens", "0"], "max_new_tokens"),
        (["--prompts-file", "/nonexistent/p.txt"], "does not exist"),
    ],
)
def test_generate_bad_options_exit_2(trained_run, argv, message, capsys):
    code, _, err = _run(["generate", trained_run, *argv], capsys)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["generate", "--help"], ["bench", "--help"]])
def test_help_imports_no_framework(argv):
    """``kerazoo --help`` answers from the parser alone: no Keras, TensorFlow, JAX or PyTorch.

    ``sys.argv`` is set as the installed ``kerazoo`` script sets it, before
    ``kerazoo`` is imported (its ``__init__`` reads it).
    """
    code = (
        "import sys\n"
        f"sys.argv = ['kerazoo', *{argv!r}]\n"
        "from kerazoo.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: kerazoo" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
