r"""Streamed first-order statistics of per-sample score gradients at any parameters.

Every loss of this model depends on the scores through the attention outputs $O = A V$ only
(``output_view``), so with $g = \partial \ell / \partial O$ the score gradient of sample b is

$$G_b = A \circ \big(g V^\top - \delta \mathbf 1^\top\big), \qquad \delta_i = g_i^\top o_i,$$

row by row (P1; at $A = \mathbf 1 \mathbf 1^\top / n$ this is ``fast_paths``' closed form). Nothing of size
$b \times n \times n$ is held: a first pass over blocks of c query rows computes the outputs O (the
softmax of one block of scores at a time), g follows by autodiff of the position-wise part, and a
second pass forms the block of $G_b$ of every sample, accumulates

- the :class:`~blindspot.directions.Statistics` (row, column and diagonal sums, from which every
  family's coordinates follow),
- the Gram matrix $K_{bc} = \langle G_b, G_c \rangle_F$ (span rank, per-sample norms),
- the squared norm $\lVert \bar G \rVert_F^2$ of the batch mean,
- the query-key gradients $\nabla_W L_b = c\, K_b^\top G_b K_b$ (encodings $K_b$, scale c, ``output_view``),

and drops the block. Cost: $b n^2 (3d + 2r + b)$ multiply-adds and $2 b n^2$ exponentials per objective
(the scores and their softmax are formed twice). Memory: a few $(b, c, n)$ blocks and $O(b n (d + r) + b^2
+ b d^2)$ accumulators; ``chunk`` sets c. Deterministic: every reduction is a fixed-order sum or matrix
product (diagonal sums by ``directions.block_diagonal_sums``, no scatter-add), so two runs on one device
give the same bits.

The per-sample rank of $G_b$ is not computed: $G_b$ is a Hadamard product of the full-rank A with a
rank-$\le r + 1$ matrix, so its rank needs an SVD of the $n \times n$ matrix itself ($O(n^3)$ per
sample, the dense route's cost).
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot import output_view
from blindspot.checks import check_int
from blindspot.config import ModelConfig
from blindspot.directions import Statistics, block_diagonal_sums
from blindspot.model import Params, query_key_matrix
from blindspot.objectives import check_objective

BLOCK_NUMBERS = 2**25
"""Default block size: about this many numbers in one $(b, c, n)$ block (256 MiB in float64).

Larger blocks make the $(c \times d) (d \times n)$ score products faster on CPUs (13.6 against 12.2 GFLOP/s
per core at c = 128 against 64, n = 4096, d = 64) while a few such blocks stay well under 4 GiB."""


class StreamedGradients(NamedTuple):
    r"""First-order data of b per-sample score gradients $G_b$, accumulated over blocks of query rows."""

    statistics: Statistics
    gram: Float[Array, "b b"]
    mean_squared_norm: Float[Array, ""]
    query_key_gradients: Float[Array, "b d d"]


def default_chunk(batch: int, n: int) -> int:
    """Rows per block so that one $(b, c, n)$ block holds about ``BLOCK_NUMBERS`` numbers (1 <= c <= n)."""
    check_int("batch", batch, 1)
    check_int("n", n, 1)
    return max(1, min(n, BLOCK_NUMBERS // (batch * n)))


def streamed_gradients(
    params: Params,
    config: ModelConfig,
    objective: str,
    tokens: Int[Array, "b n"],
    target: Array,
    *,
    chunk: int | None = None,
) -> StreamedGradients:
    r"""Statistics, Gram matrix, mean norm and W-gradients of the per-sample score gradients, streamed.

    Parameters
    ----------
    params, config
        The model, at any query-key matrix W.
    objective
        ``"classification"`` (``target`` = labels, shape (b,)) or ``"reconstruction"`` (``target`` =
        boolean masks, shape (b, n); the scores are those of the masked input).
    tokens
        Token ids, shape (b, n).
    chunk
        Query rows per block, in [1, n]; ``None``: :func:`default_chunk`. Any c works (the last block is
        padded with rows that contribute nothing); c sets the memory, $O(b c n)$.

    Returns
    -------
    StreamedGradients
        Equal, to rounding, to ``directions.statistics``, the Gram matrix, the mean and
        ``jacobian.query_key_gradients`` of the dense ``jacobian.score_gradients``.
    """
    check_objective(params, config, objective, tokens, target)
    batch = int(np.shape(tokens)[0])
    chunk = default_chunk(batch, config.n) if chunk is None else check_int("chunk", chunk, 1, config.n)
    return _streamed(params, config, objective, tokens, target, chunk)


def _pad_rows(x: Float[Array, "b n ..."], padded: int) -> Float[Array, "b N ..."]:
    """Append zero rows up to ``padded`` rows (a block of padding rows contributes nothing)."""
    return jnp.pad(x, [(0, 0), (0, padded - x.shape[1])] + [(0, 0)] * (x.ndim - 2))


def _rows(x: Float[Array, "b N ..."], first, chunk: int) -> Float[Array, "b c ..."]:
    """Rows ``first .. first + chunk - 1`` of every sample (``first`` may be traced)."""
    return jax.lax.dynamic_slice_in_dim(x, first, chunk, axis=1)


def _scores(queries: Float[Array, "b c d"], keys: Float[Array, "b n d"]) -> Float[Array, "b c n"]:
    return jnp.einsum("bcd,bnd->bcn", queries, keys)


def _forward(keys, values, query_rows, w, chunk):
    r"""Return the outputs $O = A V$ and row normalisers $\log \sum_j e^{S_{ij}}$ of the padded rows, by blocks."""
    b, padded = query_rows.shape[:2]

    def block(carry, first):
        s = _scores(_rows(query_rows, first, chunk) @ w, keys)
        top = s.max(axis=-1, keepdims=True)
        e = jnp.exp(s - top)
        total = e.sum(axis=-1, keepdims=True)
        outputs = jnp.einsum("bcn,bnr->bcr", e, values) / total
        updated = (outputs, top + jnp.log(total))
        return tuple(jax.lax.dynamic_update_slice_in_dim(x, y, first, 1) for x, y in zip(carry, updated)), None

    zeros = (jnp.zeros((b, padded, values.shape[-1]), values.dtype), jnp.zeros((b, padded, 1), values.dtype))
    return jax.lax.scan(block, zeros, jnp.arange(0, padded, chunk))[0]


@partial(jax.jit, static_argnums=(1, 2, 5))
def _streamed(params, config, objective, tokens, target, chunk):
    def per_sample(f, *more):
        return jax.vmap(lambda x, t, *m: f(params, config, objective, x, t, *m))(tokens, target, *more)

    n, padded = config.n, -(-config.n // chunk) * chunk
    keys, values = per_sample(output_view.encodings), per_sample(output_view.values)
    query_rows = _pad_rows(keys, padded)
    w = output_view.score_scale(config) * query_key_matrix(params)
    outputs, normalisers = _forward(keys, values, query_rows, w, chunk)
    g = _pad_rows(per_sample(output_view.output_gradient, outputs[:, :n]), padded)
    rows_data = (query_rows, normalisers, g, jnp.sum(g * outputs, axis=-1, keepdims=True))
    accumulate = partial(_accumulate, keys, values, w, rows_data, chunk)
    carry, rows = jax.lax.scan(accumulate, _zeros(keys, padded), jnp.arange(0, padded, chunk))
    columns, diagonals, gram, mean_squared, w_grads = carry
    rows = jnp.moveaxis(rows, 0, 1).reshape(rows.shape[1], padded)[:, :n]
    statistics = Statistics(rows, columns, diagonals[:, padded - n : padded + n - 1])
    return StreamedGradients(statistics, gram, mean_squared, output_view.score_scale(config) * w_grads)


def _zeros(keys: Float[Array, "b n d"], padded: int) -> tuple:
    """Return zero accumulators: column sums, diagonal buffer (``_accumulate``), Gram, mean norm, W-gradients."""
    b, n, d = keys.shape
    zero = jnp.zeros((), keys.dtype)
    return (
        jnp.zeros((b, n), keys.dtype),
        jnp.zeros((b, padded + n - 1), keys.dtype),
        jnp.zeros((b, b), keys.dtype),
        zero,
        jnp.zeros((b, d, d), keys.dtype),
    )


def _accumulate(keys, values, w, rows_data, chunk, carry, first):
    r"""Add the block of query rows $i_0 .. i_0 + c - 1$ ($i_0$ = ``first``) of every $G_b$ to the accumulators.

    ``rows_data``: the padded rows of the encodings, the normalisers, g and $\delta$. The diagonal buffer
    has length $N + n - 1$ ($N$ the padded row count); the block's local diagonal sums (offsets $j - r$
    from $-(c - 1)$) go at $N - c - i_0$, so that buffer entry p holds offset $p - N$, and the offsets
    $-(n - 1) .. n - 1$ are entries $N - n .. N + n - 2$.
    """
    columns, diagonals, gram, mean_squared, w_grads = carry
    query_rows, normalisers, g, delta = (_rows(x, first, chunk) for x in rows_data)
    attention = jnp.exp(_scores(query_rows @ w, keys) - normalisers)
    grad = attention * (jnp.einsum("bcr,bnr->bcn", g, values) - delta)
    at = diagonals.shape[1] - keys.shape[1] + 1 - chunk - first
    local = jax.lax.dynamic_slice_in_dim(diagonals, at, keys.shape[1] + chunk - 1, axis=1)
    diagonals = jax.lax.dynamic_update_slice_in_dim(diagonals, local + block_diagonal_sums(grad), at, axis=1)
    mean = grad.mean(axis=0)
    flat = grad.reshape(grad.shape[0], -1)
    carry = (
        columns + grad.sum(axis=1),
        diagonals,
        gram + flat @ flat.T,
        mean_squared + jnp.sum(mean * mean),
        w_grads + jnp.einsum("bcd,bce->bde", query_rows, jnp.einsum("bcn,bne->bce", grad, keys)),
    )
    return carry, grad.sum(axis=2)
