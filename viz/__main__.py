"""Command line: ``ncg-viz RUN_DIR`` (or ``python -m viz RUN_DIR``) renders a run's figures.

Prints the path of every file written, one per line; notes about skipped figures go to stderr.
"""
from __future__ import annotations

import argparse
import sys

from viz.run import FIGURES, render_run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, render the run folder, print the written paths; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="ncg-viz",
        description="Render every figure of a finished ncg run folder into it: "
        + "; ".join(f"{name} ({what})" for name, what in FIGURES.items()),
    )
    parser.add_argument("run_dir", help="folder written by examples/evolve_mnist.py")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print notes about skipped figures")
    args = parser.parse_args(argv)
    try:
        paths = render_run(args.run_dir, verbose=not args.quiet)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
