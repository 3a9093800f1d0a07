import json
import subprocess
import sys

import numpy as np
import pytest

from blindspot import probe
from blindspot.tolerances import close_tolerance

TOL = close_tolerance(np.float64, 64)


def _report(tmp_path, *options):
    path = tmp_path / "report.json"
    assert probe.main([*options, "--json", str(path)]) == 0
    return json.loads(path.read_text())


@pytest.mark.parametrize("route", ["factored", "dense"])
def test_mean_pooled_classifier_at_uniform_attention(tmp_path, capsys, route):
    n = 6
    report = _report(tmp_path, "--n", str(n), "--d", "8", "--batch", "24", "--taylor-order", "0", "--route", route)
    cls, rec = report["objectives"]["classification"], report["objectives"]["reconstruction"]
    assert cls["span_rank"] == n - 1 and cls["blind_dim"] == n * n - n + 1
    assert cls["per_sample_rank_max"] == 1
    assert cls["families"]["circulant"]["visible_fraction"] < TOL
    assert cls["families"]["column_sum"]["visible_fraction"] == pytest.approx(1.0, abs=TOL)
    for objective in (cls, rec):
        assert objective["families"]["gauge"]["visible_fraction"] < TOL
        assert abs(objective["expected_alignment"]["gauge"]) < TOL
    assert rec["families"]["circulant"]["visible_fraction"] > 0.1
    assert "classification" in capsys.readouterr().out


def test_routes_agree(tmp_path):
    options = ["--n", "5", "--d", "6", "--batch", "16", "--taylor-order", "0", "--mlp", "3", "--data", "markov"]
    dense = _report(tmp_path, *options, "--route", "dense")["objectives"]
    fast = _report(tmp_path, *options, "--route", "factored")["objectives"]
    for objective in ("classification", "reconstruction"):
        for key in ("span_rank", "per_sample_rank_max", "blind_dim"):
            assert dense[objective][key] == fast[objective][key], (objective, key)
        for fam, entry in dense[objective]["families"].items():
            got = fast[objective]["families"][fam]["visible_fraction"]
            assert got == pytest.approx(entry["visible_fraction"], abs=1e3 * TOL), (objective, fam)
            got = fast[objective]["expected_alignment"][fam]
            assert got == pytest.approx(dense[objective]["expected_alignment"][fam], abs=1e3 * TOL), (objective, fam)
        dense_w, fast_w = dense[objective]["parameter_space"], fast[objective]["parameter_space"]
        assert dense_w["grad_rank"] == fast_w["grad_rank"]
        assert fast_w["positional_identity_cosine"] == pytest.approx(dense_w["positional_identity_cosine"], abs=TOL)


@pytest.mark.parametrize("route", ["factored", "dense"])
def test_reconstruction_spans_the_non_gauge_space(tmp_path, route):
    n = 4
    report = _report(
        tmp_path,
        "--n",
        str(n),
        "--d",
        "8",
        "--batch",
        "48",
        "--mask-rate",
        "0.5",
        "--taylor-order",
        "0",
        "--route",
        route,
    )
    rec = report["objectives"]["reconstruction"]
    assert rec["span_rank"] == n * (n - 1)
    assert rec["families"]["gauge"]["visible_fraction"] < TOL
    for name, entry in rec["families"].items():  # measured on the non-gauge part: ceiling 1
        if name != "gauge":
            assert entry["visible_fraction"] == pytest.approx(1.0, abs=TOL), name


@pytest.mark.parametrize("extra,grows", [(["--residual"], False), (["--residual", "--mlp", "8"], True)])
def test_residual_with_mlp_grows_the_classification_span(tmp_path, extra, grows):
    n = 6
    report = _report(tmp_path, "--n", str(n), "--d", "8", "--batch", "24", "--taylor-order", "0", *extra)
    cls = report["objectives"]["classification"]
    assert (cls["span_rank"] > n - 1) == grows
    assert (cls["families"]["circulant"]["visible_fraction"] > 1e-3) == grows


def test_json_structure_with_hessian_and_taylor(tmp_path):
    report = _report(tmp_path, "--n", "4", "--d", "4", "--batch", "6", "--taylor-order", "2", "--hessian")
    assert set(report) >= {"config", "dtype", "matmul_precision", "device", "seconds", "objectives"}
    assert report["dtype"] == "float64" and report["matmul_precision"] == "highest"
    assert report["config"]["n"] == 4 and report["config"]["batch"] == 6
    for objective in ("classification", "reconstruction"):
        r = report["objectives"][objective]
        assert set(r) >= {
            "per_sample_rank_max",
            "span_rank",
            "blind_dim",
            "rank_tolerance",
            "families",
            "expected_alignment",
            "taylor",
            "restricted_hessian",
            "parameter_space",
        }
        assert set(r["families"]) == {"gauge", "circulant", "toeplitz", "column_sum", "band_1", "band_2", "proximity"}
        assert r["families"]["toeplitz"]["dim"] == 6  # 2n - 1 diagonals less the all-ones (gauge) matrix
        assert set(r["parameter_space"]) >= {"grad_rank", "positional_identity_cosine"}
        assert all(len(c) == 3 for c in r["taylor"].values())
        for entry in r["restricted_hessian"].values():
            assert set(entry) >= {"eigenvalues", "gauss_newton_norm", "functional_norm"}
        assert max(abs(e) for e in r["restricted_hessian"]["gauge"]["eigenvalues"]) < TOL
    cls = report["objectives"]["classification"]
    # P3: no MLP, no residual: the circulant family is flat to every order for label supervision
    assert max(abs(c) for c in cls["taylor"]["circulant_1"][1:]) < TOL
    assert max(abs(e) for e in cls["restricted_hessian"]["circulant"]["eigenvalues"]) < TOL
    assert abs(cls["taylor"]["band_1"][1]) > 100 * TOL


@pytest.mark.parametrize(
    "options,match",
    [
        (["--n", "1"], "n must be"),
        (["--pe", "fourier"], "--pe"),
        (["--data", "digits", "--n", "8"], "digits"),
        (["--data", "task", "--n", "7"], "even"),
        (["--init", "random", "--route", "factored"], "factored"),
        (["--hessian", "--n", "100"], "hessian"),
        (["--mask-rate", "1.5"], "mask_rate"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, options, match):
    assert probe.main(options) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "Traceback" not in err


def test_command_line_bad_option_and_help():
    bad = subprocess.run([sys.executable, "-m", "blindspot.probe", "--batch", "zero"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert bad.stdout == ""
    helptext = subprocess.run([sys.executable, "-m", "blindspot.probe", "--help"], capture_output=True, text=True)
    assert helptext.returncode == 0
    for word in (
        "--scores",
        "--init-scale",
        "--rho",
        "span_rank",
        "blind_dim",
        "visible_fraction",
        "taylor",
        "restricted_hessian",
        "positional_identity_cosine",
        "rank_tolerance",
    ):
        assert word in helptext.stdout


@pytest.mark.parametrize("centred,rank", [(True, 0), (False, 4)])
def test_position_only_query_key_gradient_is_rank_one_or_zero(tmp_path, centred, rank):
    """P5: dL/dW = (1/n)(P^T 1)((u - u_bar 1)^T P), zero with centred encodings.

    Uncentred: every sample shares the query factor P^T 1, so the b gradients span
    (P^T 1) x P^T(1-perp), of dimension d = 4 here (not n^2 or d^2).
    """
    options = ["--n", "8", "--d", "4", "--batch", "12", "--taylor-order", "0", "--scores", "position"]
    report = _report(tmp_path, *options, *(["--centred"] if centred else []))
    w = report["objectives"]["classification"]["parameter_space"]
    assert w["grad_rank"] == rank
    assert w["mean_grad_is_zero"] == centred
