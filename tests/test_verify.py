import json
import subprocess
import sys

import pytest

from blindspot import claims
from blindspot.config import ModelConfig
from blindspot.evidence import Control, Evidence, run_claim
from blindspot.verify import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "claims.json"
    status = main(["--json", str(path)])
    return status, json.loads(path.read_text()), json.loads(path.with_name("claims.timings.json").read_text())


def test_every_claim_passes_at_default_size_with_two_evidence_lines_and_a_failing_control(report):
    status, data, timings = report
    assert status == 0 and data["passed"] is True
    assert [c["id"] for c in data["claims"]] == [f"P{k}" for k in range(1, 9)]
    for claim in data["claims"]:
        assert claim["passed"], claim["id"]
        assert len(claim["evidence"]) >= 2 and all(e["passed"] for e in claim["evidence"])
        assert claim["control"]["failed_as_expected"] and not claim["control"]["passed"]
        assert timings["claim_seconds"][claim["id"]] > 0


def test_json_report_has_the_documented_keys(report):
    _, data, _ = report
    assert {"claims", "passed", "dtype", "matmul_precision", "device", "jax_version"} <= data.keys()
    assert data["dtype"] == "float64" and data["matmul_precision"] == "highest"
    assert {"id", "statement", "passed", "evidence", "control"} <= data["claims"][0].keys()
    assert "seconds" not in json.dumps(data)  # timings go to the sibling file


def _hide(**forced):
    """A ModelConfig factory that silently breaks a hypothesis, as a wrong model would."""

    def factory(**kwargs):
        return ModelConfig(**{**kwargs, **forced})

    return factory


@pytest.mark.parametrize(
    ("claim_id", "forced"),
    [("P3", {"mlp": 5}), ("P4", {"residual": True, "mlp": 5}), ("P2", {"pooling": "last"})],
)
def test_a_claim_fed_a_wrong_model_reports_fail(monkeypatch, claim_id, forced):
    monkeypatch.setattr(claims, "ModelConfig", _hide(**forced))
    claim = next(c for c in claims.CLAIMS if c.id == claim_id)
    assert not run_claim(claim, full=False, seeds=[0]).passed


def test_evidence_relations_and_control_margin():
    assert Evidence("x", 1e-15, 0.0, 1e-14).passed
    assert not Evidence("x", 1e-13, 0.0, 1e-14).clearly_fails  # within the control margin of 10 tolerances
    assert Evidence("x", 1e-12, 0.0, 1e-14).clearly_fails
    assert Evidence("x", 0.3, 0.0, 1e-14, "greater").passed
    assert Control("h", Evidence("x", 0.0, 0.0, 1e-14, "greater")).failed_as_expected


def test_a_measurement_that_raises_is_a_failed_claim_not_a_crash():
    def broken(full, seed):
        raise ValueError("config must be mean-pooled")

    result = run_claim(claims.Claim("PX", "s", "h", broken), full=False, seeds=[0])
    assert not result.passed and "ValueError: config must be mean-pooled" in result.evidence[0].name


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "blindspot.verify", *args], capture_output=True, text=True)


def test_list_names_every_claim():
    out = _cli("--list")
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()] == [f"P{k}" for k in range(1, 9)]
