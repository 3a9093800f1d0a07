r"""Direction families in score space, as orthonormal bases, and their pushforward to $W$.

A *family* is a linear subspace of $n \times n$ score perturbations. Dense constructors return a
Frobenius-orthonormal basis as an array of shape ``(k, n, n)``. For large n, where a dense basis would
hold $k n^2$ numbers ($n^3$ for the circulant family), each family is also a :class:`Family`: its
coordinates are computed from three $O(n)$ summary statistics of a score matrix $X$ (row sums,
column sums, sums along each diagonal, :class:`Statistics`), which is all that every registered
family needs because each is spanned by row-constant, column-constant or Toeplitz matrices.

Diagonal offsets are $k = j - i \in \{-(n-1), \dots, n-1\}$, stored at index $k + n - 1$; $D_k$ is the
0/1 matrix with ones where $j - i = k$, $\lVert D_k \rVert_F^2 = n - |k|$.
"""

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
    check_float,
    check_floating_dtype,
    check_int,
    is_concrete,
)
from blindspot.tolerances import rank_tolerance

PROXIMITY_LENGTH = 4.0
"""Default length $l$ of the registered ``proximity`` kernel $e^{-|i-j|/l}$."""

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


def _proximity_weights(n: int, length: float, dtype) -> Float[Array, " m"]:
    r"""Weight of each diagonal in the normalised kernel: $e^{-|k|/l} / \lVert K \rVert_F$."""
    k = jnp.abs(jnp.asarray(_offsets(n), dtype))
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
    n = x.shape[-1]
    i = jnp.arange(n)
    index = (i[None, :] - i[:, None] + n - 1).reshape(-1)
    flat = x.reshape(*x.shape[:-2], n * n)
    diagonals = jax.ops.segment_sum(jnp.moveaxis(flat, -1, 0), index, num_segments=2 * n - 1)
    return Statistics(x.sum(-1), x.sum(-2), jnp.moveaxis(diagonals, 0, -1))


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
    r"""A direction family: its name, dimension, dense basis and coordinate map.

    ``coordinates(stats)`` returns the inner products $\langle X, F_l \rangle$ of matrices $X$ with the
    orthonormal basis $F_l$ (the rows of ``basis()``), from their :class:`Statistics`, in $O(n)$ per
    basis element. ``basis()`` builds the dense ``(dim, n, n)`` basis (small n only).
    """

    name: str
    n: int
    dim: int
    coordinates: Callable[[Statistics], Array]
    basis: Callable[[], Array]


def _toeplitz_family(name, n, dim, coords, basis):
    return Family(name, n, dim, lambda st: coords(st.diagonals), basis)


def family(name: str, n: int, *, dtype=None) -> Family:
    r"""Return the registered family ``name`` at sequence length n.

    Names: ``gauge``, ``circulant``, ``toeplitz``, ``column_sum``, ``band_<k>`` (``1 <= k < n``),
    ``proximity`` (length ``PROXIMITY_LENGTH``) and ``proximity_<l>`` (length l > 0).
    """
    check_int("n", n, 2)
    dtype = _dtype(dtype)
    root_n = math.sqrt(n)
    depth = jnp.asarray(n - np.abs(_offsets(n)), dtype)
    if name == "gauge":
        return Family(name, n, n, lambda st: st.rows / root_n, lambda: gauge(n, dtype=dtype))
    if name == "column_sum":

        def helmert_coordinates(st):
            c = st.columns
            level = jnp.arange(1, n, dtype=c.dtype)
            prefix = jnp.cumsum(c, axis=-1)[..., :-1]
            return (prefix - level * c[..., 1:]) / jnp.sqrt(level * (level + 1.0)) / root_n

        return Family(name, n, n - 1, helmert_coordinates, lambda: column_sum(n, dtype=dtype))
    if name == "toeplitz":
        return _toeplitz_family(name, n, 2 * n - 1, lambda t: t / jnp.sqrt(depth), lambda: toeplitz(n, dtype=dtype))
    if name == "circulant":

        def circulant_coordinates(t):
            upper = t[..., n - 1 :]
            lower = jnp.concatenate([jnp.zeros_like(t[..., :1]), t[..., : n - 1]], axis=-1)
            return (upper + lower) / root_n

        return _toeplitz_family(name, n, n, circulant_coordinates, lambda: circulant(n, dtype=dtype))
    match = re.fullmatch(r"band_(\d+)", name)
    if match:
        k = check_int("band offset", int(match.group(1)), 1, n - 1)
        return _toeplitz_family(
            name,
            n,
            1,
            lambda t: ((t[..., n - 1 + k] + t[..., n - 1 - k]) / math.sqrt(2 * (n - k)))[..., None],
            lambda: band(n, k, dtype=dtype),
        )
    match = re.fullmatch(r"proximity(?:_([0-9.]+))?", name)
    if match:
        length = check_float("proximity length", match.group(1) or PROXIMITY_LENGTH, 0.0, float("inf"))
        weights = _proximity_weights(n, length, dtype)
        return _toeplitz_family(
            name, n, 1, lambda t: (t @ weights)[..., None], lambda: proximity_kernel(n, length, dtype=dtype)
        )
    raise ValueError(f"family name must be one of {{{', '.join(FAMILY_NAMES)}}}, got {name!r}")


class Pushforward(NamedTuple):
    """Least-squares query-key matrix $W$ for a score direction, and the unreachable part."""

    w: Float[Array, "d d"]
    residual_fraction: Float[Array, ""]


def pushforward(direction: Float[Array, "n n"], encodings: Float[Array, "n d"], *, scale: float = 1.0) -> Pushforward:
    r"""Push a score direction D to the query-key matrix: $\min_W \lVert c\, H W H^\top - D \rVert_F$ (P8).

    Parameters
    ----------
    direction
        Score direction D, shape (n, n).
    encodings
        H: the positional encoding P for position-only scores ($S = P W P^\top$, ``scale = 1``) or
        the input embedding H of one sequence for content+position ($S = H W H^\top / \sqrt d$,
        ``scale = 1/sqrt(d)``).
    scale
        The factor c in $S = c\, H W H^\top$.

    Returns
    -------
    Pushforward
        ``w`` $= H^+ D (H^+)^\top / c$ and ``residual_fraction`` $= \lVert D - c H W H^\top\rVert_F /
        \lVert D \rVert_F$, the part of D outside the reachable set $\{H W H^\top\}$.

    Notes
    -----
    The map $W \mapsto H W H^\top$ has orthogonal range projector $X \mapsto \Pi X \Pi$ with
    $\Pi = H H^+$; the minimiser of least norm is $H^+ D (H^+)^\top$.
    """
    check_array("encodings", encodings, (None, None))
    check_array("direction", direction, (np.shape(encodings)[0],) * 2)
    check_float("scale", scale, 0.0, float("inf"))
    _check_nonzero("direction", direction)
    pinv = jnp.linalg.pinv(encodings)
    w = pinv @ direction @ pinv.T / scale
    residual = direction - scale * encodings @ w @ encodings.T
    return Pushforward(w, jnp.linalg.norm(residual) / jnp.linalg.norm(direction))


def _check_nonzero(name: str, array) -> None:
    """Refuse an all-zero concrete array (its direction is undefined)."""
    if not is_concrete(array):
        return
    if not np.any(np.asarray(array)):
        raise ValueError(f"{name} must be non-zero (it defines a direction), got all zeros")


def positional_identity(positions: Float[Array, "n d"]) -> Float[Array, "d d"]:
    r"""Return the positional identity direction in W-space: $\Pi_P / \lVert \Pi_P \rVert_F$, $\Pi_P = P^+ P$ (P8).

    Notes
    -----
    $\Pi_P = V_r V_r^\top$ (right singular vectors of P above ``rank_tolerance``, $\lVert\Pi_P\rVert_F = \sqrt r$)
    is the orthogonal projector onto the row space of P in $\mathbb R^d$; it equals $I_d$ when
    P has rank d (n >= d, the usual case), so the direction is $I/\sqrt d$. Position-only scores:
    $P \Pi_P P^\top = P P^\top$, Toeplitz for sinusoidal encodings ($p_i^\top p_j$ depends on $i - j$).
    Content+position: the same W applied to $H = E + P$ gives $H H^\top/\sqrt d$, whose positional block
    is $P P^\top / \sqrt d$; we use the same definition in both views so the cosines of P8 compare.
    """
    check_array("positions", positions, (None, None))
    _check_nonzero("positions", positions)
    _, s, vt = jnp.linalg.svd(positions, full_matrices=False)
    keep = (s > rank_tolerance(1.0, positions.shape, positions.dtype) * s[0]).astype(vt.dtype)  # traceable
    return (vt.T * keep) @ vt / jnp.sqrt(jnp.sum(keep))


def first_step_cosine(gradient: Float[Array, "d d"], positions: Float[Array, "n d"]) -> Float[Array, ""]:
    r"""Cosine between a query-key gradient $\nabla_W L$ and the positional identity direction (P8).

    Notes
    -----
    $\cos = \langle \nabla_W L, \Pi_P \rangle_F / (\lVert \nabla_W L \rVert_F \lVert \Pi_P \rVert_F)$; a
    zero gradient gives 0. The first gradient step from W = 0 moves W along $-\nabla_W L$, so a
    negative cosine means the step moves towards the positional identity.
    """
    check_array("positions", positions, (None, None))
    check_array("gradient", gradient, (np.shape(positions)[1],) * 2)
    direction = positional_identity(positions)
    norm = jnp.linalg.norm(gradient)
    return jnp.where(norm > 0, jnp.sum(gradient * direction) / jnp.where(norm > 0, norm, 1.0), 0.0)


def registry_names(n: int, *, bands: int = 2) -> tuple[str, ...]:
    """Default family names reported by the probe: the fixed families, ``band_1..band_<bands>``, ``proximity``."""
    check_int("bands", bands, 0)
    return (
        ("gauge", "circulant", "toeplitz", "column_sum")
        + tuple(f"band_{k}" for k in range(1, min(bands, n - 1) + 1))
        + ("proximity",)
    )
