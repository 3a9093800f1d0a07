import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import directions
from blindspot.positional import positional_encoding
from blindspot.tolerances import close_tolerance

DIMS = {
    "gauge": lambda n: n,
    "circulant": lambda n: n,
    "toeplitz": lambda n: 2 * n - 1,
    "column_sum": lambda n: n - 1,
    "band_1": lambda n: 1,
    "band_2": lambda n: 1,
    "proximity": lambda n: 1,
}


@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("name", list(DIMS))
def test_family_orthonormal_with_stated_dimension(n, name):
    fam = directions.family(name, n)
    basis = np.asarray(fam.basis())
    flat = basis.reshape(basis.shape[0], -1)
    assert fam.dim == DIMS[name](n) == basis.shape[0]
    np.testing.assert_allclose(flat @ flat.T, np.eye(fam.dim), atol=close_tolerance(flat.dtype, n * n))
    assert np.linalg.matrix_rank(flat) == fam.dim


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(DIMS) + ["proximity_2.5", "band_4"])
def test_coordinates_match_dense_inner_products(seed, name):
    n = 7
    x = np.random.default_rng(seed).normal(size=(3, n, n))
    fam = directions.family(name, n)
    dense = x.reshape(3, -1) @ np.asarray(fam.basis()).reshape(fam.dim, -1).T
    coords = fam.coordinates(directions.statistics(jnp.asarray(x)))
    np.testing.assert_allclose(coords, dense, atol=close_tolerance(x.dtype, n * n) * np.abs(x).max() * n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factor_statistics_match_dense(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, 9, 3)), rng.normal(size=(2, 9, 3))
    x = np.einsum("bir,bjr->bij", a, b)
    i, j = np.indices((9, 9))
    diag = np.stack([[x[s][j - i == k].sum() for k in range(-8, 9)] for s in range(2)])
    got = directions.factor_statistics(jnp.asarray(a), jnp.asarray(b))
    tol = close_tolerance(x.dtype, 81) * np.abs(x).sum()
    np.testing.assert_allclose(got.rows, x.sum(2), atol=tol)
    np.testing.assert_allclose(got.columns, x.sum(1), atol=tol)
    np.testing.assert_allclose(got.diagonals, diag, atol=tol)


def test_structure_of_families():
    n = 6
    gauge = np.asarray(directions.gauge(n))
    assert np.all(gauge == gauge[:, :, :1])  # row-constant
    circ = np.asarray(directions.circulant(n))
    assert np.all(np.roll(np.roll(circ, 1, axis=1), 1, axis=2) == circ)  # circulant
    cols = np.asarray(directions.column_sum(n))
    assert np.all(cols == cols[:, :1, :])  # column-constant
    np.testing.assert_allclose(cols.sum(axis=2), 0.0, atol=close_tolerance(cols.dtype, n))
    band = np.asarray(directions.band(n, 2)[0])
    i, j = np.indices((n, n))
    assert np.all((band > 0) == (np.abs(i - j) == 2))
    kernel = np.asarray(directions.proximity_kernel(n, 3.0)[0])
    np.testing.assert_allclose(kernel / kernel[0, 0], np.exp(-np.abs(i - j) / 3.0), rtol=close_tolerance(kernel.dtype))


@pytest.mark.parametrize("n,k", [(6, 1), (9, 2), (12, 5)])
def test_band_visible_fraction_in_column_sum_space_closed_form(n, k):
    """P4: cos^2(B_k, U) = ||c - c_bar 1||^2 / (n ||B_k||^2) with c = B_k^T 1."""
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) == k
    c = band.sum(axis=0).astype(float)
    expected = np.sum((c - c.mean()) ** 2) / (n * band.sum())
    fam_u = directions.family("column_sum", n)
    coords = fam_u.coordinates(directions.statistics(directions.band(n, k)))
    np.testing.assert_allclose(float(jnp.sum(coords**2)), expected, atol=close_tolerance(c.dtype, n * n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_orthonormalize_spans_the_same_subspace(seed):
    rng = np.random.default_rng(seed)
    stack = rng.normal(size=(3, 5, 5))
    stack = np.concatenate([stack, stack[:1] + 2 * stack[1:2]])  # rank 3 of 4
    q = np.asarray(directions.orthonormalize(jnp.asarray(stack))).reshape(-1, 25)
    _, s, vt = np.linalg.svd(stack.reshape(4, -1))
    assert q.shape[0] == np.linalg.matrix_rank(stack.reshape(4, -1)) == 3
    np.testing.assert_allclose(q.T @ q, vt[:3].T @ vt[:3], atol=close_tolerance(q.dtype, 25))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pushforward_is_least_squares(seed):
    n, d = 7, 3
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d))
    target = rng.normal(size=(n, n))
    out = directions.pushforward(jnp.asarray(target), jnp.asarray(p), scale=0.5)
    w_ref, *_ = np.linalg.lstsq(0.5 * np.kron(p, p), target.reshape(-1), rcond=None)
    np.testing.assert_allclose(out.w, w_ref.reshape(d, d), atol=close_tolerance(p.dtype, n * n) * 10)
    resid = np.linalg.norm(target - 0.5 * p @ w_ref.reshape(d, d) @ p.T) / np.linalg.norm(target)
    np.testing.assert_allclose(float(out.residual_fraction), resid, rtol=close_tolerance(p.dtype, n * n))
    reachable = p @ rng.normal(size=(d, d)) @ p.T
    assert float(directions.pushforward(jnp.asarray(reachable), jnp.asarray(p)).residual_fraction) < close_tolerance(
        p.dtype, n * n
    )


def test_positional_identity_gives_toeplitz_scores_for_sinusoidal():
    n, d = 12, 6
    p = positional_encoding(jax.random.key(0), n, d)
    pi = directions.positional_identity(p)
    np.testing.assert_allclose(pi, np.eye(d) / np.sqrt(d), atol=close_tolerance(p.dtype, d * d))
    s = np.asarray(p @ pi @ p.T)
    i, j = np.indices((n, n))
    for k in range(-(n - 1), n):
        np.testing.assert_allclose(s[j - i == k], s[j - i == k][0], atol=close_tolerance(p.dtype, n * d))
    assert float(directions.first_step_cosine(3.0 * pi, p)) == pytest.approx(1.0, abs=close_tolerance(p.dtype, d))
    assert float(directions.first_step_cosine(jnp.zeros((d, d)), p)) == 0.0


@pytest.mark.parametrize("name", ["band_0", "band_9", "circ", "proximity_x"])
def test_bad_family_names_refused(name):
    with pytest.raises(ValueError, match="band offset|family name|proximity"):
        directions.family(name, 9)
