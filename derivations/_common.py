"""Shared helpers of the derivation scripts: LaTeX formatting, exact checks, the common ``main``."""

import sys
from pathlib import Path

import sympy as sp

from blindspot.io import write_text_atomic


def tex(expr) -> str:
    """LaTeX of a SymPy object, deterministic (no float noise: exact objects only)."""
    return sp.latex(expr)


def check(condition: bool, what: str) -> None:
    """Stop the derivation when a symbolic step does not hold exactly."""
    if not condition:
        raise AssertionError(f"derivation step failed: {what}")


def main(script: str, markdown) -> None:
    """Entry point of one derivation script: write ``<script>.md`` beside it."""
    path = Path(script).with_suffix(".md")
    write_text_atomic(path, markdown())
    print(f"wrote {path}", file=sys.stderr)
