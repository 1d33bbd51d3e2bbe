"""Tests for ncg/tables.py: load_table and its readers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ncg import tables
from ncg.errors import NCGError

# ---------------------------------------------------------------------------- load_table

def _table(n: int = 40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) * 2 + 1  # classes 1 and 3


def test_load_table_csv_with_a_target_column(tmp_path):
    x, y = _table()
    path = tmp_path / "points.csv"
    lines = ["a,label,b,c"] + [f"{r[0]},{t},{r[1]},{r[2]}" for r, t in zip(x.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    splits = tables.load_table(path, target="label", seed=3)
    assert splits.task == "classification" and splits.num_classes == 2 and splits.num_features == 3
    assert (len(splits.train), len(splits.val), len(splits.test)) == (28, 6, 6)
    order = np.random.default_rng(3).permutation(40)
    xs, ys = splits.train.tensors
    np.testing.assert_allclose(xs.numpy(), x[order[:28]], rtol=1e-6)
    assert ys.tolist() == ((y[order[:28]] - 1) // 2).tolist()  # classes 1, 3 -> labels 0, 1
    regression = tables.load_table(path, target="a", standardize=True)
    assert regression.task == "regression" and regression.num_classes == 1
    assert regression.train.tensors[1].shape == (28, 1) and regression.train.tensors[1].dtype == torch.float32
    np.testing.assert_allclose(regression.train.tensors[0].mean(0).numpy(), 0.0, atol=1e-5)
    assert tables.load_table(path, target="label", task="regression").task == "regression"


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_load_table_npz_and_pt(tmp_path, suffix):
    x, y = _table()
    path = tmp_path / f"points{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x, y=y * 0.5 + 0.25)  # not integer-valued: regression
    else:
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    splits = tables.load_table(path)
    assert splits.task == ("regression" if suffix == ".npz" else "classification")
    assert splits.name == "points" and len(splits.train) + len(splits.val) + len(splits.test) == 40


def test_load_table_errors_name_the_file_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,kind\n1,2,0\n3,x,1\n")
    with pytest.raises(NCGError, match=r"bad\.csv: no column 'label'; the columns are 'a', 'b', 'kind'"):
        tables.load_table(path, target="label")
    with pytest.raises(NCGError, match=r"bad\.csv: column 'b' is not numeric: line 3 holds 'x'"):
        tables.load_table(path, target="kind")
    with pytest.raises(NCGError, match=r"bad\.csv: a CSV needs target=<column>"):
        tables.load_table(path)
    np.savez(tmp_path / "only_x.npz", x=np.zeros((4, 2)))
    with pytest.raises(NCGError, match=r"only_x\.npz: no 'y' array; expected 'x' .* found \['x'\]"):
        tables.load_table(tmp_path / "only_x.npz")
    with pytest.raises(NCGError, match=r"table\.json: expected a \.csv, \.npz or \.pt file"):
        tables.load_table(tmp_path / "table.json")
    with pytest.raises(NCGError, match=r"missing\.csv: no such file"):
        tables.load_table(tmp_path / "missing.csv", target="a")
