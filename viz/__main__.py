"""Command line: ``ncg-viz RUN_DIR`` (or ``python -m viz RUN_DIR``) renders a run's figures;
``ncg-viz explore RUN_OR_GRAPH [-o FILE.html]`` writes its explorer page (:func:`viz.explore`);
``ncg-viz topology GRAPH [-o FILE.png]`` draws the topology of a graph file or checkpoint.

Prints the path of every file written, one per line; notes about skipped figures go to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ncg.errors import NCGError
from viz.explore import explore
from viz.run import FIGURES, render_run


def explore_main(argv: list[str]) -> int:
    """``python -m viz explore``: write the explorer page of a run folder or graph file."""
    parser = argparse.ArgumentParser(
        prog="ncg-viz explore",
        description="Write an interactive explorer page (one self-contained HTML file that opens from file://) "
        "of a run folder, a .pt checkpoint or a .graphml file.",
    )
    parser.add_argument("source", metavar="RUN_OR_GRAPH", help="run folder, .pt checkpoint or .graphml file")
    parser.add_argument("-o", "--output", metavar="FILE.html",
                        help="page to write (default: RUN/explorer.html, or the graph file's name with .html)")
    args = parser.parse_args(argv)
    try:
        path = explore(args.source, args.output)
    except NCGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def topology_main(argv: list[str]) -> int:
    """``ncg-viz topology``: draw the topology figure of a graph file or checkpoint."""
    parser = argparse.ArgumentParser(prog="ncg-viz topology",
                                     description="Draw the topology of a .graphml file or .pt checkpoint into a PNG.")
    parser.add_argument("source", metavar="GRAPH", help=".graphml file or .pt checkpoint")
    parser.add_argument("-o", "--output", metavar="FILE.png", help="figure to write (default: GRAPH with .png)")
    parser.add_argument("--title", default=None, help="figure title (default: the file's name)")
    args = parser.parse_args(argv)
    from ncg.checkpoint import load_freenet
    from ncg.io import read_graphml
    from viz.topology import draw_topology

    source = Path(args.source)
    output = Path(args.output) if args.output else source.with_suffix(".png")
    try:
        model = read_graphml(source) if source.suffix == ".graphml" else load_freenet(source)[0]
    except NCGError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    draw_topology(model, output, title=args.title or source.stem, figsize=(8, 5), dpi=110)
    print(output)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, render the run folder (or, after ``explore``, write its explorer page),
    print the written paths; return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["explore"]:
        return explore_main(argv[1:])
    if argv[:1] == ["topology"]:
        return topology_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="ncg-viz",
        description="Render every figure of a finished ncg run folder into it: "
        + "; ".join(f"{name} ({what})" for name, what in FIGURES.items())
        + ". 'ncg-viz explore RUN_OR_GRAPH' writes its interactive explorer page instead.",
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
