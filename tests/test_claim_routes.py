"""Every evidence line of every claim can fail: each is fed a wrong ingredient on its own route.

For each line of ``blindspot.claims``, at a small size: the line passes as it is, and fails once one
ingredient of its own route is wrong (a wrong softmax, a perturbed SymPy formula, a fast path that
forgets a step, data without the lag correlation, or a model with a hypothesis broken). A line that
cannot be made to fail proves nothing, and a mutation that only breaks the claim as a whole would not
show it for each line.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from blindspot import (
    claim_p1_softmax,
    claim_p2_column_mass,
    claim_p3_circulant,
    claim_p4_blind_subspace,
    claim_p5_positional,
    claim_p6_reconstruction,
    claim_p7_curvature,
    claim_p8_parameter_alignment,
    claim_p10_random_init,
    claim_p11_mlp_order,
    claim_p12_scaling,
    claim_p13_parameter_space,
    claims,
    numpy_model,
    symbolic,
)
from blindspot.data import iid_tokens
from blindspot.evidence import ROUTES

SMALL = {
    claim_p1_softmax: claim_p1_softmax.Settings(n=4, batch=2),
    claim_p2_column_mass: claim_p2_column_mass.Settings(n=4, batch=2),
    claim_p3_circulant: claim_p3_circulant.Settings(n=4, batch=2),
    claim_p4_blind_subspace: claim_p4_blind_subspace.Settings(n_dense=4, n_fast=8),
    claim_p5_positional: claim_p5_positional.Settings(n=4, d=2, batch=2),
    claim_p6_reconstruction: claim_p6_reconstruction.Settings(n=4, samples=4000),
    claim_p7_curvature: claim_p7_curvature.Settings(n=4),
    # n = 16, d = 8 is the smallest size where the rise of P8 is large; few samples, one chain
    claim_p8_parameter_alignment: claim_p8_parameter_alignment.Settings(n=16, d=8, samples=2000, rhos_sampled=(0.8,)),
    claim_p10_random_init: claim_p10_random_init.Settings(n=4, batch=8),
    claim_p11_mlp_order: claim_p11_mlp_order.Settings(n=4, batch=4),
    claim_p12_scaling: claim_p12_scaling.Settings(
        sizes=(6, 12), samples=5000, enumerated=(5,), label_n=6, label_batch=8
    ),
    claim_p13_parameter_space: claim_p13_parameter_space.Settings(n=8, d=4, batch=16, samples=5000),
}


# ---------------------------------------------------------------- wrong ingredients


def _jax_softmax_plus_one(s, axis=-1):
    """Softmax with an extra zero logit ("softmax + 1"): rows sum to less than 1, no row gauge."""
    e = jnp.exp(s)
    return e / (1.0 + e.sum(axis=axis, keepdims=True))


def _numpy_softmax_plus_one(s):
    e = np.exp(s)
    return e / (1.0 + e.sum(axis=-1, keepdims=True))


def _sympy_softmax_plus_one(s):
    rows = []
    for i in range(s.rows):
        e = [sp.exp(s[i, j]) for j in range(s.cols)]
        rows.append([x / (1 + sp.Add(*e)) for x in e])
    return sp.Matrix(rows)


def _wrong_jax_softmax(monkeypatch, module, name):
    """Patch ``jax.nn.softmax`` and replace ``module.name``, a jitted route, by a new jit of a new function.

    A new function has no cached trace, so it sees the wrong softmax; the module's own compiled programs
    keep the right one and are restored untouched afterwards.
    """
    monkeypatch.setattr(jax.nn, "softmax", _jax_softmax_plus_one)
    python_function = getattr(module, name).__wrapped__
    monkeypatch.setattr(module, name, jax.jit(lambda *args: python_function(*args), static_argnums=1))


def _uncentred_fast_path(module):
    """A column-factor fast path that forgets to centre u: adds a per-sample constant to w."""
    original = module.classification_column_factors

    def wrong(*args):
        w = original(*args)
        return w + w[:, :1]

    return wrong


def _uncentred_score_factors(module):
    """A factored fast path that forgets to centre the values: R (C + 1 c_0^T)^T, gauge components added."""
    original = module.uniform_score_factors

    def wrong(*args):
        factors = original(*args)
        return factors._replace(columns=factors.columns + factors.columns[:, :1, :])

    return wrong


def _row_weighted_score_factors(module):
    """A factored fast path whose rows are weighted by position: a wrong dL/do_i, row-dependent at every order."""
    original = module.uniform_score_factors

    def wrong(*args):
        factors = original(*args)
        weights = 1.0 + 0.1 * jnp.arange(factors.rows.shape[1], dtype=factors.rows.dtype)
        return factors._replace(rows=factors.rows * weights[None, :, None])

    return wrong


def _iid_markov_tokens(key, batch, n, vocab, rho):
    """Sampled data without the lag correlation, whatever rho says."""
    return iid_tokens(key, batch, n, vocab)


def _sticky_draws(rng, samples, n, vocab):
    """Numpy sticky-chain tokens (keep the previous token with probability 0.8), whatever the line asks for."""
    fresh = rng.integers(0, vocab, (samples, n), dtype=np.int32)
    keep = rng.random((samples, n)) < 0.8
    keep[:, 0] = False
    last = np.maximum.accumulate(np.where(keep, 0, np.arange(n)), axis=1)
    return np.take_along_axis(fresh, last, axis=1)


def _copy_gradients_counting_masked_keys(tokens, masks):
    """Numpy copy readout whose masked keys still show their token (MASK never matches in the model)."""
    n = tokens.shape[1]
    hits = masks[:, :, None] & (tokens[:, :, None] == tokens[:, None, :]) & ~np.eye(n, dtype=bool)
    w = -hits.astype(float) / masks.sum(axis=1)[:, None, None]
    return (w - w.mean(axis=2, keepdims=True)) / n


def _perturbed_band_fraction(original):
    def wrong(n=None, k=None):
        return original(n, k) * (1 + sp.Rational(1, 1000))

    return wrong


def _softmax_vjp_without_centring(expected_hits, mask):
    """The copy readout's backward pass without the softmax's row-mean subtraction."""
    n = mask.shape[0]
    return -(mask[:, None] * expected_hits) / mask.sum() / n


MUTATIONS = {
    # P1
    ("P1", "sympy_identities"): lambda mp, m: mp.setattr(symbolic, "row_softmax", _sympy_softmax_plus_one),
    ("P1", "autodiff_row_sums"): lambda mp, m: _wrong_jax_softmax(mp, m, "_score_gradients"),
    ("P1", "numpy_gauge_shift"): lambda mp, m: mp.setattr(numpy_model, "softmax_rows", _numpy_softmax_plus_one),
    # P2
    ("P2", "autodiff_separable"): "pooling=last",
    ("P2", "numpy_mass_preserving_change"): lambda mp, m: mp.setattr(
        numpy_model, "softmax_rows", _numpy_softmax_plus_one
    ),
    ("P2", "sympy_column_mass_form"): lambda mp, m: mp.setattr(
        symbolic, "column_masses", lambda a: a * sp.ones(a.rows, 1)
    ),
    # P3
    ("P3", "numpy_loss_change"): lambda mp, m: mp.setattr(numpy_model, "softmax_rows", _numpy_softmax_plus_one),
    ("P3", "jet_coefficients"): "mlp=4",
    ("P3", "rational_column_masses"): lambda mp, m: mp.setattr(
        m, "_rational_softmax_row", lambda w: [x / (1 + sum(w)) for x in w]
    ),
    # P4
    ("P4", "autodiff_span_distance"): "pooling=last",
    ("P4", "fast_path_band_fractions"): lambda mp, m: mp.setattr(
        m, "classification_column_factors", _uncentred_fast_path(m)
    ),
    ("P4", "exact_band_fractions"): lambda mp, m: mp.setattr(
        symbolic, "band_visible_fraction", _perturbed_band_fraction(symbolic.band_visible_fraction)
    ),
    # P5
    ("P5", "autodiff_query_key"): "pooling=last",
    ("P5", "fast_path_query_key"): "pooling=last",
    # P6
    ("P6", "autodiff_span"): lambda mp, m: _wrong_jax_softmax(mp, m, "_masked_score_gradients"),
    ("P6", "fast_path_span"): lambda mp, m: mp.setattr(m, "uniform_score_factors", _uncentred_score_factors(m)),
    ("P6", "monte_carlo_mean"): lambda mp, m: mp.setattr(
        symbolic, "expected_copy_gradient", lambda agreement, masked: symbolic.design_copy_gradient(agreement)
    ),
    ("P6", "enumerated_mean"): lambda mp, m: mp.setattr(m, "_copy_score_gradient", _softmax_vjp_without_centring),
    # P7
    ("P7", "jet_coefficients"): "residual=True",
    ("P7", "curvature_split"): "residual=True",
    ("P7", "nested_jvp_curvature"): "mlp=0",
    # P8
    ("P8", "autodiff_label_step"): "centred=False",
    ("P8", "sympy_cosine_rise"): lambda mp, m: mp.setattr(
        symbolic, "expected_copy_gradient", lambda agreement, masked: symbolic.design_copy_gradient(agreement)
    ),
    ("P8", "monte_carlo_cosine_rise"): lambda mp, m: mp.setattr(m, "markov_tokens", _iid_markov_tokens),
    # P11: a first-layer bias brings a second-order term that the closed form does not have
    ("P11", "autodiff_orders"): "bias=1",
    ("P11", "fast_path_orders"): lambda mp, m: mp.setattr(m, "uniform_score_factors", _row_weighted_score_factors(m)),
    # P12
    ("P12", "enumerated_moments"): lambda mp, m: mp.setattr(m, "_copy_gradients", _copy_gradients_counting_masked_keys),
    ("P12", "monte_carlo_slopes"): lambda mp, m: mp.setattr(m, "draw_tokens", _sticky_draws),
    ("P12", "label_end_profile"): lambda mp, m: _wrong_jax_softmax(mp, m, "_label_gradients"),
    # P13
    ("P13", "autodiff_label"): "pooling=last",
    ("P13", "monte_carlo_reconstruction"): lambda mp, m: mp.setattr(m, "draw_tokens", _sticky_draws),
    # P10
    ("P10", "autodiff_first_order"): "mlp=6",
    ("P10", "finite_difference_first_order"): "mlp=6",
    ("P10", "sympy_reconstruction_signal"): lambda mp, m: mp.setattr(
        symbolic, "expected_copy_gradient", lambda agreement, masked: sp.ones(agreement.rows, agreement.cols)
    ),
}
"""(claim id, line name) -> a wrong ingredient: a monkeypatch, or "field=value" breaking a hypothesis in Settings."""

LINES = [(module, line) for module in claims.MODULES for line in module.LINES]
TOO_SMALL_TO_PASS = {("P8", "monte_carlo_cosine_rise")}
"""Lines that need more than a small size to clear their margin: here they only show that they can fail.

P8's Monte Carlo line needs 60000 samples per chain; verify's default run (``test_verify.py``) shows it passing.
"""


def _key(module, line):
    return module.CLAIM.id, line.__name__


def _documented_route(line) -> str:
    """The route a line's docstring names: 'Route "<name>": ...'."""
    match = re.match(r'Route "([a-z-]+)"', line.__doc__)
    assert match, line.__name__
    return match.group(1)


def _broken(settings, change: str):
    field, value = change.split("=")
    value = {"True": True, "False": False}.get(value, int(value) if value.isdigit() else value)
    return settings._replace(**{field: value})


def test_every_line_has_a_mutation_and_each_claim_distinct_known_routes():
    assert set(MUTATIONS) == {_key(m, line) for m, line in LINES}
    for module in claims.MODULES:
        routes = [_documented_route(line) for line in module.LINES]
        assert len(routes) >= 2 and len(set(routes)) == len(routes), module.CLAIM.id
        assert set(routes) <= ROUTES.keys(), module.CLAIM.id
        assert all(route in module.measure.__doc__ for route in routes), module.CLAIM.id


@pytest.mark.parametrize(("module", "line"), LINES, ids=["-".join(_key(m, line)) for m, line in LINES])
def test_each_line_passes_and_fails_once_its_route_is_fed_a_wrong_ingredient(monkeypatch, module, line):
    key = _key(module, line)
    if key not in TOO_SMALL_TO_PASS:
        good = line(SMALL[module], 0)
        assert good.passed and good.route == _documented_route(line), good
    mutation = MUTATIONS[key]
    if isinstance(mutation, str):
        bad = line(_broken(SMALL[module], mutation), 0)
    else:
        mutation(monkeypatch, module)
        bad = line(SMALL[module], 0)
    assert not bad.passed and bad.route == _documented_route(line), bad
