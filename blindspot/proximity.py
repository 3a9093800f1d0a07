"""Proximity index of an attention matrix: how much attention goes to nearby keys (P9).

The index measures the excess attention mass on keys within distance $r$ of the query,
relative to uniform attention, averaged over interior queries and over a batch.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from blindspot.checks import check_array, check_bool, check_int, is_concrete
from blindspot.positional import interior, neighbours
from blindspot.tolerances import close_tolerance


def proximity_index(
    attention: Float[Array, "... n n"], *, radius: int = 1, include_self: bool = False, width: int | None = None
) -> Float[Array, ""]:
    r"""Excess attention mass within distance ``radius`` of the query, over its uniform value.

    Parameters
    ----------
    attention
        Row-stochastic attention matrices $A$ (queries in rows, keys in columns), shape
        ``(..., n, n)``; leading axes (data, heads) are averaged over.
    radius
        The distance $r \ge 1$ that counts as "near"; at least one query must be interior
        (sequence: ``n >= 2 * radius + 1``; image: both sides ``>= 2 * radius + 1``).
    include_self
        Count the query's own position $j = i$ as near. Off by default: attending to oneself
        is a content pattern (a token matches itself), not a proximity interaction.
    width
        ``None``: positions form a sequence (the 1-D index). ``w``: positions are the pixels of a
        row-major image $w$ wide, and "near" is the cross of radius $r$ (lags $1..r$ within a row,
        lags $w..rw$ within a column: ``positional.neighbours``), the 2-D index.

    Returns
    -------
    The scalar index $\pi_r(A)$.

    Notes
    -----
    For an interior query $i$ (its whole near set $N_i$ in range: $r \le i \le n - 1 - r$ for a
    sequence, rows and columns at least $r$ from the border for an image), $N_i$ has $k = 2r$ keys
    (image: $4r$; plus one with ``include_self``) for every interior query, so uniform attention puts
    exactly $k/n$ on it. The index is

    $\pi_r(A) = \frac{1}{|I|} \sum_{i \in I} \Big(\sum_{j \in N_i} A_{ij} - \frac{k}{n}\Big)$,

    averaged over the leading axes ($I$: the interior queries). It is 0 for uniform attention, and at
    most $1 - k/n$ (all mass on the near set); for a Toeplitz proximity kernel $A_{ij} = b(|i-j|)$ with
    support in $N_i$ it is $1 - k/n$. Interior queries only, so boundary rows (whose near sets are
    truncated) do not bias it. P9 measures it along training: label supervision leaves it near 0
    from uniform attention, masked reconstruction can grow it.
    """
    check_int("radius", radius, 1)
    check_bool("include_self", include_self)
    shape = jnp.shape(attention)
    if len(shape) < 2:
        raise ValueError(f"attention must have shape (..., n, n), got {shape}")
    n = shape[-1]
    check_array("attention", attention, (*shape[:-2], n, n))
    inside = interior(n, radius=radius, width=width)
    if not inside.any():
        side = n if width is None else min(width, n // width)
        where = f"n = {n}" if width is None else f"an image {width} wide and {n // width} high"
        raise ValueError(f"radius must be an integer in [1, {(side - 1) // 2}] for {where}, got {radius}")
    _check_row_stochastic(attention)
    near = neighbours(n, radius=radius, width=width, include_self=include_self)
    k = int(near[np.argmax(inside)].sum())
    mass = jnp.sum(jnp.where(near, attention, 0), axis=-1)
    return jnp.mean(mass[..., inside]) - jnp.asarray(k / n, dtype=mass.dtype)


def _check_row_stochastic(attention) -> None:
    """Refuse concrete attention with a negative entry or a row sum off 1 (beyond ``close_tolerance``)."""
    if not is_concrete(attention):
        return
    a = np.asarray(attention)
    tol = close_tolerance(a.dtype, a.shape[-1])
    off = float(np.max(np.abs(np.sum(a, axis=-1) - 1.0)))
    if float(np.min(a)) < -tol or off > tol:
        raise ValueError(
            f"attention must be row-stochastic (entries >= 0, rows summing to 1), got max |row sum - 1| = {off:.3g}"
        )
