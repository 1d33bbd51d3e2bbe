"""The Python blocks of the README, the tutorial and the GraphML page run as written, in order,
in one namespace per page (so the docs cannot silently rot), and the docs and docstrings describe
the software as it is, with no work-log narration (its history goes to CHANGELOG.md)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of each ```python block of ``page``, ``line`` being its first code line."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def run_blocks(page: Path, namespace: dict) -> int:
    """Run every Python block of ``page`` in order in ``namespace``; returns how many ran. A
    traceback points at the page's own line numbers; a block that fails raises an AssertionError
    naming the page, the block's line and the error."""
    blocks = python_blocks(page)
    name = page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else str(page)
    for k, (line, code) in enumerate(blocks):
        try:
            exec(compile("\n" * (line - 1) + code, name, "exec"), namespace)
        except Exception as err:
            raise AssertionError(
                f"{name}: Python block {k + 1} of {len(blocks)} (line {line}) fails as written, after the blocks "
                f"above it ran in the same namespace: {type(err).__name__}: {err}"
            ) from err
    return len(blocks)


@pytest.mark.slow
def test_readme_code_runs(tmp_path, monkeypatch, capsys):
    """README.md's Python blocks, in order, in one namespace, in a fresh working folder (its
    Free-Evolve block trains on MNIST: 10-45 s of this test on one busy core), and the figures its
    comments quote: what a ``print(...)  # ~value`` prints (within 1%), the sparse start's edges."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    assert run_blocks(ROOT / "README.md", namespace) >= 1
    page = (ROOT / "README.md").read_text()
    quoted = [float(value) for value in re.findall(r"^print\(.*\)\s+#\s*~([0-9.]+)", page, re.M)]
    printed = [float(line) for line in capsys.readouterr().out.split() if re.fullmatch(r"-?[0-9.]+", line)]
    assert quoted and len(printed) == len(quoted), (quoted, printed)
    for value, shown in zip(quoted, printed):
        assert abs(shown - value) <= 0.01 * abs(value), f"README.md quotes ~{value}, the code prints {shown}"
    edges = re.search(r"fan_in=75, seed=0\)\s+#\s*~(\d+)k edges", page)
    assert edges and abs(namespace["graph"].num_edges - 1000 * int(edges[1])) <= 20 * int(edges[1]), edges[0]


def test_a_failing_block_names_its_page_line_and_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + z\n```\n")
    with pytest.raises(AssertionError, match=r"page.md: Python block 2 of 2 \(line 10\) fails as written.*"
                                             r"NameError: name 'z' is not defined") as info:
        run_blocks(page, {})
    assert info.value.__cause__.__traceback__.tb_next.tb_lineno == 10  # the page's own line


def test_tutorial_code_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_blocks(DOCS / "tutorial.md", {}) >= 5
    out = capsys.readouterr().out
    assert "NCG(neurons=4, edges=4, outputs=1)" in out
    assert "directed cycle through neurons [0, 1, 2]" in out
    for name in ("net.pt", "net.graphml", "topology.png"):
        assert (tmp_path / name).is_file(), name


def test_results_tables_are_rebuilt_from_the_committed_runs(tmp_path):
    """Every marked table of docs/results.md equals the one rebuilt from results/<name>/runs.json."""
    from ncg.experiments.__main__ import section
    from ncg.experiments.feynman_report import feynman_table
    from ncg.experiments.layer_pairs import tables
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
        if rows[0].get("kind") == "feynman":
            table = feynman_table(rows)
        elif "polynomial" in rows[0]:
            table = polynomial_table(rows)
        else:
            table = write_report(rows, tmp_path / name, lead=tables(rows))["table"].read_text()
        assert section(page, name)[1] == table.strip(), f"docs/results.md section {name!r} is stale"


def test_the_graphml_page_evaluates_a_network_without_ncg(tmp_path):
    import numpy as np
    import torch

    from ncg import NCG, FreeNet
    from ncg.build import sparse_start
    from ncg.io import write_graphml

    namespace: dict = {}
    assert run_blocks(DOCS / "graphml.md", namespace) >= 1
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


def table_names(page: str, header: str) -> list[str]:
    """The backticked names in the first column of the Markdown table of ``page`` whose first
    header cell is ``header``."""
    match = re.search(rf"^\| {re.escape(header)} \|.*\n\|[-| ]+\|\n((?:\|.*\n?)*)", page, re.M)
    assert match, f"no table headed {header!r}"
    return re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M)


def test_the_evolve_page_describes_every_registered_rule():
    """docs/evolve.md has one table row per prune rule and per grow rule of ncg/evolve/rules.py, and no other."""
    from ncg.evolve.rules import GROW_SCORES, PRUNE_SCORES

    page = (DOCS / "evolve.md").read_text()
    assert sorted(table_names(page, "prune rule")) == sorted(PRUNE_SCORES), "docs/evolve.md: prune rule table"
    assert sorted(table_names(page, "grow rule")) == sorted(GROW_SCORES), "docs/evolve.md: grow rule table"


def test_the_methods_table_names_every_method():
    """The table of ncg/experiments/methods.py's docstring has a row per method (the layered
    controls as ``layered<d>-<family>`` and ``skips<d>-<family>`` with every family listed), and
    no other."""
    from ncg.experiments import methods

    doc = methods.__doc__
    rows = re.findall(r"^``([a-z0-9<>-]+)``", doc, re.M)
    assert rows == list(dict.fromkeys(rows)), "a method has two rows"
    controls = ("layered", "skips")
    plain = {name for name in methods.METHODS if not name.startswith(controls)}
    assert set(rows) - {"layered<d>-<family>", "skips<d>-<family>"} == plain
    for prefix in controls:
        assert {name.split("-", 1)[1] for name in methods.METHODS if name.startswith(prefix)} == set(
            methods._LAYERED_FAMILIES.values())
    families = {name.split("-", 1)[1] for name in methods.METHODS if name.startswith("layered")}
    pattern_row = doc[doc.index("``layered<d>-<family>``"):].split("\n=")[0]
    assert families == set(re.findall(r"``([a-z-]+)``", pattern_row)) - {"d"}


README_SHELL = [
    # (a README command, as a regular expression; its quick form, or None with the reason it is not run)
    (r"pip install .*", None, "the setup itself, which CI has just run"),
    (r"python -m pytest", None, "this test suite"),
    (r"python examples/evolve_mnist\.py", "python examples/evolve_mnist.py --quick --no-figures --out {tmp}/run", ""),
    (r"python -m ncg\.experiments run --datasets .* --out results/main", None, "its quick form is the next line"),
    (r"python -m ncg\.experiments run --quick", "python -m ncg.experiments run --quick --out {tmp}/quick", ""),
    (r"python -m ncg\.experiments report results/main --docs docs/results\.md",
     "python -m ncg.experiments report {tmp}/results/main --docs {tmp}/docs/results.md", ""),
    (r"python -m ncg\.experiments polynomial --out results/polynomial",
     "python -m ncg.experiments polynomial --quick --out {tmp}/polynomial", ""),
]


def readme_shell_commands() -> list[str]:
    """Every command of README.md's bash blocks (``a && b`` is two), comments dropped."""
    text = (ROOT / "README.md").read_text()
    lines = [line.split("  #")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.splitlines()]
    return [command.strip() for line in lines if line for command in line.split("&&")]


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_shell_commands())
def test_readme_shell_commands_run_in_their_quick_form(command, tmp_path):
    """Every shell command of README.md has a quick form here, and the quick form runs; the
    results-table command rebuilds docs/results.md as committed."""
    import shlex
    import shutil
    import subprocess
    import sys

    rules = [(quick, reason) for pattern, quick, reason in README_SHELL if re.fullmatch(pattern, command)]
    assert rules, f"README.md runs `{command}`, which has no quick form in tests/test_docs.py README_SHELL"
    quick, reason = rules[0]
    if quick is None:
        pytest.skip(f"`{command}` is not run here: {reason}")
    if "report" in quick:
        shutil.copytree(ROOT / "results" / "main", tmp_path / "results" / "main")
        (tmp_path / "docs").mkdir()
        shutil.copy(DOCS / "results.md", tmp_path / "docs" / "results.md")
    argv = shlex.split(quick.format(tmp=tmp_path))
    done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"`{quick}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    if "report" in quick:
        assert (tmp_path / "docs" / "results.md").read_text() == (DOCS / "results.md").read_text()


NARRATION = {
    "a date": r"\b20\d\d-\d\d-\d\d\b",
    "a session": r"\b(this|that|previous|earlier|later|next|another|each|a) sessions?\b|\bsessions\b",
    "an issue": r"\b(the|this|that|an|its|which) issue\b|\bissue's\b|\bissue #?\d+",
    "this task": r"\bthis task\b",
    "a previous machine": r"\b(previous|old|other) machine\b",
    "an old figure": r"\bwas \d[\d.,]*\s?(s|ms|seconds|x)\b|\bwent from\b",
    "a former design": r"\bthe (old|former|earlier|previous) (path|design|code|kernel|version|evaluator|default)\b"
                       r"|\bpredates?\b|\bpreviously\b",
    "a work log": r"\bwe (tried|changed|replaced|rewrote)\b|\b(before|after) (this|that) (change|fix|rewrite|commit)\b"
                  r"|\bthe runs? before (and after|this)\b",
    "a lent device": r"\b(GPU|device|machine)s? (was|were|has been|have been) lent\b",
}
"""Work-log narration the docs and docstrings leave to CHANGELOG.md: they describe the software as it is."""


def documentation() -> list[tuple[str, int, str]]:
    """``(file, first line, text)`` of README.md, every docs/*.md page, and every docstring (and
    string statement) of ncg/, viz/, examples/ and benchmarks/."""
    found = [(page.relative_to(ROOT).as_posix(), 1, page.read_text())
             for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]]
    for folder in ("ncg", "viz", "examples", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    found.append((path.relative_to(ROOT).as_posix(), node.lineno, node.value.value))
    return found


def narration(text: str) -> list[tuple[int, str, str]]:
    """``(line offset, kind, words)`` of each piece of work-log narration in ``text``."""
    return [(text.count("\n", 0, m.start()), kind, m[0])
            for kind, pattern in NARRATION.items() for m in re.finditer(pattern, text, re.I)]


@pytest.mark.parametrize("text", [
    "Run of 2026-12-04: one thread.", "the previous session's machine", "as the issue asks",
    "inference was 4.2 ms", "batch 10,000 went from 1.1x to 0.2x", "The earlier 0.15 predates the kernel",
    "No GPU has been lent", "the runs before and after",
])
def test_narration_is_recognised(text):
    assert narration(text), text


@pytest.mark.parametrize("text", [
    "import onnxruntime; session = ort.InferenceSession(path)", "the session loads the file",
    "issues a TargetMissedWarning", "neurons that fire before the first prune", "it takes 2.1 ms",
])
def test_what_the_software_does_is_not_narration(text):
    assert not narration(text), text


def test_docs_and_docstrings_describe_the_software_not_its_history():
    found = [f"{name}:{line + offset}: {kind} ({words!r})"
             for name, line, text in documentation() for offset, kind, words in narration(text)]
    assert not found, "history belongs in CHANGELOG.md:\n" + "\n".join(found)
