r"""Claim P10: near uniform attention the label gradient along the circulants is first order in the score scale.

Plain model (mean pooling, no MLP), scores $\sigma \tilde S_b$ with $\tilde S_b$ the scores of a random
query-key matrix at unit scale. Along the zero-sum circulants (the circulant family's non-gauge part,
orthogonal to the gauge and to U) the label gradient is $\sigma \kappa_b + O(\sigma^2)$ with
$\kappa_b = \frac1n \tilde S^c_b \circ \mathbf 1 (u_b - \bar u_b \mathbf 1)^\top$
(``derivations/p10_random_init.md``): signal and the root of the noise both scale with $\sigma$, so the
detectability $B^*$ tends to a finite limit while reconstruction's signal is of order one at $\sigma = 0$.
Three lines, each a route of its own (``measure`` lists them); the control adds a tanh MLP.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from blindspot import symbolic
from blindspot.claim_support import F64, circulant_profile, rounding, sample_batch, uniform_u
from blindspot.config import ModelConfig
from blindspot.data import lag_agreement
from blindspot.detectability import estimate, moments
from blindspot.evidence import Claim, Control, Evidence
from blindspot.model import query_key_matrix, scores_from_query_key
from blindspot.objectives import classification_loss_at_scores
from blindspot.tolerances import eps


class Settings(NamedTuple):
    """Sequence length, number of sequences, MLP width (0: none, the hypothesis) and the chain's stickiness."""

    n: int
    batch: int
    mlp: int = 0
    rho: float = 0.7


DEFAULT = Settings(n=8, batch=64)
FULL = Settings(n=32, batch=256)
STEP = eps(F64) ** (1 / 3)
r"""Central-difference step $h = \epsilon^{1/3}$: truncation $O(h^2)$ and rounding $O(\epsilon / h)$ balance."""


def _config(settings: Settings) -> ModelConfig:
    r"""Content+position scores; ``qk_init="random"`` at unit scale gives the direction $\tilde S$."""
    return ModelConfig(n=settings.n, d=4, vocab=4, mlp=settings.mlp, qk_init="random", qk_init_scale=1.0)


def closed_form(unit_scores, u) -> np.ndarray:
    r"""$\kappa_b = \frac1n \tilde S^c_b \circ \mathbf 1 (u_b - \bar u_b \mathbf 1)^\top$ (P10), numpy."""
    s = np.asarray(unit_scores)
    centred = s - s.mean(axis=-1, keepdims=True)
    return centred * (u - u.mean(axis=-1, keepdims=True))[:, None, :] / s.shape[-1]


def _setup(settings: Settings, seed: int):
    r"""Return the flat (W = 0) parameters, the batch, the unit scores $\tilde S_b$ and the closed-form profiles."""
    config = _config(settings)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch, rho=settings.rho)
    w = query_key_matrix(params)
    unit = jax.vmap(lambda x: scores_from_query_key(w, params, config, x))(tokens)
    flat = params._replace(query_key=jnp.zeros_like(w))
    closed = circulant_profile(closed_form(unit, uniform_u(flat, config, tokens, labels)))
    return config, flat, tokens, labels, unit, closed


def _relative(measured, reference) -> float:
    r"""Max-norm relative difference $\max|a - b| / \max|b|$."""
    return float(np.abs(measured - reference).max() / np.abs(reference).max())


def _score_gradient(params, config, x, y, s):
    return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, s)


@partial(jax.jit, static_argnums=1)
def _first_order(params, config, tokens, labels, unit):
    r"""$\frac{d}{d\sigma} \partial L_b / \partial S\,(\sigma \tilde S_b)$ at 0: forward over reverse (an HVP)."""

    def one(x, y, s):
        return jax.jvp(lambda t: _score_gradient(params, config, x, y, t), (jnp.zeros_like(s),), (s,))[1]

    return jax.vmap(one)(tokens, labels, unit)


@partial(jax.jit, static_argnums=1)
def _central_difference(params, config, tokens, labels, unit):
    r"""$(\partial L_b/\partial S\,(h \tilde S_b) - \partial L_b/\partial S\,(-h \tilde S_b)) / 2h$, $h$ = ``STEP``."""

    def one(x, y, s):
        return (_score_gradient(params, config, x, y, STEP * s) - _score_gradient(params, config, x, y, -STEP * s)) / (
            2 * STEP
        )

    return jax.vmap(one)(tokens, labels, unit)


def autodiff_first_order(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": the JAX model's first-order coefficient (HVP) on the zero-sum circulants vs $\kappa_b$.

    The name reports the closed form's detectability limit $B^* = \mathrm{tr\,Cov}\,\kappa / \lVert E\kappa \rVert^2$
    and its signal per unit $\sigma$.
    """
    config, flat, tokens, labels, unit, closed = _setup(settings, seed)
    measured = circulant_profile(_first_order(flat, config, tokens, labels, unit))
    limit = estimate(moments(jnp.asarray(closed)))
    b_star = "none (no signal)" if limit.batch_star is None else f"{limit.batch_star:.3g}"
    return Evidence(
        f"first-order label gradient on the zero-sum circulants, HVP vs the closed form kappa, n={settings.n}, "
        f"{settings.batch} samples (limit B* = {b_star}, signal {limit.signal:.3g} sigma) (rel. diff.)",
        "autodiff",
        _relative(measured, closed),
        0.0,
        rounding(settings.n**2),
    )


def finite_difference_first_order(settings: Settings, seed: int) -> Evidence:
    r"""Route "finite-difference": central differences of JAX score gradients at $\pm h \tilde S_b$ vs $\kappa_b$.

    Error $O(h^2) + O(\epsilon / h) = O(\epsilon^{2/3})$: the rounding tolerance times $\epsilon^{-1/3}$.
    """
    config, flat, tokens, labels, unit, closed = _setup(settings, seed)
    measured = circulant_profile(_central_difference(flat, config, tokens, labels, unit))
    return Evidence(
        f"central difference at +-eps^(1/3) vs the closed form kappa, n={settings.n} (rel. diff.)",
        "finite-difference",
        _relative(measured, closed),
        0.0,
        rounding(settings.n**2) * eps(F64) ** (-1 / 3),
    )


def sympy_reconstruction_signal(settings: Settings, seed: int) -> Evidence:
    r"""Route "sympy": reconstruction's exact expected gradient at $\sigma = 0$ has a zero-sum circulant part.

    P6's exact $E[\partial L_{rec}/\partial S]$ (copy readout, sticky chain, $m$ masked positions): the norm of
    its projection on the zero-sum circulants relative to its own norm, order one where the label
    gradient's is exactly 0 (P3, P4). ``seed`` is unused: the expectation is exact.
    """
    n = settings.n
    masked = _config(settings).masked_count
    lags = np.arange(n)[:, None] - np.arange(n)[None, :]
    expected = np.array(
        symbolic.expected_copy_gradient(sp.Matrix(lag_agreement(lags, 4, settings.rho)), masked), dtype=float
    )
    ratio = float(np.linalg.norm(circulant_profile(expected[None])) / np.linalg.norm(expected))
    return Evidence(
        f"reconstruction at sigma = 0 (copy readout, exact E, rho={settings.rho}): ||zero-sum circulant part|| / ||E||",
        "sympy",
        ratio,
        0.0,
        rounding(n * n),
        "greater",
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the autodiff line with a tanh MLP after attention: the first-order gradient gains row-dependent terms."""
    return Control("a tanh MLP after attention", autodiff_first_order(settings._replace(mlp=6), seed))


LINES = (autodiff_first_order, finite_difference_first_order, sympy_reconstruction_signal)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P10 by three routes that share nothing but the model's definition.

    - autodiff (``autodiff_first_order``): forward-over-reverse JAX autodiff gives the first-order label
      gradient; on the zero-sum circulants it equals the numpy closed form $\kappa_b$ ($u_b$ from a numpy
      backward pass of the head).
    - finite-difference (``finite_difference_first_order``): central differences of the JAX gradients at
      $\pm \epsilon^{1/3}\tilde S_b$ give the same, without second-order autodiff.
    - sympy (``sympy_reconstruction_signal``): reconstruction's exact expectation (P6) has an order-one
      component on the same family at $\sigma = 0$.

    Control: a tanh MLP after attention makes the closed form miss the first-order gradient.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P10",
    "near uniform attention the label gradient on the zero-sum circulants is sigma kappa + O(sigma^2): signal and "
    "noise scale together (finite B* limit), while reconstruction's signal there is order one",
    "scores sigma S~, mean pooling, no MLP (a residual is allowed)",
    measure,
)
