r"""Per-sample gradients of the package's model: in score space, in the query-key matrix W, of any loss.

``score_gradients`` stacks $\partial L_b / \partial S$ at the model's scores (autodiff through the
softmax; ``fast_paths`` has the closed forms at uniform attention), ``query_key_gradients`` the
parameter view $\nabla_W L_b$ (autodiff, or the chain rule from factored score gradients), and
``parameter_gradients`` / ``flatten_samples`` the per-sample gradients of any loss as a (b, N) stack.
What those stacks span and which families they see is ``subspaces``.

Every entry point refuses non-finite input and checks ``params`` against ``config``
(``blindspot.checks``).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot import output_view
from blindspot.checks import check_array, check_callable, check_finite_tree, check_leading_axis
from blindspot.config import ModelConfig
from blindspot.fast_paths import ScoreFactors, check_factors
from blindspot.model import Params, mask_tokens, query_key_matrix, scores_from_query_key
from blindspot.objectives import check_objective, classification_loss_at_scores, reconstruction_loss_at_scores


def _loss_of_query_key(params, config, objective, w, x, t):
    if objective == "classification":
        return classification_loss_at_scores(params, config, x, t, scores_from_query_key(w, params, config, x))
    masked = mask_tokens(config, x, t)
    return reconstruction_loss_at_scores(params, config, x, t, scores_from_query_key(w, params, config, masked))


def _score_gradients(params, config, objective, tokens, target):
    w = query_key_matrix(params)

    def one(x, t):
        inputs = x if objective == "classification" else mask_tokens(config, x, t)
        s = scores_from_query_key(w, params, config, inputs)
        if objective == "classification":
            return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, t, s)
        return jax.grad(reconstruction_loss_at_scores, argnums=4)(params, config, x, t, s)

    return jax.vmap(one)(tokens, target)


_score_gradients_jit = jax.jit(_score_gradients, static_argnums=(1, 2))


def score_gradients(
    params: Params, config: ModelConfig, objective: str, tokens: Int[Array, "b n"], target: Array
) -> Float[Array, "b n n"]:
    r"""Per-sample score-space gradients $\partial L_b / \partial S$ at the model's scores (vmap of grad).

    ``objective="classification"``: ``target`` are labels (b,); ``"reconstruction"``: boolean masks
    (b, n) and the scores are those of the masked input. Autodiff through the softmax: $O(n^2 d)$
    per sample; see ``fast_paths`` for the closed forms at uniform attention.
    """
    check_objective(params, config, objective, tokens, target)
    return _score_gradients_jit(params, config, objective, tokens, target)


def parameter_gradients(loss, params, *batch):
    """Per-sample gradients of ``loss(params, *sample)`` for each sample of ``batch`` (vmap of grad).

    Returns a pytree like ``params`` whose leaves carry a leading batch axis.
    """
    check_callable("loss", loss)
    check_finite_tree("params", params)
    check_leading_axis("batch", batch)
    return jax.vmap(jax.grad(loss), in_axes=(None, *([0] * len(batch))))(params, *batch)


def flatten_samples(tree) -> Float[Array, "b N"]:
    """Concatenate the leaves of a per-sample pytree into a (b, N) matrix (one row per sample)."""
    check_finite_tree("tree", tree)
    leaves = jax.tree_util.tree_leaves(tree)
    check_leading_axis("tree", leaves)
    return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


@partial(jax.jit, static_argnums=(1, 2))
def _query_key_gradients_jit(params, config, objective, tokens, target):
    one = jax.grad(lambda w_, x, t: _loss_of_query_key(params, config, objective, w_, x, t))
    return jax.vmap(one, in_axes=(None, 0, 0))(query_key_matrix(params), tokens, target)


@jax.jit
def _factor_query_key(rows, columns, encodings):
    return jnp.einsum("bnd,bnr,bme,bmr->bde", encodings, rows, encodings, columns)


def query_key_gradients(
    params: Params,
    config: ModelConfig,
    objective: str,
    tokens: Int[Array, "b n"],
    target: Array,
    *,
    factors: ScoreFactors | None = None,
) -> Float[Array, "b d d"]:
    r"""Per-sample gradients with respect to the query-key matrix W (parameter view, P5/P8).

    Without ``factors``: autodiff (vmap of grad through $S(W)$). With score-gradient ``factors``
    $R_b C_b^\top$ at the same state: the chain rule $\nabla_W L_b = c\, H_b^\top R_b C_b^\top H_b$ in
    $O(n d r)$, with $H_b$ the (masked) input embedding and $c = 1/\sqrt d$ for content+position
    scores, or $H = P$ and $c = 1$ for position-only scores.
    """
    check_objective(params, config, objective, tokens, target)
    if factors is None:
        return _query_key_gradients_jit(params, config, objective, tokens, target)
    check_factors("factors", factors, (np.shape(tokens)[0], config.n, None))
    encodings = jax.vmap(lambda x, t: output_view.encodings(params, config, objective, x, t))(tokens, target)
    return output_view.score_scale(config) * _factor_query_key(factors.rows, factors.columns, encodings)


def query_key_scale(
    params: Params,
    config: ModelConfig,
    objective: str,
    tokens: Int[Array, "b n"],
    target: Array,
    score_norms: Float[Array, " b"],
) -> float:
    r"""Magnitude $\max_b c \lVert H_b \rVert_F^2 \lVert \partial L_b/\partial S \rVert_F$ of the W-gradients.

    Bounds $\lVert \nabla_W L_b \rVert_F$; rounding errors are $\epsilon$ times it, so it sets the
    tolerance under which a W-gradient counts as zero (P5: exactly zero with centred encodings).
    """
    check_objective(params, config, objective, tokens, target)
    check_array("score_norms", score_norms, (np.shape(tokens)[0],))
    h2 = jax.vmap(lambda x, t: jnp.sum(output_view.encodings(params, config, objective, x, t) ** 2))(tokens, target)
    return float(jnp.max(h2 * score_norms)) * output_view.score_scale(config)
