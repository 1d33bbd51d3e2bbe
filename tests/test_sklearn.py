"""ncg.sklearn: scikit-learn's estimator checks, its tools (cross-validation, grid search,
pipelines), accuracy on its bundled data sets, and the comparison example in --quick mode."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from ncg.errors import NCGError
from ncg.sklearn import FreeNetClassifier, FreeNetRegressor

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@parametrize_with_checks([FreeNetClassifier(), FreeNetRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    """Every check of scikit-learn's check_estimator passes with the default parameters (none
    is expected to fail; the pandas and array-API checks skip where those are not installed)."""
    check(estimator)


def _iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


SMALL = {"n_hidden": 8, "max_parameters": 0.5, "rounds": 2, "epochs_per_round": 5, "final_epochs": 5, "batch_size": 16}


def test_fixed_random_state_repeats_bit_for_bit():
    X, y = _iris()
    first = FreeNetClassifier(**SMALL, random_state=3).fit(X, y).predict_proba(X)
    torch.manual_seed(123)  # the global RNGs play no part
    np.random.seed(123)
    again = FreeNetClassifier(**SMALL, random_state=3).fit(X, y).predict_proba(X)
    other = FreeNetClassifier(**SMALL, random_state=4).fit(X, y).predict_proba(X)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_float64_input_trains_a_float32_net_and_exposes_the_fitted_attributes():
    X, y = _iris()
    clf = FreeNetClassifier(**SMALL, random_state=0).fit(X.astype(np.float64), np.array(["a", "b", "c"])[y])
    assert clf.net_.weight.dtype == torch.float32
    assert list(clf.classes_) == ["a", "b", "c"] and clf.n_features_in_ == 4
    assert clf.predict(X[:5]).dtype.kind == "U"
    assert np.allclose(clf.predict_proba(X).sum(1), 1.0)
    assert clf.n_parameters_ == sum(p.numel() for p in clf.net_.parameters()) <= clf.max_parameters_
    assert clf.history_.rounds[-1].phase == "finetune"
    assert clf.get_params()["n_hidden"] == 8 and clone(clf).set_params(n_hidden=4).n_hidden == 4


def test_bad_parameters_are_named_with_the_expected_and_found_value():
    X, y = _iris()
    for params, words in (
        ({"n_hidden": -1}, ("n_hidden", ">= 0", "-1")),
        ({"max_parameters": 1.5}, ("max_parameters", "(0, 1]", "1.5")),
        ({"max_parameters": 10}, ("max_parameters", "10")),
        ({"prune_score": "nope"}, ("prune_score", "magnitude", "'nope'")),
        ({"lr": 0.0}, ("lr", "> 0", "0.0")),
    ):
        with pytest.raises(NCGError) as error:
            FreeNetClassifier(**params).fit(X, y)
        assert all(word in str(error.value) for word in words), (params, str(error.value))
    with pytest.raises(ValueError, match="at least 2 classes"):
        FreeNetClassifier().fit(X, np.zeros(len(X)))


def test_a_budget_the_rounds_cannot_reach_is_reported():
    X, y = _iris()
    with pytest.warns(UserWarning, match="max_parameters: the FreeNet holds"):
        FreeNetClassifier(n_hidden=8, rounds=0, final_epochs=1, random_state=0).fit(X, y)


def test_cross_validation_grid_search_and_pipeline():
    X, y = _iris()
    scores = cross_val_score(FreeNetClassifier(**SMALL, random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    grid = GridSearchCV(FreeNetClassifier(**SMALL, random_state=0), {"n_hidden": [2, 8]}, cv=2).fit(X, y)
    assert grid.best_params_["n_hidden"] in (2, 8) and grid.score(X, y) > 0.8
    pipe = make_pipeline(StandardScaler(), FreeNetClassifier(**SMALL, random_state=0)).fit(X, y)
    assert pipe.score(X, y) > 0.9


def test_breast_cancer_accuracy():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    clf = FreeNetClassifier(random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.93


@pytest.mark.slow
def test_diabetes_r2_and_multi_target_regression():
    X, y = load_diabetes(return_X_y=True)
    scores = cross_val_score(FreeNetRegressor(random_state=0), X, y, cv=KFold(5, shuffle=True, random_state=0))
    assert scores.mean() > 0.4  # linear regression: 0.48
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    two = FreeNetRegressor(**SMALL, random_state=0).fit(X_train, np.stack([y_train, -2 * y_train], 1))
    assert two.predict(X_test).shape == (len(X_test), 2) and two.n_outputs_ == 2


def _load_example():
    spec = importlib.util.spec_from_file_location("sklearn_compare", EXAMPLES / "sklearn_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_example_quick_writes_runs_table_and_docs_section(tmp_path, monkeypatch):
    example = _load_example()
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nkept\n")
    monkeypatch.chdir(tmp_path)  # as from the repository root, without --out
    rows = example.main(["--quick", "--docs", str(page)])
    assert not (tmp_path / "results" / "sklearn").exists()  # the committed results stay as they are
    out = tmp_path / "results" / "quick" / "sklearn"
    assert {(r["model"], r["fold"]) for r in rows} == {(m, f) for m in ("freenet", "mlp", "hgb") for f in (0, 1)}
    assert json.loads((out / "runs.json").read_text()) == rows
    table = (out / "table.md").read_text()
    assert "n/a (trees)" in table and " +- " in table
    text = page.read_text()
    assert text.startswith("# Results\n\nkept\n") and text.count(example.BEGIN) == 1 and table.strip() in text
    page.write_text(text.replace(example.END, example.END + "\n\nafter\n"))
    example.main(["--table-only", "--out", str(out), "--docs", str(page)])
    again = page.read_text()
    assert again.count(example.BEGIN) == 1 and again.rstrip().endswith("after") and table.strip() in again


def test_docs_section_is_rebuilt_from_the_committed_runs():
    example = _load_example()
    rows = json.loads((EXAMPLES.parent / "results" / "sklearn" / "runs.json").read_text())
    page = (EXAMPLES.parent / "docs" / "results.md").read_text()
    body = page.split(example.BEGIN, 1)[1].split(example.END, 1)[0]
    assert body.strip() == example.section(rows)
    assert (EXAMPLES.parent / "results" / "sklearn" / "table.md").read_text().strip() == example.table(rows)
