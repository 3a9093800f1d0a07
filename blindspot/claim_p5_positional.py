r"""Claim P5: position-only scores $S = PWP^\top$ at $W = 0$: a rank-one $\partial L/\partial W$, zero when centred.

$\partial L/\partial W = \frac1n (P^\top\mathbf 1)((u - \bar u\mathbf 1)^\top P)$.

Rank one, and exactly zero for centred encodings ($P^\top \mathbf 1 = 0$). The closed form is the theory
(expected value) of both lines, with $u$ from SymPy's own mean-pooled head at uniform attention
(``symbolic.mean_pool_uniform_u``); the lines compute $\partial L/\partial W$ by two routes (``measure``).
"""

from functools import partial
from typing import NamedTuple

import jax
import numpy as np
import sympy as sp

from blindspot import symbolic
from blindspot.claim_support import rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.evidence import Claim, Control, Evidence
from blindspot.fast_paths import dense_gradients, uniform_score_factors
from blindspot.jacobian import query_key_gradients
from blindspot.model import embed, positions, query_key_matrix, scores_from_query_key
from blindspot.objectives import classification_loss_at_scores


class Settings(NamedTuple):
    """Sequence length, width, number of sequences and the model's hypotheses (mean pooling, no MLP)."""

    n: int
    d: int
    batch: int = 4
    mlp: int = 0
    residual: bool = False
    pooling: str = "mean"


DEFAULT = Settings(n=8, d=4)
FULL = Settings(n=256, d=8)


def _config(settings: Settings, centred: bool) -> ModelConfig:
    return ModelConfig(
        n=settings.n,
        d=settings.d,
        vocab=4,
        scores="position",
        positional="random",
        centred=centred,
        mlp=settings.mlp,
        residual=settings.residual,
        pooling=settings.pooling,
    )


def _closed_form(params, config: ModelConfig, tokens, labels) -> np.ndarray:
    r"""Theory: $\frac1n (P^\top \mathbf 1)((u - \bar u\mathbf 1)^\top P)$ per sample, $u$ by SymPy."""
    p = np.asarray(positions(params))
    head = sp.Matrix(np.asarray(params.classifier.weight))
    bias = sp.Matrix(np.atleast_2d(np.asarray(params.classifier.bias)))
    out = []
    for x, y in zip(tokens, labels):
        values = sp.Matrix(np.asarray(embed(params, x) @ params.value))
        u = np.array(symbolic.mean_pool_uniform_u(values, head, bias, int(y)), dtype=float).ravel()
        out.append(np.outer(p.sum(axis=0), (u - u.mean()) @ p) / config.n)
    return np.stack(out)


def _miss(settings: Settings, seed: int, route) -> float:
    r"""Return the largest miss of the closed form, relative to its bound, over both encodings.

    The miss is $\lVert \partial L/\partial W - \text{closed form} \rVert_F$, the bound
    $\lVert P\rVert_2^2 \lVert \partial L/\partial S\rVert_F$.

    ``route(params, config, tokens, labels)`` returns per-sample $\partial L/\partial W$ and $\partial L/\partial S$.
    """
    worst = 0.0
    for centred in (False, True):
        config = _config(settings, centred)
        params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
        grad_w, grad_s = (np.asarray(g) for g in route(params, config, tokens, labels))
        bound = np.linalg.norm(np.asarray(positions(params)), 2) ** 2 * np.linalg.norm(grad_s, axis=(1, 2))
        miss = np.linalg.norm(grad_w - _closed_form(params, config, tokens, labels), axis=(1, 2)) / bound
        worst = max(worst, float(miss.max()))
    return worst


@partial(jax.jit, static_argnums=1)
def _autodiff_gradients(params, config, tokens, labels):
    def one(x, y):
        def loss_of_w(w):
            return classification_loss_at_scores(params, config, x, y, scores_from_query_key(w, params, config, x))

        def loss_of_s(s):
            return classification_loss_at_scores(params, config, x, y, s)

        w = query_key_matrix(params)
        return jax.grad(loss_of_w)(w), jax.grad(loss_of_s)(scores_from_query_key(w, params, config, x))

    return jax.vmap(one)(tokens, labels)


def _fast_path_gradients(params, config, tokens, labels):
    factors = uniform_score_factors(params, config, "classification", tokens, labels)
    return query_key_gradients(params, config, "classification", tokens, labels, factors=factors), dense_gradients(
        factors
    )


_NAME = "max ||dL/dW - closed form||_F / (||P||_2^2 ||dL/dS||_F), raw and centred random encodings"


def autodiff_query_key(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": $\partial L/\partial W$ by jax.grad through $S = PWP^\top$ vs the closed form."""
    return Evidence(
        f"{_NAME}, jax.grad in W, n={settings.n}, d={settings.d}",
        "autodiff",
        _miss(settings, seed, _autodiff_gradients),
        0.0,
        rounding(settings.n * settings.d),
    )


def fast_path_query_key(settings: Settings, seed: int) -> Evidence:
    r"""Route "fast-path": $P^\top (R C^\top) P$ from the factored score gradient at $W = 0$ vs the closed form."""
    return Evidence(
        f"{_NAME}, chain rule on the factored score gradient, n={settings.n}, d={settings.d}",
        "fast-path",
        _miss(settings, seed, _fast_path_gradients),
        0.0,
        rounding(settings.n * settings.d),
    )


def control(settings: Settings, seed: int) -> Control:
    r"""Repeat the autodiff line with a residual and a tanh MLP (the closed form still predicts 0 when centred)."""
    return Control(
        "a residual together with a tanh MLP (rows of dL/dS differ)",
        autodiff_query_key(settings._replace(residual=True, mlp=8), seed),
    )


LINES = (autodiff_query_key, fast_path_query_key)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P5 by two routes that share nothing but the model's definition and the theory.

    The theory is the closed form with $u$ from SymPy (``symbolic.mean_pool_uniform_u``: SymPy's own head at
    uniform attention, independent of both routes); it is rank one and vanishes with $P^\top\mathbf 1 = 0$.

    - autodiff (``autodiff_query_key``): jax.grad of the JAX model's loss in $W$.
    - fast-path (``fast_path_query_key``): the chain rule $P^\top G P$ on ``fast_paths.uniform_score_factors``.

    Both for raw and centred random encodings. Control: a residual with a tanh MLP, where the rows of
    $\partial L/\partial S$ differ and the centred gradient is no longer zero.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P5",
    "position-only scores: dL/dW at W=0 is rank one, (1/n)(P^T 1)((u - u_bar 1)^T P), and vanishes for centred "
    "encodings",
    "S = P W P^T, W = 0, mean pooling, no MLP",
    measure,
)
