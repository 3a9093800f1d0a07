r"""Closed-form score gradients at uniform attention, in factored form (P4, P6).

At uniform attention ($W = 0$, so $S = 0$ and $A = \mathbf 1 \mathbf 1^\top / n$) the score gradient of
any loss of the outputs $o_i$ is

$$\frac{\partial L}{\partial S_{ij}} = A_{ij}\Big(w_{ij} - \sum_k A_{ik} w_{ik}\Big)
= \frac1n \big(w_{ij} - \bar w_i\big), \qquad w_{ij} = g_i^\top v_j,\ g_i = \partial L / \partial o_i,$$

so $\partial L / \partial S = \frac1n\, \Gamma\, \tilde V^\top$ with $\Gamma$ the $(n, d)$ matrix of the $g_i$ and
$\tilde V = V - \mathbf 1 \bar v^\top$ the centred values: a rank-$\le d$ factorisation costing $O(n d)$ per
sample and row instead of the $O(n^2 d)$ of autodiff through the softmax. The $g_i$ come from
autodiff of the *position-wise* part of the model only ($\phi$ and the heads), at the outputs
$o_i = \bar v$ (plus $h_i$ with a residual): the values and the loss of the outputs are those of
``output_view``, whose general form at any attention ``streamed`` evaluates.

For mean-pooled classification where every $g_i$ is equal (no MLP, or an MLP without a residual),
the gradient is the rank-one $\frac1n \mathbf 1 (u - \bar u \mathbf 1)^\top$, $u_j = g^\top v_j$ (P4):
:func:`classification_column_factors` returns the $(b, n)$ column factors.

Both refuse any state where these closed forms do not hold (``W != 0``; and for the rank-one form
residual + MLP, or last/first pooling) with a one-line ``ValueError``.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot import output_view
from blindspot.checks import check_array, is_concrete
from blindspot.config import ModelConfig, check_config
from blindspot.model import Params, query_key_matrix
from blindspot.objectives import check_objective


class ScoreFactors(NamedTuple):
    r"""Per-sample score gradients $\partial L_b / \partial S = R_b C_b^\top$ in factored form."""

    rows: Float[Array, "b n r"]
    columns: Float[Array, "b n r"]


def check_factors(name: str, factors, shape: tuple = (None, None, None)) -> None:
    """Refuse anything but ``ScoreFactors`` with finite floating rows and columns of one shape (b, n, r).

    ``shape`` entries that are not ``None`` fix b, n or r.
    """
    if not isinstance(factors, ScoreFactors):
        raise ValueError(f"{name} must be ScoreFactors(rows, columns), got {type(factors).__name__}")
    check_array(f"{name}.rows", factors.rows, shape)
    check_array(f"{name}.columns", factors.columns, np.shape(factors.rows))
    if 0 in np.shape(factors.rows):
        raise ValueError(f"{name}.rows must have shape (b, n, r) with b, n, r >= 1, got {np.shape(factors.rows)}")


def check_uniform_attention(params: Params) -> None:
    """Refuse a state whose query-key matrix is not exactly zero (the closed forms need $A = 11^T/n$)."""
    w = query_key_matrix(params)
    if not is_concrete(w):
        return
    largest = float(np.max(np.abs(np.asarray(w))))
    if largest != 0.0:
        raise ValueError(
            "params.query_key must give W = 0 (uniform attention) for the closed-form score gradient, "
            f"got max |W| = {largest:.3g}; use jacobian.score_gradients (autodiff) instead"
        )


def check_rank_one_classification(config: ModelConfig) -> None:
    """Refuse configurations where mean-pooled classification gradients are not rank one with equal rows."""
    check_config(config)
    if config.pooling != "mean":
        raise ValueError(f"config.pooling must be 'mean' for the rank-one classification form, got {config.pooling!r}")
    if config.residual and config.mlp > 0:
        raise ValueError(
            "config must not combine residual=True with mlp > 0 for the rank-one classification form "
            "(the outputs o_i = v_bar + h_i then differ through the MLP); use uniform_score_factors"
        )


def _uniform_factors(params, config, objective, tokens, target):
    r"""One sequence: $(\Gamma / n, \tilde V)$, $\Gamma = \partial \ell / \partial O$ at the outputs $o_i = \bar v$."""
    v = output_view.values(params, config, objective, tokens, target)
    mean = v.mean(axis=0)
    g = output_view.output_gradient(params, config, objective, tokens, target, jnp.broadcast_to(mean, v.shape))
    return g / config.n, v - mean


def _check(params, config, objective, tokens, target):
    check_objective(params, config, objective, tokens, target)
    check_uniform_attention(params)


def uniform_score_factors(
    params: Params, config: ModelConfig, objective: str, tokens: Int[Array, "b n"], target: Array
) -> ScoreFactors:
    r"""Per-sample score gradients at uniform attention as factors $R_b = \Gamma_b / n$, $C_b = \tilde V_b$.

    Parameters
    ----------
    params, config
        The model; ``params`` must have $W = 0$.
    objective
        ``"classification"`` (``target`` = labels, shape (b,)) or ``"reconstruction"`` (``target`` =
        boolean masks, shape (b, n); the scores are those of the masked input).
    tokens
        Token ids, shape (b, n).

    Returns
    -------
    ScoreFactors
        ``rows`` and ``columns`` of shape (b, n, r) with $r = d$ ($r = V + 1$ for the copy readout):
        $\partial L_b / \partial S = R_b C_b^\top$.

    Notes
    -----
    Valid for every pooling, residual and MLP at uniform attention (P4, P6): row i of the gradient is
    $\frac1n(w_{ij} - \bar w_i)$, $w_{ij} = g_i^\top v_j$. Cost $O(n d (d + h + c))$ per sample.
    """
    _check(params, config, objective, tokens, target)
    return ScoreFactors(*_batched_factors(params, config, objective, tokens, target))


@partial(jax.jit, static_argnums=(1, 2))
def _batched_factors(params, config, objective, tokens, target):
    return jax.vmap(lambda x, t: _uniform_factors(params, config, objective, x, t))(tokens, target)


@partial(jax.jit, static_argnums=(1,))
def _batched_columns(params, config, tokens, labels):
    def one(x, y):
        g, centred = _uniform_factors(params, config, "classification", x, y)
        return centred @ g[0]

    return jax.vmap(one)(tokens, labels)


def classification_column_factors(
    params: Params, config: ModelConfig, tokens: Int[Array, "b n"], labels: Int[Array, " b"]
) -> Float[Array, "b n"]:
    r"""Column factors $w_b$ of rank-one classification gradients $\partial L_b/\partial S = \mathbf 1 w_b^\top$ (P4).

    Notes
    -----
    Mean pooling at uniform attention with all $g_i = g$ equal (no MLP, or an MLP without residual):
    $w = \frac1n (u - \bar u \mathbf 1)$, $u_j = g^\top v_j$, $g = \partial L / \partial o_i$, so
    $w^\top \mathbf 1 = 0$ and the gradient lies in the column-sum space U. $O(n d)$ per sample.
    Refuses other configurations (see ``check_rank_one_classification``).
    """
    check_rank_one_classification(config)
    _check(params, config, "classification", tokens, labels)
    return _batched_columns(params, config, tokens, labels)


def dense_gradients(factors: ScoreFactors) -> Float[Array, "b n n"]:
    r"""Assemble dense per-sample gradients $R_b C_b^\top$ from factors (small n, for checks)."""
    check_factors("factors", factors)
    return jnp.einsum("bir,bjr->bij", factors.rows, factors.columns)
