"""Regenerate every derivation: ``python derivations/run_all.py`` (``--check``: exit 1 if any is stale)."""

import importlib
import sys
from pathlib import Path

from blindspot.cli import BadOption, Parser, refuse
from blindspot.io import write_text_atomic

PROG = "python derivations/run_all.py"
HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "p1_softmax_jacobian",
    "p2_column_mass",
    "p3_circulant_flatness",
    "p4_blind_subspace",
    "p5_positional_gradient",
    "p6_reconstruction_sees",
    "p7_curvature",
    "p10_random_init",
    "p11_mlp_order",
    "p12_scaling",
)


def load(name: str):
    """Import the derivation script ``name`` (its directory goes on ``sys.path`` for ``_common``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(name)


def generate(name: str) -> str:
    """Return the Markdown text that the script ``name`` produces now."""
    return load(name).markdown()


def stale_files(folder: Path = HERE, markdown=generate) -> list[str]:
    """Names of the ``.md`` files in ``folder`` that are missing or differ from ``markdown(name)``."""
    out = []
    for name in SCRIPTS:
        path = folder / f"{name}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != markdown(name):
            out.append(path.name)
    return out


def write_all(folder: Path = HERE, markdown=generate) -> None:
    """Write ``markdown(name)`` to ``<folder>/<name>.md`` for every script, atomically."""
    for name in SCRIPTS:
        path = folder / f"{name}.md"
        write_text_atomic(path, markdown(name))
        print(f"wrote {path.name}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or with ``--check`` compare) every derivation; return the exit status (2: bad option)."""
    parser = Parser(prog=PROG, description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    try:
        args = parser.parse_args(argv)
    except BadOption as error:
        return refuse(PROG, error)
    if args.check:
        stale = stale_files(HERE, generate)
        if stale:
            print(f"stale derivations: {', '.join(stale)} (run {PROG})", file=sys.stderr)
            return 1
        print(f"all {len(SCRIPTS)} derivations are current", file=sys.stderr)
        return 0
    write_all(HERE, generate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
