"""Command-line plumbing shared by the entry points: bad options are one line and exit status 2.

``Parser.parse_args`` raises ``BadOption`` instead of exiting, so ``main(argv)`` can refuse every bad
option, before any computation, in one place (``refuse``): one line on stderr, exit status 2, no
traceback. Messages name the option as the user typed it (``--mask-rate``) and its allowed values.
"""

import argparse
import sys

SEED_HIGH = 2**63 - 1
"""Largest PRNG seed: ``jax.random.key`` takes a signed 64-bit integer."""


class BadOption(ValueError):
    """A command-line option is malformed or out of range (the message names it)."""


class Parser(argparse.ArgumentParser):
    """``argparse`` parser that raises ``BadOption`` (``--help`` still prints and exits 0)."""

    def error(self, message):
        """Raise instead of printing the usage and exiting."""
        raise BadOption(message)


def integer(text: str) -> int:
    """Option type: a decimal integer (the range is checked after parsing, with the option's name)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def real(text: str) -> float:
    """Option type: a real number (``nan`` and ``inf`` parse; the range check refuses them)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a real number, got {text!r}") from None


def refuse(prog: str, error: Exception) -> int:
    """Print ``prog: error: <message>`` as one line on stderr and return the exit status 2."""
    message = " ".join(str(error).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2
