"""Absolute positional encodings (sinusoidal or fixed Gaussian, raw or centred) and the geometry of positions."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot.checks import check_allocation, check_bool, check_choice, check_floating_dtype, check_int, check_key
from blindspot.config import POSITIONAL


def sinusoidal(n: int, d: int, dtype=None) -> Float[Array, "n d"]:
    r"""Sinusoidal encoding: $p_{i,2k} = \sin(i\omega_k)$, $p_{i,2k+1} = \cos(i\omega_k)$.

    Notes
    -----
    $\omega_k = 10000^{-2k/d}$. Then $p_i^\top p_j = \sum_k \cos((i-j)\omega_k)$ (plus a sine
    term for odd d) depends on $i - j$ only: the "positional identity" $W = I$ of P8 already
    gives a Toeplitz score matrix.
    """
    check_int("n", n, 2)
    check_int("d", d, 1)
    dtype = check_floating_dtype("dtype", dtype)
    check_allocation("n * d", (n, d), dtype)
    return _sinusoidal(jnp.arange(n, dtype=dtype), jnp.arange(d))


@jax.jit
def _sinusoidal(positions: Float[Array, " n"], columns: Int[Array, " d"]) -> Float[Array, "n d"]:
    """Encode from the position and column indices (arguments, so that nothing is constant-folded)."""
    k = (columns // 2).astype(positions.dtype)
    omega = jnp.power(10000.0, -2.0 * k / columns.shape[0])
    angle = positions[:, None] * omega[None, :]
    return jnp.where(columns % 2 == 0, jnp.sin(angle), jnp.cos(angle))


def positional_encoding(
    key: jax.Array, n: int, d: int, kind: str = "sinusoidal", *, centred: bool = False, dtype=None
) -> Float[Array, "n d"]:
    r"""Positional encoding ``P`` with rows $p_i$, optionally centred ($\sum_i p_i = 0$, P5).

    ``kind="random"`` draws i.i.d. $N(0, 1)$ entries from ``key``; ``"sinusoidal"`` ignores the key.
    """
    check_int("n", n, 2)
    check_int("d", d, 1)
    check_choice("kind", kind, POSITIONAL)
    check_bool("centred", centred)
    dtype = check_floating_dtype("dtype", dtype)
    if kind == "sinusoidal":
        p = sinusoidal(n, d, dtype)
    else:
        check_key("key", key)
        check_allocation("n * d", (n, d), dtype)
        p = jax.random.normal(key, (n, d), dtype)
    return p - p.mean(axis=0) if centred else p


def neighbours(n: int, *, radius: int = 1, width: int | None = None, include_self: bool = False) -> np.ndarray:
    r"""Boolean $n \times n$ matrix $N_{ij}$: key $j$ is within distance ``radius`` of query $i$.

    ``width=None``: positions form a sequence and $N_{ij} = [1 \le |i - j| \le r]$. ``width=w``:
    positions are the pixels of a row-major image $w$ wide ($n/w$ rows), and $N_{ij}$ is the cross
    of radius $r$: same row and $1 \le |c_i - c_j| \le r$ (lags $1..r$ within a row, never across a
    row's end), or same column and $1 \le |r_i - r_j| \le r$ (lags $w, .., r w$). ``include_self``
    adds $j = i$.
    """
    check_int("n", n, 2)
    check_int("radius", radius, 1)
    check_bool("include_self", include_self)
    row, col = _grid(n, width)
    d_row, d_col = np.abs(row[:, None] - row[None, :]), np.abs(col[:, None] - col[None, :])
    near = ((d_row == 0) & (d_col >= 1) & (d_col <= radius)) | ((d_col == 0) & (d_row >= 1) & (d_row <= radius))
    return near | (np.eye(n, dtype=bool) & include_self)


def interior(n: int, *, radius: int = 1, width: int | None = None) -> np.ndarray:
    r"""Boolean mask of the queries whose whole near set of ``neighbours(n, radius, width)`` is in range.

    Sequence: $r \le i \le n - 1 - r$; image: rows and columns both at least $r$ from the border.
    The near set of every interior query has $2r$ keys (sequence) or $4r$ (image).
    """
    check_int("n", n, 2)
    check_int("radius", radius, 1)
    row, col = _grid(n, width)
    inside_row = (col >= radius) & (col <= (width or n) - 1 - radius)
    if width is None:
        return inside_row
    return inside_row & (row >= radius) & (row <= n // width - 1 - radius)


def _grid(n: int, width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each position: one row (sequence) or a row-major image ``width`` wide."""
    if width is None:
        return np.zeros(n, dtype=int), np.arange(n)
    check_int("width", width, 2, n // 2)
    if n % width:
        raise ValueError(f"width must divide n = {n} (an image of n / width rows), got {width}")
    return np.arange(n) // width, np.arange(n) % width
