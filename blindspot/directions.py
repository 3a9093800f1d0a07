r"""Direction families in score space, as orthonormal bases and as coordinate maps, and the probe\'s registry.

A *family* is a linear subspace of $n \times n$ score perturbations. Dense constructors return a
Frobenius-orthonormal basis as an array of shape ``(k, n, n)``. For large n, where a dense basis would
hold $k n^2$ numbers ($n^3$ for the circulant family), each family is also a :class:`Family`: its
coordinates are computed from three $O(n)$ summary statistics of a score matrix $X$ (row sums,
column sums, sums along each diagonal, :class:`Statistics`), which is all that every registered
family needs because each is spanned by row-constant, column-constant or Toeplitz matrices. A family is
measured on its non-gauge part by default (``family(name, n)``; the gauge $r \mathbf 1^\top$ is invisible to
every loss, P1) or whole (``family(name, n, part="whole")``): see :class:`Family`.

Diagonal offsets are $k = j - i \in \{-(n-1), \dots, n-1\}$, stored at index $k + n - 1$; $D_k$ is the
0/1 matrix with ones where $j - i = k$, $\lVert D_k \rVert_F^2 = n - |k|$.
"""

import functools
import math
import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from blindspot.checks import (
    check_allocation,
    check_array,
    check_choice,
    check_float,
    check_floating_dtype,
    check_int,
)
from blindspot.tolerances import rank_tolerance

PROXIMITY_LENGTH = 4.0
"""Default length $l$ of the registered ``proximity`` kernel $e^{-|i-j|/l}$."""

FAMILY_PARTS = ("non_gauge", "whole")
"""Parts of a family that :func:`family` measures (see :class:`Family`)."""

FAMILY_NAMES = ("gauge", "circulant", "toeplitz", "column_sum", "band_<k>", "proximity", "proximity_<l>")


def _dtype(dtype):
    return check_floating_dtype("dtype", dtype)


def _stack_dtype(n: int, k: int, dtype):
    """Return the checked ``dtype`` of a dense basis of k directions of n x n, refused above the allocation limit."""
    dtype = _dtype(dtype)
    check_allocation("n (dense basis of n x n directions)", (k, n, n), dtype)
    return dtype


def _offsets(n: int) -> np.ndarray:
    return np.arange(-(n - 1), n)


def _depth(n: int, dtype) -> Float[Array, " m"]:
    r"""Length $n - |k|$ of each diagonal, $\lVert D_k \rVert_F^2$."""
    return jnp.asarray(n - np.abs(_offsets(n)), dtype)


def _diagonal(n: int, k: int, dtype) -> Float[Array, "n n"]:
    return jnp.eye(n, k=k, dtype=dtype)


def gauge(n: int, *, dtype=None) -> Float[Array, "n n n"]:
    r"""Row-constant directions $e_i \mathbf 1^\top / \sqrt n$, $i = 1..n$ (dimension n, P1).

    Notes
    -----
    Adding $r_i$ to every entry of row i leaves the row softmax unchanged, so these n directions are
    invisible to every loss of the scores.
    """
    check_int("n", n, 2)
    dtype = _stack_dtype(n, n, dtype)
    return jnp.einsum("ik,j->kij", jnp.eye(n, dtype=dtype), jnp.ones(n, dtype)) / math.sqrt(n)


def circulant(n: int, *, dtype=None) -> Float[Array, "n n n"]:
    r"""Wrap-around diagonals $C_k = [\,j - i \equiv k \bmod n\,] / \sqrt n$, $k = 0..n-1$ (dimension n, P3)."""
    check_int("n", n, 2)
    dtype = _stack_dtype(n, n, dtype)
    i = jnp.arange(n)
    lag = (i[None, :] - i[:, None]) % n
    return (lag[None, :, :] == jnp.arange(n)[:, None, None]).astype(dtype) / math.sqrt(n)


def toeplitz(n: int, *, dtype=None) -> Float[Array, "m n n"]:
    r"""All diagonals $D_k / \sqrt{n - |k|}$, $k = -(n-1)..n-1$ (dimension 2n - 1, P4)."""
    check_int("n", n, 2)
    dtype = _stack_dtype(n, 2 * n - 1, dtype)
    return jnp.stack([_diagonal(n, int(k), dtype) / math.sqrt(n - abs(int(k))) for k in _offsets(n)])


def band(n: int, k: int, *, dtype=None) -> Float[Array, "1 n n"]:
    r"""Build the symmetric band $B_k = (D_k + D_{-k}) / \sqrt{2(n - k)}$, ones where $|i - j| = k$ (dimension 1).

    ``k = 0`` gives $I / \sqrt n$. P4 derives its visible fraction for label supervision.
    """
    check_int("n", n, 2)
    check_int("k", k, 0, n - 1)
    dtype = _stack_dtype(n, 1, dtype)
    if k == 0:
        return (jnp.eye(n, dtype=dtype) / math.sqrt(n))[None]
    return ((_diagonal(n, k, dtype) + _diagonal(n, -k, dtype)) / math.sqrt(2 * (n - k)))[None]


def _helmert(n: int, dtype) -> Float[Array, "m n"]:
    r"""Orthonormal basis of $\mathbf 1^\perp$: $q_l = (1, .., 1, -l, 0, ..)/\sqrt{l(l+1)}$, l = 1..n-1."""
    level = jnp.arange(1, n, dtype=dtype)[:, None]
    j = jnp.arange(n, dtype=dtype)[None, :]
    q = jnp.where(j < level, 1.0, 0.0) - level * (j == level).astype(dtype)
    return q / jnp.sqrt(level * (level + 1.0))


def column_sum(n: int, *, dtype=None) -> Float[Array, "m n n"]:
    r"""Build the column-sum space $U = \{\mathbf 1 w^\top : w^\top \mathbf 1 = 0\}$ (dimension n - 1, P4).

    Basis $\mathbf 1 q_l^\top / \sqrt n$ with $q_l$ the Helmert basis of $\mathbf 1^\perp$:
    $q_l = (1, \dots, 1, -l, 0, \dots, 0) / \sqrt{l(l+1)}$ ($l$ ones). At uniform attention every
    mean-pooled classification gradient lies in U.
    """
    check_int("n", n, 2)
    dtype = _stack_dtype(n, n - 1, dtype)
    return jnp.einsum("i,lj->lij", jnp.ones(n, dtype), _helmert(n, dtype)) / math.sqrt(n)


def proximity_weights(n: int, length: float, dtype) -> Float[Array, " m"]:
    r"""Weight $e^{-|k|/l} / \lVert K \rVert_F$ of each diagonal k (at index k + n - 1) in the normalised kernel."""
    check_int("n", n, 2)
    check_float("length", length, 0.0, float("inf"))
    return _normalised_decay(jnp.asarray(_offsets(n), _dtype(dtype)), length)


@jax.jit
def _normalised_decay(offsets: Float[Array, " m"], length: float) -> Float[Array, " m"]:
    n = (offsets.shape[0] + 1) // 2
    k = jnp.abs(offsets)
    w = jnp.exp(-k / length)
    return w / jnp.sqrt(jnp.sum(w**2 * (n - k)))


def proximity_kernel(n: int, length: float, *, dtype=None) -> Float[Array, "1 n n"]:
    r"""Build the proximity kernel $K_{ij} = e^{-|i-j|/l} / \lVert K \rVert_F$ (dimension 1, P2/P6)."""
    check_int("n", n, 2)
    check_float("length", length, 0.0, float("inf"))
    dtype = _stack_dtype(n, 1, dtype)
    i = jnp.arange(n, dtype=dtype)
    k = jnp.exp(-jnp.abs(i[:, None] - i[None, :]) / length)
    return (k / jnp.linalg.norm(k))[None]


def orthonormalize(stack: Float[Array, "k n n"]) -> Float[Array, "r n n"]:
    r"""Frobenius-orthonormal basis of the span of a stack of matrices (rank-revealing SVD).

    Notes
    -----
    Right singular vectors of the $(k, n^2)$ matrix of flattened directions whose singular values
    exceed ``tolerances.rank_tolerance``; the result spans the same subspace.
    """
    check_array("stack", stack, (None, None, None))
    if 0 in np.shape(stack):
        raise ValueError(f"stack must have shape (k, n, m) with k, n, m >= 1, got {np.shape(stack)}")
    stack = jnp.asarray(stack)
    flat = stack.reshape(stack.shape[0], -1)
    _, s, vt = jnp.linalg.svd(flat, full_matrices=False)
    tol = rank_tolerance(s[0], flat.shape, flat.dtype) if s.size else 0.0
    r = int(jnp.sum(s > tol))
    return vt[:r].reshape(r, *stack.shape[1:])


class Statistics(NamedTuple):
    """Summary statistics of score matrices ``(..., n, n)`` that determine every family's coordinates."""

    rows: Float[Array, "... n"]
    columns: Float[Array, "... n"]
    diagonals: Float[Array, "... m"]


def statistics(x: Float[Array, "... n n"]) -> Statistics:
    """Row sums, column sums and diagonal sums (offset $j - i$ at index $j - i + n - 1$) of dense matrices."""
    shape = np.shape(x)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] < 1:
        raise ValueError(f"x must have shape (..., n, n) with n >= 1, got {shape}")
    check_array("x", x)
    return _statistics(x)


@jax.jit
def _statistics(x):
    return Statistics(x.sum(-1), x.sum(-2), block_diagonal_sums(x))


def block_diagonal_sums(block: Float[Array, "... c n"]) -> Float[Array, "... m"]:
    r"""Sum along the diagonals of a block of c rows: entry p sums the entries with $j - r = p - (c - 1)$.

    For a square block (c = n) these are the diagonal sums of :class:`Statistics` (offset $j - i$ at
    index $j - i + n - 1$); a block of rows $i_0 .. i_0 + c - 1$ of a larger matrix adds entry p to the
    offset $p - (c - 1) - i_0$.

    Notes
    -----
    Row r is added to the entries $c - 1 - r .. c - 2 - r + n$, one row after another (``fori_loop``):
    a fixed order of additions, so the result is deterministic on every device (a scatter-add such as
    ``segment_sum`` accumulates in a varying order on GPUs). Memory: the output only; $O(c n)$ time.
    """
    c, n = block.shape[-2:]

    def add_row(r, total):
        row = jax.lax.dynamic_index_in_dim(block, r, axis=-2, keepdims=False)
        at = c - 1 - r
        return jax.lax.dynamic_update_slice_in_dim(total, jax.lax.dynamic_slice_in_dim(total, at, n, -1) + row, at, -1)

    return jax.lax.fori_loop(0, c, add_row, jnp.zeros((*block.shape[:-2], n + c - 1), block.dtype))


def factor_statistics(rows: Float[Array, "... n r"], columns: Float[Array, "... n r"]) -> Statistics:
    r"""Statistics of $X = R C^\top$ without forming $X$: $O(r\, n \log n)$.

    Notes
    -----
    Diagonal sums $\sum_i \sum_a R_{ia} C_{i+k,a}$ are a cross-correlation along positions, computed by
    zero-padded FFTs of length $\ge 2n$.
    """
    if np.ndim(rows) < 2 or 0 in np.shape(rows):
        raise ValueError(f"rows must have shape (..., n, r) with n, r >= 1, got {np.shape(rows)}")
    check_array("rows", rows, np.shape(rows))
    check_array("columns", columns, np.shape(rows))
    return _factor_statistics(rows, columns)


@jax.jit
def _factor_statistics(rows, columns):
    n = rows.shape[-2]
    length = 1 << (2 * n - 1).bit_length()
    fr = jnp.fft.rfft(rows, length, axis=-2)
    fc = jnp.fft.rfft(columns, length, axis=-2)
    corr = jnp.fft.irfft(jnp.sum(jnp.conj(fr) * fc, axis=-1), length, axis=-1)
    diagonals = jnp.concatenate([corr[..., length - (n - 1) :], corr[..., :n]], axis=-1)
    return Statistics(
        jnp.einsum("...ir,...r->...i", rows, columns.sum(-2)),
        jnp.einsum("...jr,...r->...j", columns, rows.sum(-2)),
        diagonals,
    )


class Family(NamedTuple):
    r"""A direction family: its name, the part measured, dimension, dense basis and coordinate map.

    ``coordinates(stats)`` returns the inner products $\langle X, Q_l \rangle$ of matrices $X$ with the
    orthonormal basis $Q_l$ of the family's ``part`` (the rows of ``basis()``), from their
    :class:`Statistics`, in $O(n)$ per sample. ``basis()`` builds the dense ``(dim, n, n)`` basis (small
    n only). ``part`` is ``"non_gauge"`` (the default of :func:`family`) or ``"whole"``.

    Notes
    -----
    Every loss of the row-softmax scores is blind to the gauge $\{r \mathbf 1^\top\}$ (P1), so a family
    F is measured on its *non-gauge part* $F' = \{(I - \Pi_g) D : D \in F\}$, with
    $\Pi_g X = X \mathbf 1 \mathbf 1^\top / n$. A gradient span containing all of $F'$ then reads visible
    fraction 1; measured whole, F reads at most $\mathrm{tr}\, K / \dim F$ with the Gram matrix
    $K = I - R R^\top / n$ of the projected basis ($R$: the row sums of the basis elements). Coordinates
    need only the statistics: $\langle X, (I - \Pi_g) F_l \rangle = \langle X, F_l \rangle
    - \sum_i \mathrm{rowsum}_i(X)\, \mathrm{rowsum}_i(F_l) / n$. Per family (each $O(n)$ per sample):

    - ``gauge``: $F' = \{0\}$; kept whole (its visible fraction is 0 by P1), ``part = "whole"``;
    - ``column_sum``: $R = 0$, $F' = F$, $K = I$;
    - ``circulant``: constant row sums, $K = I - \mathbf 1 \mathbf 1^\top / n$; $F'$ is the zero-sum
      circulants, basis $\sum_k h_{lk} C_k$ with the Helmert basis $h_l$ of $\mathbf 1^\perp$
      (dimension n - 1);
    - ``band_<k>``, ``proximity``: one direction q, $F'$ spanned by $(I - \Pi_g) q /
      \sqrt{1 - \lVert \Pi_g q \rVert_F^2}$, $\lVert \Pi_g q \rVert_F^2 = \lVert q \mathbf 1 \rVert^2 / n$;
    - ``toeplitz`` (dimension 2n - 2): the zero-sum circulants and, orthogonal to them, the projected
      pairs $A_a = (n - a) D_{n-a} - a D_{-a}$, $a = 1..n-1$ (orthogonal to the circulants, with
      mean-zero row sums $n \mathbf 1_{[0, a)} - a \mathbf 1$). The Gram matrix of
      $(I - \Pi_g) A_a / \sqrt n$ is $M = \mathrm{diag}(a(n - a)) - [\min(a, b) - ab/n]$, a diagonal
      minus a semiseparable matrix (well conditioned: its diagonally normalised eigenvalues lie in
      $[1/2, 1)$ for every n tried up to 1024), whose Cholesky factor C is semiseparable.
      Cost: C once in $O(n)$ time and memory (``_pair_factor``), then $O(n)$ per sample to solve
      $C c = y$ (a sequential scan of n - 1 steps); no $n \times n$ object. The general route, an
      eigendecomposition of the $(2n - 1)^2$ matrix K, would cost $O(n^3)$ ($5 \cdot 10^{11}$ flops and
      0.5 GB at n = 4096).

    The dense ``basis()`` holds $\dim \cdot n^2$ numbers (small n only, as before).
    """

    name: str
    n: int
    part: str
    dim: int
    coordinates: Callable[[Statistics], Array]
    basis: Callable[[], Array]


def remove_gauge(x: Float[Array, "... n n"]) -> Float[Array, "... n n"]:
    r"""Project off the gauge (P1): $(I - \Pi_g) X = X - X \mathbf 1 \mathbf 1^\top / n$, each row minus its mean."""
    return x - x.mean(-1, keepdims=True)


@jax.jit
def _helmert_coordinates(v: Float[Array, "... n"]) -> Float[Array, "... m"]:
    r"""Coordinates $\langle v, q_l \rangle$ in the Helmert basis of $\mathbf 1^\perp$ (``_helmert``) in $O(n)$."""
    level = jnp.arange(1, v.shape[-1], dtype=v.dtype)
    prefix = jnp.cumsum(v, axis=-1)[..., :-1]
    return (prefix - level * v[..., 1:]) / jnp.sqrt(level * (level + 1.0))


@jax.jit
def _circulant_coordinates(t: Float[Array, "... m"]) -> Float[Array, "... n"]:
    r"""$\langle X, C_k \rangle = (t_k + t_{k-n}) / \sqrt n$ from the diagonal sums t."""
    n = (t.shape[-1] + 1) // 2
    lower = jnp.concatenate([jnp.zeros_like(t[..., :1]), t[..., : n - 1]], axis=-1)
    return (t[..., n - 1 :] + lower) / math.sqrt(n)


def _circulant_non_gauge(n: int, dtype) -> Float[Array, "m n n"]:
    return jnp.einsum("lk,kij->lij", _helmert(n, dtype), circulant(n, dtype=dtype))


@functools.cache
def _pair_factor(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Cholesky factor $C = \mathrm{diag}(d) + \mathrm{tril}(v g^\top, -1)$ of the Toeplitz pairs' Gram M.

    Notes
    -----
    $M_{ab} = \delta_{ab}\, a(n - a) - u_{\min(a, b)} v_{\max(a, b)}$ with $u_a = a$, $v_a = (n - a)/n$.
    Matching $M = C C^\top$ entry by entry, with $\sigma_a = \sum_{b < a} g_b^2$:
    $d_a^2 = a(n - a) - u_a v_a - v_a^2 \sigma_a$ and $g_a = -(u_a + v_a \sigma_a) / d_a$; $O(n)$.
    """
    a = np.arange(1, n, dtype=np.float64)
    u, v = a, (n - a) / n
    d, g = np.empty(n - 1), np.empty(n - 1)
    sigma = 0.0
    for i in range(n - 1):
        d[i] = math.sqrt(a[i] * (n - a[i]) - u[i] * v[i] - v[i] ** 2 * sigma)
        g[i] = -(u[i] + v[i] * sigma) / d[i]
        sigma += g[i] ** 2
    return d, g, v


@jax.jit
def _semiseparable_solve(y, diagonal, below, left):
    r"""Solve $C x = y$ along the last axis for $C = \mathrm{diag}(d) + \mathrm{tril}(v g^\top, -1)$: $O(n)$ scan."""

    def step(tail, entry):
        y_a, d_a, g_a, v_a = entry
        x_a = (y_a - v_a * tail) / d_a
        return tail + g_a * x_a, x_a

    _, x = jax.lax.scan(step, jnp.zeros(y.shape[:-1], y.dtype), (jnp.moveaxis(y, -1, 0), diagonal, below, left))
    return jnp.moveaxis(x, 0, -1)


def _pair_orthonormal(y: Float[Array, "... m"], n: int) -> Float[Array, "... m"]:
    r"""Map inner products y with the projected pairs (Gram $M = C C^\top$) to orthonormal coordinates $C^{-1} y$."""
    return _semiseparable_solve(y, *(jnp.asarray(f, y.dtype) for f in _pair_factor(n)))


@jax.jit
def _pair_coordinates(st: Statistics) -> Float[Array, "... m"]:
    r"""Orthonormal coordinates of the projected pairs from $y_a = \langle X, (I - \Pi_g) A_a \rangle / \sqrt n$.

    Notes
    -----
    With diagonal sums t and row sums r of X: $\sqrt n\, y_a = (n - a) t_{n-a} - a t_{-a} - \sum_{i<a} r_i
    + a \sum_i r_i / n$ (the row sums of $A_a$ are $n \mathbf 1_{[0, a)} - a \mathbf 1$).
    """
    t, r = st.diagonals, st.rows
    n = r.shape[-1]
    a = jnp.arange(1, n, dtype=t.dtype)
    upper = t[..., n:][..., ::-1]  # offsets n - a
    lower = t[..., : n - 1][..., ::-1]  # offsets -a
    prefix = jnp.cumsum(r, axis=-1)[..., :-1]
    y = ((n - a) * upper - a * lower - prefix + a * r.sum(-1, keepdims=True) / n) / math.sqrt(n)
    return _pair_orthonormal(y, n)


def _pair_basis(n: int, dtype) -> Float[Array, "m n n"]:
    pairs = jnp.stack([(n - a) * _diagonal(n, n - a, dtype) - a * _diagonal(n, -a, dtype) for a in range(1, n)])
    flat = remove_gauge(pairs).reshape(n - 1, n * n) / math.sqrt(n)
    return _pair_orthonormal(flat.T, n).T.reshape(n - 1, n, n)


def _diagonal_row_sums(weights: Float[Array, " m"], n: int) -> Float[Array, " n"]:
    r"""Row sums $\sum_{k=-i}^{n-1-i} w_k$ of $\sum_k w_k D_k$ (window sums of the diagonal weights)."""
    total = jnp.concatenate([jnp.zeros_like(weights[:1]), jnp.cumsum(weights)])
    return total[n:][::-1] - total[:n][::-1]


def _one_direction(name: str, n: int, dtype):
    """Diagonal weights and dense constructor of a one-dimensional Toeplitz family (band or proximity)."""
    match = re.fullmatch(r"band_(\d+)", name)
    if match:
        k = check_int("band offset", int(match.group(1)), 1, n - 1)
        weights = np.zeros(2 * n - 1)
        weights[[n - 1 - k, n - 1 + k]] = 1.0 / math.sqrt(2 * (n - k))
        return jnp.asarray(weights, dtype), lambda: band(n, k, dtype=dtype)
    match = re.fullmatch(r"proximity(?:_([0-9.]+))?", name)
    if match:
        length = check_float("proximity length", match.group(1) or PROXIMITY_LENGTH, 0.0, float("inf"))
        return proximity_weights(n, length, dtype), lambda: proximity_kernel(n, length, dtype=dtype)
    raise ValueError(f"family name must be one of {{{', '.join(FAMILY_NAMES)}}}, got {name!r}")


@jax.jit
def _non_gauge_direction(weights: Float[Array, " m"]) -> tuple[Array, Array, Array]:
    r"""Diagonal weights of $q - c \mathbf 1 \mathbf 1^\top$, its row sums and $\lVert (I - \Pi_g) q \rVert_F$.

    Notes
    -----
    $q - c \mathbf 1 \mathbf 1^\top$ has the same non-gauge part as q; $c = \langle q, \mathbf 1 \mathbf 1^\top
    \rangle / n^2$ removes most of a near-gauge q (long proximity lengths), so that the norm
    $\lVert q \rVert_F^2 - \lVert q \mathbf 1 \rVert^2 / n$ does not cancel catastrophically.
    """
    n = (weights.shape[0] + 1) // 2
    depth = _depth(n, weights.dtype)
    centred = weights - (weights @ depth) / n**2
    rows = _diagonal_row_sums(centred, n)
    return centred, rows, jnp.sqrt(centred**2 @ depth - rows @ rows / n)


@jax.jit
def _direction_coordinates(st: Statistics, centred, rows, norm) -> Float[Array, "... 1"]:
    r"""Coordinate $\langle X, (I - \Pi_g) q \rangle / \lVert (I - \Pi_g) q \rVert_F$ from the statistics of X."""
    return ((st.diagonals @ centred - st.rows @ rows / st.rows.shape[-1]) / norm)[..., None]


def _one_direction_family(name, n, part, weights, dense) -> Family:
    if part == "whole":
        return Family(name, n, part, 1, lambda st: (st.diagonals @ weights)[..., None], dense)
    centred, rows, norm = _non_gauge_direction(weights)
    return Family(
        name,
        n,
        part,
        1,
        lambda st: _direction_coordinates(st, centred, rows, norm),
        lambda: remove_gauge(dense()) / norm,
    )


def _circulant_family(n: int, part: str, dtype) -> Family:
    def whole(st):
        return _circulant_coordinates(st.diagonals)

    if part == "whole":
        return Family("circulant", n, part, n, whole, lambda: circulant(n, dtype=dtype))
    return Family(
        "circulant",
        n,
        part,
        n - 1,
        lambda st: _helmert_coordinates(whole(st)),
        lambda: _circulant_non_gauge(n, dtype),
    )


def _toeplitz_family(n: int, part: str, dtype) -> Family:
    if part == "whole":
        depth = _depth(n, dtype)
        return Family(
            "toeplitz", n, part, 2 * n - 1, lambda st: st.diagonals / jnp.sqrt(depth), lambda: toeplitz(n, dtype=dtype)
        )

    def coordinates(st):
        circulant_part = _helmert_coordinates(_circulant_coordinates(st.diagonals))
        return jnp.concatenate([circulant_part, _pair_coordinates(st)], axis=-1)

    return Family(
        "toeplitz",
        n,
        part,
        2 * n - 2,
        coordinates,
        lambda: jnp.concatenate([_circulant_non_gauge(n, dtype), _pair_basis(n, dtype)]),
    )


def family(name: str, n: int, *, dtype=None, part: str = "non_gauge") -> Family:
    r"""Return the registered family ``name`` at sequence length n, on its non-gauge part or whole.

    Names: ``gauge``, ``circulant``, ``toeplitz``, ``column_sum``, ``band_<k>`` (``1 <= k < n``),
    ``proximity`` (length ``PROXIMITY_LENGTH``) and ``proximity_<l>`` (length l > 0). ``part``:
    ``"non_gauge"`` (default; a gradient span that holds every non-gauge direction reads visible
    fraction 1) or ``"whole"`` (the family as constructed, gauge part included, e.g. P4's band
    $B_k$). The gauge family has no non-gauge part and is always returned whole. See :class:`Family`.
    """
    check_int("n", n, 2)
    check_choice("part", part, FAMILY_PARTS)
    dtype = _dtype(dtype)
    root_n = math.sqrt(n)
    if name == "gauge":
        return Family(name, n, "whole", n, lambda st: st.rows / root_n, lambda: gauge(n, dtype=dtype))
    if name == "column_sum":
        return Family(
            name,
            n,
            part,
            n - 1,
            lambda st: _helmert_coordinates(st.columns) / root_n,
            lambda: column_sum(n, dtype=dtype),
        )
    if name == "circulant":
        return _circulant_family(n, part, dtype)
    if name == "toeplitz":
        return _toeplitz_family(n, part, dtype)
    return _one_direction_family(name, n, part, *_one_direction(name, n, dtype))


def registry_names(n: int, *, bands: int = 2) -> tuple[str, ...]:
    """Default family names reported by the probe: the fixed families, ``band_1..band_<bands>``, ``proximity``."""
    check_int("bands", bands, 0)
    return (
        ("gauge", "circulant", "toeplitz", "column_sum")
        + tuple(f"band_{k}" for k in range(1, min(bands, n - 1) + 1))
        + ("proximity",)
    )
