import json
import os
import stat

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import directions, fast_paths, jacobian, probe
from blindspot.model import init
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
    assert set(report) == {"config", "dtype", "matmul_precision", "device", "objectives"}
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


def test_help_documents_every_default_the_memory_limit_and_the_timings_file():
    parser = probe.build_parser()
    text = parser.format_help()
    for action in parser._actions:
        if action.dest != "help":
            assert f"(default: {action.default})" in " ".join(text.split()), action.dest
    for word in (
        "--max-memory-gb",
        "holds no timings",
        "report.timings.json",
        "span_rank",
        "blind_dim",
        "visible_fraction",
        "taylor",
        "restricted_hessian",
        "positional_identity_cosine",
        "rank_tolerance",
    ):
        assert word in text, word


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as done:
        probe.main(["--help"])
    assert done.value.code == 0 and "--max-memory-gb" in capsys.readouterr().out


LONG = 2**17
"""An n x n float64 array at this n would hold 2^34 numbers (137 GB)."""
LONG_OPTIONS = ["--n", str(LONG), "--d", "2", "--vocab", "2", "--batch", "2", "--taylor-order", "0", "--bands", "1"]
"""Shared by the two tests below, so that they reuse one compilation."""


def test_first_order_report_at_n_2_to_the_17_holds_no_n_by_n_array(tmp_path):
    cls = _report(tmp_path, *LONG_OPTIONS)["objectives"]["classification"]
    assert cls["route"] == "factored-rank-one" and cls["per_sample_rank_max"] == 1  # P4: rank one
    assert cls["span_rank"] == 2 and cls["blind_dim"] == LONG * LONG - 2  # b = 2 < n - 1 samples
    assert cls["families"]["gauge"]["visible_fraction"] < TOL


@pytest.mark.parametrize("seed", [0, 1])
def test_equal_seeds_give_byte_identical_json_without_timings_mode_0644(tmp_path, capsys, seed):
    paths = [tmp_path / f"{name}.json" for name in ("a", "b", "other")]
    saved = os.umask(0o022)
    try:
        for path, s in zip(paths, [seed, seed, seed + 2]):
            assert probe.main([*LONG_OPTIONS, "--seed", str(s), "--json", str(path)]) == 0
    finally:
        os.umask(saved)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()  # the comparison can fail: the seed matters
    assert "seconds" not in paths[0].read_text()
    timings = json.loads((tmp_path / "a.timings.json").read_text())
    assert timings["seconds"] > 0 and set(timings["objective_seconds"]) == {"classification", "reconstruction"}
    assert "a.timings.json" in capsys.readouterr().out
    for name in ("a.json", "a.timings.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize("n", [2, 5])
def test_taylor_directions_match_their_definitions(n):
    """References written entrywise in numpy; n = 2 is the case where the lags +1 and -1 coincide."""
    i, j = np.indices((n, n))
    band_1 = (np.abs(i - j) == 1).astype(float)
    wrap_1 = ((j - i) % n == 1) | ((j - i) % n == n - 1)
    kernel = np.exp(-np.abs(i - j) / directions.PROXIMITY_LENGTH)
    expected = {
        name: m / np.linalg.norm(m) for name, m in [("band_1", band_1), ("circulant_1", wrap_1), ("proximity", kernel)]
    }
    got = probe.taylor_directions(n, jnp.float64)
    assert set(got) == set(expected)
    for name, d in got.items():
        np.testing.assert_allclose(d, expected[name], atol=TOL, err_msg=name)


def _held_bytes(args, route):
    """Bytes of the arrays the route really holds at once for the reconstruction objective."""
    config = probe._check_options(args)
    tokens, _, masks = probe._batch(args, config)
    params = init(jax.random.key(0), config)
    if route == "dense":
        grads = jacobian.score_gradients(params, config, "reconstruction", tokens, masks)
        svd = jnp.linalg.svd(grads.reshape(grads.shape[0], -1), full_matrices=False)
        return grads.nbytes + sum(a.nbytes for a in svd), grads.nbytes
    factors = fast_paths.uniform_score_factors(params, config, "reconstruction", tokens, masks)
    rows_products = jnp.einsum("bnr,cns->bcrs", factors.rows, factors.rows)  # the Gram matrix's intermediates
    return factors.rows.nbytes + factors.columns.nbytes + 2 * rows_products.nbytes, None


@pytest.mark.parametrize(
    ("route", "part"),
    [("dense", "dense per-sample score gradients"), ("factored", "score-gradient factors and their Gram matrix")],
)
def test_memory_estimate_is_at_least_the_bytes_of_the_arrays_held(route, part):
    """A lower bound from real arrays (the peak-memory calibration is in bench_analysis, item (d))."""
    options = ["--n", "12", "--d", "6", "--mlp", "5", "--residual", "--batch", "9", "--route", route]
    args = probe.build_parser().parse_args(options)
    held, score_bytes = _held_bytes(args, route)
    estimate = probe.memory_estimate(args)
    assert estimate[part] >= held
    if score_bytes:  # the jet carries K + 1 Taylor coefficients of the b scores matrices
        assert estimate["Taylor series"] >= (args.taylor_order + 1) * score_bytes


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


@pytest.mark.parametrize("route", ["factored", "dense"])
def test_detectability_against_dense_gradients_and_a_pairwise_estimate(tmp_path, route):
    options = ["--n", "6", "--d", "4", "--batch", "20", "--taylor-order", "0", "--data", "markov", "--mask-rate", "0.3"]
    report = _report(tmp_path, *options, "--route", route)["objectives"]
    args = probe.build_parser().parse_args(options)
    config = probe._check_options(args)
    tokens, labels, masks = probe._batch(args, config)
    params = init(jax.random.key(args.seed), config)
    for objective, target in (("classification", labels), ("reconstruction", masks)):
        grads = np.asarray(jacobian.score_gradients(params, config, objective, tokens, target)).reshape(20, -1)
        mean = grads.mean(0)
        whole = mean @ mean - np.trace(np.cov(grads.T)) / 20
        for name in ("circulant", "band_1", "proximity", "column_sum"):
            basis = np.asarray(directions.family(name, 6).basis()).reshape(-1, 36)
            c = grads @ basis.T
            pairs = (np.sum(c.sum(0) ** 2) - np.sum(c**2)) / (20 * 19)  # mean of <c_s, c_t> over s != t
            got = report[objective]["detectability"][name]
            assert got["noise"] == pytest.approx(np.trace(np.atleast_2d(np.cov(c.T))), rel=1e3 * TOL, abs=1e3 * TOL)
            if objective == "classification" and name == "circulant":  # exactly blind at W = 0 (P3, P4)
                assert got["signal_squared"] == 0.0 and got["batch_star"] is None
                continue
            assert got["signal_squared"] == pytest.approx(pairs, rel=1e3 * TOL, abs=1e3 * TOL), (objective, name)
            if whole <= 0.0:  # the mean gradient itself is below the noise floor: no share
                assert got["share"] is None
            else:
                assert got["share"] == pytest.approx(np.sqrt(max(pairs, 0.0) / whole), rel=1e3 * TOL), (objective, name)


def test_a_span_saturated_by_the_batch_is_flagged_with_the_batch_needed(tmp_path, capsys):
    small = _report(tmp_path, "--n", "6", "--d", "4", "--batch", "8", "--taylor-order", "0")["objectives"]
    assert small["reconstruction"]["span_rank"] == 8 and small["reconstruction"]["span_saturated"]
    assert not small["classification"]["span_saturated"]  # rank n - 1 = 5 < 8: the loss, not the batch (P4)
    err = capsys.readouterr().err
    assert "a batch of at least n(n-1) = 30 is needed" in err
    assert "first order by" not in err  # --progress auto: no progress lines when stderr is not a terminal
    options = ["--n", "4", "--d", "4", "--batch", "40", "--mask-rate", "0.5", "--taylor-order", "0"]
    large = _report(tmp_path, *options, "--init", "random", "--progress", "always")["objectives"]
    assert "reconstruction: first order by the streamed route (1 block of 4 query rows) ..." in capsys.readouterr().err
    for entry in large.values():  # random W: the streamed route, whose Gram matrix gives the span
        assert entry["route"] == "streamed" and entry["per_sample_rank_max"] is None
        assert entry["span_rank"] == 12 and not entry["span_saturated"]  # n(n-1): the whole non-gauge space
