"""Iris as a CSV file through the command line, against scikit-learn's MLPClassifier.

Writes scikit-learn's bundled iris data (150 rows, 4 features, 3 species as text labels) as a
CSV into a temporary folder, then:

- **cli**: ``examples/evolve_mnist.py --data iris.csv --target species --standardize
  --no-figures --seed S`` for each ``--seeds`` S, with its defaults for a small table
  (``SMALL_TABLE``: batches of 16, 300 steps a round); test accuracy on its held-out 15% (22
  rows; seeded permutation S);
- **mlp**: ``StandardScaler`` + ``MLPClassifier(hidden_layer_sizes=(100,), max_iter=1000)``
  (``examples/sklearn_compare.py``'s baseline), mean accuracy of stratified 5-fold
  cross-validation (shuffled, ``random_state=0``).

Prints both and the difference in points, and as its last line JSON.

    OMP_NUM_THREADS=1 python examples/iris_csv.py                  # 5 seeds, a few minutes
    OMP_NUM_THREADS=1 python examples/iris_csv.py --quick          # 1 seed, --quick: seconds
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
import evolve_mnist  # noqa: E402


def write_iris(path: Path) -> Path:
    """Iris as ``sepal_length,sepal_width,petal_length,petal_width,species`` rows."""
    iris = load_iris()
    header = "sepal_length,sepal_width,petal_length,petal_width,species\n"
    rows = (",".join(f"{v:g}" for v in row) + f",{iris.target_names[t]}\n" for row, t in zip(iris.data, iris.target))
    path.write_text(header + "".join(rows))
    return path


def mlp_accuracy(seed: int = 0) -> float:
    """Mean stratified 5-fold accuracy of StandardScaler + MLPClassifier(100) on iris."""
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(100,), max_iter=1000, random_state=seed))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(model, x, y, cv=folds)))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="CLI seeds (default: 0 1 2 3 4)")
    p.add_argument("--quick", action="store_true", help="one seed of the CLI's --quick form: a smoke test")
    args = p.parse_args(argv)
    seeds = args.seeds[:1] if args.quick else args.seeds
    with tempfile.TemporaryDirectory() as folder:
        csv = write_iris(Path(folder) / "iris.csv")
        accuracies = []
        for seed in seeds:
            flags = ["--data", str(csv), "--target", "species", "--standardize", "--no-figures", "--seed", str(seed),
                     "--out", str(Path(folder) / f"run{seed}")] + (["--quick"] if args.quick else [])
            accuracies.append(evolve_mnist.main(flags)["test_accuracy"])
    mlp = mlp_accuracy()
    cli = statistics.mean(accuracies)
    result = {"cli_test_accuracy": [round(a, 4) for a in accuracies], "cli_mean": round(cli, 4),
              "mlp_5fold_accuracy": round(mlp, 4), "points_behind_mlp": round(100 * (mlp - cli), 1)}
    print(f"\ncli, seeds {' '.join(map(str, seeds))}: test accuracy {' '.join(f'{a:.3f}' for a in accuracies)}, "
          f"mean {cli:.3f}\nmlp, stratified 5-fold: {mlp:.3f}\ncli - mlp: {100 * (cli - mlp):+.1f} points")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
