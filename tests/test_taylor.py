import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from blindspot import ModelConfig, init
from blindspot.data import iid_tokens, sample_masks
from blindspot.objectives import shared_score_loss
from blindspot.taylor import taylor_coefficients, taylor_coefficients_nested_jvp
from blindspot.tolerances import close_tolerance

N, D, BATCH = 6, 4, 3
F64 = jnp.float64


def score_loss(config, data):
    """Mean score-space loss of a small batch sharing one S; the target dtype picks the objective."""
    params, tokens, targets = data
    objective = "reconstruction" if targets.dtype == jnp.bool_ else "classification"
    return shared_score_loss(params, config, objective, tokens, targets)


# Jitted once per configuration and shape, reused across seeds (data is a traced argument).
@partial(jax.jit, static_argnums=(0, 4))
def jitted_jet(config, data, s, v, order):
    return taylor_coefficients(score_loss(config, data), s, v, order)


@partial(jax.jit, static_argnums=(0, 4))
def jitted_nested(config, data, s, v, order):
    return taylor_coefficients_nested_jvp(score_loss(config, data), s, v, order)


@partial(jax.jit, static_argnums=0)
def reference_derivatives(config, data, s):
    """Value, gradient and dense flattened Hessian of the score-space loss."""
    loss = score_loss(config, data)
    return loss(s), jax.grad(loss)(s), jax.hessian(loss)(s).reshape(s.size, s.size)


def classification_problem(seed, *, mlp):
    config = ModelConfig(n=N, d=D, vocab=4, classes=3, mlp=mlp)
    keys = jax.random.split(jax.random.key(seed), 3)
    tokens = iid_tokens(keys[1], BATCH, N, config.vocab)
    labels = jax.random.randint(keys[2], (BATCH,), 0, config.classes, jnp.int32)
    return config, (init(keys[0], config), tokens, labels)


def reconstruction_problem(seed):
    config = ModelConfig(n=N, d=D, vocab=4, mlp=5, mask_rate=0.4)
    keys = jax.random.split(jax.random.key(seed), 3)
    tokens = iid_tokens(keys[1], BATCH, N, config.vocab)
    return config, (init(keys[0], config), tokens, sample_masks(keys[2], BATCH, N, config.mask_rate))


def circulant(c):
    """C_ij = c_{(j - i) mod n}."""
    n = c.shape[0]
    i, j = np.indices((n, n))
    return c[(j - i) % n]


def assert_close(actual, expected, size, err_msg=""):
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=close_tolerance(F64, size) * scale, err_msg=err_msg)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("objective", ["classification", "reconstruction"])
def test_jet_matches_nested_jvp_on_score_space_losses(seed, objective):
    config, data = (
        classification_problem(seed, mlp=5) if objective == "classification" else reconstruction_problem(seed)
    )
    keys = jax.random.split(jax.random.key(seed + 50))
    s = 0.5 * jax.random.normal(keys[0], (N, N), F64)
    v = jax.random.normal(keys[1], (N, N), F64)
    jet_coefficients = jitted_jet(config, data, s, v, 3)
    assert jet_coefficients.shape == (4,)
    assert_close(np.asarray(jet_coefficients), np.asarray(jitted_nested(config, data, s, v, 3)), N * N)
    # Low orders against the value, the gradient and the dense Hessian.
    value, gradient, hessian = map(np.asarray, reference_derivatives(config, data, s))
    flat_v = np.asarray(v).ravel()
    assert_close(
        np.asarray(jet_coefficients[:3]), [value, gradient.ravel() @ flat_v, 0.5 * flat_v @ hessian @ flat_v], N * N
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exp_closed_form(seed):
    rng = np.random.default_rng(seed)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    order = 6
    expected = [np.sum(np.exp(x) * v**k) / math.factorial(k) for k in range(order + 1)]
    for method in (taylor_coefficients, taylor_coefficients_nested_jvp):
        actual = jax.jit(lambda a, b: method(lambda y: jnp.sum(jnp.exp(y)), a, b, order))(
            jnp.asarray(x), jnp.asarray(v)
        )
        assert_close(np.asarray(actual), np.array(expected), 5, err_msg=method.__name__)


def sympy_coefficients(expression, variables, x, v, order):
    """Exact Taylor coefficients in t of expression(x + t v), evaluated in float64."""
    t = sp.Symbol("t")
    along = expression.subs({var: sp.Rational(a) + t * sp.Rational(b) for var, a, b in zip(variables, x, v)})
    series = sp.series(along, t, 0, order + 1).removeO()
    return np.array([float(series.coeff(t, k)) for k in range(order + 1)])


def test_polynomial_closed_form():
    y = sp.symbols("y0:3")
    expression = y[0] ** 3 - 2 * y[0] * y[1] + y[1] ** 2 * y[2] + 5
    x, v = ["1/2", "-3/4", "2"], ["1", "1/3", "-1/2"]
    order = 5
    expected = sympy_coefficients(expression, y, x, v, order)
    assert np.all(expected[4:] == 0.0)

    def f(a):
        return a[0] ** 3 - 2 * a[0] * a[1] + a[1] ** 2 * a[2] + 5

    to_array = lambda values: jnp.asarray([float(sp.Rational(a)) for a in values], F64)  # noqa: E731
    for method in (taylor_coefficients, taylor_coefficients_nested_jvp):
        actual = jax.jit(lambda a, b: method(f, a, b, order))(to_array(x), to_array(v))
        assert_close(np.asarray(actual), expected, 3, err_msg=method.__name__)


def test_softmax_closed_form():
    y = sp.symbols("y0:3")
    expression = sp.exp(y[0]) / sum(sp.exp(a) for a in y)
    x, v = ["1/3", "-1/2", "1/5"], ["1", "-2", "1/2"]
    order = 3
    expected = sympy_coefficients(expression, y, x, v, order)
    to_array = lambda values: jnp.asarray([float(sp.Rational(a)) for a in values], F64)  # noqa: E731
    for method in (taylor_coefficients, taylor_coefficients_nested_jvp):
        actual = jax.jit(lambda a, b: method(lambda y: jax.nn.softmax(y)[0], a, b, order))(to_array(x), to_array(v))
        assert_close(np.asarray(actual), expected, 3, err_msg=method.__name__)


def test_pytree_argument():
    def f(tree):
        return jnp.sum(jnp.sin(tree["a"])) * jnp.exp(tree["b"][0, 1])

    x = {"a": jnp.array([0.3, -0.2], F64), "b": jnp.array([[0.1, 0.5]], F64)}
    v = {"a": jnp.array([1.0, 0.5], F64), "b": jnp.array([[-0.3, 0.7]], F64)}
    jet_coefficients = jax.jit(lambda a, b: taylor_coefficients(f, a, b, 4))(x, v)
    nested = jax.jit(lambda a, b: taylor_coefficients_nested_jvp(f, a, b, 4))(x, v)
    assert_close(np.asarray(jet_coefficients), np.asarray(nested), 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circulant_flatness_p3_and_curvature_p7(seed):
    """P3: along a circulant direction from a circulant point, mean pooling without MLP is flat to all
    orders; P7: with a tanh MLP the first order still vanishes but the second does not."""
    c = circulant(jax.random.normal(jax.random.key(seed + 70), (N,), F64))
    c = c / jnp.linalg.norm(c)
    zero = jnp.zeros((N, N), F64)
    order = 5
    flat = jitted_jet(*classification_problem(seed, mlp=0), zero, c, order)
    tol = close_tolerance(F64, N * N) * max(1.0, abs(float(flat[0])))
    np.testing.assert_allclose(flat[1:], 0.0, atol=tol)

    config, data = classification_problem(seed, mlp=8)
    curved = jitted_jet(config, data, zero, c, order)
    np.testing.assert_allclose(curved[1], 0.0, atol=tol)
    # The second coefficient is c^T H c / 2 with the dense Hessian, and above the rounding level.
    hessian = np.asarray(reference_derivatives(config, data, zero)[2])
    flat_c = np.asarray(c).ravel()
    assert_close(float(curved[2]), 0.5 * flat_c @ hessian @ flat_c, N * N)
    assert abs(float(curved[2])) > tol


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_non_circulant_direction_is_seen(seed):
    """Control: a column-sum direction 1 w^T (w^T 1 = 0) is seen at first order without MLP."""
    w = jax.random.normal(jax.random.key(seed + 80), (N,), F64)
    direction = jnp.outer(jnp.ones(N, F64), w - w.mean())
    coefficients = jitted_jet(*classification_problem(seed, mlp=0), jnp.zeros((N, N), F64), direction, 5)
    assert abs(float(coefficients[1])) > close_tolerance(F64, N * N)


def test_refuses_bad_input():
    x = jnp.zeros(3, F64)
    with pytest.raises(ValueError, match="order"):
        taylor_coefficients(jnp.sum, x, x, 0)
    with pytest.raises(ValueError, match="direction"):
        taylor_coefficients(jnp.sum, x, jnp.zeros(4, F64), 2)
    with pytest.raises(ValueError, match="direction"):
        taylor_coefficients_nested_jvp(jnp.sum, x, jnp.zeros((3, 1), F64), 2)
