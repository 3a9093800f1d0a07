"""Evidence, controls and results of the theory claims checked by ``python -m blindspot.verify``.

A claim passes when every line of evidence agrees with the theory *and* its negative control,
the main measurement repeated with one hypothesis broken, clearly disagrees: proof that the
check can fail.
"""

import time
from collections.abc import Callable
from typing import NamedTuple

CONTROL_MARGIN = 10.0
"""A control must miss an equality by more than this many tolerances to count as clearly failed."""


class Evidence(NamedTuple):
    r"""One line of evidence comparing ``measured`` with the theory's ``expected`` value.

    ``relation="equal"`` passes when $|measured - expected| \le tolerance$; ``relation="greater"``
    (the theory says "non-zero" or "positive") passes when $measured - expected > tolerance$.
    """

    name: str
    measured: float
    expected: float
    tolerance: float
    relation: str = "equal"

    @property
    def passed(self) -> bool:
        """Whether the measurement agrees with the theory."""
        if self.relation == "greater":
            return bool(self.measured - self.expected > self.tolerance)
        return bool(abs(self.measured - self.expected) <= self.tolerance)

    @property
    def clearly_fails(self) -> bool:
        """Whether the measurement misses the theory by a clear margin (used by controls)."""
        if self.relation == "greater":
            return bool(self.measured - self.expected <= self.tolerance)
        return bool(abs(self.measured - self.expected) > CONTROL_MARGIN * self.tolerance)

    def to_dict(self) -> dict:
        """JSON-ready record."""
        numbers = {k: float(getattr(self, k)) for k in ("measured", "expected", "tolerance")}
        return {"name": self.name, **numbers, "relation": self.relation, "passed": self.passed}


class Control(NamedTuple):
    """A negative control: the evidence line ``evidence`` measured with hypothesis ``broken`` broken."""

    broken: str
    evidence: Evidence

    @property
    def failed_as_expected(self) -> bool:
        """Whether breaking the hypothesis moved the measurement clearly away from the theory."""
        return self.evidence.clearly_fails

    def to_dict(self) -> dict:
        """JSON-ready record."""
        return {"broken": self.broken, **self.evidence.to_dict(), "failed_as_expected": self.failed_as_expected}


class Claim(NamedTuple):
    """A registered claim: id (``P1`` ...), one-line statement, hypotheses and its measurement.

    ``measure(full, seed)`` returns the evidence lines and the control for one seed; ``full``
    selects the larger sizes.
    """

    id: str
    statement: str
    hypotheses: str
    measure: Callable[[bool, int], tuple[list[Evidence], Control]]


class ClaimResult(NamedTuple):
    """The outcome of one claim over one or more seeds (worst case over seeds)."""

    claim: Claim
    evidence: list[Evidence]
    control: Control
    seeds: list[int]
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
            "evidence": [e.to_dict() for e in self.evidence],
            "control": self.control.to_dict(),
            "seeds": self.seeds,
        }


def _worse(a: Evidence, b: Evidence) -> Evidence:
    """Return the evidence line further from the theory (for a worst case over seeds)."""
    if a.relation == "greater":
        return a if a.measured - a.expected <= b.measured - b.expected else b
    return a if abs(a.measured - a.expected) >= abs(b.measured - b.expected) else b


def _better(a: Evidence, b: Evidence) -> Evidence:
    """Return the evidence line closer to the theory (a control's worst case is its mildest failure)."""
    return b if _worse(a, b) is a else a


def run_claim(claim: Claim, *, full: bool, seeds: list[int]) -> ClaimResult:
    """Measure ``claim`` for every seed and keep, line by line, the worst case.

    A measurement that raises (for example a fast path refusing a model that breaks its
    hypotheses) makes the claim FAIL with the error as its evidence, instead of stopping the run.
    """
    start = time.perf_counter()
    try:
        evidence, control = claim.measure(full, seeds[0])
        for seed in seeds[1:]:
            more, more_control = claim.measure(full, seed)
            evidence = [_worse(a, b) for a, b in zip(evidence, more)]
            control = control._replace(evidence=_better(control.evidence, more_control.evidence))
    except Exception as error:  # noqa: BLE001  (reported as a failed claim, with the message)
        failed = Evidence(f"measurement raised {type(error).__name__}: {error}", float("nan"), 0.0, 0.0)
        evidence, control = [failed], Control("not reached", failed)
    return ClaimResult(claim, evidence, control, list(seeds), time.perf_counter() - start)
