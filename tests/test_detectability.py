import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot.config import ModelConfig
from blindspot.data import markov_tokens, sample_masks
from blindspot.detectability import combine, estimate, moments, norm_moments, share, signal_squared_variance
from blindspot.directions import family, statistics
from blindspot.jacobian import score_gradients
from blindspot.model import init
from blindspot.tolerances import close_tolerance

Z = 4.9  # normal bound: a false alarm about once in a million


def _pairwise_signal(c):
    """Independent route: the mean of <c_s, c_t> over ordered pairs s != t."""
    b = c.shape[0]
    return sum(float(c[s] @ c[t]) for s in range(b) for t in range(b) if s != t) / (b * (b - 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimates_match_pairwise_and_sample_covariance(seed):
    c = np.random.default_rng(seed).standard_normal((7, 3)) + 0.5
    est = estimate(moments(jnp.asarray(c)))
    tol = close_tolerance(np.float64, c.size)
    assert est.signal_squared == pytest.approx(_pairwise_signal(c), rel=tol, abs=tol)
    assert est.noise == pytest.approx(np.trace(np.cov(c.T)), rel=tol)
    assert est.signal == pytest.approx(math.sqrt(max(est.signal_squared, 0.0)))
    assert est.batch_star == pytest.approx(est.noise / est.signal_squared, rel=tol)


def test_streamed_blocks_equal_one_block():
    c = np.random.default_rng(3).standard_normal((10, 4))
    whole = estimate(moments(jnp.asarray(c)))
    streamed = estimate(combine(moments(jnp.asarray(c[:3])), moments(jnp.asarray(c[3:]))))
    assert whole.count == streamed.count == 10
    for a, b in zip(whole[1:], streamed[1:]):
        assert (a is None and b is None) or a == pytest.approx(b, rel=close_tolerance(np.float64, c.size))


def _discrete_law(seed, points=4, k=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((points, k)) + 1.0, rng.dirichlet(np.ones(points))


@pytest.mark.parametrize("seed", [0, 1])
def test_signal_estimator_is_unbiased_with_hoeffding_variance_by_enumeration(seed):
    """Every ordered sample of size 3 from a discrete law, weighted exactly: mean and variance of the estimator."""
    x, p = _discrete_law(seed)
    mu = p @ x
    sigma = (x - mu).T @ np.diag(p) @ (x - mu)
    values, weights = [], []
    for idx in itertools.product(range(len(p)), repeat=3):
        values.append(estimate(moments(jnp.asarray(x[list(idx)]))).signal_squared)
        weights.append(np.prod(p[list(idx)]))
    values, weights = np.array(values), np.array(weights)
    mean = weights @ values
    tol = close_tolerance(np.float64, values.size)
    assert mean == pytest.approx(mu @ mu, rel=tol)
    assert weights @ (values - mean) ** 2 == pytest.approx(signal_squared_variance(mu, sigma, 3), rel=tol)


def test_known_gaussian_mean_and_covariance():
    """Replicate batches from N(mu, Sigma): the estimates average to |mu|^2 and tr Sigma within Z errors."""
    rng = np.random.default_rng(4)
    mu, root = np.array([0.3, -0.1, 0.2]), rng.standard_normal((3, 3))
    sigma = root @ root.T
    b, replicates = 16, 2000
    draws = mu + rng.standard_normal((replicates, b, 3)) @ root.T
    ests = [estimate(moments(jnp.asarray(c))) for c in draws]
    signal = np.array([e.signal_squared for e in ests])
    noise = np.array([e.noise for e in ests])
    exact_sd = math.sqrt(signal_squared_variance(mu, sigma, b))
    assert abs(signal.mean() - mu @ mu) <= Z * exact_sd / math.sqrt(replicates)
    assert abs(noise.mean() - np.trace(sigma)) <= Z * noise.std() / math.sqrt(replicates)
    # the spread over replicates is the exact standard error (relative error of a sample sd: sqrt((kurt - 1) / 4R))
    kurtosis = np.mean((signal - signal.mean()) ** 4) / signal.var() ** 2
    assert abs(signal.std() / exact_sd - 1.0) <= Z * math.sqrt((kurtosis - 1.0) / (4 * replicates))


def _sticky_probability(x, vocab, rho):
    p = 1.0 / vocab
    for a, b in zip(x[:-1], x[1:]):
        p *= rho * (a == b) + (1.0 - rho) / vocab
    return p


@pytest.mark.parametrize("name", ["band_1", "circulant"])
def test_copy_readout_detectability_against_enumeration_over_all_sequences(name):
    """n = 3, V = 2, one masked position: exact law of the gradient coordinates vs the streamed estimate."""
    n, vocab, rho = 3, 2, 0.7
    config = ModelConfig(n=n, d=2, vocab=vocab, mask_rate=1 / n, reconstruction="copy")
    params = init(jax.random.key(0), config)
    fam = family(name, n)

    def coordinates(tokens, masks):
        return np.asarray(fam.coordinates(statistics(score_gradients(params, config, "reconstruction", tokens, masks))))

    sequences = np.array(list(itertools.product(range(vocab), repeat=n)), dtype=np.int32)
    tokens = jnp.asarray(np.repeat(sequences, n, axis=0))
    masks = jnp.asarray(np.tile(np.eye(n, dtype=bool), (len(sequences), 1)))
    p = np.repeat([_sticky_probability(x, vocab, rho) / n for x in sequences], n)
    c = coordinates(tokens, masks)
    mu = p @ c
    sigma = (c - mu).T @ np.diag(p) @ (c - mu)
    noise_sd = math.sqrt(p @ (np.sum((c - mu) ** 2, axis=1) - np.trace(sigma)) ** 2)

    b = 4000
    k = jax.random.split(jax.random.key(1))
    sample = coordinates(markov_tokens(k[0], b, n, vocab, rho), sample_masks(k[1], b, n, config.mask_rate))
    half = b // 2
    est = estimate(combine(moments(jnp.asarray(sample[:half])), moments(jnp.asarray(sample[half:]))))
    assert abs(est.signal_squared - mu @ mu) <= Z * math.sqrt(signal_squared_variance(mu, sigma, b))
    assert abs(est.noise - np.trace(sigma)) <= Z * noise_sd / math.sqrt(b)
    assert mu @ mu > 0.0  # the law has a signal along this family: the test can tell estimates apart


def test_norm_moments_give_the_estimates_of_the_dense_vectors():
    g = np.random.default_rng(6).standard_normal((9, 5)) + 0.3
    dense = estimate(moments(jnp.asarray(g), covariance=False))
    norms = estimate(norm_moments(9, float(np.linalg.norm(g.mean(0))), float(np.sum(g**2))))
    tol = close_tolerance(np.float64, g.size)
    assert norms.signal_squared == pytest.approx(dense.signal_squared, rel=tol)
    assert norms.noise == pytest.approx(dense.noise, rel=tol)


def test_a_mean_within_the_resolution_is_no_signal():
    c = 1e-18 * np.random.default_rng(7).standard_normal((8, 3)) + 1e-17
    assert estimate(moments(jnp.asarray(c))).batch_star is not None  # a ratio of rounding errors
    rounded = estimate(moments(jnp.asarray(c)), resolution=1e-16)
    assert rounded.signal_squared == 0.0 and rounded.signal == 0.0 and rounded.batch_star is None


def test_share_and_undefined_cases():
    c = jnp.asarray(np.random.default_rng(5).standard_normal((6, 2)) + 2.0)
    fam = estimate(moments(c[:, :1]))
    whole = estimate(moments(c, covariance=False))
    assert whole.signal_squared_se is None
    assert share(fam, whole) == pytest.approx(fam.signal / whole.signal)
    zero = estimate(moments(jnp.asarray([[1.0], [-1.0]])))
    assert zero.signal == 0.0 and zero.batch_star is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: moments(jnp.asarray([1.0, 2.0])), "coordinates must have shape"),
        (lambda: moments(jnp.asarray([[1.0], [jnp.nan]])), "coordinates must be finite"),
        (lambda: moments(jnp.ones((2, 2)), covariance=1), "covariance must be True or False"),
        (lambda: estimate(moments(jnp.ones((1, 2)))), "m.count must be an integer >= 2"),
        (lambda: estimate(moments(jnp.ones((2, 2))), resolution=-1.0), "resolution must be a real number"),
        (lambda: combine(moments(jnp.ones((2, 2))), moments(jnp.ones((2, 3)))), "b must have the shapes of a"),
        (
            lambda: share(estimate(moments(jnp.ones((2, 1)))), estimate(moments(jnp.ones((3, 1))))),
            "whole.count must equal family.count",
        ),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
