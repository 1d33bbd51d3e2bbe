"""The tutorial's code blocks run as written (so the docs cannot silently rot)."""
from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_tutorial_code_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "tutorial.md").read_text(), re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/tutorial.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "NCG(neurons=4, edges=4, outputs=1)" in out
    assert "directed cycle through neurons [0, 1, 2]" in out
    for name in ("net.pt", "net.graphml", "topology.png"):
        assert (tmp_path / name).is_file(), name
