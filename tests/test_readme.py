"""The README's Python example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        code = compile(block, "README.md", "exec")
        # Blocks that need something absent here (a live TF Serving server, a
        # trained run, a checkpoint folder) say so on their first line and are
        # only compiled.
        if not block.startswith("# needs:"):
            exec(code, {})
    out = capsys.readouterr().out
    assert "bits/byte" in out and "round trip" in out
    assert (tmp_path / "my_gpt.keras").exists()
