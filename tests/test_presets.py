"""The presets: one object read by the example, the comparisons, the estimators and the benchmarks."""
from __future__ import annotations

import importlib.util
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from ncg import presets
from ncg.evolve.loop import EditBudget
from ncg.experiments import __main__ as experiments
from ncg.experiments.methods import METHODS, Budget, Setting
from ncg.sklearn import FreeNetClassifier

ROOT = Path(__file__).resolve().parent.parent


def load_example():
    spec = importlib.util.spec_from_file_location("evolve_mnist", ROOT / "examples" / "evolve_mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_and_the_experiments_read_the_same_preset_object():
    example = load_example()
    assert example.SCHEDULE is experiments.SCHEDULE is presets.MAIN
    assert Budget().stages == presets.MAIN.stages and Budget().rounds == presets.MAIN.rounds
    assert experiments.FULL["epochs"] == example.FULL["epochs"] * example.FULL["rounds"]
    assert example.RULES["whole"]["prune_fraction"] == presets.GRANET.prune_fraction
    assert example.RULES["whole"]["target_parameters"] == Budget().sparse_parameters == presets.SPARSE_PARAMETERS


def test_the_estimators_defaults_are_the_estimator_preset():
    params = FreeNetClassifier().get_params()
    assert (params["n_hidden"], params["rounds"], params["lr"]) == (
        presets.ESTIMATOR.neurons, presets.ESTIMATOR.rounds, presets.ESTIMATOR.lr)
    assert (params["prune_score"], params["grow_score"]) == (
        presets.ESTIMATOR_RULES.prune_score, presets.ESTIMATOR_RULES.grow_score)


@pytest.mark.parametrize(("method", "rules"), [
    ("sparse-granet", presets.GRANET), ("sparse-gradual-hebbian", presets.GRADUAL_HEBBIAN),
    ("free-evolve", presets.COACTIVATION), ("set", presets.SET), ("rigl", presets.RIGL),
])
def test_each_method_spends_its_named_rule_set(method, rules):
    config = METHODS[method].configure(Setting(Budget(), in_features=784, num_classes=10), 0)
    assert (config.prune_score, config.grow_score) == (rules.prune_score, rules.grow_score)
    assert config.budget.prune_fraction == rules.prune_fraction and config.budget.regrow == rules.regrow
    assert config.rounds == (Budget().stages[0][0] if rules.every_epoch else Budget().rounds)


def test_presets_are_frozen():
    with pytest.raises(FrozenInstanceError):
        presets.MAIN.neurons = 1
    with pytest.raises(FrozenInstanceError):
        presets.GRANET.prune_fraction = 0.5


def test_a_rule_set_budget_is_an_edit_budget_with_its_target():
    budget = presets.RIGL.budget(target_edges=100)
    assert isinstance(budget, EditBudget) and budget.target_edges == 100 and budget.decay == "cosine"
    assert budget.validate() is budget
