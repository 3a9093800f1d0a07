"""Shared helpers of the derivation scripts: LaTeX formatting and atomic writing."""

import os
import sys
import tempfile
from pathlib import Path

import sympy as sp


def tex(expr) -> str:
    """LaTeX of a SymPy object, deterministic (no float noise: exact objects only)."""
    return sp.latex(expr)


def check(condition: bool, what: str) -> None:
    """Stop the derivation when a symbolic step does not hold exactly."""
    if not condition:
        raise AssertionError(f"derivation step failed: {what}")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(script: str, markdown) -> None:
    """Entry point of one derivation script: write ``<script>.md`` beside it."""
    path = Path(script).with_suffix(".md")
    write_atomic(path, markdown())
    print(f"wrote {path}", file=sys.stderr)
