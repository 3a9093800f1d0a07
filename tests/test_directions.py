import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from blindspot import directions
from blindspot.tolerances import close_tolerance, rank_tolerance

DIMS = {
    "gauge": lambda n: n,
    "circulant": lambda n: n,
    "toeplitz": lambda n: 2 * n - 1,
    "column_sum": lambda n: n - 1,
    "band_1": lambda n: 1,
    "band_2": lambda n: 1,
    "proximity": lambda n: 1,
}
NON_GAUGE_DIMS = {**DIMS, "circulant": lambda n: n - 1, "toeplitz": lambda n: 2 * n - 2}
DIMENSIONS = {"whole": DIMS, "non_gauge": NON_GAUGE_DIMS}
NAMES = [*DIMS, "band_4", "proximity_2.5", "proximity_1000"]


def _gauge_projector(n):
    """Orthogonal projector onto the row-constant matrices e_i 1^T (acting on flattened n x n matrices)."""
    return np.kron(np.eye(n), np.ones((n, n)) / n)


@pytest.mark.parametrize("part", directions.FAMILY_PARTS)
@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("name", list(DIMS))
def test_family_orthonormal_with_stated_dimension(n, name, part):
    fam = directions.family(name, n, part=part)
    basis = np.asarray(fam.basis())
    flat = basis.reshape(basis.shape[0], -1)
    assert fam.dim == DIMENSIONS[fam.part][name](n) == basis.shape[0]
    np.testing.assert_allclose(flat @ flat.T, np.eye(fam.dim), atol=close_tolerance(flat.dtype, n * n))
    assert np.linalg.matrix_rank(flat) == fam.dim


@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("name", NAMES[1:])
def test_non_gauge_basis_spans_the_projected_family(n, name):
    """F' = (I - P_g) F: the non-gauge basis is orthogonal to the gauge and spans the projected whole basis."""
    whole = np.asarray(directions.family(name, n, part="whole").basis()).reshape(-1, n * n)
    fam = directions.family(name, n)
    q = np.asarray(fam.basis()).reshape(fam.dim, n * n)
    projected = whole - whole @ _gauge_projector(n)
    _, s, vt = np.linalg.svd(projected, full_matrices=False)
    rank = int(np.sum(s > rank_tolerance(s[0], projected.shape, projected.dtype)))
    tol = close_tolerance(q.dtype, n * n)
    assert fam.part == "non_gauge" and fam.dim == rank
    np.testing.assert_allclose(q @ q.T, np.eye(fam.dim), atol=tol)
    np.testing.assert_allclose(q @ _gauge_projector(n), 0.0, atol=tol)
    np.testing.assert_allclose(q.T @ q, vt[:rank].T @ vt[:rank], atol=tol)


@pytest.mark.parametrize("n", [5, 8])
def test_gauge_family_has_no_non_gauge_part_and_stays_whole(n):
    fam = directions.family("gauge", n)
    basis = np.asarray(fam.basis()).reshape(n, n * n)
    assert fam.part == "whole" and fam.dim == n
    np.testing.assert_allclose(basis - basis @ _gauge_projector(n), 0.0, atol=close_tolerance(basis.dtype, n * n))


@pytest.mark.parametrize("part", directions.FAMILY_PARTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_coordinates_match_dense_inner_products(seed, name, part):
    """Coordinates from the statistics of random X (gauge part included) vs <X, Q_l> with the dense basis."""
    n = 7
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, n, n)) + rng.normal(size=(3, n, 1))
    fam = directions.family(name, n, part=part)
    dense = x.reshape(3, -1) @ np.asarray(fam.basis()).reshape(fam.dim, -1).T
    coords = fam.coordinates(directions.statistics(jnp.asarray(x)))
    np.testing.assert_allclose(coords, dense, atol=close_tolerance(x.dtype, n * n) * np.abs(x).max() * n)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", ["toeplitz", "circulant"])
def test_non_gauge_coordinates_keep_norms_of_members_at_large_n(seed, name):
    """Parseval at n = 300, where no dense basis is formed: ||c(X)|| = ||X|| for X in F', c = 0 on the gauge."""
    n = 300
    rng = np.random.default_rng(seed)
    t = rng.normal(size=2 * n - 1)  # diagonal values at offsets j - i = -(n-1)..n-1
    member = scipy.linalg.toeplitz(t[n - 1 :: -1], t[n - 1 :]) if name == "toeplitz" else scipy.linalg.circulant(t[:n])
    member = member - member.mean(axis=1, keepdims=True)
    gauge = rng.normal(size=(n, 1)) * np.ones((1, n))
    fam = directions.family(name, n)
    coords = np.asarray(fam.coordinates(directions.statistics(jnp.asarray(np.stack([member, gauge])))))
    tol = close_tolerance(member.dtype, n * n)
    assert np.linalg.norm(coords[0]) == pytest.approx(np.linalg.norm(member), rel=tol)
    assert np.abs(coords[1]).max() < tol * np.linalg.norm(gauge)


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


@pytest.mark.parametrize(("rows", "n"), [(9, 9), (4, 9), (1, 5), (6, 3)])
def test_diagonal_sums_of_a_block_of_rows_match_their_definition(rows, n):
    """Entry p sums x[r, j] over j - r = p - (rows - 1); square blocks give the statistics' diagonal sums."""
    x = np.random.default_rng(rows * n).normal(size=(2, rows, n))
    r, j = np.indices((rows, n))
    want = np.stack([[x[s][j - r == p - (rows - 1)].sum() for p in range(n + rows - 1)] for s in range(2)])
    got = directions.block_diagonal_sums(jnp.asarray(x))
    np.testing.assert_allclose(got, want, atol=close_tolerance(x.dtype, n) * np.abs(x).sum())
    if rows == n:
        np.testing.assert_array_equal(directions.statistics(jnp.asarray(x)).diagonals, got)


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


@pytest.mark.parametrize("name", ["band_0", "band_9", "circ", "proximity_x"])
def test_bad_family_names_refused(name):
    with pytest.raises(ValueError, match="band offset|family name|proximity"):
        directions.family(name, 9)
