"""Reading a CSV table: ``ncg.tables.load_table`` against a cell-by-cell Python parser.

Writes a table of ``--rows`` rows x 21 columns (20 float features and an integer class label,
as ``%.6g``) into a temporary folder, then times, interleaved (``common.interleaved_medians``):

- **python**: ``csv.reader`` and ``float()`` on every cell into a float64 array: the
  pure-Python baseline, kept only here;
- **load_table**: the whole of ``ncg.tables.load_table(path, target="label")``: decoding,
  parsing in C, the finiteness checks, the class mapping and the split.

Prints one table and, as its last line, JSON with the medians and their ratio.

    python benchmarks/bench_tables.py                 # 200,000 rows, 3 repeats (~1 min)
    python benchmarks/bench_tables.py --tiny          # 200 rows, 1 repeat (smoke test)
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_medians, machine  # noqa: E402

from ncg.tables import load_table  # noqa: E402

FEATURES = 20


def write_table(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV of ``rows`` rows: ``f0..f19`` normal floats and ``label`` in 0..4."""
    rng = np.random.default_rng(seed)
    table = np.column_stack([rng.normal(size=(rows, FEATURES)), rng.integers(0, 5, rows)])
    header = ",".join([f"f{i}" for i in range(FEATURES)] + ["label"])
    np.savetxt(path, table, fmt=["%.6g"] * FEATURES + ["%d"], delimiter=",", header=header, comments="")
    return path


def python_parse(path: Path, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and target by ``csv.reader`` and ``float()`` per cell: the baseline."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = [name.strip() for name in rows[0]], rows[1:]
    table = np.empty((len(body), len(header)), dtype=np.float64)
    for line, row in enumerate(body):
        for column, value in enumerate(row):
            table[line, column] = float(value)
    index = header.index(target)
    return np.delete(table, index, axis=1), table[:, index]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="rows of the table (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: %(default)s)")
    p.add_argument("--tiny", action="store_true", help="200 rows, 1 repeat: a smoke test")
    args = p.parse_args(argv)
    rows, repeats = (200, 1) if args.tiny else (args.rows, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        path = write_table(Path(folder) / "table.csv", rows)
        x, y = python_parse(path, "label")
        splits = load_table(path, target="label", val_fraction=0, test_fraction=0)
        order = np.random.default_rng(0).permutation(rows)
        assert np.array_equal(splits.train.tensors[0].numpy(), x[order].astype(np.float32))
        assert splits.train.tensors[1].tolist() == y[order].astype(int).tolist()
        medians = interleaved_medians({"python": lambda: python_parse(path, "label"),
                                       "load_table": lambda: load_table(path, target="label")},
                                      repeats=repeats, warmup=0)
        size = path.stat().st_size
    result = {"rows": rows, "columns": FEATURES + 1, "megabytes": round(size / 1e6, 1),
              "python_seconds": round(medians["python"], 3), "load_table_seconds": round(medians["load_table"], 3),
              "speedup": round(medians["python"] / medians["load_table"], 1), **machine()}
    print(f"{rows:,} rows x {FEATURES + 1} columns ({result['megabytes']} MB), median of {repeats}, "
          f"{result['cpu']}:")
    print(f"  python csv + float() per cell  {result['python_seconds']:8.3f} s")
    print(f"  load_table (numpy.loadtxt)     {result['load_table_seconds']:8.3f} s   "
          f"{result['speedup']}x faster")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
