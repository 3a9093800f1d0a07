r"""Claim P7: with a tanh MLP the circulant family is first-order blind but curved, and the curvature is functional.

Along a unit circulant $C$ at uniform attention (mean pooling, no residual), $L(tC)$ has $c_1 = 0$ and
$c_2 = \frac1{2n}\sum_i \phi''(\bar v)[\dot o_i, \dot o_i]\cdot\nabla_z L$,
$\dot o_i = \frac1n\sum_j (C_{ij} - \bar C_i) v_j$
(``symbolic.circulant_second_order``, the theory); the pooled output does not move ($\dot z = 0$), so the
Gauss-Newton part of the Hessian vanishes on the whole circulant family and the functional part is all
of it. Three lines, each a route of its own (``measure`` lists them); the control removes the MLP.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from blindspot import symbolic
from blindspot.claim_support import F64, rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.curvature import gauss_newton_split
from blindspot.directions import circulant
from blindspot.evidence import Claim, Control, Evidence
from blindspot.model import Params, embed, features_at_scores, pool
from blindspot.objectives import classification_loss_at_features, shared_score_loss
from blindspot.taylor import taylor_coefficients, taylor_coefficients_nested_jvp


class Settings(NamedTuple):
    """Sequence length, MLP width (the hypothesis: > 0) and residual (the hypothesis: none)."""

    n: int
    mlp: int = 4
    residual: bool = False


DEFAULT = Settings(n=6)
FULL = Settings(n=16)


class _Setup(NamedTuple):
    """One sequence, its label, and a random unit circulant direction with its basis coordinates."""

    params: Params
    config: ModelConfig
    tokens: jax.Array
    labels: jax.Array
    coefficients: np.ndarray
    basis: np.ndarray
    direction: np.ndarray


def _setup(settings: Settings, seed: int) -> _Setup:
    config = ModelConfig(n=settings.n, d=3, vocab=4, mlp=settings.mlp, residual=settings.residual)
    params, tokens, labels, _ = sample_batch(config, seed, 1)
    coefficients = np.random.default_rng(seed).standard_normal(settings.n)
    coefficients /= np.linalg.norm(coefficients)
    basis = np.asarray(circulant(settings.n, dtype=F64))  # orthonormal
    return _Setup(params, config, tokens, labels, coefficients, basis, np.tensordot(coefficients, basis, axes=1))


def _closed_form(setup: _Setup) -> float:
    """Theory: SymPy's second-order coefficient at the model's float64 parameters."""
    params, m = setup.params, setup.params.mlp

    def matrix(t):
        return sp.Matrix(np.atleast_2d(np.asarray(t)))

    return float(
        symbolic.circulant_second_order(
            matrix(embed(params, setup.tokens[0]) @ params.value),
            matrix(setup.direction),
            matrix(params.classifier.weight),
            matrix(params.classifier.bias),
            int(setup.labels[0]),
            phi=symbolic.tanh_mlp(*(matrix(t) for t in (m.w1, m.b1, m.w2, m.b2))),
            phi_second=symbolic.tanh_mlp_second(*(matrix(t) for t in (m.w1, m.b1, m.w2))),
        )
    )


@partial(jax.jit, static_argnums=(1, 5))
def _coefficients(params, config, tokens, labels, direction, nested):
    """Coefficients $c_0, c_1, c_2$ of $L(tC)$ by jet (``nested=False``) or by nested JVPs."""
    loss = shared_score_loss(params, config, "classification", tokens, labels)
    method = taylor_coefficients_nested_jvp if nested else taylor_coefficients
    return method(loss, jnp.zeros_like(direction), direction, 2)


@partial(jax.jit, static_argnums=1)
def _split(params, config, tokens, labels, basis):
    x, y = tokens[0], labels[0]

    def pooled(s):
        return pool(config, features_at_scores(params, config, x, s))

    def loss_of_pooled(z):  # z is already pooled: one feature row pools to itself
        return classification_loss_at_features(params, config, z[None, :], y)

    return gauss_newton_split(pooled, loss_of_pooled, jnp.zeros_like(basis[0]), basis)


def jet_coefficients(settings: Settings, seed: int) -> Evidence:
    r"""Route "taylor-mode": $\max(|c_1| / L, |c_2 - \text{closed form}| / |\text{closed form}|)$, $c_k$ by jet."""
    setup = _setup(settings, seed)
    c = np.asarray(_coefficients(*setup[:4], jnp.asarray(setup.direction), False))
    closed = _closed_form(setup)
    return Evidence(
        f"Taylor coefficients of L(tC), unit circulant C (jet), n={settings.n}: max(|c_1| / L, "
        "|c_2 - SymPy closed form| / |closed form|)",
        "taylor-mode",
        max(abs(c[1]) / abs(c[0]), abs(c[2] - closed) / abs(closed)),
        0.0,
        rounding(settings.n * settings.n),
    )


def curvature_split(settings: Settings, seed: int) -> Evidence:
    r"""Route "curvature": Hessian on the whole circulant family from HVPs, split into Gauss-Newton and functional.

    Measures $\max(\max|GN|, \max|F - T|, |\frac12 a^\top T a - \text{closed form}|) / |\text{closed form}|$
    with $T$, $GN$, $F$ the restricted total, Gauss-Newton and functional parts ($n \times n$) and $a$ the
    direction's coordinates in the orthonormal circulant basis.
    """
    setup = _setup(settings, seed)
    total, gauss_newton, functional = (np.asarray(t) for t in _split(*setup[:4], jnp.asarray(setup.basis)))
    closed = _closed_form(setup)
    worst = max(
        np.abs(gauss_newton).max(),
        np.abs(functional - total).max(),
        abs(0.5 * setup.coefficients @ total @ setup.coefficients - closed),
    )
    return Evidence(
        f"Hessian on the {settings.n} circulant directions (HVPs): max(|Gauss-Newton|, |functional - total|, "
        "|(1/2) a^T H a - SymPy closed form|) / |closed form|",
        "curvature",
        float(worst / abs(closed)),
        0.0,
        rounding(settings.n * settings.n),
    )


def nested_jvp_curvature(settings: Settings, seed: int) -> Evidence:
    r"""Route "nested-jvp": $|c_2|$ by nested forward-mode JVPs, relative to $L$; the theory says clearly non-zero."""
    setup = _setup(settings, seed)
    c = np.asarray(_coefficients(*setup[:4], jnp.asarray(setup.direction), True))
    return Evidence(
        f"|c_2| / L of L(tC), unit circulant C, nested JVPs, n={settings.n}",
        "nested-jvp",
        float(abs(c[2]) / abs(c[0])),
        0.0,
        rounding(settings.n * settings.n),
        "greater",
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the nested-JVP line without the MLP: $c_2$ drops to rounding (P3: every order vanishes)."""
    return Control("no MLP (no position-wise nonlinearity)", nested_jvp_curvature(settings._replace(mlp=0), seed))


LINES = (jet_coefficients, curvature_split, nested_jvp_curvature)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P7 by three routes that share nothing but the model's definition (and, for two, the theory).

    - taylor-mode (``jet_coefficients``): jet gives $c_1 = 0$ and $c_2$ equal to SymPy's closed form.
    - curvature (``curvature_split``): the Hessian restricted to the circulant family, from HVPs, has a zero
      Gauss-Newton part, a functional part equal to the total, and the closed form along the direction.
    - nested-jvp (``nested_jvp_curvature``): $|c_2|$ by nested JVPs exceeds ``CONTROL_MARGIN`` times the
      rounding level of $L$: non-zero curvature, not rounding noise.

    Control: without the MLP $|c_2|$ is at the rounding level.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P7",
    "with a tanh MLP the circulant family is first-order blind but has non-zero, purely functional curvature",
    "uniform attention, mean pooling, no residual",
    measure,
)
