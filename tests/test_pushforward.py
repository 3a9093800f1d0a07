import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import directions, pushforward
from blindspot.positional import positional_encoding
from blindspot.tolerances import close_tolerance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pushforward_is_least_squares(seed):
    n, d = 7, 3
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d))
    target = rng.normal(size=(n, n))
    out = pushforward.pushforward(jnp.asarray(target), jnp.asarray(p), scale=0.5)
    w_ref, *_ = np.linalg.lstsq(0.5 * np.kron(p, p), target.reshape(-1), rcond=None)
    np.testing.assert_allclose(out.w, w_ref.reshape(d, d), atol=close_tolerance(p.dtype, n * n) * 10)
    resid = np.linalg.norm(target - 0.5 * p @ w_ref.reshape(d, d) @ p.T) / np.linalg.norm(target)
    np.testing.assert_allclose(float(out.residual_fraction), resid, rtol=close_tolerance(p.dtype, n * n))
    reachable = p @ rng.normal(size=(d, d)) @ p.T
    assert float(pushforward.pushforward(jnp.asarray(reachable), jnp.asarray(p)).residual_fraction) < close_tolerance(
        p.dtype, n * n
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_proximity_pushforward_is_the_normalised_least_squares_w_of_the_dense_kernel(seed):
    """P13: the recursions give lstsq(c P (x) P, K) / norm, K = exp(-|i - j| / l) / ||.||_F built densely here."""
    n, d = 9, 4
    p = np.random.default_rng(seed).normal(size=(n, d))
    lag = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    kernel = np.exp(-lag / directions.PROXIMITY_LENGTH)
    w_ref, *_ = np.linalg.lstsq(0.5 * np.kron(p, p), (kernel / np.linalg.norm(kernel)).reshape(-1), rcond=None)
    got = pushforward.proximity_pushforward(jnp.asarray(p), scale=0.5)
    expected = w_ref.reshape(d, d) / np.linalg.norm(w_ref)
    np.testing.assert_allclose(got, expected, atol=10 * close_tolerance(p.dtype, n * n))


def test_truncated_pushforward_drops_the_small_singular_directions():
    n, d = 8, 5
    rng = np.random.default_rng(4)
    u, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s = np.array([3.0, 1.0, 0.5, 1e-3, 1e-6])
    p = (u * s) @ v.T
    target = rng.normal(size=(n, n))
    out = pushforward.pushforward(jnp.asarray(target), jnp.asarray(p), scale=0.5, rtol=1e-2)
    # least squares against the rank-3 truncation of P, solved by numpy (an independent route)
    p3 = (u[:, :3] * s[:3]) @ v[:, :3].T
    w_ref, *_ = np.linalg.lstsq(0.5 * np.kron(p3, p3), target.reshape(-1), rcond=None)
    np.testing.assert_allclose(out.w, w_ref.reshape(d, d), atol=close_tolerance(p.dtype, n * n) * 10)
    assert np.abs(np.asarray(out.w)).max() < 100  # the full pseudo-inverse would scale by up to 1e12


def test_positional_identity_gives_toeplitz_scores_for_sinusoidal():
    n, d = 12, 6
    p = positional_encoding(jax.random.key(0), n, d)
    pi = pushforward.positional_identity(p)
    np.testing.assert_allclose(pi, np.eye(d) / np.sqrt(d), atol=close_tolerance(p.dtype, d * d))
    s = np.asarray(p @ pi @ p.T)
    i, j = np.indices((n, n))
    for k in range(-(n - 1), n):
        np.testing.assert_allclose(s[j - i == k], s[j - i == k][0], atol=close_tolerance(p.dtype, n * d))
    assert float(pushforward.first_step_cosine(3.0 * pi, p)) == pytest.approx(1.0, abs=close_tolerance(p.dtype, d))
    assert float(pushforward.first_step_cosine(jnp.zeros((d, d)), p)) == 0.0
