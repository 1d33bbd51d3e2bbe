"""Data that cannot be trained on is refused up front, with a message that names the fix."""
from __future__ import annotations

import re

import pytest
import torch

from ncg import NCG, FreeNet
from ncg.errors import NCGError
from ncg.evolve import EvolveConfig, FreeEvolve
from ncg.tasks import TASKS
from ncg.train import evaluate, fit


def _net(outputs: int = 3, in_features: int = 4, **kwargs) -> FreeNet:
    return FreeNet(NCG.complete(6, num_outputs=outputs, seed=0), in_features=in_features, seed=0, **kwargs)


def _raises(message: str):
    return pytest.raises(NCGError, match=re.escape(message))


@pytest.mark.parametrize("train", [
    lambda net, x, y: fit(net, (x, y)),
    lambda net, x, y: FreeEvolve(net, EvolveConfig(rounds=1, record_samples=8)).run((x, y)),
])
def test_float_targets_on_a_classification_task_name_the_regression_task_and_long(train):
    with pytest.raises(NCGError) as info:
        train(_net(), torch.randn(40, 4), torch.rand(40))
    message = str(info.value)
    assert message.startswith("training data: class labels must be integers (torch.long), got torch.float32")
    for fix in ('task="regression"', 'EvolveConfig(task="regression")', 'fit(..., task="regression")', "y.long()"):
        assert fix in message


def test_one_hot_labels_point_to_argmax():
    with _raises("y.argmax(1)"):
        fit(_net(), (torch.randn(40, 4), torch.eye(3)[torch.arange(40) % 3]))
    with _raises("class labels must be 1-D (one class index per sample), got shape [40, 1]; pass y.reshape(-1)"):
        fit(_net(), (torch.randn(40, 4), (torch.arange(40) % 3).unsqueeze(1)))


def test_regression_targets_wider_than_the_model_name_both_shapes_and_out_features():
    x, y = torch.randn(40, 4), torch.randn(40, 2)
    with _raises("training data: targets have shape [40, 2] (2 values per sample) but the model has 1 output; "
                 "build it with out_features=2 (e.g. FreeNet(graph, in_features, out_features=2)), "
                 "or pass targets of shape [40, 1]"):
        fit(_net(outputs=1), (x, y), task="regression")
    with _raises("evaluation data: targets have shape [40, 2]"):
        evaluate(_net(outputs=1), x, y, task="regression")
    # the fix the message names works
    assert fit(_net(outputs=1, out_features=2), (x, y), task="regression")["epochs"] == 1
    assert fit(_net(outputs=1), (x, torch.randn(40)), task="regression")["epochs"] == 1


def test_integer_regression_targets_and_one_dimensional_inputs_name_the_fix():
    with _raises("regression targets must be floating point, got torch.int64; pass y.float()"):
        fit(_net(outputs=1), (torch.randn(40, 4), torch.arange(40)), task="regression")
    with _raises("x must be [samples, features], got shape [40]; for one feature per sample pass x.unsqueeze(1)"):
        fit(_net(outputs=1, in_features=1), (torch.randn(40), torch.randn(40)), task="regression_linf")
    with _raises("y must have one row per sample, got a scalar (shape [])"):
        TASKS["regression"].check(torch.randn(1, 4), torch.tensor(1.0))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_integer_labels_of_any_kind_train_like_long_labels(dtype):
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    reference = fit(_net(), (x, y), val=(x, y), seed=0)
    assert fit(_net(), (x, y.to(dtype)), val=(x, y.to(dtype)), seed=0) == reference


def test_labels_out_of_range_name_the_outputs_needed():
    x = torch.randn(40, 4)
    with _raises("training data: label 4 is outside [0, 3) for a model with 3 outputs; "
                 "build it with out_features=5 (one output per class), or relabel the classes to 0..2"):
        fit(_net(), (x, torch.arange(40) % 5))
    with _raises("label 1 is outside [0, 1) for a model with 1 output; build it with out_features=2"):
        fit(_net(outputs=1), (x, torch.arange(40) % 2))
    with _raises("label -1 is outside [0, 3): class labels are 0-based indices; relabel them to start at 0"):
        fit(_net(), (x, torch.arange(40) % 3 - 1))
    with _raises("label -1 is outside [0, num_classes)"):
        TASKS["classification"].check(x, torch.arange(40) % 3 - 1)


def test_meta_data_and_a_meta_model_are_refused_before_any_batch():
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    with _raises("training data: x is on the meta device (shape [40, 4] without values)"):
        fit(_net(), (x.to("meta"), y))
    with _raises("evaluation data: y is on the meta device (shape [40] without values)"):
        evaluate(_net(), x, y.to("meta"))
    with _raises("training data: the model's parameters are on the meta device (shapes without values); "
                 "build or load the model on a real device"):
        fit(_net().to("meta"), (x, y))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_data_on_another_device_than_the_model_is_moved_batch_by_batch():
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    metrics = fit(_net().cuda(), (x, y), val=(x.cuda(), y.cuda()))
    assert metrics["epochs"] == 1 and 0.0 <= metrics["val_accuracy"] <= 1.0


@pytest.mark.parametrize("train", [
    lambda net, x, y, task: fit(net, (x, y), task=task),
    lambda net, x, y, task: FreeEvolve(net, EvolveConfig(rounds=1, record_samples=8, task=task)).run((x, y)),
])
def test_non_finite_inputs_are_named_before_training_not_blamed_on_the_learning_rate(train):
    from ncg.errors import NonFiniteError

    x = torch.randn(40, 4)
    x[7, 2], x[9, 0] = float("nan"), float("inf")
    net = _net()
    before = {name: value.clone() for name, value in net.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"x\[7, 2\] is nan \(and 1 more NaN or infinite values\); the data "
                                             r"must be finite") as info:
        train(net, x, torch.randint(0, 3, (40,)), "classification")
    assert "learning rate" not in str(info.value)
    assert all(torch.equal(before[name], value) for name, value in net.state_dict().items())  # nothing trained
    y = torch.randn(40, 1)
    y[3] = float("-inf")
    with pytest.raises(NonFiniteError, match=r"y\[3, 0\] is -inf;"):
        train(_net(outputs=1), torch.randn(40, 4), y, "regression")
