r"""Streamed first-order statistics of per-sample score gradients at any parameters.

Every loss of this model depends on the scores through the attention outputs $O = A V$ only
(``output_view``), so with $g = \partial \ell / \partial O$ the score gradient of sample b is

$$G_b = A \circ \big(g V^\top - \delta \mathbf 1^\top\big), \qquad \delta_i = g_i^\top o_i,$$

row by row (P1; at $A = \mathbf 1 \mathbf 1^\top / n$ this is ``fast_paths``' closed form). Row i of $G_b$
vanishes where $g_i = 0$, that is outside the rows whose outputs the loss reads
(``output_view.read_rows``: the masked positions for reconstruction, the pooled row for first or last
pooling, every row for mean pooling), so only those rows' scores are formed. Nothing of size
$b \times n \times n$ is held: a first pass over blocks of c query positions computes the outputs of the
read rows among them (the softmax of one block of scores at a time), g follows by autodiff of the
position-wise part, and a second pass forms the read rows of the block of $G_b$ of every sample, places
them at their positions in a $(b, c, n)$ block (zeros elsewhere), accumulates

- the :class:`~blindspot.directions.Statistics` (row, column and diagonal sums, from which every
  family's coordinates follow),
- the Gram matrix $K_{bc} = \langle G_b, G_c \rangle_F$ (span rank, per-sample norms),
- the squared norm $\lVert \bar G \rVert_F^2$ of the batch mean,
- the query-key gradients $\nabla_W L_b = c\, K_b^\top G_b K_b$ (encodings $K_b$, scale c, ``output_view``),

and drops the block. Cost per objective, with k of every c positions read (k = c for mean pooling, about
a fraction ``mask_rate`` of c for reconstruction, the most over blocks and samples): $b n^2 (k/c)(3d + 2r)$
multiply-adds and $2 b n^2 k / c$ exponentials (the scores and their softmax are formed twice), and
$b^2 n^2$ for the Gram matrix. Memory: a few $(b, c, n)$ blocks and $O(b n (d + r) + b^2 + b d^2)$
accumulators; ``chunk`` sets c. Deterministic: every reduction is a fixed-order sum or matrix product
(diagonal sums by ``directions.block_diagonal_sums``, rows placed by a scatter without accumulation,
no scatter-add), so two runs on one device give the same bits.

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
from blindspot.checks import check_int, is_concrete
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
        Query positions per block, in [1, n]; ``None``: :func:`default_chunk`. Any c works (the last block is padded
        with rows that contribute nothing); c sets the memory, $O(b c n)$.

    Returns
    -------
    StreamedGradients
        Equal, to rounding, to ``directions.statistics``, the Gram matrix, the mean and
        ``jacobian.query_key_gradients`` of the dense ``jacobian.score_gradients``.
    """
    check_objective(params, config, objective, tokens, target)
    batch = int(np.shape(tokens)[0])
    chunk = default_chunk(batch, config.n) if chunk is None else check_int("chunk", chunk, 1, config.n)
    local = read_positions(config, objective, target, chunk)
    in_place = local.shape[-1] == chunk and bool(np.all((local == np.arange(chunk)) | (local == chunk)))
    return _streamed(params, config, objective, tokens, target, local, chunk, in_place)


def read_positions(config: ModelConfig, objective: str, target: Array, chunk: int) -> np.ndarray:
    """Positions, within each block of ``chunk`` query rows, of the rows each sample's loss reads.

    Shape (blocks, b, k), ascending, padded with ``chunk`` up to the largest count k over blocks and
    samples; every position when ``target`` is traced (its values unknown).
    """
    batch, blocks = np.shape(target)[0], -(-config.n // chunk)
    if is_concrete(target):
        read = np.asarray(jax.vmap(lambda t: output_view.read_rows(config, objective, t))(target))
    else:
        read = np.ones((batch, config.n), bool)
    read = np.pad(read, [(0, 0), (0, blocks * chunk - config.n)]).reshape(batch, blocks, chunk)
    count = int(read.sum(axis=-1).max())
    order = np.argsort(~read, axis=-1, kind="stable")[..., :count]  # read positions first, in order
    local = np.where(np.take_along_axis(read, order, axis=-1), order, chunk)
    return np.ascontiguousarray(np.moveaxis(local, 1, 0))


def _gather_rows(x: Float[Array, "b N k"], index: Int[Array, "b c"]) -> Float[Array, "b c k"]:
    """Rows ``index`` of every sample."""
    return jnp.take_along_axis(x, index[..., None], axis=1)


def _place_rows(x: Float[Array, "b k ..."], index: Int[Array, "b k"], rows: int) -> Float[Array, "b N ..."]:
    """Rows of x put at their indices among ``rows`` zero rows; an index ``rows`` (padding) is dropped.

    Indices are unique apart from the padding, so no entry accumulates (a deterministic scatter).
    """
    placed = jnp.zeros((x.shape[0], rows + 1, *x.shape[2:]), x.dtype)
    return placed.at[jnp.arange(x.shape[0])[:, None], index].set(x)[:, :rows]


def _scores(queries: Float[Array, "b c d"], keys: Float[Array, "b n d"]) -> Float[Array, "b c n"]:
    return jnp.einsum("bcd,bnd->bcn", queries, keys)


def _global(local, first, chunk, padded):
    """Row indices of block positions ``local`` of the block starting at ``first`` (padding: ``padded``)."""
    return jnp.where(local < chunk, first + local, padded)


@partial(jax.jit, static_argnums=(1, 2, 6, 7))
def _streamed(params, config, objective, tokens, target, local, chunk, in_place):
    def per_sample(f, *more):
        return jax.vmap(lambda x, t, *m: f(params, config, objective, x, t, *m))(tokens, target, *more)

    n, padded = config.n, local.shape[0] * chunk
    rows = _global(local, jnp.arange(0, padded, chunk)[:, None, None], chunk, padded)  # (blocks, b, k)
    keys, values = per_sample(output_view.encodings), per_sample(output_view.values)
    query_rows = jnp.pad(keys, [(0, 0), (0, padded + 1 - n), (0, 0)])  # zero rows past n
    w = output_view.score_scale(config) * query_key_matrix(params)
    outputs, normalisers = jax.lax.map(partial(_outputs, keys, values, query_rows, w), rows)
    flat_rows = jnp.moveaxis(rows, 0, 1).reshape(rows.shape[1], -1)
    placed = _place_rows(jnp.moveaxis(outputs, 0, 1).reshape(*flat_rows.shape, -1), flat_rows, padded)[:, :n]
    g_rows = jnp.pad(per_sample(output_view.output_gradient, placed), [(0, 0), (0, padded + 1 - n), (0, 0)])
    g = jax.vmap(lambda r: _gather_rows(g_rows, r))(rows)
    blocks = (local, rows, normalisers, g, jnp.sum(g * outputs, axis=-1, keepdims=True))
    accumulate = partial(_accumulate, keys, values, query_rows, w, chunk, in_place)
    carry, row_sums = jax.lax.scan(accumulate, _zeros(keys, padded), (*blocks, jnp.arange(0, padded, chunk)))
    columns, diagonals, gram, mean_squared, w_grads = carry
    row_sums = jnp.moveaxis(row_sums, 0, 1).reshape(row_sums.shape[1], padded)[:, :n]
    statistics = Statistics(row_sums, columns, diagonals[:, padded - n : padded + n - 1])
    return StreamedGradients(statistics, gram, mean_squared, output_view.score_scale(config) * w_grads)


def _outputs(keys, values, query_rows, w, rows):
    r"""Return the outputs $O = A V$ and normalisers $\log \sum_j e^{S_{ij}}$ of the rows ``rows`` (b, k)."""
    s = _scores(_gather_rows(query_rows, rows) @ w, keys)
    top = s.max(axis=-1, keepdims=True)
    e = jnp.exp(s - top)
    total = e.sum(axis=-1, keepdims=True)
    return jnp.einsum("bcn,bnr->bcr", e, values) / total, top + jnp.log(total)


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


def _accumulate(keys, values, query_rows, w, chunk, in_place, carry, block):
    r"""Add the block of query positions $i_0 .. i_0 + c - 1$ of every $G_b$ to the accumulators.

    ``block``: the read rows' positions in the block and their indices, normalisers, g, $\delta$, and $i_0$.
    The read rows of $G_b$ are formed, then placed at their positions in a $(b, c, n)$ block (zeros
    elsewhere) for the sums, the Gram matrix and the mean, which pair entries of different samples;
    ``in_place``: every read row already sits at its position (the rows in between are padding, zero).
    """
    columns, diagonals, gram, mean_squared, w_grads = carry
    local, rows, normalisers, g, delta, first = block
    encodings = _gather_rows(query_rows, rows)
    read = jnp.exp(_scores(encodings @ w, keys) - normalisers) * (jnp.einsum("bcr,bnr->bcn", g, values) - delta)
    grad = read if in_place else _place_rows(read, local, chunk)
    mean = grad.mean(axis=0)
    flat = grad.reshape(grad.shape[0], -1)
    carry = (
        columns + grad.sum(axis=1),
        _add_diagonals(diagonals, grad, first),
        gram + flat @ flat.T,
        mean_squared + jnp.sum(mean * mean),
        w_grads + jnp.einsum("bcd,bce->bde", encodings, jnp.einsum("bcn,bne->bce", read, keys)),
    )
    return carry, grad.sum(axis=2)


def _add_diagonals(diagonals, grad, first):
    r"""Add the diagonal sums of the block of rows $i_0 .. i_0 + c - 1$ ($i_0$ = ``first``) to the buffer.

    The buffer has length $N + n - 1$ ($N$ the padded row count); the block's local diagonal sums (offsets
    $j - r$ from $-(c - 1)$) go at $N - c - i_0$, so that buffer entry p holds offset $p - N$, and the
    offsets $-(n - 1) .. n - 1$ are entries $N - n .. N + n - 2$.
    """
    chunk, n = grad.shape[1:]
    at = diagonals.shape[1] - n + 1 - chunk - first
    local = jax.lax.dynamic_slice_in_dim(diagonals, at, n + chunk - 1, axis=1)
    return jax.lax.dynamic_update_slice_in_dim(diagonals, local + block_diagonal_sums(grad), at, axis=1)
