r"""The single-layer, single-head attention model (derivations/THEORY.md, "Model conventions").

Data flow for one sequence of token ids $x \in \{0..V\}^n$:

$h_i = e(x_i) + p_i$, scores $S$, $A = \mathrm{softmax}_{row}(S)$, $o_i = \sum_j A_{ij} W_V h_j$
(plus $h_i$ with a residual), features $f_i = \phi(o_i)$ (identity without an MLP).

Everything after the scores is a function of $S$ alone (``features_at_scores``): the
*score-space view* used by the analysis, which differentiates with respect to $S$ directly.
The positional encoding is a fixed buffer, not a trained parameter (``stop_gradient``).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from blindspot.config import ModelConfig
from blindspot.positional import positional_encoding


class MLP(NamedTuple):
    r"""Position-wise $\phi(o) = W_2 \tanh(W_1 o + b_1) + b_2$ (row-vector convention)."""

    w1: Float[Array, "d h"]
    b1: Float[Array, " h"]
    w2: Float[Array, "h d"]
    b2: Float[Array, " d"]


class Head(NamedTuple):
    """Linear read-out $z = f W + b$."""

    weight: Float[Array, "d k"]
    bias: Float[Array, " k"]


class Params(NamedTuple):
    r"""Parameters of the model, a pytree.

    ``query_key`` is the $d \times d$ matrix $W$, or a pair $(W_Q, W_K)$ with
    $W = W_Q W_K^\top$ when ``config.qk_rank`` is set. ``mlp`` is ``None`` without an MLP.
    """

    token_embedding: Float[Array, "v1 d"]
    positional: Float[Array, "n d"]
    query_key: Float[Array, "d d"] | tuple[Float[Array, "d r"], Float[Array, "d r"]]
    value: Float[Array, "d d"]
    mlp: MLP | None
    classifier: Head
    reconstructor: Head


def init(key: jax.Array, config: ModelConfig, dtype=None) -> Params:
    r"""Draw parameters for ``config`` from ``key`` (default dtype: JAX's default float).

    Embeddings are $N(0, 1)$; value, MLP and head weights $N(0, 1/\text{fan-in})$, biases 0.
    Query-key: ``"zero"`` gives $W = 0$ (in factored form $W_K = 0$, $W_Q$ random, so the first
    gradient step is not stuck at a saddle); ``"random"`` gives entries of $W$ with variance
    $s^2/d$ (factored: $W_Q, W_K$ entries with variance $s/(d\sqrt r)$ each, same score scale).
    """
    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
    dtype = dtype or jnp.result_type(float)
    n, d, v, c, h = config.n, config.d, config.vocab, config.classes, config.mlp
    keys = jax.random.split(key, 9)

    def normal(k, shape, var):
        return math.sqrt(var) * jax.random.normal(k, shape, dtype)

    scale = config.qk_init_scale
    if config.qk_rank is None:
        qk = normal(keys[2], (d, d), scale**2 / d) if config.qk_init == "random" else jnp.zeros((d, d), dtype)
    else:
        r = config.qk_rank
        factor_var = scale / (d * math.sqrt(r))
        w_q = normal(keys[2], (d, r), factor_var if config.qk_init == "random" else 1.0 / d)
        w_k = normal(keys[3], (d, r), factor_var) if config.qk_init == "random" else jnp.zeros((d, r), dtype)
        qk = (w_q, w_k)
    mlp = None
    if h:
        mlp = MLP(
            normal(keys[4], (d, h), 1.0 / d), jnp.zeros(h, dtype), normal(keys[5], (h, d), 1.0 / h), jnp.zeros(d, dtype)
        )
    return Params(
        token_embedding=normal(keys[0], (v + 1, d), 1.0),
        positional=positional_encoding(keys[1], n, d, config.positional, centred=config.centred, dtype=dtype),
        query_key=qk,
        value=normal(keys[6], (d, d), 1.0 / d),
        mlp=mlp,
        classifier=Head(normal(keys[7], (d, c), 1.0 / d), jnp.zeros(c, dtype)),
        reconstructor=Head(normal(keys[8], (d, v), 1.0 / d), jnp.zeros(v, dtype)),
    )


def query_key_matrix(params: Params) -> Float[Array, "d d"]:
    r"""Return the query-key matrix $W$ (the product $W_Q W_K^\top$ in factored form)."""
    if isinstance(params.query_key, tuple):
        w_q, w_k = params.query_key
        return w_q @ w_k.T
    return params.query_key


def positions(params: Params) -> Float[Array, "n d"]:
    """Return the fixed positional encoding $P$ (gradients do not flow into it)."""
    return jax.lax.stop_gradient(params.positional)


def embed(params: Params, tokens: Int[Array, " n"]) -> Float[Array, "n d"]:
    """Input embedding $H$ with rows $h_i = e(x_i) + p_i$."""
    return jnp.asarray(params.token_embedding)[tokens] + positions(params)


def scores_from_query_key(
    w: Float[Array, "d d"], params: Params, config: ModelConfig, tokens: Int[Array, " n"]
) -> Float[Array, "n n"]:
    r"""Scores for a given query-key matrix $W$ (the parameter view of P5, P8).

    ``"content_position"``: $S = H W H^\top / \sqrt d$; ``"position"``: $S = P W P^\top$.
    """
    if config.scores == "position":
        p = positions(params)
        return jnp.einsum("nd,de,me->nm", p, w, p)
    h = embed(params, tokens)
    return jnp.einsum("nd,de,me->nm", h, w, h) / math.sqrt(config.d)


def scores(params: Params, config: ModelConfig, tokens: Int[Array, " n"]) -> Float[Array, "n n"]:
    """Score matrix $S$ of one sequence."""
    return scores_from_query_key(query_key_matrix(params), params, config, tokens)


def features_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], s: Float[Array, "n n"]
) -> Float[Array, "n d"]:
    r"""Per-position features $f_i = \phi(o_i)$ for a given score matrix $S$ (score-space view).

    $o_i = \sum_j \mathrm{softmax}(S)_{ij} W_V h_j$ (plus $h_i$ with a residual).
    Values use the row-vector convention $v_j = h_j W_V$.
    """
    h = embed(params, tokens)
    a = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("nm,md,de->ne", a, h, params.value)
    if config.residual:
        o = o + h
    return position_wise(params, o)


def position_wise(params: Params, o: Float[Array, "... d"]) -> Float[Array, "... d"]:
    r"""Apply the position-wise map $\phi$: the MLP when ``params.mlp`` is set, else the identity."""
    if params.mlp is None:
        return o
    m = params.mlp
    return jnp.tanh(o @ m.w1 + m.b1) @ m.w2 + m.b2


def pool(config: ModelConfig, features: Float[Array, "n d"]) -> Float[Array, " d"]:
    """Pool per-position features: mean, last or first position."""
    if config.pooling == "mean":
        return features.mean(axis=0)
    return features[-1] if config.pooling == "last" else features[0]


def class_logits_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], s: Float[Array, "n n"]
) -> Float[Array, " c"]:
    """Classification logits of one sequence for a given score matrix $S$."""
    z = pool(config, features_at_scores(params, config, tokens, s))
    return z @ params.classifier.weight + params.classifier.bias


def mask_tokens(config: ModelConfig, tokens: Int[Array, " n"], mask) -> Int[Array, " n"]:
    """Replace the masked positions by the MASK id ``config.vocab``."""
    return jnp.where(mask, config.mask_id, tokens)
