"""Progress lines on stderr for long work: one line per stage, ending with the seconds it took."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHOICES = ("auto", "always", "never")
"""``auto``: only when stderr is a terminal (so logs and captured output stay clean)."""


class Progress:
    """Writes ``<prog>: <stage> ... <seconds> s`` on stderr for each :meth:`stage`, or nothing when disabled."""

    def __init__(self, prog: str, choice: str = "auto"):
        self.prog = prog
        self.enabled = choice == "always" or (choice == "auto" and sys.stderr.isatty())

    @contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """Announce ``text`` before the work inside the ``with`` block and its duration after it."""
        if not self.enabled:
            yield
            return
        print(f"{self.prog}: {text} ...", end="", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
