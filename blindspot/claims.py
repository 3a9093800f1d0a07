"""The theory claims P1-P8 of derivations/THEORY.md, each measured by independent lines of evidence.

Every claim returns evidence lines that compare a measurement with the theory (a SymPy result
from ``blindspot.symbolic`` evaluated in float64, an autodiff measurement, a closed-form fast
path) and one negative control: the main measurement with one hypothesis broken, which must
clearly fail. Tolerances come from ``blindspot.tolerances`` (float64 unit roundoff times the
size of the computation) or, for Monte Carlo estimates, from a normal bound with $Z = 4.9$
standard errors (a false alarm about once in a million per entry).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from blindspot import symbolic
from blindspot.config import ModelConfig
from blindspot.curvature import gauss_newton_split
from blindspot.data import iid_tokens, lag_agreement, markov_tokens, sample_masks
from blindspot.directions import band, circulant, factor_statistics, family, first_step_cosine, statistics
from blindspot.evidence import Claim, Control, Evidence
from blindspot.fast_paths import classification_column_factors, dense_gradients, uniform_score_factors
from blindspot.jacobian import numerical_rank, query_key_gradients, score_gradients, span, visible_fraction
from blindspot.model import embed, features_at_scores, init, pool, positions, scores
from blindspot.objectives import classification_loss_at_features, classification_loss_at_scores, shared_score_loss
from blindspot.taylor import taylor_coefficients
from blindspot.tolerances import close_tolerance, eps

F64 = jnp.float64
Z = 4.9


def _tol(size: int) -> float:
    return close_tolerance(F64, size)


def _relative(a, b) -> float:
    r"""Max-norm relative difference $\max|a - b| / \max|b|$."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _batch(config: ModelConfig, seed: int, batch: int, *, rho: float = 0.7):
    """Parameters, sticky-chain tokens, labels and masks for ``config`` from one seed."""
    k = jax.random.split(jax.random.key(seed), 4)
    params = init(k[0], config)
    tokens = markov_tokens(k[1], batch, config.n, config.vocab, rho)
    labels = jax.random.randint(k[2], (batch,), 0, config.classes, jnp.int32)
    masks = sample_masks(k[3], batch, config.n, config.mask_rate)
    return params, tokens, labels, masks


# ---------------------------------------------------------------- P1


def measure_p1(full: bool, seed: int):
    """P1: softmax Jacobian, its rank at uniform attention, and the row-constant gauge."""
    n = 256 if full else 8
    rng = np.random.default_rng(seed)
    row_symbols = sp.Matrix([sp.symbols(f"s0:{4}", real=True)])
    jac_expr = symbolic.softmax_jacobian(symbolic.row_softmax(row_symbols))
    s_row = rng.standard_normal(4)
    sympy_jac = np.array(sp.lambdify(list(row_symbols), jac_expr, "numpy")(*s_row), dtype=float)
    autodiff_jac = jax.jacfwd(jax.nn.softmax)(jnp.asarray(s_row))

    uniform = jax.jacfwd(jax.nn.softmax)(jnp.zeros(n, F64))
    closed = (np.eye(n) - np.ones((n, n)) / n) / n
    rank = numerical_rank(uniform)

    config = ModelConfig(n=n, d=4, vocab=4, mlp=6, residual=True, pooling="last", qk_init="random", qk_init_scale=2.0)
    params, tokens, labels, masks = _batch(config, seed, 4)
    grads = jnp.concatenate(
        [
            score_gradients(params, config, "classification", tokens, labels),
            score_gradients(params, config, "reconstruction", tokens, masks),
        ]
    )
    scale = float(jnp.abs(grads).max())
    row_sums = float(jnp.abs(grads.sum(axis=2)).max()) / scale
    column_sums = float(jnp.abs(grads.sum(axis=1)).max()) / scale
    evidence = [
        Evidence(
            "SymPy softmax Jacobian diag(a) - a a^T vs autodiff (n=4, rel. diff.)",
            _relative(autodiff_jac, sympy_jac),
            0.0,
            _tol(4),
        ),
        Evidence(
            f"autodiff Jacobian at uniform attention vs (I - 11^T/n)/n (n={n}, rel. diff.)",
            _relative(uniform, closed),
            0.0,
            _tol(n),
        ),
        Evidence(f"numerical rank of the uniform Jacobian (tolerance {rank.tolerance:.1e})", rank.rank, n - 1, 0.0),
        Evidence(
            "row sums of every dL/dS, both losses, random attention (rel. to max |dL/dS|)", row_sums, 0.0, _tol(n)
        ),
    ]
    control = Control(
        "column-constant directions 1 r^T instead of the row gauge r 1^T",
        Evidence("column sums of every dL/dS (rel. to max |dL/dS|)", column_sums, 0.0, _tol(n)),
    )
    return evidence, control


# ---------------------------------------------------------------- P2


def _mass_preserving(a, rng, strength=0.5):
    r"""Perturb attention keeping its row and column sums: $A + \epsilon\, C X C$ with $C = I - 11^T/n$."""
    n = a.shape[0]
    c = np.eye(n) - np.ones((n, n)) / n
    e = c @ rng.standard_normal((n, n)) @ c
    return a + strength * a.min() * e / np.abs(e).max()


def _p2_loss_change(config, seed):
    params, tokens, labels, _ = _batch(config, seed, 1)
    x, y = tokens[0], labels[0]
    s = np.asarray(scores(params, config, x))
    a = np.asarray(jax.nn.softmax(s, axis=-1))
    s2 = np.log(_mass_preserving(a, np.random.default_rng(seed)))
    before = classification_loss_at_scores(params, config, x, y, jnp.asarray(s))
    after = classification_loss_at_scores(params, config, x, y, jnp.asarray(s2))
    return abs(float(after - before)) / abs(float(before)), params, x, a


def measure_p2(full: bool, seed: int):
    """P2: with mean pooling and no MLP, L_cls depends on S only through the column masses."""
    n = 32 if full else 8
    config = ModelConfig(n=n, d=4, vocab=4, qk_init="random", qk_init_scale=0.5)
    change, params, x, a = _p2_loss_change(config, seed)
    values = np.asarray(embed(params, x) @ params.value)
    a_sym = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"a_{i}_{j}", real=True))
    masses = sp.lambdify(list(a_sym), symbolic.column_masses(a_sym), "numpy")
    m = np.asarray(masses(*a.ravel()), dtype=float).ravel()
    z_from_masses = m @ values / n
    z_model = pool(config, features_at_scores(params, config, x, jnp.log(jnp.asarray(a))))
    broken = ModelConfig(n=n, d=4, vocab=4, mlp=8, qk_init="random", qk_init_scale=0.5)
    evidence = [
        Evidence(
            "pooled output vs SymPy column-mass form (1/n) m^T V (rel. diff.)",
            _relative(z_model, z_from_masses),
            0.0,
            _tol(n * n),
        ),
        Evidence("loss change under a column-mass-preserving change of S (rel.)", change, 0.0, _tol(n * n)),
    ]
    control = Control(
        "a tanh MLP after attention",
        Evidence(
            "loss change under the same kind of change (rel.)", _p2_loss_change(broken, seed)[0], 0.0, _tol(n * n)
        ),
    )
    return evidence, control


# ---------------------------------------------------------------- P3


def _p3_setup(config, seed, batch=4):
    params, tokens, labels, _ = _batch(config, seed, batch)
    return shared_score_loss(params, config, "classification", tokens, labels)


def measure_p3(full: bool, seed: int):
    """P3: circulant scores give doubly stochastic attention, so L_cls is flat along them to all orders."""
    n = 256 if full else 8
    config = ModelConfig(n=n, d=4, vocab=4)
    loss = _p3_setup(config, seed)
    rng = np.random.default_rng(seed)
    basis = np.asarray(circulant(n, dtype=F64))
    c = jnp.asarray(np.tensordot(3.0 * rng.standard_normal(n), basis, axes=1))
    zero = jnp.zeros((n, n), F64)
    base = float(loss(zero))
    unit = c / jnp.linalg.norm(c)
    coefficients = np.asarray(taylor_coefficients(loss, zero, unit, 4))
    n_sym = 5
    first_row = sp.symbols(f"c0:{n_sym}", real=True)
    column_sums = symbolic.column_masses(symbolic.row_softmax(symbolic.circulant(first_row)))
    m = np.asarray(sp.lambdify(first_row, column_sums, "numpy")(*rng.standard_normal(n_sym)), dtype=float)
    open_boundary = 3.0 * np.sqrt(2 * (n - 1)) * np.asarray(band(n, 1, dtype=F64))[0]
    evidence = [
        Evidence(
            "L(C) - L(0) for a random circulant C, entries ~ N(0, 9) (rel.)",
            abs(float(loss(c)) - base) / base,
            0.0,
            _tol(n * n),
        ),
        Evidence(
            "Taylor coefficients 1..4 along a unit circulant direction (jet, max rel. to L(0))",
            float(np.abs(coefficients[1:]).max()) / base,
            0.0,
            _tol(n * n),
        ),
        Evidence(
            "SymPy column sums of softmax(circulant) minus 1 (n=5, random first row)",
            float(np.abs(m - 1).max()),
            0.0,
            _tol(n_sym),
        ),
    ]
    control = Control(
        "open-boundary proximity band B_1 (Toeplitz, no wrap-around) instead of a circulant",
        Evidence(
            "L(3 B_1) - L(0) (rel.)", abs(float(loss(jnp.asarray(open_boundary))) - base) / base, 0.0, _tol(n * n)
        ),
    )
    return evidence, control


# ---------------------------------------------------------------- P4


def _uniform_gradient_span(config, seed, batch):
    params, tokens, labels, _ = _batch(config, seed, batch)
    grads = score_gradients(params, config, "classification", tokens, labels)
    return params, tokens, labels, grads, span(grads.reshape(batch, -1))


def measure_p4(full: bool, seed: int):
    """P4: at uniform attention the label gradients span U = {1 w^T : w^T 1 = 0}; bands are blind up to O(1/n)."""
    n_dense = 8
    n_fast = 256 if full else 32
    config = ModelConfig(n=n_dense, d=4, vocab=4, mlp=6)
    batch = 3 * n_dense
    params, tokens, labels, grads, sp_ = _uniform_gradient_span(config, seed, batch)
    fast = jnp.einsum(
        "i,bj->bij", jnp.ones(n_dense, F64), classification_column_factors(params, config, tokens, labels)
    )
    stats = statistics(grads)
    circ = visible_fraction(sp_, family("circulant", n_dense).coordinates(stats))

    big = ModelConfig(n=n_fast, d=4, vocab=4, mlp=6)
    bparams, btokens, blabels, _ = _batch(big, seed, 3 * n_fast)
    w = classification_column_factors(bparams, big, btokens, blabels)
    big_span = span(math.sqrt(n_fast) * w, size=n_fast * n_fast)
    # statistics of the gradients 1 w_b^T from their factors, never forming the (b, n, n) stack
    band_stats = factor_statistics(jnp.ones((*w.shape, 1), F64), w[..., None])
    worst = 0.0
    for k in (1, 2, n_fast // 4, n_fast // 2, n_fast - 1):
        whole_band = family(f"band_{k}", n_fast, part="whole")
        measured = visible_fraction(big_span, whole_band.coordinates(band_stats)).fraction
        closed = float(symbolic.band_visible_fraction(n_fast, k))
        worst = max(worst, abs(measured - closed) / max(closed, eps(F64)))
    evidence = [
        Evidence(
            f"rank of the span of {batch} per-sample dL/dS (autodiff, tanh MLP, n={n_dense}, tol {sp_.tolerance:.1e})",
            sp_.rank,
            n_dense - 1,
            0.0,
        ),
        Evidence(
            "closed form (1/n) 1 (u - u_bar 1)^T (fast path) vs autodiff (rel. diff.)",
            _relative(fast, grads),
            0.0,
            _tol(n_dense * 8),
        ),
        Evidence("visible fraction of the circulant family", circ.fraction, 0.0, _tol(n_dense * n_dense)),
        Evidence(
            f"band visible fraction from the gradient span vs SymPy closed form, n={n_fast}, k = 1,2,n/4,n/2,n-1",
            worst,
            0.0,
            _tol(n_fast * n_fast),
        ),
    ]
    broken = ModelConfig(n=n_dense, d=4, vocab=4, mlp=6, residual=True)
    control = Control(
        "a residual together with the tanh MLP",
        Evidence(
            "rank of the span of per-sample dL/dS",
            _uniform_gradient_span(broken, seed, batch)[4].rank,
            n_dense - 1,
            0.0,
        ),
    )
    return evidence, control


# ---------------------------------------------------------------- P5


def _p5_gradients(config, seed, batch):
    r"""Per-sample dL/dW and their size relative to the bound $\sqrt n \lVert P\rVert_2^2 \lVert w\rVert$."""
    params, tokens, labels, _ = _batch(config, seed, batch)
    grads = query_key_gradients(params, config, "classification", tokens, labels)
    w = classification_column_factors(params, config, tokens, labels)
    bound = (
        math.sqrt(config.n)
        * float(jnp.linalg.norm(positions(params), 2)) ** 2
        * float(jnp.linalg.norm(w, axis=1).max())
    )
    return params, tokens, labels, grads, float(jnp.linalg.norm(grads, axis=(1, 2)).max()) / bound


def measure_p5(full: bool, seed: int):
    """P5: for S = P W P^T at W = 0, dL/dW = (1/n)(P^T 1)((u - u_bar 1)^T P): rank one, zero if P is centred."""
    n, d = (256, 8) if full else (8, 4)
    batch = 8

    def config(centred):
        return ModelConfig(n=n, d=d, vocab=4, scores="position", positional="random", centred=centred)

    params, tokens, labels, g_raw, raw_size = _p5_gradients(config(False), seed, batch)
    p = sp.Matrix(np.asarray(positions(params)))
    w = np.asarray(classification_column_factors(params, config(False), tokens, labels))  # w = (u - u_bar 1)/n
    # the SymPy formula evaluated at the float64 point (SymPy floats carry 53-bit precision), two samples
    checked = 2
    predicted = np.stack(
        [np.array(symbolic.positional_gradient(p, sp.Matrix(n * w_b)), dtype=float) for w_b in w[:checked]]
    )
    rank = max(numerical_rank(g).rank for g in g_raw)
    size_name = "max ||dL/dW||_F / (sqrt(n) ||P||_2^2 ||w||)"
    evidence = [
        Evidence(
            "autodiff dL/dW vs SymPy (1/n)(P^T 1)((u - u_bar 1)^T P), u from the fast path, 2 samples (rel. diff.)",
            _relative(g_raw[:checked], predicted),
            0.0,
            _tol(n * d),
        ),
        Evidence("largest numerical rank of the per-sample dL/dW", rank, 1, 0.0),
        Evidence(f"centred encodings: {size_name}", _p5_gradients(config(True), seed, batch)[4], 0.0, _tol(n * d)),
    ]
    control = Control("uncentred encodings", Evidence(size_name, raw_size, 0.0, _tol(n * d)))
    return evidence, control


# ---------------------------------------------------------------- P6


def _expected_copy_gradient(m: int, agreement: np.ndarray) -> np.ndarray:
    """P6's exact SymPy expectation evaluated at a float64 agreement matrix $P(x_i = x_j)$."""
    return np.array(symbolic.expected_copy_gradient(sp.Matrix(agreement), m), dtype=float)


def _copy_gradient_mean(config, tokens, masks):
    params = init(jax.random.key(0), config)
    grads = score_gradients(params, config, "reconstruction", tokens, masks)
    mean = np.asarray(grads.mean(axis=0))
    bound = Z * np.asarray(grads.std(axis=0)).max() / math.sqrt(tokens.shape[0])
    return mean, bound


def measure_p6(full: bool, seed: int):
    """P6: reconstruction gradients span all n(n-1) non-gauge directions; their mean follows the lag agreement."""
    n = 16 if full else 6
    config = ModelConfig(n=n, d=4, vocab=3, mask_rate=2 / n)
    batch = n * n
    params, tokens, _, masks = _batch(config, seed, batch)
    grads = score_gradients(params, config, "reconstruction", tokens, masks)
    rank_span = span(grads.reshape(batch, -1))
    fast = dense_gradients(uniform_score_factors(params, config, "reconstruction", tokens, masks))

    copy = ModelConfig(n=n, d=4, vocab=3, mask_rate=2 / n, reconstruction="copy")
    samples, rho = (160000 if full else 40000), 0.6
    k = jax.random.split(jax.random.key(seed + 1000), 3)
    masks_mc = sample_masks(k[0], samples, n, copy.mask_rate)
    lags = np.arange(n)[:, None] - np.arange(n)[None, :]
    expected = _expected_copy_gradient(copy.masked_count, lag_agreement(lags, copy.vocab, rho))
    sticky_mean, bound = _copy_gradient_mean(copy, markov_tokens(k[1], samples, n, copy.vocab, rho), masks_mc)
    iid_mean, iid_bound = _copy_gradient_mean(copy, iid_tokens(k[2], samples, n, copy.vocab), masks_mc)
    evidence = [
        Evidence(
            f"rank of the span of {batch} per-sample dL_rec/dS (tol {rank_span.tolerance:.1e})",
            rank_span.rank,
            n * (n - 1),
            0.0,
        ),
        Evidence(
            "row-wise closed form at uniform attention (fast path) vs autodiff (rel. diff.)",
            _relative(fast, grads),
            0.0,
            _tol(n * 8),
        ),
        Evidence(
            f"copy readout, sticky chain rho={rho}: mean of {samples} gradients vs exact SymPy expectation (max abs.)",
            float(np.abs(sticky_mean - expected).max()),
            0.0,
            bound,
        ),
    ]
    control = Control(
        "i.i.d. tokens instead of the sticky chain",
        Evidence(
            "Monte Carlo mean vs the sticky-chain expectation (max abs.)",
            float(np.abs(iid_mean - expected).max()),
            0.0,
            iid_bound,
        ),
    )
    return evidence, control


# ---------------------------------------------------------------- P7


def _p7_setup(config, seed):
    params, tokens, labels, _ = _batch(config, seed, 1)
    x, y = tokens[0], labels[0]
    loss = shared_score_loss(params, config, "classification", tokens[:1], labels[:1])
    rng = np.random.default_rng(seed)
    basis = np.asarray(circulant(config.n, dtype=F64))
    c = np.tensordot(rng.standard_normal(config.n), basis, axes=1)
    unit = jnp.asarray(c / np.linalg.norm(c))
    coefficients = np.asarray(taylor_coefficients(loss, jnp.zeros((config.n, config.n), F64), unit, 2))
    return params, x, y, unit, coefficients


def measure_p7(full: bool, seed: int):
    """P7: with a tanh MLP the circulant family is first-order blind but curved; without it, flat."""
    n = 16 if full else 6
    config = ModelConfig(n=n, d=3, vocab=4, mlp=4)
    params, x, y, unit, coefficients = _p7_setup(config, seed)
    base = abs(float(coefficients[0]))

    values = sp.Matrix(np.asarray(embed(params, x) @ params.value))
    m = params.mlp
    phi = symbolic.tanh_mlp(*(sp.Matrix(np.atleast_2d(np.asarray(t))) for t in (m.w1, m.b1, m.w2, m.b2)))
    second = symbolic.tanh_mlp_second(*(sp.Matrix(np.atleast_2d(np.asarray(t))) for t in (m.w1, m.b1, m.w2)))
    closed = float(
        symbolic.circulant_second_order(
            values,
            sp.Matrix(np.asarray(unit)),
            sp.Matrix(np.asarray(params.classifier.weight)),
            sp.Matrix(np.atleast_2d(np.asarray(params.classifier.bias))),
            int(y),
            phi=phi,
            phi_second=second,
        )
    )

    def outputs(s):
        return pool(config, features_at_scores(params, config, x, s))

    def loss_of_outputs(z):  # z is already pooled: one feature row pools to itself
        return classification_loss_at_features(params, config, z[None, :], y)

    split = gauss_newton_split(outputs, loss_of_outputs, jnp.zeros((n, n), F64), unit[None])
    hessian_coefficient = 0.5 * float(split.total[0, 0])
    tiny = _tol(n * n) * base
    evidence = [
        Evidence(
            "first-order Taylor coefficient along a unit circulant direction (jet, rel. to L)",
            abs(float(coefficients[1])) / base,
            0.0,
            _tol(n * n),
        ),
        Evidence(
            "second-order coefficient, jet vs SymPy closed form (rel. diff.)",
            abs(float(coefficients[2]) - closed) / abs(closed),
            0.0,
            _tol(n * n),
        ),
        Evidence(
            "second-order coefficient, jet vs (1/2) restricted Hessian (rel. diff.)",
            abs(float(coefficients[2]) - hessian_coefficient) / abs(hessian_coefficient),
            0.0,
            _tol(n * n),
        ),
        Evidence("|second-order coefficient| (jet): non-zero", abs(float(coefficients[2])), 0.0, tiny, "greater"),
    ]
    flat = _p7_setup(ModelConfig(n=n, d=3, vocab=4), seed)[4]
    control = Control(
        "no MLP (no position-wise nonlinearity)",
        Evidence(
            "|second-order coefficient| (jet): non-zero",
            abs(float(flat[2])),
            0.0,
            _tol(n * n) * abs(float(flat[0])),
            "greater",
        ),
    )
    return evidence, control


# ---------------------------------------------------------------- P8


def _p8_reconstruction_step(config, params, agreement):
    r"""Exact expected query-key gradient $P^\top E[\partial L_{rec}/\partial S] P$ (copy readout)."""
    p = np.asarray(positions(params))
    return p.T @ _expected_copy_gradient(config.masked_count, agreement) @ p


def _p8_label_step(config, seed, samples):
    """Label and reconstruction query-key gradients of one sampled batch, and the label step's relative size."""
    params, tokens, labels, masks = _batch(config, seed, samples, rho=0.8)
    g_cls = query_key_gradients(params, config, "classification", tokens, labels)
    g_rec = query_key_gradients(params, config, "reconstruction", tokens, masks)
    return params, g_rec, float(jnp.abs(g_cls).max()) / float(jnp.abs(g_rec).max())


def measure_p8(full: bool, seed: int):
    """P8: positional block: label supervision's first step is zero; reconstruction's follows the lag agreement."""
    n, d = (64, 16) if full else (16, 8)
    rho, samples = 0.8, 4000

    def config(centred):
        return ModelConfig(n=n, d=d, vocab=4, scores="position", centred=centred, reconstruction="copy")

    params, g_rec, label_size = _p8_label_step(config(True), seed, samples)
    lags = np.arange(n)[:, None] - np.arange(n)[None, :]
    sticky = _p8_reconstruction_step(config(True), params, lag_agreement(lags, 4, rho))
    iid = _p8_reconstruction_step(config(True), params, lag_agreement(lags, 4, 0.0))
    bound = Z * float(jnp.std(g_rec, axis=0).max()) / math.sqrt(samples)
    p = positions(params)

    def step_cosine(gradient):
        return -float(first_step_cosine(jnp.asarray(gradient), p))

    label_name = "max |dL_cls/dW| / max |dL_rec/dW| over samples"
    evidence = [
        Evidence(f"centred sinusoidal: {label_name}", label_size, 0.0, _tol(n * d)),
        Evidence(
            f"mean dL_rec/dW of {samples} sticky-chain samples vs P^T E[dL_rec/dS] P, exact SymPy E (max abs.)",
            float(np.abs(np.asarray(g_rec.mean(axis=0)) - sticky).max()),
            0.0,
            bound,
        ),
        Evidence(
            f"cosine of the expected reconstruction step with the positional identity: rho={rho} "
            f"({step_cosine(sticky):+.3f}) minus i.i.d. ({step_cosine(iid):+.3f})",
            step_cosine(sticky) - step_cosine(iid),
            0.0,
            _tol(n * d),
            "greater",
        ),
    ]
    control = Control(
        "uncentred sinusoidal encodings",
        Evidence(label_name, _p8_label_step(config(False), seed, samples)[2], 0.0, _tol(n * d)),
    )
    return evidence, control


CLAIMS = (
    Claim(
        "P1",
        "softmax Jacobian is diag(a) - a a^T, rank n-1 at uniform attention; row-constant directions are invisible",
        "row softmax; any loss of the attention",
        measure_p1,
    ),
    Claim(
        "P2",
        "label loss depends on S only through the column masses m = A^T 1",
        "mean pooling, no MLP (a residual is allowed)",
        measure_p2,
    ),
    Claim(
        "P3",
        "circulant scores leave the label loss exactly unchanged: flat to every order",
        "mean pooling, no MLP",
        measure_p3,
    ),
    Claim(
        "P4",
        "at uniform attention label gradients span only U (dim n-1); bands are visible only at O(1/n)",
        "uniform attention, mean pooling, any position-wise MLP, no residual with the MLP",
        measure_p4,
    ),
    Claim(
        "P5",
        "position-only scores: dL/dW at W=0 is rank one and vanishes for centred encodings",
        "S = P W P^T, W = 0, mean pooling, no MLP",
        measure_p5,
    ),
    Claim(
        "P6",
        "reconstruction gradients span all n(n-1) non-gauge directions; their mean follows the lag agreement",
        "uniform attention; copy readout and exactly m masked positions for the expectation",
        measure_p6,
    ),
    Claim(
        "P7",
        "with a tanh MLP the circulant family is first-order blind but has non-zero curvature",
        "uniform attention, mean pooling, no residual",
        measure_p7,
    ),
    Claim(
        "P8",
        "positional block: label supervision's first step is zero; reconstruction's turns towards the positional "
        "identity with the lag correlation",
        "S = P W P^T, W = 0, centred sinusoidal encodings, copy readout, sticky chain",
        measure_p8,
    ),
)
