r"""Claim P4: at uniform attention label gradients span only $U = \{\mathbf 1 w^\top : w^\top \mathbf 1 = 0\}$.

The band $B_k$ then has visible fraction $\cos^2(B_k, U) = k(n - 2k)/(n^2(n - k))$ ($2k \le n$), $(2k - n)/n^2$
otherwise. Three lines, each a route of its own (``measure`` lists them); the control adds a residual.
"""

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import symbolic
from blindspot.claim_support import F64, rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.directions import factor_statistics, family
from blindspot.evidence import Claim, Control, Evidence
from blindspot.fast_paths import classification_column_factors
from blindspot.model import scores
from blindspot.objectives import classification_loss_at_scores
from blindspot.subspaces import span, visible_fraction
from blindspot.tolerances import eps, rank_tolerance


class Settings(NamedTuple):
    """Length of the dense autodiff line and of the fast-path and exact lines; the model's hypotheses."""

    n_dense: int
    n_fast: int
    mlp: int = 6
    residual: bool = False
    pooling: str = "mean"


DEFAULT = Settings(n_dense=8, n_fast=32)
FULL = Settings(n_dense=16, n_fast=256)


def _config(settings: Settings, n: int) -> ModelConfig:
    """W = 0 (uniform attention) and a tanh MLP: P4 holds for any position-wise map."""
    return ModelConfig(n=n, d=4, vocab=4, mlp=settings.mlp, residual=settings.residual, pooling=settings.pooling)


def _bands(n: int) -> tuple[int, ...]:
    return (1, 2, n // 4, n // 2, n - 1)


@partial(jax.jit, static_argnums=1)
def _label_score_gradients(params, config, tokens, labels):
    def one(x, y):
        return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, scores(params, config, x))

    return jax.vmap(one)(tokens, labels)


def _column_sum_basis(n: int) -> np.ndarray:
    r"""Orthonormal basis of U, rows $\mathrm{vec}(\mathbf 1 q^\top)/\sqrt n$, $q \perp \mathbf 1$ (numpy SVD)."""
    q = np.linalg.svd(np.eye(n) - 1.0 / n)[0][:, : n - 1]
    return np.einsum("i,jl->lij", np.ones(n), q).reshape(n - 1, n * n) / math.sqrt(n)


def autodiff_span_distance(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": $\lVert \Pi_G - \Pi_U \rVert_F^2$, G the span of $3n$ per-sample $\partial L/\partial S$.

    $\lVert \Pi_G - \Pi_U \rVert_F^2 = \dim G + \dim U - 2\lVert Q_G Q_U^\top\rVert_F^2$, zero exactly when $G = U$;
    G from a numpy SVD with rank tolerance $\epsilon \max(b, n^2) \sigma_1$.
    """
    n = settings.n_dense
    config = _config(settings, n)
    params, tokens, labels, _ = sample_batch(config, seed, 3 * n)
    stack = np.asarray(_label_score_gradients(params, config, tokens, labels)).reshape(3 * n, n * n)
    _, singular, vt = np.linalg.svd(stack, full_matrices=False)
    rank = int((singular > rank_tolerance(singular[0], stack.shape, F64)).sum())
    overlap = np.sum((vt[:rank] @ _column_sum_basis(n).T) ** 2)
    return Evidence(
        f"||P_G - P_U||_F^2, G the span of {3 * n} per-sample dL/dS (rank {rank}), tanh MLP, n={n}",
        "autodiff",
        float(rank + (n - 1) - 2 * overlap),
        0.0,
        rounding(n * n),
    )


def fast_path_band_fractions(settings: Settings, seed: int) -> Evidence:
    r"""Route "fast-path": visible fraction of $B_k$ in the span of rank-one fast-path gradients vs the closed form.

    Gradients $\mathbf 1 w_b^\top$ from ``classification_column_factors``, their span from the $b \times n$ factors
    $\sqrt n\, w_b$, band coordinates from ``factor_statistics`` (no $b \times n \times n$ stack); the largest
    relative difference to SymPy's closed form over $k = 1, 2, n/4, n/2, n - 1$.
    """
    n = settings.n_fast
    config = _config(settings, n)
    params, tokens, labels, _ = sample_batch(config, seed, 3 * n)
    w = classification_column_factors(params, config, tokens, labels)
    big_span = span(math.sqrt(n) * w, size=n * n)
    band_stats = factor_statistics(jnp.ones((*w.shape, 1), F64), w[..., None])
    worst = 0.0
    for k in _bands(n):
        whole_band = family(f"band_{k}", n, part="whole")  # P4's closed form is for the whole direction B_k
        measured = visible_fraction(big_span, whole_band.coordinates(band_stats)).fraction
        closed = float(symbolic.band_visible_fraction(n, k))
        worst = max(worst, abs(measured - closed) / max(closed, eps(F64)))
    return Evidence(
        f"band visible fraction in the fast-path gradient span vs SymPy closed form, n={n}, k = 1, 2, n/4, n/2, n-1 "
        "(max rel. diff.)",
        "fast-path",
        worst,
        0.0,
        rounding(n * n),
    )


def exact_band_fractions(settings: Settings, seed: int) -> Evidence:
    r"""Route "exact-rational": $\cos^2(B_k, U)$ from its definition in integers vs the closed form (``seed`` unused).

    ``symbolic.band_visible_fraction_direct`` counts the column sums of $B_k$; the same $n$, $k$ as the
    fast-path line; the largest absolute difference, exact.
    """
    n = settings.n_fast
    worst = max(
        abs(symbolic.band_visible_fraction_direct(n, k) - symbolic.band_visible_fraction(n, k)) for k in _bands(n)
    )
    return Evidence(
        f"cos^2(B_k, U) from the definition (integers) minus the closed form, n={n}, same k",
        "exact-rational",
        float(worst),
        0.0,
        0.0,
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the autodiff line with a residual together with the tanh MLP."""
    return Control(
        "a residual together with the tanh MLP", autodiff_span_distance(settings._replace(residual=True), seed)
    )


LINES = (autodiff_span_distance, fast_path_band_fractions, exact_band_fractions)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P4 by three routes that share nothing but the model's definition.

    - autodiff (``autodiff_span_distance``): the span of the JAX model's per-sample $\partial L/\partial S$ is exactly
      U (projector distance 0), with a tanh MLP.
    - fast-path (``fast_path_band_fractions``): band visible fractions measured in the span of the closed-form
      rank-one gradients, at larger $n$, equal SymPy's closed form.
    - exact-rational (``exact_band_fractions``): the closed form equals $\cos^2(B_k, U)$ computed from the
      definition in integers, at the same $n$ and $k$.

    Control: a residual with the MLP makes the autodiff span larger than U.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P4",
    "at uniform attention label gradients span only U (dim n-1); bands are visible only at O(1/n)",
    "uniform attention, mean pooling, any position-wise MLP, no residual with the MLP",
    measure,
)
