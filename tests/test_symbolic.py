"""SymPy results of P1-P7, lambdified, against the JAX model at random float64 points.

Each family has a negative test: breaking one hypothesis on the JAX side makes the comparison fail.
"""

from functools import cache
from itertools import combinations, product

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from blindspot import ModelConfig, init
from blindspot import symbolic as sym
from blindspot.model import embed, features_at_scores, pool, scores_from_query_key
from blindspot.objectives import classification_loss_at_scores, reconstruction_loss_at_scores
from blindspot.tolerances import close_tolerance, rank_tolerance

F64 = jnp.float64
SEEDS = [0, 1, 2]
# a negative control must miss by this factor beyond the tolerance, so it cannot fail by rounding alone
SEPARATION = 1e3


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny))


def tol(size):
    return close_tolerance(np.float64, size)


def lam(args, expr):
    """Lambdify ``expr`` with arguments given as a list of SymPy matrices (each fed a numpy array)."""
    flat = [x for a in args for x in a]
    f = sp.lambdify(flat, expr, "numpy", cse=True)

    def call(*arrays):
        vals = [x for arr in arrays for x in np.asarray(arr, np.float64).ravel()]
        return np.asarray(f(*vals), np.float64)

    return call


def model(seed, **kw):
    config = ModelConfig(**{"n": 4, "d": 2, "vocab": 3, "classes": 2, **kw})
    params = init(jax.random.key(seed), config, dtype=F64)
    tokens = jax.random.randint(jax.random.key(100 + seed), (config.n,), 0, config.vocab, jnp.int32)
    return config, params, tokens


def values_of(params, tokens):
    return embed(params, tokens) @ params.value


# ---------------------------------------------------------------- P1


@cache
def _p1(n):
    s = sp.Matrix([sp.symbols(f"s_0:{n}", real=True)])
    a = sym.row_softmax(s)
    jac = lam([s], sym.softmax_jacobian(a))
    hess = lam([s], sp.Array([list(h) for h in sym.softmax_hessian(a)]))
    return jac, hess


@pytest.mark.parametrize("seed", SEEDS)
def test_p1_softmax_jacobian_and_hessian(seed):
    n = 5
    s = jax.random.normal(jax.random.key(seed), (n,), F64)
    jac, hess = _p1(n)
    assert rel_err(jac(s), jax.jacfwd(jax.nn.softmax)(s)) < tol(n)
    assert rel_err(hess(s).reshape(n, n, n), jax.hessian(jax.nn.softmax)(s)) < tol(n * n)


@pytest.mark.parametrize("seed", SEEDS)
def test_p1_uniform_value(seed):
    n = 3 + seed
    closed = np.asarray(sym.softmax_jacobian(sp.ones(n, 1) / n), np.float64)
    assert rel_err(closed, jax.jacfwd(jax.nn.softmax)(jnp.zeros(n, F64))) < tol(n)


def _row_sum_ratio(loss, s):
    g = jax.grad(loss)(s)
    return float(jnp.max(jnp.abs(g.sum(axis=1))) / jnp.max(jnp.abs(g)))


@pytest.mark.parametrize("seed", SEEDS)
def test_p1_gauge_zero_row_sums_and_negative(seed):
    config, params, tokens = model(seed, mlp=3, residual=True)
    s = jax.random.normal(jax.random.key(seed), (4, 4), F64)

    def loss(x):
        return classification_loss_at_scores(params, config, tokens, 1, x)

    assert _row_sum_ratio(loss, s) < tol(16)
    # a loss that sees S outside the softmax breaks the hypothesis: row sums are no longer zero
    assert _row_sum_ratio(lambda x: loss(x) + 0.1 * jnp.sum(x**2), s) > SEPARATION * tol(16)


# ---------------------------------------------------------------- P2 / P3


@cache
def _p2(n, d):
    s, v, h = sym.score_matrix(n), sym.symbol_matrix(n, d, "v"), sym.symbol_matrix(n, d, "h")
    m = sym.column_masses(sym.row_softmax(s))
    return lam([s, v, h], m.T * v / n + sp.ones(1, n) * h / n)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True])
def test_p2_column_mass_identity(seed, residual):
    config, params, tokens = model(seed, residual=residual)
    s = jax.random.normal(jax.random.key(seed), (4, 4), F64)
    h = embed(params, tokens) if residual else jnp.zeros((4, 2), F64)
    want = _p2(4, 2)(s, values_of(params, tokens), h)
    got = pool(config, features_at_scores(params, config, tokens, s))
    assert rel_err(got, want.ravel()) < tol(16)


@pytest.mark.parametrize("seed", SEEDS)
def test_p2_negative_mlp_breaks_identity(seed):
    config, params, tokens = model(seed, mlp=3)
    s = jax.random.normal(jax.random.key(seed), (4, 4), F64)
    want = _p2(4, 2)(s, values_of(params, tokens), jnp.zeros((4, 2), F64))
    got = pool(config, features_at_scores(params, config, tokens, s))
    assert rel_err(got, want.ravel()) > SEPARATION * tol(16)


@cache
def _p3_masses(n):
    c = sp.Matrix([sp.symbols(f"c_0:{n}", real=True)])
    t = sp.Symbol("t", real=True)
    return (
        lam([c], sym.column_masses(sym.row_softmax(sym.circulant(c)))),
        lam([sp.Matrix([t])], sym.column_masses(sym.row_softmax(t * sym.band(n, 1)))),
    )


def _circulant_np(c):
    n = len(c)
    return jnp.asarray([[c[(j - i) % n] for j in range(n)] for i in range(n)], F64)


@pytest.mark.parametrize("seed", SEEDS)
def test_p3_circulant_flat(seed):
    config, params, tokens = model(seed, residual=True)
    c = np.asarray(jax.random.normal(jax.random.key(seed), (4,), F64))
    s = _circulant_np(c)
    masses, _ = _p3_masses(4)
    assert rel_err(jax.nn.softmax(s, axis=-1).sum(axis=0), masses(c).ravel()) < tol(4)
    zero = jnp.zeros((4, 4), F64)
    assert rel_err(
        classification_loss_at_scores(params, config, tokens, 0, s),
        classification_loss_at_scores(params, config, tokens, 0, zero),
    ) < tol(16)


@pytest.mark.parametrize("seed", SEEDS)
def test_p3_negative_open_boundary_toeplitz(seed):
    config, params, tokens = model(seed)
    t = 0.5 + seed
    band = np.asarray(sym.band(4, 1), np.float64)
    _, band_masses = _p3_masses(4)
    # the symbolic masses of the open band agree with JAX, and they are not 1 ...
    assert rel_err(jax.nn.softmax(t * band, axis=-1).sum(axis=0), band_masses([t]).ravel()) < tol(4)
    assert rel_err(band_masses([t]).ravel(), np.ones(4)) > SEPARATION * tol(4)
    # ... so the flatness comparison L(tB) == L(0) fails
    a = classification_loss_at_scores(params, config, tokens, 0, jnp.asarray(t * band))
    b = classification_loss_at_scores(params, config, tokens, 0, jnp.zeros((4, 4), F64))
    assert rel_err(a, b) > SEPARATION * tol(16)


# ---------------------------------------------------------------- P4 / P5


@cache
def _p4_u(n, d, hidden, classes, label, mlp, residual):
    """Symbolic arguments and $u$ of P4 (tanh MLP, or identity with an optional residual mean)."""
    v, head, bias = sym.symbol_matrix(n, d, "v"), sym.symbol_matrix(d, classes, "w"), sym.symbol_matrix(1, classes, "b")
    w1, b1 = sym.symbol_matrix(d, hidden, "a"), sym.symbol_matrix(1, hidden, "c")
    w2, b2 = sym.symbol_matrix(hidden, d, "e"), sym.symbol_matrix(1, d, "f")
    h = sym.symbol_matrix(n, d, "h")
    if mlp:
        u = sym.mean_pool_uniform_u(
            v, head, bias, label, phi=sym.tanh_mlp(w1, b1, w2, b2), phi_jacobian=sym.tanh_mlp_jacobian(w1, b1, w2)
        )
    else:
        u = sym.mean_pool_uniform_u(v, head, bias, label, residual_mean=sp.ones(1, n) * h / n if residual else None)
    return [v, head, bias, w1, b1, w2, b2, h], u


@cache
def _p4(*key):
    args, u = _p4_u(*key)
    return lam(args, sym.mean_pool_uniform_gradient(u))


@cache
def _p5_formula(*key):
    args, u = _p4_u(*key)
    p = sym.symbol_matrix(key[0], key[1], "p")
    return lam([*args, p], sym.positional_gradient(p, u))


def _p4_inputs(config, params, tokens):
    m = params.mlp
    zeros = (jnp.zeros((2, 3), F64), jnp.zeros(3, F64), jnp.zeros((3, 2), F64), jnp.zeros(2, F64))
    mlp = (m.w1, m.b1, m.w2, m.b2) if m is not None else zeros
    return (values_of(params, tokens), params.classifier.weight, params.classifier.bias, *mlp, embed(params, tokens))


def _p4_compare(seed, label, **kw):
    config, params, tokens = model(seed, **kw)
    formula = _p4(4, 2, 3, 2, label, config.mlp > 0, config.residual and config.mlp == 0)
    want = formula(*_p4_inputs(config, params, tokens))
    got = jax.grad(lambda s: classification_loss_at_scores(params, config, tokens, label, s))(jnp.zeros((4, 4), F64))
    return rel_err(got, want)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kw", [{"mlp": 3}, {"residual": True}, {}])
def test_p4_rank_one_identical_rows(seed, kw):
    assert _p4_compare(seed, seed % 2, **kw) < tol(16)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kw", [{"mlp": 3, "residual": True}, {"mlp": 3, "pooling": "last"}])
def test_p4_negative_residual_mlp_or_last_pooling(seed, kw):
    assert _p4_compare(seed, seed % 2, **kw) > SEPARATION * tol(16)


def _visible_fractions(seed, n, **kw):
    """cos^2(B_k, span of JAX per-sample gradients at S = 0) for k = 0..n-1."""
    config = ModelConfig(n=n, d=4, vocab=5, classes=3, **kw)
    grad = jax.jit(jax.grad(lambda s, p, x, y: classification_loss_at_scores(p, config, x, y, s)))
    grads = []
    for r in range(3 * n):
        params = init(jax.random.key(1000 * seed + r), config, dtype=F64)
        tokens = jax.random.randint(jax.random.key(7 + r), (n,), 0, config.vocab, jnp.int32)
        grads.append(np.asarray(grad(jnp.zeros((n, n), F64), params, tokens, r % 3)).ravel())
    stack = np.asarray(grads).T
    u, sv, _ = np.linalg.svd(stack, full_matrices=False)
    basis = u[:, sv > rank_tolerance(sv[0], stack.shape, np.float64)]
    out = []
    for k in range(n):
        b = np.asarray(sym.band(n, k), np.float64).ravel()
        out.append(np.sum((basis.T @ b) ** 2) / (b @ b))
    return np.asarray(out), basis.shape[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_p4_band_visible_fraction(seed):
    n = 6
    got, rank = _visible_fractions(seed, n, mlp=3)
    closed = sp.lambdify(
        [sp.Symbol("n", positive=True, integer=True), sp.Symbol("k", nonnegative=True, integer=True)],
        sym.band_visible_fraction(),
        "numpy",
    )
    want = np.asarray([float(closed(n, k)) for k in range(n)])
    assert rank == n - 1
    assert np.max(np.abs(got - want)) < tol(n * n * 3 * n)


def test_p4_negative_residual_mlp_sees_more():
    n = 6
    got, rank = _visible_fractions(0, n, mlp=3, residual=True)
    want = np.asarray([float(sym.band_visible_fraction(n, k)) for k in range(n)])
    assert rank > n - 1
    assert np.max(np.abs(got - want)) > SEPARATION * tol(n * n * 3 * n)


def _p5(seed, centred, **kw):
    config, params, tokens = model(seed, scores="position", positional="random", centred=centred, **kw)
    w0 = jnp.zeros((2, 2), F64)
    got = jax.grad(
        lambda w: classification_loss_at_scores(
            params, config, tokens, 1, scores_from_query_key(w, params, config, tokens)
        )
    )(w0)
    formula = _p5_formula(4, 2, 3, 2, 1, config.mlp > 0, False)
    want = formula(*_p4_inputs(config, params, tokens), params.positional)
    scale = (
        np.linalg.norm(
            jax.grad(lambda s: classification_loss_at_scores(params, config, tokens, 1, s))(jnp.zeros((4, 4), F64))
        )
        * np.linalg.norm(params.positional) ** 2
    )
    return np.asarray(got), want, scale


@pytest.mark.parametrize("seed", SEEDS)
def test_p5_formula_and_zero_when_centred(seed):
    got, want, _ = _p5(seed, False, mlp=3)
    assert rel_err(got, want) < tol(16)
    got, want, scale = _p5(seed, True, mlp=3)
    assert np.linalg.norm(got) < tol(16) * scale and np.linalg.norm(want) < tol(16) * scale


@pytest.mark.parametrize("seed", SEEDS)
def test_p5_negative_uncentred_or_residual_mlp_not_zero(seed):
    got, _, scale = _p5(seed, False, mlp=3)
    assert np.linalg.norm(got) > SEPARATION * tol(16) * scale
    got, _, scale = _p5(seed, True, mlp=3, residual=True)
    assert np.linalg.norm(got) > SEPARATION * tol(16) * scale


# ---------------------------------------------------------------- P6


@cache
def _p6(n, vocab, m):
    lam_ = sp.Symbol("lambda", positive=True)
    return lam([sp.Matrix([lam_])], sym.expected_copy_gradient(sym.sticky_agreement(n, vocab, lam_), m))


def _jax_expected_copy_gradient(n, vocab, m, rho):
    """Exact expectation by enumeration, every per-sample gradient from JAX autodiff."""
    config = ModelConfig(n=n, d=2, vocab=vocab, reconstruction="copy", mask_rate=m / n)
    params = init(jax.random.key(0), config, dtype=F64)
    seqs = np.asarray(list(product(range(vocab), repeat=n)), np.int32)
    same = seqs[:, 1:] == seqs[:, :-1]
    prob = np.prod(np.where(same, rho + (1 - rho) / vocab, (1 - rho) / vocab), axis=1) / vocab
    masks = np.zeros((len(list(combinations(range(n), m))), n), bool)
    for r, idx in enumerate(combinations(range(n), m)):
        masks[r, list(idx)] = True
    grad = jax.grad(lambda s, x, k: reconstruction_loss_at_scores(params, config, x, k, s))
    per = jax.vmap(jax.vmap(grad, (None, None, 0)), (None, 0, None))(
        jnp.zeros((n, n), F64), jnp.asarray(seqs), jnp.asarray(masks)
    )
    return np.einsum("x,xmij->ij", prob, np.asarray(per)) / len(masks)


@pytest.mark.parametrize("seed", SEEDS)
def test_p6_expected_copy_gradient_sticky(seed):
    n, vocab, m = 5, 2, 1 + seed
    rho = float(jax.random.uniform(jax.random.key(seed), (), F64, 0.2, 0.9))
    got = _jax_expected_copy_gradient(n, vocab, m, rho)
    assert rel_err(got, _p6(n, vocab, m)([rho])) < tol(vocab**n * n * n)


@pytest.mark.parametrize("seed", SEEDS)
def test_p6_negative_iid_formula_and_design_formula_fail_on_sticky_data(seed):
    n, vocab, m = 5, 2, 1 + seed
    rho = float(jax.random.uniform(jax.random.key(seed), (), F64, 0.2, 0.9))
    got = _jax_expected_copy_gradient(n, vocab, m, rho)
    iid = np.asarray(sym.expected_copy_gradient(sym.sticky_agreement(n, vocab, 0), m), np.float64)
    design = np.asarray(sym.design_copy_gradient(sym.sticky_agreement(n, vocab, sp.Float(rho, 30))), np.float64)
    assert rel_err(got, iid) > SEPARATION * tol(vocab**n * n * n)
    assert rel_err(got, design) > SEPARATION * tol(vocab**n * n * n)


# ---------------------------------------------------------------- P7


@cache
def _p7(n, d, hidden, classes, label):
    v, head, bias = sym.symbol_matrix(n, d, "v"), sym.symbol_matrix(d, classes, "w"), sym.symbol_matrix(1, classes, "b")
    w1, b1 = sym.symbol_matrix(d, hidden, "a"), sym.symbol_matrix(1, hidden, "c")
    w2, b2 = sym.symbol_matrix(hidden, d, "e"), sym.symbol_matrix(1, d, "f")
    c = sp.Matrix([sp.symbols(f"k_0:{n}", real=True)])
    expr = sym.circulant_second_order(
        v,
        sym.circulant(c),
        head,
        bias,
        label,
        phi=sym.tanh_mlp(w1, b1, w2, b2),
        phi_second=sym.tanh_mlp_second(w1, b1, w2),
    )
    return lam([v, head, bias, w1, b1, w2, b2, c], expr)


def _p7_jax(seed, **kw):
    config, params, tokens = model(seed, **kw)
    c = np.asarray(jax.random.normal(jax.random.key(50 + seed), (4,), F64))
    direction = _circulant_np(c)

    def f(t):
        return classification_loss_at_scores(params, config, tokens, 0, t * direction)

    zero = jnp.zeros((), F64)
    first, second = jax.jacfwd(f)(zero), jax.jacfwd(jax.jacfwd(f))(zero) / 2
    # natural size of a Taylor coefficient: an O(1) cross-entropy times the squared size of the direction
    scale = (1.0 + float(f(zero))) * float(np.sum(c**2))
    return config, params, tokens, c, float(first), float(second), scale


@pytest.mark.parametrize("seed", SEEDS)
def test_p7_second_order_with_mlp(seed):
    config, params, tokens, c, first, second, scale = _p7_jax(seed, mlp=3)
    m = params.mlp
    want = float(
        _p7(4, 2, 3, 2, 0)(
            values_of(params, tokens), params.classifier.weight, params.classifier.bias, m.w1, m.b1, m.w2, m.b2, c
        )
    )
    assert abs(first) < tol(16) * scale
    assert rel_err(second, want) < tol(16)
    assert abs(want) > SEPARATION * tol(16) * scale


@pytest.mark.parametrize("seed", SEEDS)
def test_p7_zero_without_mlp_and_negative(seed):
    *_, first, second, scale = _p7_jax(seed)
    assert abs(first) < tol(16) * scale and abs(second) < tol(16) * scale
    # the no-MLP prediction (zero curvature) fails once the JAX model has the tanh MLP
    *_, second_mlp, scale_mlp = _p7_jax(seed, mlp=3)
    assert abs(second_mlp) > SEPARATION * tol(16) * scale_mlp


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sym.score_matrix(0), "n must be an integer >= 1"),
        (lambda: sym.band(4, 4), r"k must be an integer in \[0, 3\]"),
        (lambda: sym.band_visible_fraction_direct(3, -1), r"k must be an integer in \[0, 2\]"),
        (lambda: sym.toeplitz(1.5, {}), "n must be an integer >= 1"),
        (
            lambda: sym.mean_pool_uniform_u(
                sp.ones(2, 1), sp.ones(1, 2), sp.zeros(1, 2), 0, phi=lambda o: o, residual_mean=sp.zeros(1, 1)
            ),
            "residual_mean must be None",
        ),
    ],
)
def test_symbolic_refuses_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
