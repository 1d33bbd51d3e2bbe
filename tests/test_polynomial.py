"""The FreeNets authors' polynomial experiment (ncg.experiments.polynomial)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ncg.errors import NCGError
from ncg.experiments.polynomial import (
    Cell,
    PolynomialRecipe,
    fit_polynomial,
    freenet_for_polynomial,
    main,
    mlp_for_polynomial,
    monomial,
    polynomial_data,
    polynomial_table,
    random_polynomial,
    run_polynomial_sweep,
)
from ncg.model import FreeNet


def test_data_shapes_range_and_values():
    data = polynomial_data(monomial(8), seed=3)
    assert data.x_train.shape == (9900, 1) and data.x_test.shape == (100, 1)
    assert data.x_train.dtype == torch.float64
    for x in (data.x_train, data.x_test):
        assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.allclose(data.y_train, data.x_train ** 8)
    # train and test are disjoint draws; the same seed gives the same data
    assert not set(data.x_test.flatten().tolist()) & set(data.x_train.flatten().tolist())
    assert torch.equal(polynomial_data(monomial(8), seed=3).x_test, data.x_test)
    unit = polynomial_data(monomial(2), seed=0, num_points=500, interval=(0.0, 1.0))
    assert float(unit.x_train.min()) >= 0.0


def test_random_polynomial_is_fixed_and_has_its_degree():
    p = random_polynomial(8)
    assert p == random_polynomial(8) and p.degree == 8 and len(p.coefficients) == 9
    assert all(-1.25 <= c <= 1.25 for c in p.coefficients)
    data = polynomial_data(p, seed=0, num_points=50)
    x = data.x_train.flatten()
    expected = sum(c * x ** i for i, c in enumerate(p.coefficients))
    assert torch.allclose(data.y_train.flatten(), expected)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_freenet_and_mlp_have_the_same_k_neurons(k):
    net = freenet_for_polynomial(k, seed=0)
    assert isinstance(net, FreeNet) and net.num_neurons == k
    assert net.edge_index.shape[1] == k * (k - 1) // 2  # complete DAG
    assert net.activation == net.output_activation == "square_relu"
    assert net(torch.zeros(3, 1, dtype=torch.float64)).shape == (3, 1)
    mlp = mlp_for_polynomial(k, seed=0)
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [k // 2, k // 2, 1]
    assert sum(m.out_features for m in linears[:-1]) == k


def test_bad_arguments_name_themselves():
    with pytest.raises(NCGError, match="k must"):
        freenet_for_polynomial(0)
    with pytest.raises(NCGError, match="activation"):
        mlp_for_polynomial(4, activation="gelu")
    with pytest.raises(NCGError, match="restarts"):
        PolynomialRecipe(restarts=0)
    with pytest.raises(NCGError, match="loss"):
        PolynomialRecipe(loss="l1")
    with pytest.raises(NCGError, match="interval"):
        polynomial_data(monomial(2), interval=(1.0, -1.0))


@pytest.mark.slow
def test_short_fit_of_x2_with_two_neurons_is_accurate():
    # x^2 = relu(x)^2 + relu(-x)^2 is exact with 2 neurons; an MLP [1, 1] cannot come close.
    data = polynomial_data(monomial(2), seed=0, num_points=1000)
    recipe = PolynomialRecipe(restarts=4, explore_steps=200, finalists=1, adam_steps=300, lbfgs_iters=200,
                              lbfgs_rounds=1)
    free = fit_polynomial(lambda s: freenet_for_polynomial(2, seed=s), data, recipe, seed=0)
    mlp = fit_polynomial(lambda s: mlp_for_polynomial(2, seed=s), data, recipe, seed=0)
    assert free["test_mse"] < 1e-6, free["test_mse"]
    assert free["test_max_abs_error"] < 1e-2
    assert mlp["test_mse"] > 100 * free["test_mse"]


def test_quick_sweep_writes_rows_resumes_and_tables(tmp_path):
    recipe = PolynomialRecipe.quick()
    cells = [Cell(monomial(2), 2)]
    rows = run_polynomial_sweep(tmp_path, cells, seeds=[0, 1], recipe=recipe, num_points=200, log=None)
    assert len(rows) == 4
    files = sorted((tmp_path / "rows").glob("*.json"))
    assert len(files) == 4
    required = {"polynomial", "degree", "neurons", "model", "seed", "test_mse", "test_max_abs_error",
                "parameters", "seconds"}
    for row in rows:
        assert required <= set(row)
    assert {r["model"] for r in rows} == {"freenet", "mlp"}
    assert json.loads((tmp_path / "runs.json").read_text()) == rows
    assert (tmp_path / "runs.csv").read_text().count("\n") == 5

    # resume: existing rows are skipped (not recomputed), a new seed is added
    stamp = {f.name: f.stat().st_mtime_ns for f in files}
    lines: list[str] = []
    rows = run_polynomial_sweep(tmp_path, cells, seeds=[0, 1, 2], recipe=recipe, num_points=200, log=lines.append)
    assert len(rows) == 6
    assert all((tmp_path / "rows" / name).stat().st_mtime_ns == t for name, t in stamp.items())
    assert len(lines) == 1 and "4 skipped" in lines[0]

    table = polynomial_table(rows)
    header = table.splitlines()[0]
    for column in ("polynomial", "k", "FreeNet median MSE", "MLP median MSE", "MLP / FreeNet", ">= 100x"):
        assert column in header
    assert table.splitlines()[2].startswith("| x^2 | 2 | 3 |")
    assert (tmp_path / "table.md").read_text().strip() == table


def test_main_quick_and_table_only(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as from the repository root, without --out
    assert main(["--quick", "--seeds", "1"]) == 0
    assert not (tmp_path / "results" / "polynomial").exists()  # the committed results stay as they are
    assert (tmp_path / "results" / "quick" / "polynomial" / "table.md").is_file()
    first = capsys.readouterr().out
    assert "x^2 k=2" in first and "| x^2 | 2 | 1 |" in first
    assert main(["--table-only", "--out", "results/quick/polynomial"]) == 0
    assert "| x^2 | 2 | 1 |" in capsys.readouterr().out
    with pytest.raises(NCGError, match="--table-only"):
        main(["--table-only", "--out", str(tmp_path / "missing")])
