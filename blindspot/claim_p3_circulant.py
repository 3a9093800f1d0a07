r"""Claim P3: circulant scores leave the label loss exactly unchanged (mean pooling, no MLP).

A circulant $C$ gives a circulant, doubly stochastic $A$, so $m = \mathbf 1$ and $L(C) = L(0)$ (P2). Three lines,
each a route of its own (``measure`` lists them); the control uses an open-boundary band.
"""

from fractions import Fraction
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import numpy_model
from blindspot.claim_support import rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.evidence import Claim, Control, Evidence
from blindspot.objectives import shared_score_loss
from blindspot.taylor import taylor_coefficients


class Settings(NamedTuple):
    """Sequence length, MLP width (0: none, the hypothesis) and the number of sequences."""

    n: int
    mlp: int = 0
    batch: int = 4


DEFAULT = Settings(n=8)
FULL = Settings(n=256)


def _config(settings: Settings) -> ModelConfig:
    """Mean pooling and a residual (allowed by P3)."""
    return ModelConfig(n=settings.n, d=4, vocab=4, residual=True, mlp=settings.mlp)


def _circulant(first_row: np.ndarray) -> np.ndarray:
    r"""$C_{ij} = c_{(j - i) \bmod n}$."""
    n = first_row.shape[0]
    return first_row[(np.arange(n)[None, :] - np.arange(n)[:, None]) % n]


def numpy_loss_change(settings: Settings, seed: int, *, open_boundary: bool = False) -> Evidence:
    r"""Route "numpy-forward": $|L(C) - L(0)| / L(0)$, numpy batch-mean loss, $C$ circulant with $N(0, 9)$ entries.

    ``open_boundary=True`` replaces $C$ by $3 B_1$, ones where $|i - j| = 1$ without wrap-around (the control).
    """
    config = _config(settings)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    n = settings.n
    if open_boundary:
        direction, name = 3.0 * (np.eye(n, k=1) + np.eye(n, k=-1)), "3 B_1 (open-boundary band)"
    else:
        direction, name = (
            _circulant(3.0 * np.random.default_rng(seed).standard_normal(n)),
            "a circulant C with N(0, 9) entries",
        )

    def loss(s):
        return np.mean([numpy_model.classification_loss(params, config, x, y, s) for x, y in zip(tokens, labels)])

    base = loss(np.zeros((n, n)))
    return Evidence(
        f"|L(S) - L(0)| / L(0), S = {name}, n={n}",
        "numpy-forward",
        abs(loss(direction) - base) / base,
        0.0,
        rounding(n * n),
    )


@partial(jax.jit, static_argnums=1)
def _coefficients(params, config, tokens, labels, direction):
    loss = shared_score_loss(params, config, "classification", tokens, labels)
    return taylor_coefficients(loss, jnp.zeros_like(direction), direction, 4)


def jet_coefficients(settings: Settings, seed: int) -> Evidence:
    r"""Route "taylor-mode": coefficients $c_1..c_4$ of $L(tC)$, $C$ a unit circulant, JAX model, relative to $L(0)$."""
    config = _config(settings)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    n = settings.n
    unit = _circulant(np.random.default_rng(seed + 1).standard_normal(n))
    unit /= np.linalg.norm(unit)
    coefficients = np.asarray(_coefficients(params, config, tokens, labels, jnp.asarray(unit)))
    return Evidence(
        f"Taylor coefficients 1..4 of L(tC) along a unit circulant C (jet), n={n}: max |c_k| / L(0)",
        "taylor-mode",
        float(np.abs(coefficients[1:]).max() / coefficients[0]),
        0.0,
        rounding(n * n),
    )


def _rational_softmax_row(weights: list[Fraction]) -> list[Fraction]:
    r"""One softmax row in exact arithmetic, $e^{s_j}$ given as the positive rational $w_j$: $w_j / \sum_k w_k$."""
    total = sum(weights)
    return [w / total for w in weights]


def rational_column_masses(settings: Settings, seed: int) -> Evidence:
    r"""Route "exact-rational": column masses of $\mathrm{softmax}(C)$, $C$ circulant, in fractions: $\max_j |m_j - 1|$.

    $e^{c_k}$ is a random positive rational $w_k$; each row of $A$ is normalised on its own, then the
    $n$ column sums are formed exactly at the claim's $n$.
    """
    n = settings.n
    rng = np.random.default_rng(seed)
    w = [Fraction(int(a), int(b)) for a, b in zip(rng.integers(1, 10**6, n), rng.integers(1, 10**6, n))]
    rows = [_rational_softmax_row([w[(j - i) % n] for j in range(n)]) for i in range(n)]
    masses = [sum(row[j] for row in rows) for j in range(n)]
    return Evidence(
        f"max_j |m_j - 1|, column masses of softmax(C), C circulant, exact fractions, n={n}",
        "exact-rational",
        float(max(abs(m - 1) for m in masses)),
        0.0,
        0.0,
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the numpy line along an open-boundary Toeplitz band instead of a circulant."""
    return Control(
        "open-boundary proximity band B_1 (Toeplitz, no wrap-around) instead of a circulant",
        numpy_loss_change(settings, seed, open_boundary=True),
    )


LINES = (numpy_loss_change, jet_coefficients, rational_column_masses)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P3 by three routes that share nothing but the model's definition.

    - numpy-forward (``numpy_loss_change``): the numpy re-implementation gives $L(C) = L(0)$ for a large $C$.
    - taylor-mode (``jet_coefficients``): the JAX model's Taylor coefficients 1-4 along a circulant vanish.
    - exact-rational (``rational_column_masses``): softmax of a circulant has column masses exactly 1 at the
      claim's $n$, the mechanism ($L$ depends on $S$ only through them, P2).

    Control: an open-boundary band $B_1$ changes the numpy loss.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P3",
    "circulant scores leave the label loss exactly unchanged: flat to every order",
    "mean pooling, no MLP (a residual is allowed)",
    measure,
)
