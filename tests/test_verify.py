import json
import math
import subprocess
import sys

import pytest

from blindspot import claim_p2_column_mass, claim_p3_circulant, claim_p4_blind_subspace
from blindspot.config import ModelConfig
from blindspot.evidence import ROUTES, Claim, Control, Evidence, run_claim
from blindspot.verify import _print_result, main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "claims.json"
    status = main(["--json", str(path)])
    return status, json.loads(path.read_text()), json.loads(path.with_name("claims.timings.json").read_text())


def test_every_claim_passes_at_default_size_with_two_evidence_lines_and_a_failing_control(report):
    status, data, timings = report
    assert status == 0 and data["passed"] is True
    assert [c["id"] for c in data["claims"]] == [*(f"P{k}" for k in range(1, 9)), "P10", "P11", "P12", "P13"]
    for claim in data["claims"]:
        assert claim["passed"], claim["id"]
        assert len(claim["evidence"]) >= 2 and all(e["passed"] for e in claim["evidence"])
        assert claim["control"]["failed_as_expected"] and not claim["control"]["passed"]
        assert timings["claim_seconds"][claim["id"]] > 0


def test_every_evidence_line_names_its_route_and_the_routes_of_a_claim_differ(report):
    _, data, _ = report
    for claim in data["claims"]:
        routes = [e["route"] for e in claim["evidence"]]
        assert set(routes) <= ROUTES.keys() and len(set(routes)) == len(routes), claim["id"]
        assert claim["control"]["route"] in routes, claim["id"]


def test_json_report_has_the_documented_keys(report):
    _, data, _ = report
    assert {"claims", "passed", "dtype", "matmul_precision", "device", "jax_version"} <= data.keys()
    assert data["dtype"] == "float64" and data["matmul_precision"] == "highest"
    assert {"id", "statement", "passed", "evidence", "control"} <= data["claims"][0].keys()
    assert "seconds" not in json.dumps(data)  # timings go to the sibling file
    line_keys = {"name", "route", "measured", "expected", "tolerance", "relation", "passed"}
    assert line_keys == data["claims"][0]["evidence"][0].keys()
    assert line_keys | {"broken", "failed_as_expected"} == data["claims"][0]["control"].keys()


def _hide(**forced):
    """A ModelConfig factory that silently breaks a hypothesis, as a wrong model would."""

    def factory(**kwargs):
        return ModelConfig(**{**kwargs, **forced})

    return factory


@pytest.mark.parametrize(
    ("module", "forced"),
    [
        (claim_p3_circulant, {"mlp": 5}),
        (claim_p4_blind_subspace, {"residual": True, "mlp": 5}),
        (claim_p2_column_mass, {"pooling": "last"}),
    ],
)
def test_a_claim_fed_a_wrong_model_reports_fail(monkeypatch, module, forced):
    monkeypatch.setattr(module, "ModelConfig", _hide(**forced))
    assert not run_claim(module.CLAIM, full=False, seeds=[0]).passed


def test_evidence_relations_and_control_margin():
    assert Evidence("x", "sympy", 1e-15, 0.0, 1e-14).passed
    assert not Evidence("x", "sympy", 1e-13, 0.0, 1e-14).clearly_fails  # within the control margin of 10 tolerances
    assert Evidence("x", "sympy", 1e-12, 0.0, 1e-14).clearly_fails
    assert Evidence("x", "sympy", 0.3, 0.0, 1e-14, "greater").passed
    # "non-zero" means clearly above the noise: more than CONTROL_MARGIN tolerances
    assert not Evidence("x", "sympy", 5e-14, 0.0, 1e-14, "greater").passed
    assert not Evidence("x", "sympy", 5e-14, 0.0, 1e-14, "greater").clearly_fails
    assert Control("h", Evidence("x", "sympy", 0.0, 0.0, 1e-14, "greater")).failed_as_expected
    assert not Evidence("x", "sympy", float("nan"), 0.0, 1e-14).passed
    assert not Evidence("x", "sympy", float("nan"), 0.0, 1e-14).clearly_fails


def test_the_worst_seed_is_kept_relative_to_each_tolerance():
    lines = iter(
        [
            [Evidence("a", "monte-carlo", 1.0, 0.0, 2.0)],  # half its tolerance
            [Evidence("a", "monte-carlo", 0.9, 0.0, 1.0)],  # 90%: worse, though smaller
            [Evidence("a", "monte-carlo", float("nan"), 0.0, 1.0)],
        ]
    )

    def measure(full, seed):
        return next(lines), Control("h", Evidence("c", "sympy", 1.0, 0.0, 1e-3))

    worst = run_claim(Claim("PX", "s", "h", measure), full=False, seeds=[0, 1]).evidence[0]
    assert worst.measured == 0.9
    assert math.isnan(run_claim(Claim("PX", "s", "h", measure), full=False, seeds=[2]).evidence[0].measured)


def test_a_measurement_that_raises_is_a_failed_claim_not_a_crash():
    def broken(full, seed):
        raise ValueError("config must be mean-pooled")

    result = run_claim(Claim("PX", "s", "h", broken), full=False, seeds=[0])
    assert not result.passed and "ValueError: config must be mean-pooled" in result.evidence[0].name
    assert result.evidence[0].route == "none"


def test_print_names_the_route_of_every_line(capsys):
    def measure(full, seed):
        return [Evidence("line", "autodiff", 0.0, 0.0, 1e-14)], Control("h", Evidence("c", "sympy", 1.0, 0.0, 1e-14))

    _print_result(run_claim(Claim("PX", "s", "h", measure), full=False, seeds=[0]))
    out = capsys.readouterr().out
    assert "[autodiff] line" in out and "[sympy] c" in out and "failed as it should" in out


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "blindspot.verify", *args], capture_output=True, text=True)


def test_list_names_every_claim():
    out = _cli("--list")
    assert out.returncode == 0
    ids = [*(f"P{k}" for k in range(1, 9)), "P10", "P11", "P12", "P13"]
    assert [line.split()[0] for line in out.stdout.splitlines()] == ids
