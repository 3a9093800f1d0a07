import numpy as np

from blindspot.tolerances import close_tolerance, eps, rank_tolerance


def test_eps_is_the_unit_roundoff():
    assert eps(np.float64) == 2.0**-52
    assert eps(np.float32) == 2.0**-23


def test_rank_tolerance_is_numpys_matrix_rank_threshold():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 5)) @ rng.standard_normal((5, 40))
    s = np.linalg.svd(a, compute_uv=False)
    tol = rank_tolerance(s[0], a.shape, a.dtype)
    assert np.sum(s > tol) == np.linalg.matrix_rank(a) == 5


def test_close_tolerance_grows_with_size_and_dtype():
    assert close_tolerance(np.float64, 100) == 10 * close_tolerance(np.float64, 1)
    assert close_tolerance(np.float32) > close_tolerance(np.float64)
