"""Regenerate every figure, ``paper_figs/summary.json`` and ``paper_figs/RESULTS.md``.

Usage: ``python experiments/run_all.py [--small] [--root DIR] [--fresh] [--report-only] [--only NAME ...]``.

``--small`` runs the seconds-long smoke versions (default root ``paper_figs/small``, so the
committed full results are never overwritten by it). Computation is resumable: finished
training cells are skipped; ``--fresh`` deletes the root's data first (a full, timed
regeneration); ``--report-only`` rewrites the summary and RESULTS.md from the stored data (keeping
the recorded run time). Exit status 2 and a one-line message on bad arguments.
"""

import argparse
import importlib
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import results  # noqa: E402
from experiments.common import DEFAULT_ROOT, setup  # noqa: E402

FIGURES = (
    "training_dynamics_synthetic",
    "training_dynamics_digits",
    "parameter_alignment",
    "blindness_vs_n",
    "taylor_profiles",
    "restricted_hessian",
    "gradient_visibility_during_training",
)


def run(*, small: bool = False, root=None, fresh: bool = False, only=None) -> float:
    """Run ``main`` of every figure script (or those in ``only``), then the summary; return seconds."""
    setup()
    root = Path(root or (DEFAULT_ROOT / "small" if small else DEFAULT_ROOT))
    if fresh:
        for name in FIGURES:
            shutil.rmtree(root / name, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seconds = {}
    for name in only or FIGURES:
        t = time.perf_counter()
        print(f"== {name}", flush=True)
        importlib.import_module(f"experiments.{name}").main(small=small, root=root)
        seconds[name] = time.perf_counter() - t
    wall = time.perf_counter() - start
    run_record = results.regeneration(
        small=small, wall_seconds=wall, figure_seconds=seconds, fresh=fresh, cores=os.cpu_count()
    )
    results.write_summary(root, run_record)
    results.write_results(root)
    print(f"== done in {wall:.0f} s; wrote {root / 'summary.json'} and {root / 'RESULTS.md'}")
    return wall


def report(*, small: bool = False, root=None) -> None:
    """Rewrite ``summary.json`` and ``RESULTS.md`` from the stored data, keeping the recorded run time."""
    root = Path(root or (DEFAULT_ROOT / "small" if small else DEFAULT_ROOT))
    results.write_summary(root, results.read_json(root / "summary.json")["regeneration"])
    results.write_results(root)


def main(argv=None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="seconds-long smoke versions")
    parser.add_argument("--root", default=None, help="output folder (default paper_figs, or paper_figs/small)")
    parser.add_argument("--fresh", action="store_true", help="delete existing data first (timed full run)")
    parser.add_argument("--report-only", action="store_true", help="rewrite summary.json and RESULTS.md from the data")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=None, help="run only these figures")

    def error(message):
        print(f"run_all: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error
    args = parser.parse_args(argv)
    if args.report_only:
        report(small=args.small, root=args.root)
    else:
        run(small=args.small, root=args.root, fresh=args.fresh, only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
