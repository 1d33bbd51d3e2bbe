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


def _write_csv(path, header: str, rows: list[str]) -> None:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def _rows(n: int = 30) -> list[str]:
    return [f"{i * 0.5},{i % 7},{i % 3}" for i in range(n)]


@pytest.mark.parametrize(("value", "what"), [("nan", "nan, not a finite number"), ("inf", "inf, not a finite"),
                                             ("-Infinity", "-inf, not a finite"), ("1e309", "inf, not a finite"),
                                             ("1e39", r"1e\+39, beyond float32")])
@pytest.mark.parametrize("column", ["b", "label"])
def test_csv_non_finite_values_are_refused_naming_line_and_column(tmp_path, value, what, column):
    rows = _rows()
    cells = rows[4].split(",")
    cells[1 if column == "b" else 2] = value
    rows[4] = ",".join(cells)
    path = tmp_path / "t.csv"
    _write_csv(path, "a,b,label", rows)
    with pytest.raises(NCGError, match=rf"t\.csv: line 6, column '{column}' holds {what}"):
        tables.load_table(path, target="label")


def test_line_numbers_count_skipped_empty_lines(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("\na,b,label\n1,2,0\n\n3,nan,1\n4,5,0\n")
    with pytest.raises(NCGError, match=r"line 5, column 'b' holds nan"):
        tables.load_table(path, target="label")


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize(("where", "value", "place"), [("x", np.nan, r"x\[3, 1\] holds nan"),
                                                       ("x", 1e39, r"x\[3, 1\] holds 1e\+39"),
                                                       ("y", np.inf, r"y\[3\] holds inf")])
def test_array_non_finite_values_are_refused_naming_row_and_column(tmp_path, suffix, where, value, place):
    x, y = np.zeros((20, 2)), np.arange(20) % 2 * 1.0
    (x if where == "x" else y)[(3, 1) if where == "x" else 3] = value
    path = tmp_path / f"t{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x, y=y)
    else:
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    with pytest.raises(NCGError, match=rf"t\{suffix}: {place}"):
        tables.load_table(path)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom", "utf-16-be-bom"])
def test_utf8_and_utf16_with_a_bom_are_read(tmp_path, encoding):
    text = "a,b,café\n" + "\n".join(f"{i},{i % 4},{('été', 'hiver')[i % 2]}" for i in range(20)) + "\n"
    if encoding.endswith("-bom"):
        import codecs

        bom = codecs.BOM_UTF16_LE if "le" in encoding else codecs.BOM_UTF16_BE
        data = bom + text.encode(encoding[:9])
    else:
        data = text.encode(encoding)
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    splits = tables.load_table(path, target="café")
    assert splits.classes == ("hiver", "été") and splits.num_features == 2


@pytest.mark.parametrize(("data", "match"), [
    ("a,b\n1,2\n".encode("utf-16-le"), r"holds NUL characters.*UTF-16 without a byte order mark"),
    ("a,b\n1,\xe9\n".encode("latin-1"), r"not UTF-8 text: invalid continuation byte at byte 6; save the table as "
                                         r"UTF-8 \(with or without a byte order mark\) or UTF-16 with"),
    (b"\xff\xfea\x00,\x00b", r"not UTF-16 text: truncated data"),
    (bytes(range(256)), r"not UTF-8 text"),
])
def test_other_encodings_are_errors_naming_the_encoding(tmp_path, data, match):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    with pytest.raises(NCGError, match=r"t\.csv: " + match):
        tables.load_table(path, target="b")


def test_object_arrays_and_non_tensor_pt_contents_are_errors(tmp_path):
    np.savez(tmp_path / "objects.npz", x=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(NCGError, match=r"objects\.npz: not a readable \.npz archive of numeric arrays \(ValueError: "
                                       r"Object arrays cannot be loaded"):
        tables.load_table(tmp_path / "objects.npz")
    np.save(tmp_path / "single.npz", np.zeros((3, 2)))
    (tmp_path / "single.npz.npy").rename(tmp_path / "single.npz")
    with pytest.raises(NCGError, match=r"single\.npz: holds a single array"):
        tables.load_table(tmp_path / "single.npz")
    np.savez(tmp_path / "complex.npz", x=np.zeros((3, 2), complex), y=np.zeros(3))
    with pytest.raises(NCGError, match=r"complex\.npz: 'x' is not a numeric array \(dtype complex128\)"):
        tables.load_table(tmp_path / "complex.npz")
    for contents, found in [([1, 2], "got list"), ({"x": [[1.0]], "y": [0]}, r"'x' is not a numeric array \(list\)"),
                            ({"x": torch.zeros(3, 2, dtype=torch.cfloat), "y": torch.zeros(3)}, "torch.complex64")]:
        torch.save(contents, tmp_path / "t.pt")
        with pytest.raises(NCGError, match=rf"t\.pt: .*{found}"):
            tables.load_table(tmp_path / "t.pt")
    (tmp_path / "t.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(NCGError, match=r"t\.pt: not a readable \.pt file of tensors \(UnpicklingError"):
        tables.load_table(tmp_path / "t.pt")


@pytest.mark.parametrize(("text", "match"), [("", "the file is empty"), ("\n\n", "the file is empty"),
                                             ("a,b,label\n", "the table has no rows, only the header"),
                                             ("a,b,label\n\n", "the table has no rows, only the header"),
                                             ("label\n1\n2\n", "no feature columns")])
def test_header_only_and_empty_tables_name_the_file(tmp_path, text, match):
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(NCGError, match=rf"empty\.csv: .*{match}"):
        tables.load_table(path, target="label")


def test_empty_arrays_and_too_few_rows_name_the_file(tmp_path):
    np.savez(tmp_path / "none.npz", x=np.zeros((0, 3)), y=np.zeros(0))
    with pytest.raises(NCGError, match=r"none\.npz: the table has no rows"):
        tables.load_table(tmp_path / "none.npz")
    np.savez(tmp_path / "two.npz", x=np.zeros((2, 3)), y=np.arange(2))
    with pytest.raises(NCGError, match=r"two\.npz: 2 rows leave no training row once val_fraction=0\.5 \(1 rows\)"):
        tables.load_table(tmp_path / "two.npz", val_fraction=0.5, test_fraction=0.4)


def test_text_class_labels_map_to_sorted_classes(tmp_path):
    path = tmp_path / "iris.csv"
    names = ["versicolor", "setosa", "virginica"]
    _write_csv(path, 'sepal,petal,"species"', [f'{i},{i % 5},"{names[i % 3]}"' for i in range(30)])
    splits = tables.load_table(path, target="species", seed=1)
    assert splits.task == "classification" and splits.classes == ("setosa", "versicolor", "virginica")
    x, y = (torch.cat([s.tensors[k] for s in (splits.train, splits.val, splits.test)]) for k in (0, 1))
    order = np.random.default_rng(1).permutation(30)
    assert [splits.classes[k] for k in y.tolist()] == [names[i % 3] for i in order]
    assert x[:, 0].tolist() == order.astype(float).tolist()
    with pytest.raises(NCGError, match=r"iris\.csv: task='regression' needs a numeric target, but column 'species' "
                                       r"holds text labels such as 'setosa'"):
        tables.load_table(path, target="species", task="regression")


@pytest.mark.parametrize("missing", ["", "NA", "nan"])
def test_a_missing_target_is_refused_not_read_as_regression(tmp_path, missing):
    path = tmp_path / "t.csv"
    rows = [f"{i},{('a', 'b')[i % 2]}" for i in range(10)]
    rows[3] = f"3,{missing}"
    _write_csv(path, "x,kind", rows)
    with pytest.raises(NCGError, match=rf"t\.csv: line 5, column 'kind' holds '{missing}', a missing target"):
        tables.load_table(path, target="kind")
    numeric = [f"{i},{i % 2}" for i in range(10)]
    numeric[3] = "3,nan"
    _write_csv(path, "x,kind", numeric)
    with pytest.raises(NCGError, match=r"t\.csv: line 5, column 'kind' holds nan, not a finite number"):
        tables.load_table(path, target="kind")


def test_one_class_is_refused_and_the_task_can_be_forced(tmp_path):
    np.savez(tmp_path / "one.npz", x=np.zeros((10, 2)), y=np.ones(10))
    with pytest.raises(NCGError, match=r"one\.npz: classification needs at least 2 classes, but y holds only 1"):
        tables.load_table(tmp_path / "one.npz")
    assert tables.load_table(tmp_path / "one.npz", task="regression").num_classes == 1
    np.savez(tmp_path / "many.npz", x=np.zeros((100, 2)), y=np.arange(100))
    assert tables.load_table(tmp_path / "many.npz").task == "regression"
    forced = tables.load_table(tmp_path / "many.npz", task="classification")
    assert forced.num_classes == 100 and forced.classes[:3] == (0, 1, 2)


@pytest.mark.parametrize(("rows", "match"), [(["1,2,0", "3,4"], "line 3 has 2 values, the header 3"),
                                             (["1,2,0", "3,4,1,5"], "line 3 has 4 values, the header 3"),
                                             (["1,2,0", "1_0,4,1"], "column 'a' is not numeric: line 3 holds '1_0'"),
                                             (["1,,a"], "column 'b' is not numeric: line 2 is empty"),
                                             (["1,2,a", "3,x,b"], "column 'b' is not numeric: line 3 holds 'x'")])
def test_malformed_rows_are_named_by_line(tmp_path, rows, match):
    path = tmp_path / "t.csv"
    _write_csv(path, "a,b,label", rows)
    with pytest.raises(NCGError, match=rf"t\.csv: {match}"):
        tables.load_table(path, target="label")


def test_crlf_line_ends_and_quoted_values_are_read(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,"b",label\r\n' + b"".join(f'"{i}",{i % 3},{i % 2}\r\n'.encode() for i in range(20)))
    splits = tables.load_table(path, target="label", val_fraction=0, test_fraction=0)
    assert sorted(splits.train.tensors[0][:, 0].tolist()) == list(map(float, range(20)))


def test_standardizing_a_nearly_constant_feature_is_refused_not_overflowed(tmp_path):
    x = np.zeros((40, 2))
    x[:, 0] = np.arange(40)
    order = np.random.default_rng(0).permutation(40)
    x[order[:28], 1] = 1e-44  # the training rows vary by a denormal; a test row by 1
    x[order[-1], 1] = 1.0
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(40) % 2)
    with pytest.raises(NCGError, match=r"t\.npz: standardizing feature x\[:, 1\] overflows float32"):
        tables.load_table(tmp_path / "t.npz", standardize=True)


def test_skipped_empty_lines_raise_no_numpy_warning(tmp_path):
    import warnings

    path = tmp_path / "gaps.csv"
    path.write_text("a,label\n\n1,x\n\n2,y\n3,x\n4,y\n5,x\n6,y\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tables.load_table(path, target="label", val_fraction=0, test_fraction=0).classes == ("x", "y")
