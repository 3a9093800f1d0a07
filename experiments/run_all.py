"""Regenerate every figure, ``paper_figs/summary.json`` and ``paper_figs/RESULTS.md``.

Usage: ``python experiments/run_all.py [--small] [--root DIR] [--fresh] [--report-only] [--only NAME ...]``.

``--small`` runs the smoke versions at tiny sizes (default root ``paper_figs/small``, so the
committed full results are never overwritten by it). Computation is resumable: finished training
cells whose stored settings match are skipped; ``--fresh`` deletes the data of the figures that run
first (a full, timed regeneration); ``--report-only`` rewrites the summary and RESULTS.md from the
stored data (keeping the recorded run time). Exit status 2 and a one-line message on a bad option.
"""

import importlib
import os
import shutil
import sys
import time
from argparse import ArgumentDefaultsHelpFormatter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blindspot.cli import BadOption, Parser, refuse  # noqa: E402
from blindspot.io import check_output_folder  # noqa: E402
from experiments import results  # noqa: E402
from experiments.common import DEFAULT_ROOT, setup  # noqa: E402

PROG = "python experiments/run_all.py"
FIGURES = (
    "training_dynamics_synthetic",
    "training_dynamics_digits",
    "ablations_synthetic",
    "ablations_digits",
    "parameter_alignment",
    "blindness_vs_n",
    "taylor_profiles",
    "restricted_hessian",
    "gradient_visibility_during_training",
    "detectability",
)


def run(*, small: bool = False, root=None, fresh: bool = False, only=None) -> float:
    """Run ``main`` of every figure script (or those in ``only``), then the summary; return seconds.

    ``fresh`` deletes the stored data of the figures that run, so nothing cached is reused.
    """
    setup()
    root = _root(small, root)
    names = only or FIGURES
    if fresh:
        for name in names:
            shutil.rmtree(root / name, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    seconds = {}
    for name in names:
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
    root = _root(small, root)
    results.write_summary(root, results.read_json(root / "summary.json")["regeneration"])
    results.write_results(root)


def _root(small: bool, root) -> Path:
    if root is not None:
        return Path(root)
    return DEFAULT_ROOT / "small" if small else DEFAULT_ROOT


def _parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description=" ".join((__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[2]).split()),
        formatter_class=ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--small", action="store_true", help="smoke versions at tiny sizes")
    parser.add_argument(
        "--root", default=None, help="output folder (not given: paper_figs, or paper_figs/small with --small)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="delete the data of the figures that run first (timed run)"
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite summary.json and RESULTS.md from the data")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=None, help="run only these figures")
    return parser


def _check_options(argv):
    """Parse and check every option before anything is computed or deleted (``ValueError`` naming it)."""
    args = _parser().parse_args(argv)
    root = check_output_folder("--root", args.root if args.root is not None else _root(args.small, None))
    if args.report_only:
        if args.fresh or args.only:
            raise BadOption("--report-only computes nothing, so it takes neither --fresh nor --only")
        if not (root / "summary.json").is_file():
            raise BadOption(f"--report-only needs {root / 'summary.json'} from an earlier run; run without it first")
    return args


def main(argv=None) -> int:
    """Command line entry point; exit status 2 and one line on stderr for a bad option."""
    try:
        args = _check_options(argv)
    except ValueError as error:
        return refuse(PROG, error)
    if args.report_only:
        report(small=args.small, root=args.root)
    else:
        run(small=args.small, root=args.root, fresh=args.fresh, only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
