from fractions import Fraction

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from blindspot import directions, fast_paths, subspaces, symbolic
from blindspot.tolerances import close_tolerance, rank_tolerance


def _low_rank(rng, b, n_cols, r):
    return rng.normal(size=(b, r)) @ rng.normal(size=(r, n_cols))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_span_rank_and_basis_against_numpy_svd(seed):
    rng = np.random.default_rng(seed)
    stack = _low_rank(rng, 12, 30, 5)
    span = subspaces.span(jnp.asarray(stack))
    u, s, vt = np.linalg.svd(stack, full_matrices=False)
    assert span.rank == np.linalg.matrix_rank(stack) == 5
    assert span.tolerance == pytest.approx(rank_tolerance(s[0], stack.shape, stack.dtype))
    np.testing.assert_allclose(span.basis.T @ span.basis, vt[:5].T @ vt[:5], atol=close_tolerance(stack.dtype, 30))
    null = np.asarray(subspaces.null_space(jnp.asarray(stack)))
    assert null.shape == (25, 30)
    np.testing.assert_allclose(stack @ null.T, 0.0, atol=close_tolerance(stack.dtype, 30) * s[0])
    np.testing.assert_allclose(null @ null.T, np.eye(25), atol=close_tolerance(stack.dtype, 30))
    assert subspaces.numerical_rank(jnp.asarray(stack)).rank == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_span_from_gram_matches_svd_rank(seed):
    rng = np.random.default_rng(seed)
    stack = _low_rank(rng, 10, 40, 4)
    span = subspaces.span_from_gram(jnp.asarray(stack @ stack.T), 40)
    s = np.linalg.svd(stack, compute_uv=False)
    assert span.rank == 4
    np.testing.assert_allclose(span.singular_values[:4], s[:4], rtol=close_tolerance(stack.dtype, 40) * 1e3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_principal_angles_against_scipy(seed):
    rng = np.random.default_rng(seed)
    a = np.linalg.qr(rng.normal(size=(20, 5)))[0]
    b = np.linalg.qr(np.concatenate([a[:, :2], rng.normal(size=(20, 2))], axis=1))[0]  # shares 2 dims
    got = np.asarray(subspaces.principal_angles(jnp.asarray(a.T), jnp.asarray(b.T)))
    ref = np.sort(scipy.linalg.subspace_angles(a, b))
    # scipy resolves angles near 0 only to sqrt(eps); compare cosines (well conditioned there) and sines
    np.testing.assert_allclose(np.cos(got), np.cos(ref), atol=close_tolerance(a.dtype, 20))
    np.testing.assert_allclose(np.sin(got[2:]), np.sin(ref[2:]), atol=close_tolerance(a.dtype, 20))
    np.testing.assert_allclose(got[:2], 0.0, atol=close_tolerance(a.dtype, 20))


@pytest.mark.parametrize("part", directions.FAMILY_PARTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_visible_fraction_three_ways(seed, part):
    rng = np.random.default_rng(seed)
    n = 6
    stack = _low_rank(rng, 9, n * n, 4)
    fam = directions.family("toeplitz", n, part=part)
    q_f = np.asarray(fam.basis()).reshape(fam.dim, -1)
    span = subspaces.span(jnp.asarray(stack))
    q_g = np.linalg.svd(stack, full_matrices=False)[2][:4]
    reference = np.sum(np.cos(scipy.linalg.subspace_angles(q_g.T, q_f.T)) ** 2) / fam.dim
    by_bases = subspaces.subspace_visible_fraction(jnp.asarray(q_g), jnp.asarray(q_f))
    by_coords = subspaces.visible_fraction(
        span, fam.coordinates(directions.statistics(jnp.asarray(stack).reshape(9, n, n)))
    )
    tol = close_tolerance(stack.dtype, n * n) * 10
    assert by_bases == pytest.approx(reference, abs=tol)
    assert by_coords.fraction == pytest.approx(reference, abs=tol)
    assert by_coords.span_rank == 4 and by_coords.tolerance == span.tolerance


def _dense_non_gauge_basis(name, n):
    """Orthonormal rows spanning (I - P_g) F: the whole basis minus its row means, SVD, rank cut."""
    whole = np.asarray(directions.family(name, n, part="whole").basis())
    projected = (whole - whole.mean(axis=2, keepdims=True)).reshape(len(whole), n * n)
    _, s, vt = np.linalg.svd(projected, full_matrices=False)
    return vt[: int(np.sum(s > rank_tolerance(s[0], projected.shape, projected.dtype)))]


def _band_gauge_share(n, k):
    r"""||P_g B_k||_F^2 = sum_i c_i^2 / (n ||B_k||^2), c_i the number of neighbours at distance k of row i (exact)."""
    c = [int(i >= k) + int(i + k <= n - 1) for i in range(n)]
    return Fraction(sum(x * x for x in c), n * sum(c))


def _band_non_gauge_fraction(n, k):
    """cos^2((I - P_g) B_k, U), derived in derivations/THEORY.md (P4 on the non-gauge part)."""
    if 2 * k <= n:
        return Fraction(k * (n - 2 * k), n * (n * n - n * k - 2 * n + 3 * k))
    return Fraction(2 * k - n, n * (n - 1))


def test_non_gauge_band_closed_form_is_exact():
    """U is orthogonal to the gauge: cos^2(B_k', U) = cos^2(B_k, U) / (1 - ||P_g B_k||^2), exactly, n <= 30."""
    for n in range(2, 31):
        for k in range(1, n):
            whole = symbolic.band_visible_fraction_direct(n, k)  # exact rational from P4's definition
            ratio = Fraction(int(whole.p), int(whole.q)) / (1 - _band_gauge_share(n, k))
            assert ratio == _band_non_gauge_fraction(n, k), (n, k)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_span_of_every_non_gauge_direction_reads_one(seed):
    """Zero-row-sum samples spanning all n(n-1) non-gauge directions: every family reads 1, the gauge 0.


    Whole, a family reads only tr K / dim F = 1 - ||P_g Q_F||_F^2 / dim F: (n - 1)/n for the circulant
    and Toeplitz families (every D_k has ||P_g D_k||^2 = ||D_k||^2 / n), 1 - ||P_g B_k||^2 for a band.
    """
    n = 5
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n * (n - 1) + 3, n, n))
    x -= x.mean(axis=2, keepdims=True)
    span = subspaces.span(jnp.asarray(x.reshape(len(x), -1)))
    stats = directions.statistics(jnp.asarray(x))
    tol = close_tolerance(x.dtype, n * n) * 10
    assert span.rank == n * (n - 1)
    whole = {"circulant": (n - 1) / n, "toeplitz": (n - 1) / n, "column_sum": 1.0, "gauge": 0.0}
    whole |= {f"band_{k}": float(1 - _band_gauge_share(n, k)) for k in range(1, n)}
    for name in ("gauge", "circulant", "toeplitz", "column_sum", *(f"band_{k}" for k in range(1, n)), "proximity"):
        got = subspaces.visible_fraction(span, directions.family(name, n).coordinates(stats)).fraction
        assert got == pytest.approx(0.0 if name == "gauge" else 1.0, abs=tol), name
        if name in whole:
            got = subspaces.visible_fraction(span, directions.family(name, n, part="whole").coordinates(stats)).fraction
            assert got == pytest.approx(whole[name], abs=tol), name


def _toeplitz_fraction_in_column_sum_space(n):
    r"""tr(M^{-1} Gamma) / (2n - 2): the circulant part is orthogonal to U; the pairs' Gram is M = diag(a(n-a)) - Gamma
    and their projections onto U have Gram Gamma_ab = min(a, b) - ab/n (column sums n 1_{[n-a, n)} - a 1)."""
    a = np.arange(1, n)
    gamma = np.minimum.outer(a, a) - np.outer(a, a) / n
    return np.trace(np.linalg.solve(np.diag(a * (n - a.astype(float))) - gamma, gamma)) / (2 * n - 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_sum_span_non_gauge_fractions(seed):
    """P3/P4 on the non-gauge parts: a span U (label gradients at uniform attention) vs dense principal angles.


    Samples 1 w_b^T with w_b orthogonal to 1 span U = {1 w^T : w^T 1 = 0}; bands read the closed form of
    ``_band_non_gauge_fraction``; the zero-sum circulants are orthogonal to U (equal column sums), so the
    circulant family reads 0; the whole bands keep P4's closed form.
    """
    n = 8
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(2 * n, n))
    samples = np.einsum("i,bj->bij", np.ones(n), w - w.mean(axis=1, keepdims=True))
    span = subspaces.span(jnp.asarray(samples.reshape(2 * n, -1)))
    q_g = np.linalg.svd(samples.reshape(2 * n, -1), full_matrices=False)[2][: n - 1]
    stats = directions.statistics(jnp.asarray(samples))
    tol = close_tolerance(samples.dtype, n * n) * 10
    assert span.rank == n - 1
    closed = {"circulant": 0.0, "toeplitz": _toeplitz_fraction_in_column_sum_space(n)}
    for k in range(1, n):
        closed[f"band_{k}"] = float(_band_non_gauge_fraction(n, k))
    for name in (*closed, "proximity"):
        q_f = _dense_non_gauge_basis(name, n)
        dense = np.sum(np.linalg.svd(q_g @ q_f.T, compute_uv=False) ** 2) / len(q_f)  # cosines of principal angles
        got = subspaces.visible_fraction(span, directions.family(name, n).coordinates(stats)).fraction
        assert got == pytest.approx(dense, abs=tol), name
        if name in closed:
            assert dense == pytest.approx(closed[name], abs=tol), name
    for k in range(1, n):  # the whole band keeps P4's closed form
        got = subspaces.visible_fraction(span, directions.family(f"band_{k}", n, part="whole").coordinates(stats))
        assert got.fraction == pytest.approx(float(symbolic.band_visible_fraction(n, k)), abs=tol), k


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factor_gram_ranks_and_alignment(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.normal(size=(6, 8, 3)), rng.normal(size=(6, 8, 3))
    cols[:, :, 2] = cols[:, :, 1]  # rank 2 per sample
    factors = fast_paths.ScoreFactors(jnp.asarray(rows), jnp.asarray(cols))
    dense = np.einsum("bir,bjr->bij", rows, cols).reshape(6, -1)
    np.testing.assert_allclose(
        subspaces.gram_from_factors(factors), dense @ dense.T, rtol=close_tolerance(rows.dtype, 64)
    )
    assert list(np.asarray(subspaces.factor_ranks(factors))) == [np.linalg.matrix_rank(d.reshape(8, 8)) for d in dense]
    assert list(np.asarray(subspaces.sample_ranks(jnp.asarray(dense.reshape(6, 8, 8))))) == [2] * 6
    fam = directions.family("circulant", 8)
    q = np.asarray(fam.basis()).reshape(fam.dim, -1)
    coords = fam.coordinates(directions.factor_statistics(factors.rows, factors.columns))
    mean = dense.mean(axis=0)
    reference = np.linalg.norm(q @ mean) / np.linalg.norm(mean)
    got = subspaces.expected_alignment_from_projections(coords, float(np.linalg.norm(mean)))
    assert got == pytest.approx(reference, abs=close_tolerance(rows.dtype, 64))
    assert subspaces.expected_alignment(jnp.asarray(dense), jnp.asarray(q)) == pytest.approx(reference, abs=1e-12)
