"""``python -m blindspot.verify``: reproduce the theory claims P1-P8 one by one.

Each claim reports two or more independent lines of evidence (a SymPy result evaluated in
float64, an autodiff measurement, a closed-form fast path) and a negative control that must
fail. Exit status: 0 when every selected claim passes, 1 when one fails, 2 for bad options.
"""

import argparse
import sys

import jax

from blindspot.evidence import ClaimResult, Evidence, run_claim
from blindspot.io import write_json_atomic


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser(ids: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m blindspot.verify",
        description="Reproduce the theory claims of blindspot (DESIGN.md P1-P8), in float64, one by one.",
    )
    parser.add_argument(
        "--claim", action="append", metavar="ID", help=f"run only this claim (repeatable); one of {', '.join(ids)}"
    )
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    parser.add_argument("--full", action="store_true", help="larger sizes (n up to 256) and several seeds")
    parser.add_argument("--seed", type=int, default=0, help="base PRNG seed (default 0)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH (atomically)")
    return parser


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


def main(argv: list[str] | None = None) -> int:
    """Run the selected claims, print the table and the summary line, return the exit status."""
    from blindspot.claims import CLAIMS

    ids = [c.id for c in CLAIMS]
    args = _parser(ids).parse_args(argv)
    if args.claim:
        unknown = [c for c in args.claim if c not in ids]
        if unknown:
            print(
                f"python -m blindspot.verify: error: --claim must be one of {{{', '.join(ids)}}}, got {unknown[0]!r}",
                file=sys.stderr,
            )
            return 2
    if args.seed < 0:
        print(f"python -m blindspot.verify: error: --seed must be an integer >= 0, got {args.seed}", file=sys.stderr)
        return 2
    if args.list:
        for c in CLAIMS:
            print(f"{c.id:<4} {c.statement}  [hypotheses: {c.hypotheses}]")
        return 0

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
    if args.json:
        write_json_atomic(
            args.json,
            {
                "claims": [r.to_dict() for r in results],
                "passed": passed == len(results),
                "dtype": "float64",
                "matmul_precision": "highest",
                "device": f"{device.platform}:{device.device_kind}",
                "jax_version": jax.__version__,
                "full": args.full,
                "seeds": seeds,
            },
        )
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
