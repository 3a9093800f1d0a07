"""``python -m blindspot.verify``: reproduce the theory claims (P1-P8, P10-P13) one by one.

Each claim reports two or more independent lines of evidence (a SymPy result evaluated in
float64, an autodiff measurement, a closed-form fast path) and a negative control that must
fail. Exit status: 0 when every selected claim passes, 1 when one fails, 2 for bad options.
"""

import argparse
import sys

import jax

from blindspot.checks import check_int
from blindspot.cli import BadOption, Parser, integer, refuse
from blindspot.evidence import ClaimResult, Evidence, run_claim
from blindspot.io import check_output_file, write_report
from blindspot.runtime import disable_faulty_fusions, require_sound_compiler

PROG = "python -m blindspot.verify"
SEED_HIGH = 2**62 - 1
"""Largest ``--seed``: the claims draw further seeds from it (``--full``: seed + 1, seed + 2; P6:
seed + 1000), and every one must stay a signed 64-bit integer for ``jax.random.key``."""


def _parser(ids: list[str]) -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Reproduce the theory claims (P1-P8, P10-P13) of blindspot (derivations/THEORY.md), in float64, "
        "one by one. Exit status: 0 when every selected claim passes, 1 when one fails, 2 for a bad option.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--claim", action="append", metavar="ID", help=f"run only this claim (repeatable); one of {', '.join(ids)}"
    )
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--full", action="store_true", help="larger sizes (n up to 256) and three seeds")
    parser.add_argument("--seed", type=integer, default=0, help=f"base PRNG seed, in [0, 2^62 - 1 = {SEED_HIGH}]")
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results as strict JSON to PATH, without timings (they go to PATH-stem.timings.json)",
    )
    return parser


def _check_options(argv, ids: list[str]):
    """Parse and check every option (``BadOption`` or ``ValueError`` naming it) before any computation."""
    args = _parser(ids).parse_args(argv)
    unknown = [c for c in args.claim or [] if c not in ids]
    if unknown:
        raise BadOption(f"--claim must be one of {{{', '.join(ids)}}}, got {unknown[0]!r}")
    check_int("--seed", args.seed, 0, SEED_HIGH)
    if args.json is not None:
        check_output_file("--json", args.json)
    return args


def _describe(e: Evidence) -> str:
    from blindspot.evidence import CONTROL_MARGIN

    if e.relation == "equal":
        relation = f"expected {e.expected:.3e}, tolerance {e.tolerance:.1e}"
    else:
        relation = f"must exceed {e.expected:.3e} by {CONTROL_MARGIN:g} x tolerance {e.tolerance:.1e}"
    return f"[{e.route}] {e.name}: measured {e.measured:.3e}, {relation}"


def _print_result(r: ClaimResult) -> None:
    verdict = "PASS" if r.passed else "FAIL"
    print(f"{r.claim.id:<4} {verdict}  {r.seconds:6.2f}s  {r.claim.statement}")
    for e in r.evidence:
        print(f"       {'ok ' if e.passed else 'BAD'} {_describe(e)}")
    c = r.control
    verdict = "failed as it should" if c.failed_as_expected else "DID NOT FAIL"
    print(
        f"       {'ok ' if c.failed_as_expected else 'BAD'} control, {c.broken}: {_describe(c.evidence)} -> {verdict}"
    )


def _write_json(path, results: list[ClaimResult], full: bool, seeds: list[int], device) -> bool:
    """Write the report (no timings) and its timings file; print the error and return False if refused."""
    report = {
        "claims": [r.to_dict() for r in results],
        "passed": all(r.passed for r in results),
        "dtype": "float64",
        "matmul_precision": "highest",
        "device": f"{device.platform}:{device.device_kind}",
        "jax_version": jax.__version__,
        "full": full,
        "seeds": seeds,
    }
    timings = {"seconds": sum(r.seconds for r in results), "claim_seconds": {r.claim.id: r.seconds for r in results}}
    try:
        write_report(path, report, timings)
    except ValueError as error:
        print(f"{PROG}: error: --json not written: {error}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the selected claims, print the table and the summary line, return the exit status."""
    disable_faulty_fusions()  # before option checks that may create arrays
    from blindspot.claims import CLAIMS

    ids = [c.id for c in CLAIMS]
    try:
        args = _check_options(argv, ids)
    except ValueError as error:
        return refuse(PROG, error)
    if args.list:
        for c in CLAIMS:
            print(f"{c.id:<4} {c.statement}  [hypotheses: {c.hypotheses}]")
        return 0

    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    device = jax.devices()[0]
    print(
        f"dtype float64, matmul precision highest, device {device.platform}:{device.device_kind}, jax {jax.__version__}"
    )
    selected = [c for c in CLAIMS if not args.claim or c.id in args.claim]
    seeds = [args.seed + k for k in range(3 if args.full else 1)]
    results = []
    for claim in selected:
        results.append(run_claim(claim, full=args.full, seeds=seeds))
        _print_result(results[-1])
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    if args.json is not None and not _write_json(args.json, results, args.full, seeds, device):
        return 1
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
