r"""Claim P6: reconstruction gradients span all $n(n-1)$ non-gauge directions; their mean follows the lag agreement.

At uniform attention with the copy readout and $m$ masked positions drawn uniformly,
$E[\partial L_{rec}/\partial S] = -\frac{n-m}{n^2(n-1)}(\tilde\rho - \frac1n\tilde\rho\mathbf 1\mathbf 1^\top)$,
$\tilde\rho_{ij} = [j \ne i]P(x_i = x_j)$
(``symbolic.expected_copy_gradient``, the theory). Four lines, each a route of its own (``measure`` lists
them): two for the span, two for the mean. The control feeds i.i.d. tokens.
"""

import itertools
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp

from blindspot import symbolic
from blindspot.claim_support import Z, rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.data import iid_tokens, lag_agreement, markov_tokens, sample_masks
from blindspot.evidence import Claim, Control, Evidence
from blindspot.fast_paths import uniform_score_factors
from blindspot.jacobian import score_gradients
from blindspot.model import init
from blindspot.objectives import reconstruction_loss_at_scores, reconstruction_scores
from blindspot.subspaces import gram_from_factors, span_from_gram, visible_fraction
from blindspot.tolerances import rank_tolerance


class Settings(NamedTuple):
    """Sequence length, Monte Carlo samples, and the sticky chain's vocabulary and stickiness."""

    n: int
    samples: int
    vocab: int = 3
    rho: float = 0.8


DEFAULT = Settings(n=6, samples=40000)
FULL = Settings(n=16, samples=160000)


def _config(settings: Settings, readout: str = "cross_entropy") -> ModelConfig:
    """W = 0 (uniform attention), two masked positions."""
    return ModelConfig(n=settings.n, d=4, vocab=settings.vocab, mask_rate=2 / settings.n, reconstruction=readout)


@partial(jax.jit, static_argnums=1)
def _masked_score_gradients(params, config, tokens, masks):
    def one(x, m):
        s = reconstruction_scores(params, config, x, m)
        return jax.grad(reconstruction_loss_at_scores, argnums=4)(params, config, x, m, s)

    return jax.vmap(one)(tokens, masks)


def _distance_name(count: int, n: int, rank: int, tolerance: float) -> str:
    return (
        f"||P_G - P_N||_F^2, G the span of {count} per-sample dL_rec/dS (rank {rank}, tol {tolerance:.1e}), "
        f"N the n(n-1) non-gauge directions, n={n}"
    )


def autodiff_span(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": $\lVert \Pi_G - \Pi_N \rVert_F^2$, G the span of $n^2$ jax.grad $\partial L_{rec}/\partial S$.

    $N = \{X : X\mathbf 1 = 0\}$ and $\lVert \Pi_G - \Pi_N \rVert_F^2 = n(n-1) - \dim G + 2\lVert Q_G Q_{gauge}^\top
    \rVert_F^2$, zero exactly when $G = N$. G from a numpy SVD, the gauge overlap from its basis' row sums.
    """
    config = _config(settings)
    n = settings.n
    params, tokens, _, masks = sample_batch(config, seed, n * n)
    stack = np.asarray(_masked_score_gradients(params, config, tokens, masks)).reshape(n * n, n * n)
    _, singular, vt = np.linalg.svd(stack, full_matrices=False)
    tolerance = rank_tolerance(singular[0], stack.shape, stack.dtype)
    rank = int((singular > tolerance).sum())
    gauge_overlap = np.sum(vt[:rank].reshape(rank, n, n).sum(axis=2) ** 2) / n
    return Evidence(
        _distance_name(n * n, n, rank, tolerance),
        "autodiff",
        float(n * (n - 1) - rank + 2 * gauge_overlap),
        0.0,
        rounding(n * n),
    )


def fast_path_span(settings: Settings, seed: int) -> Evidence:
    r"""Route "fast-path": the same distance from the factored closed forms $\frac1n \Gamma \tilde V^\top$, never dense.

    Rank from the Gram matrix (``subspaces.span_from_gram``), gauge overlap from the samples' row sums
    $R_b (C_b^\top \mathbf 1)$ through ``subspaces.visible_fraction``.
    """
    config = _config(settings)
    n = settings.n
    params, tokens, _, masks = sample_batch(config, seed, n * n)
    factors = uniform_score_factors(params, config, "reconstruction", tokens, masks)
    gram_span = span_from_gram(gram_from_factors(factors), n * n)
    row_sums = np.einsum("bir,br->bi", factors.rows, factors.columns.sum(axis=1)) / math.sqrt(n)
    gauge_overlap = n * visible_fraction(gram_span, jnp.asarray(row_sums)).fraction
    return Evidence(
        _distance_name(n * n, n, gram_span.rank, gram_span.tolerance),
        "fast-path",
        float(n * (n - 1) - gram_span.rank + 2 * gauge_overlap),
        0.0,
        rounding(n * n),
    )


def _theory(settings: Settings) -> np.ndarray:
    """P6's exact SymPy expectation at the sticky chain's agreement (float64)."""
    lags = np.arange(settings.n)[:, None] - np.arange(settings.n)[None, :]
    agreement = lag_agreement(lags, settings.vocab, settings.rho)
    masked = _config(settings, "copy").masked_count
    return np.array(symbolic.expected_copy_gradient(sp.Matrix(agreement), masked), dtype=float)


def monte_carlo_mean(settings: Settings, seed: int, *, iid: bool = False) -> Evidence:
    r"""Route "monte-carlo": mean of copy-readout $\partial L/\partial S$ over sampled tokens and masks vs the theory.

    Bound: $Z$ times the largest entry's standard error. ``iid=True`` samples i.i.d. tokens (the control).
    """
    config = _config(settings, "copy")
    k = jax.random.split(jax.random.key(seed + 1000), 2)
    masks = sample_masks(k[0], settings.samples, settings.n, config.mask_rate)
    if iid:
        tokens = iid_tokens(k[1], settings.samples, settings.n, settings.vocab)
    else:
        tokens = markov_tokens(k[1], settings.samples, settings.n, settings.vocab, settings.rho)
    grads = np.asarray(score_gradients(init(jax.random.key(0), config), config, "reconstruction", tokens, masks))
    bound = Z * grads.std(axis=0).max() / math.sqrt(settings.samples)
    data = "i.i.d. tokens" if iid else f"sticky chain rho={settings.rho}"
    return Evidence(
        f"copy readout, {data}: mean of {settings.samples} dL/dS vs the exact sticky-chain expectation (max abs.)",
        "monte-carlo",
        float(np.abs(grads.mean(axis=0) - _theory(settings)).max()),
        0.0,
        float(bound),
    )


def _copy_score_gradient(expected_hits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    r"""Numpy backward pass of $L = -\frac1m\sum_{i \in M}\sum_j A_{ij} t_{ij}$ at $A = \mathbf 1\mathbf 1^\top/n$.

    $g_{ij} = \partial L/\partial A_{ij} = -[i \in M] t_{ij}/m$; the softmax VJP is
    $A \odot (g - \mathrm{rowsum}(A \odot g))$.
    """
    n = mask.shape[0]
    a = np.full((n, n), 1.0 / n)
    g = -(mask[:, None] * expected_hits) / mask.sum()
    return a * (g - (a * g).sum(axis=1, keepdims=True))


def enumerated_mean(settings: Settings, seed: int) -> Evidence:
    r"""Route "exact-enumeration": every mask, hits replaced by $E[t_{ij} \mid M] = [j \notin M] P(x_i = x_j)$.

    The copy loss is linear in the hits for a fixed mask, so averaging the numpy backward pass over all
    $\binom nm$ masks with the exact agreement is the exact expectation (``seed`` unused).
    """
    n = settings.n
    lags = np.arange(n)[:, None] - np.arange(n)[None, :]
    agreement = lag_agreement(lags, settings.vocab, settings.rho)
    masked = _config(settings, "copy").masked_count
    total, count = np.zeros((n, n)), 0
    for chosen in itertools.combinations(range(n), masked):
        mask = np.zeros(n, bool)
        mask[list(chosen)] = True
        total += _copy_score_gradient(agreement * ~mask[None, :], mask)
        count += 1
    expected = _theory(settings)
    return Evidence(
        f"copy readout, sticky chain rho={settings.rho}: average over all {count} masks vs the exact expectation "
        "(rel. diff.)",
        "exact-enumeration",
        float(np.abs(total / count - expected).max() / np.abs(expected).max()),
        0.0,
        rounding(count * n),
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the Monte Carlo line with i.i.d. tokens, against the sticky-chain expectation."""
    return Control("i.i.d. tokens instead of the sticky chain", monte_carlo_mean(settings, seed, iid=True))


LINES = (autodiff_span, fast_path_span, monte_carlo_mean, enumerated_mean)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P6 by four routes that share nothing but the model's definition (and, for the mean, the theory).

    Span, linear cross-entropy head:

    - autodiff (``autodiff_span``): the span of jax.grad per-sample gradients (numpy SVD) is exactly the
      non-gauge space (projector distance 0).
    - fast-path (``fast_path_span``): the same from ``fast_paths.uniform_score_factors``, through their Gram
      matrix and row sums, never forming a dense gradient.

    Mean, copy readout, against SymPy's exact expectation:

    - monte-carlo (``monte_carlo_mean``): JAX model gradients averaged over sampled tokens and masks.
    - exact-enumeration (``enumerated_mean``): a numpy backward pass averaged over every mask.

    Control: i.i.d. tokens do not follow the sticky-chain expectation.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P6",
    "reconstruction gradients span all n(n-1) non-gauge directions; their mean follows the lag agreement",
    "uniform attention; copy readout and exactly m masked positions for the expectation",
    measure,
)
