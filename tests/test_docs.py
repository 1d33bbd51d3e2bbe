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


def test_results_tables_are_rebuilt_from_the_committed_runs(tmp_path):
    """Every marked table of docs/results.md equals the one rebuilt from results/<name>/runs.json."""
    from ncg.experiments.__main__ import section
    from ncg.experiments.polynomial import polynomial_table
    from ncg.experiments.report import load_runs, write_report

    page = (DOCS / "results.md").read_text()
    names = re.findall(r"<!-- results:([\w-]+):begin -->", page)
    assert "main" in names and "polynomial" in names
    for name in names:
        folder = DOCS.parent / "results" / name
        if not (folder / "runs.json").is_file():
            assert section(page, name)[1] == "", f"{name}: a table without its runs.json"
            continue
        rows = load_runs(folder)
        if "polynomial" in rows[0]:
            table = polynomial_table(rows)
        else:
            table = write_report(rows, tmp_path / name)["table"].read_text()
        assert section(page, name)[1] == table.strip(), f"docs/results.md section {name!r} is stale"


def test_the_graphml_page_evaluates_a_network_without_ncg(tmp_path):
    import numpy as np
    import torch

    from ncg import NCG, FreeNet
    from ncg.build import sparse_start
    from ncg.io import write_graphml

    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "graphml.md").read_text(), re.S)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/graphml.md", "exec"), namespace)
    x = np.random.default_rng(0).random((5, 6))
    models = [
        FreeNet(NCG.random_dag(10, density=0.5, num_outputs=3, seed=0), in_features=6, out_features=2,
                activation="square_relu", seed=0),
        FreeNet(sparse_start(6, 5, 2, fan_in=3, seed=0), in_features=6, activation="tanh", seed=0),
    ]
    for k, model in enumerate(models):
        for inline in (False, True):
            path = tmp_path / f"m{k}{inline}.graphml"
            write_graphml(model, path, inline_dense=inline)
            expected = model(torch.tensor(x, dtype=torch.float32)).detach().numpy()
            assert np.allclose(namespace["evaluate_graphml"](path, x), expected, atol=1e-5)
