r"""The single-layer, single-head attention model (derivations/THEORY.md, "Model conventions").

Data flow for one input sequence of ids $x \in \{0..V\}^n$ (data ids are $< V$; $V$ is MASK):

$h_i = e(x_i) + p_i$, scores $S$, $A = \mathrm{softmax}_{row}(S)$, $o_i = \sum_j A_{ij} W_V h_j$
(plus $h_i$ with a residual), features $f_i = \phi(o_i)$ (identity without an MLP).

Everything after the scores is a function of $S$ alone (``features_at_scores``): the
*score-space view* used by the analysis, which differentiates with respect to $S$ directly.
The positional encoding is a fixed buffer, not a trained parameter (``stop_gradient``).

Every public function that takes ``params`` and ``config`` checks them against each other
(``check_params``); validation follows ``blindspot.checks`` (shapes always, values when concrete).
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot.checks import (
    check_allocation,
    check_array,
    check_finite_tree,
    check_floating_dtype,
    check_ids,
    check_key,
    check_mask,
    check_shape,
)
from blindspot.config import ModelConfig, check_config
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

    Token embeddings are $N(0, s^2)$ (``config.embedding_scale``, default 1); value, MLP and head
    weights $N(0, 1/\text{fan-in})$, biases 0.
    Query-key: ``"zero"`` gives $W = 0$ (in factored form $W_K = 0$, $W_Q$ random, so the first
    gradient step is not stuck at a saddle); ``"random"`` gives entries of $W$ with variance
    $s^2/d$ (factored: $W_Q, W_K$ entries with variance $s/(d\sqrt r)$ each, same score scale).
    """
    check_key("key", key)
    check_config(config)
    dtype = check_floating_dtype("dtype", dtype)
    n, d, v, c, h = config.n, config.d, config.vocab, config.classes, config.mlp
    check_allocation("config (vocab, n, d, mlp, classes)", (max(v + 1, n, d, h, c), d), dtype)
    keys = jax.random.split(key, 9)
    r = config.qk_rank or d
    shapes = ((v + 1, d), None, (d, r), (d, r), (d, h), (h, d), (d, d), (d, c), (d, v))
    draws = _standard_normals(keys, shapes, dtype)

    def normal(i, var):
        return math.sqrt(var) * draws[i]  # scaled outside the draws' program: the same rounding as drawn one by one

    scale = config.qk_init_scale
    if config.qk_rank is None:
        qk = normal(2, scale**2 / d) if config.qk_init == "random" else jnp.zeros((d, d), dtype)
    else:
        factor_var = scale / (d * math.sqrt(r))
        w_q = normal(2, factor_var if config.qk_init == "random" else 1.0 / d)
        w_k = normal(3, factor_var) if config.qk_init == "random" else jnp.zeros((d, r), dtype)
        qk = (w_q, w_k)
    mlp = None
    if h:
        mlp = MLP(normal(4, 1.0 / d), jnp.zeros(h, dtype), normal(5, 1.0 / h), jnp.zeros(d, dtype))
    return Params(
        token_embedding=normal(0, config.embedding_scale**2),
        positional=positional_encoding(keys[1], n, d, config.positional, centred=config.centred, dtype=dtype),
        query_key=qk,
        value=normal(6, 1.0 / d),
        mlp=mlp,
        classifier=Head(normal(7, 1.0 / d), jnp.zeros(c, dtype)),
        reconstructor=Head(normal(8, 1.0 / d), jnp.zeros(v, dtype)),
    )


@functools.partial(jax.jit, static_argnums=(1, 2))
def _standard_normals(keys: jax.Array, shapes: tuple, dtype) -> list:
    """Draw standard normals, one array per key and shape (``None``: no draw), in one compiled program."""
    drawn = (shape is not None and 0 not in shape for shape in shapes)
    return [jax.random.normal(k, shape, dtype) if draw else None for k, shape, draw in zip(keys, shapes, drawn)]


@functools.lru_cache(maxsize=64)
def _expected_params(config: ModelConfig) -> Params:
    """Shapes and structure ``init`` gives for ``config`` (abstract, nothing allocated)."""
    return jax.eval_shape(lambda: init(jax.random.key(0), config))


def _form(x) -> str:
    if x is None:
        return "None"
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return f"a pair of arrays of shapes {tuple(tuple(np.shape(a)) for a in x)}"
    return f"shape {tuple(np.shape(x))}" if hasattr(x, "shape") else type(x).__name__


def _check_params_type(params) -> None:
    if not isinstance(params, Params):
        raise ValueError(f"params must be a Params (blindspot.init), got {type(params).__name__}")


def check_params(params: Params, config: ModelConfig) -> None:
    r"""Refuse parameters that ``init(key, config)`` could not have produced, or that are not finite.

    Compares every leaf's shape with ``init``'s for ``config`` (vocabulary, width, length, classes,
    MLP width), the query-key form (a $d \times d$ matrix, or a pair $(W_Q, W_K)$ of rank
    ``config.qk_rank``) and the presence of the MLP; leaves must be real floating arrays, finite
    when concrete. Shapes are checked inside traces too.
    """
    check_config(config)
    _check_params_type(params)
    expected = _expected_params(config)
    for field in Params._fields:
        got, want = getattr(params, field), getattr(expected, field)
        got_leaves, got_tree = jax.tree.flatten(got)
        want_leaves, want_tree = jax.tree.flatten(want)
        if got_tree != want_tree or any(np.shape(a) != b.shape for a, b in zip(got_leaves, want_leaves)):
            raise ValueError(f"params.{field} must have {_form(want)} for {config!r}, got {_form(got)}")
    check_finite_tree("params", params)


def query_key_matrix(params: Params) -> Float[Array, "d d"]:
    r"""Return the query-key matrix $W$ (the product $W_Q W_K^\top$ in factored form)."""
    _check_params_type(params)
    if isinstance(params.query_key, tuple):
        w_q, w_k = params.query_key
        return w_q @ w_k.T
    return params.query_key


def positions(params: Params) -> Float[Array, "n d"]:
    """Return the fixed positional encoding $P$ (gradients do not flow into it)."""
    _check_params_type(params)
    return jax.lax.stop_gradient(params.positional)


def _check_inputs(name: str, tokens, n: int, vocab: int) -> None:
    """Model input ids: shape (n,), integers in [0, vocab] (vocab is MASK, a valid input symbol)."""
    check_shape(name, tokens, (n,))
    check_ids(name, tokens, 0, vocab, note=f" (input ids; {vocab} is MASK)")


def embed(params: Params, tokens: Int[Array, " n"]) -> Float[Array, "n d"]:
    """Input embedding $H$ with rows $h_i = e(x_i) + p_i$ of one (possibly masked) input sequence.

    ``tokens`` are input ids in ``[0, V]``, where ``V`` (the last embedding row) is MASK.
    """
    _check_params_type(params)
    _check_inputs("tokens", tokens, params.positional.shape[0], params.token_embedding.shape[0] - 1)
    return _embed(params, tokens)


def _embed(params, tokens):
    return jnp.asarray(params.token_embedding)[tokens] + positions(params)


def scores_from_query_key(
    w: Float[Array, "d d"], params: Params, config: ModelConfig, tokens: Int[Array, " n"]
) -> Float[Array, "n n"]:
    r"""Scores for a given query-key matrix $W$ (the parameter view of P5, P8).

    ``"content_position"``: $S = H W H^\top / \sqrt d$; ``"position"``: $S = P W P^\top$. ``tokens``
    are input ids in ``[0, V]`` (``V`` = MASK for masked inputs).
    """
    check_params(params, config)
    check_array("w", w, (config.d, config.d))
    _check_inputs("tokens", tokens, config.n, config.vocab)
    return _scores_from_query_key(w, params, config, tokens)


def _scores_from_query_key(w, params, config, tokens):
    if config.scores == "position":
        p = positions(params)
        return jnp.einsum("nd,de,me->nm", p, w, p)
    h = _embed(params, tokens)
    return jnp.einsum("nd,de,me->nm", h, w, h) / math.sqrt(config.d)


def scores(params: Params, config: ModelConfig, tokens: Int[Array, " n"]) -> Float[Array, "n n"]:
    """Score matrix $S$ of one input sequence (ids in ``[0, V]``, ``V`` = MASK)."""
    check_params(params, config)
    _check_inputs("tokens", tokens, config.n, config.vocab)
    return _scores_from_query_key(query_key_matrix(params), params, config, tokens)


def features_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], s: Float[Array, "n n"]
) -> Float[Array, "n d"]:
    r"""Per-position features $f_i = \phi(o_i)$ for a given score matrix $S$ (score-space view).

    $o_i = \sum_j \mathrm{softmax}(S)_{ij} W_V h_j$ (plus $h_i$ with a residual).
    Values use the row-vector convention $v_j = h_j W_V$. ``tokens`` are input ids in ``[0, V]``.
    """
    check_params(params, config)
    _check_inputs("tokens", tokens, config.n, config.vocab)
    check_array("s", s, (config.n, config.n))
    return _features_at_scores(params, config, tokens, s)


def _features_at_scores(params, config, tokens, s):
    h = _embed(params, tokens)
    a = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("nm,md,de->ne", a, h, params.value)
    if config.residual:
        o = o + h
    return _position_wise(params, o)


def position_wise(params: Params, o: Float[Array, "... d"]) -> Float[Array, "... d"]:
    r"""Apply the position-wise map $\phi$: the MLP when ``params.mlp`` is set, else the identity."""
    _check_params_type(params)
    check_array("o", o, (*np.shape(o)[:-1], params.value.shape[0]))
    return _position_wise(params, o)


def _position_wise(params, o):
    if params.mlp is None:
        return o
    m = params.mlp
    return jnp.tanh(o @ m.w1 + m.b1) @ m.w2 + m.b2


def pool(config: ModelConfig, features: Float[Array, "n d"]) -> Float[Array, " d"]:
    """Pool per-position features (one row per position, or a single already pooled row): mean, last or first."""
    check_config(config)
    check_array("features", features, (None, config.d))
    if np.shape(features)[0] < 1:
        raise ValueError(f"features must have shape (m, {config.d}) with m >= 1, got {np.shape(features)}")
    return _pool(config, features)


def _pool(config, features):
    if config.pooling == "mean":
        return features.mean(axis=0)
    return features[-1] if config.pooling == "last" else features[0]


def class_logits_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], s: Float[Array, "n n"]
) -> Float[Array, " c"]:
    """Classification logits of one sequence for a given score matrix $S$."""
    z = _pool(config, features_at_scores(params, config, tokens, s))
    return z @ params.classifier.weight + params.classifier.bias


def mask_tokens(config: ModelConfig, tokens: Int[Array, " n"], mask) -> Int[Array, " n"]:
    """Replace the masked positions of data ids (in ``[0, V)``) by the MASK id ``config.vocab``."""
    check_config(config)
    check_shape("tokens", tokens, (*np.shape(tokens)[:-1], config.n))
    check_ids("tokens", tokens, 0, config.vocab - 1, note=f" (data ids; {config.vocab} is MASK)")
    check_shape("mask", mask, np.shape(tokens))
    check_mask("mask", mask, config.n)
    return jnp.where(mask, config.mask_id, tokens)
