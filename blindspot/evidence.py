"""Evidence, controls and results of the theory claims checked by ``python -m blindspot.verify``.

A claim passes when every line of evidence agrees with the theory within its tolerance *and*
its negative control (the same measurement with one hypothesis broken) departs from the
theory by more than its threshold, which proves that the check can fail.
"""

import time
from collections.abc import Callable
from typing import NamedTuple


class Evidence(NamedTuple):
    """One independent line of evidence: ``measured`` must be within ``tolerance`` of ``expected``."""

    name: str
    measured: float
    expected: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """Whether $|measured - expected| \\le tolerance$."""
        return abs(self.measured - self.expected) <= self.tolerance


class Control(NamedTuple):
    """A negative control: with ``broken`` hypothesis, ``departure`` must exceed ``threshold``."""

    broken: str
    departure: float
    threshold: float

    @property
    def failed_as_expected(self) -> bool:
        """Whether the broken hypothesis moved the measurement clearly away from the theory."""
        return self.departure > self.threshold


class Sizes(NamedTuple):
    """Problem sizes of a run: default (fast) or ``--full`` (larger n, several seeds)."""

    full: bool
    seed: int


class Claim(NamedTuple):
    """A registered claim: id (``P1`` ...), one-line statement, hypotheses and its measurement."""

    id: str
    statement: str
    hypotheses: str
    measure: Callable[[Sizes], tuple[list[Evidence], Control]]


class ClaimResult(NamedTuple):
    """The outcome of running one claim."""

    claim: Claim
    evidence: list[Evidence]
    control: Control
    seconds: float

    @property
    def passed(self) -> bool:
        """Every evidence line passes and the control failed as it should."""
        return all(e.passed for e in self.evidence) and self.control.failed_as_expected

    def to_dict(self) -> dict:
        """JSON-ready record of the result."""
        return {
            "id": self.claim.id,
            "statement": self.claim.statement,
            "hypotheses": self.claim.hypotheses,
            "passed": self.passed,
            "evidence": [{**e._asdict(), "passed": e.passed} for e in self.evidence],
            "control": {**self.control._asdict(), "failed_as_expected": self.control.failed_as_expected},
            "seconds": self.seconds,
        }


def run_claim(claim: Claim, sizes: Sizes) -> ClaimResult:
    """Measure one claim and time it."""
    start = time.perf_counter()
    evidence, control = claim.measure(sizes)
    return ClaimResult(claim, evidence, control, time.perf_counter() - start)
