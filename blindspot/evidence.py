"""Evidence, controls and results of the theory claims checked by ``python -m blindspot.verify``.

A claim passes when every line of evidence agrees with the theory *and* its negative control,
a line of evidence repeated with one hypothesis broken, clearly disagrees: proof that the
check can fail. Each line names its *route*, the way its measurement was computed; within a claim
the routes share no code beyond the model's definition (``ROUTES`` lists them).

Every tolerance is a noise level: float64 rounding (``blindspot.tolerances``) or, for Monte Carlo,
$Z = 4.9$ standard errors. "Clearly" means by a factor ``CONTROL_MARGIN`` of that level: a line
that says "non-zero" passes only above ``CONTROL_MARGIN`` tolerances, and a control that should
miss an equality must miss it by more than ``CONTROL_MARGIN`` tolerances.
"""

import math
import time
from collections.abc import Callable
from typing import NamedTuple

CONTROL_MARGIN = 10.0
"""Factor by which a measurement must clear a tolerance to count as clearly different from it."""

ROUTES = {
    "sympy": "SymPy: exact symbolic algebra, or SymPy evaluated at the model's float64 parameters",
    "exact-rational": "Python integers and fractions: no rounding at all",
    "autodiff": "reverse-mode JAX autodiff (jax.grad) of the JAX model",
    "taylor-mode": "Taylor-mode JAX autodiff (jax.experimental.jet) of the JAX model",
    "nested-jvp": "nested forward-mode JAX autodiff (jax.jvp of jax.jvp) of the JAX model",
    "finite-difference": "central differences of JAX autodiff gradients (no second-order autodiff)",
    "curvature": "Hessian-vector products restricted to a family and split (blindspot.curvature)",
    "fast-path": "closed-form factored score gradients at uniform attention (blindspot.fast_paths)",
    "numpy-forward": "the model's forward pass re-written in plain numpy (blindspot.numpy_model)",
    "monte-carlo": "sample means of JAX model gradients, with a Z = 4.9 standard-error bound",
    "exact-enumeration": "every mask enumerated, token agreement exact by linearity, a numpy backward pass",
    "none": "no measurement (the claim raised before measuring)",
}
"""The routes by which an evidence line computes its measurement."""


class Evidence(NamedTuple):
    r"""One line of evidence: ``measured`` by ``route``, compared with the theory's ``expected`` value.

    ``relation="equal"`` passes when $|measured - expected| \le tolerance$; ``relation="greater"``
    (the theory says "non-zero" or "larger") passes when $measured - expected$ exceeds
    ``CONTROL_MARGIN`` tolerances, that is when it is clearly separated from the noise.
    """

    name: str
    route: str
    measured: float
    expected: float
    tolerance: float
    relation: str = "equal"

    @property
    def passed(self) -> bool:
        """Whether the measurement agrees with the theory."""
        if self.relation == "greater":
            return bool(self.measured - self.expected > CONTROL_MARGIN * self.tolerance)
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
        return {
            "name": self.name,
            "route": self.route,
            **numbers,
            "relation": self.relation,
            "passed": self.passed,
        }


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


def _slack(e: Evidence) -> float:
    """How far a line is inside its passing region (negative: outside; NaN counts as the worst)."""
    if e.relation == "greater":
        slack = e.measured - e.expected - CONTROL_MARGIN * e.tolerance
    else:
        slack = e.tolerance - abs(e.measured - e.expected)
    return -math.inf if math.isnan(slack) else slack


def _worse(a: Evidence, b: Evidence) -> Evidence:
    """Return the evidence line further from the theory, relative to its tolerance (worst case over seeds)."""
    return a if _slack(a) <= _slack(b) else b


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
        failed = Evidence(f"measurement raised {type(error).__name__}: {error}", "none", float("nan"), 0.0, 0.0)
        evidence, control = [failed], Control("not reached", failed)
    return ClaimResult(claim, evidence, control, list(seeds), time.perf_counter() - start)
