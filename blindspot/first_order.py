r"""First-order data of one objective's per-sample score gradients, by one of three routes.

Every route returns a :class:`FirstOrder`: the span of the b gradients, their family
:class:`~blindspot.directions.Statistics`, the norm of their mean, their norms and the per-sample
query-key gradients; the probe's families, visible fractions, alignments and detectability follow
from these alone.

- ``dense``: autodiff per-sample $n \times n$ gradients ($b n^2$ numbers), SVD of the stack; the only
  route with each sample's rank ($O(b n^3)$).
- ``factored``: the closed forms at uniform attention ($W = 0$, ``fast_paths``), no $n \times n$ object.
- ``streamed``: any W, blocks of query rows (``streamed``); the span from the $b \times b$ Gram matrix, no
  per-sample rank (``None``).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import directions, fast_paths, jacobian, streamed, subspaces

ROUTES = ("dense", "factored", "streamed")
"""The routes :func:`first_order` takes (the probe adds ``auto``, which picks one of them)."""


class FirstOrder(NamedTuple):
    """First-order data of one objective: ranks, span, family statistics, norms, W-gradients.

    ``per_sample_rank_max`` is ``None`` on the streamed route (see ``blindspot.streamed``).
    """

    route: str
    per_sample_rank_max: int | None
    span: subspaces.Span
    statistics: directions.Statistics
    mean_norm: float
    score_norms: jax.Array
    query_key_gradients: jax.Array


def first_order(route: str, params, config, objective, tokens, target, *, chunk: int | None = None) -> FirstOrder:
    """First-order data by ``route`` (one of ``ROUTES``); ``chunk`` is the streamed route's block of query rows."""
    if route == "factored":
        return _factored(params, config, objective, tokens, target)
    if route == "streamed":
        return _streamed(params, config, objective, tokens, target, chunk)
    return _dense(params, config, objective, tokens, target)


def _from_gram(route, gram, statistics, mean_norm, w_grads, per_sample=None) -> FirstOrder:
    r"""Span from the Gram matrix K of the samples, their norms $\sqrt{K_{bb}}$."""
    n = statistics.rows.shape[-1]
    span = subspaces.span_from_gram(gram, n * n)
    norms = np.sqrt(np.clip(np.diag(np.asarray(gram)), 0.0, None))  # b numbers: on the host
    return FirstOrder(route, per_sample, span, statistics, mean_norm, norms, w_grads)


def _factored(params, config, objective, tokens, target) -> FirstOrder:
    """First-order data from the closed forms at uniform attention: no n x n object per sample."""
    n = config.n
    factors = fast_paths.uniform_score_factors(params, config, objective, tokens, target)
    per_sample = int(jnp.max(subspaces.factor_ranks(factors)))
    stats = directions.factor_statistics(factors.rows, factors.columns)
    w_grads = jacobian.query_key_gradients(params, config, objective, tokens, target, factors=factors)
    rank_one = objective == "classification" and config.pooling == "mean" and not (config.residual and config.mlp > 0)
    if not rank_one:
        gram = subspaces.gram_from_factors(factors)
        mean_norm = math.sqrt(max(float(jnp.sum(gram)), 0.0)) / gram.shape[0]
        return _from_gram("factored-gram", gram, stats, mean_norm, w_grads, per_sample)
    w = fast_paths.classification_column_factors(params, config, tokens, target)
    span = subspaces.span(math.sqrt(n) * w, size=n * n, keep_basis=False)
    mean_norm = math.sqrt(n) * float(jnp.linalg.norm(w.mean(axis=0)))
    score_norms = math.sqrt(n) * jnp.linalg.norm(w, axis=1)
    return FirstOrder("factored-rank-one", per_sample, span, stats, mean_norm, score_norms, w_grads)


def _dense(params, config, objective, tokens, target) -> FirstOrder:
    """Autodiff per-sample n x n score gradients (b n^2 numbers) and their SVD."""
    grads = jacobian.score_gradients(params, config, objective, tokens, target)
    flat = grads.reshape(grads.shape[0], -1)
    return FirstOrder(
        "dense",
        int(jnp.max(subspaces.sample_ranks(grads))),
        subspaces.span(flat, keep_basis=False),
        directions.statistics(grads),
        float(jnp.linalg.norm(grads.mean(axis=0))),
        jnp.linalg.norm(flat, axis=1),
        jacobian.query_key_gradients(params, config, objective, tokens, target),
    )


def _streamed(params, config, objective, tokens, target, chunk) -> FirstOrder:
    """Statistics, Gram matrix and W-gradients accumulated over blocks of query rows, at any W."""
    got = streamed.streamed_gradients(params, config, objective, tokens, target, chunk=chunk)
    mean_norm = math.sqrt(max(float(got.mean_squared_norm), 0.0))
    return _from_gram("streamed", got.gram, got.statistics, mean_norm, got.query_key_gradients)
