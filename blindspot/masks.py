r"""Score masks (causal, padding): the directions no loss can see, and families measured on the rest.

A mask allows query i the keys $A_i \subseteq \{0..n-1\}$, $|A_i| \ge 1$ (``allowed[i, j]``); the model
sets $S_{ij} = -\infty$ for $j \notin A_i$ before the row softmax. Then

- a masked entry changes nothing: $A_{ij} = 0$ whatever $S_{ij}$, so every loss is constant along
  $E_{ij}$, $j \notin A_i$, to all orders (the *masked* directions, $\sum_i (n - |A_i|)$ of them);
- the softmax of row i sees $(S_{ij})_{j \in A_i}$ only, and adding $r_i$ to all of them changes
  nothing (P1 on the allowed keys): the *masked gauge* is $\{\sum_i r_i e_i \mathbf 1_{A_i}^\top\}$,
  dimension n, "constant over the allowed keys of each row".

Every per-sample score gradient therefore lies in
$V_A = \{X : X_{ij} = 0 \text{ for } j \notin A_i,\ \sum_{j \in A_i} X_{ij} = 0\}$, of dimension
$\sum_i (|A_i| - 1)$ ($n(n-1)/2$ for the causal mask), with orthogonal projector
$(\Pi_A X)_{ij} = [j \in A_i]\,(X_{ij} - \frac{1}{|A_i|}\sum_{k \in A_i} X_{ik})$. A family F is measured on
$\Pi_A F$ (the projected basis, re-orthonormalised: :func:`family`); for a gradient g,
$\langle g, \Pi_A f \rangle = \langle g, f \rangle$, and a span holding all of $V_A$ reads visible
fraction 1. Without a mask $\Pi_A = I - \Pi_g$ and this is ``directions.family``'s non-gauge part.

Padding masks differ per sample. A sample with allowed sets $A^s_i \subseteq U_i = \bigcup_s A^s_i$ has
$V_{A^s} \subseteq V_U$ (zero outside $A^s_i$, zero sum over it, so over $U_i$), so the families are
measured with the union pattern U (``allowed.any(axis=0)``); its ceiling is reached,
$\sum_s V_{A^s} = V_U$, when for each row the sets $A^s_i$ connect $U_i$ (sharing keys pairwise along
a chain: nested padding, or a key every sample allows), since then every $e_j - e_k$, $j, k \in U_i$, is
a sum of differences inside single $A^s_i$.

Dense bases here hold $k n^2$ numbers (the circulant family $n^3$): moderate n only, guarded by
``checks.check_allocation``. The gauge and masked coordinates are computed without a basis.
"""

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from blindspot import directions
from blindspot.checks import check_allocation, check_floating_dtype, check_int, check_shape, is_concrete
from blindspot.tolerances import rank_tolerance


class DenseFamily(NamedTuple):
    r"""A direction family read from dense score matrices: name, dimension, coordinate map, orthonormal basis.

    ``coordinates(x)`` maps dense matrices ``(..., n, n)`` to their inner products ``(..., dim)`` with
    the rows of ``basis()``, shape ``(dim, n, n)``. :func:`family` gives them under a mask;
    ``hook_analysis.registry`` wraps ``directions.family`` in the same form when there is none.
    """

    name: str
    dim: int
    coordinates: Callable[[Array], Array]
    basis: Callable[[], Array]


def causal(n: int) -> Bool[np.ndarray, "n n"]:
    r"""Return the causal pattern: query i sees the keys $j \le i$."""
    check_int("n", n, 1)
    return np.tril(np.ones((n, n), dtype=bool))


def check_allowed(allowed, n: int) -> np.ndarray:
    """Return a concrete boolean (n, n) pattern in which every query allows at least one key."""
    if not is_concrete(allowed):
        raise ValueError("allowed must be a concrete boolean array (a fixed pattern), got a traced value")
    check_shape("allowed", allowed, (n, n))
    allowed = np.asarray(allowed)
    if allowed.dtype != np.bool_:
        raise ValueError(f"allowed must be a boolean array, got dtype {allowed.dtype}")
    if not allowed.any(axis=1).all():
        raise ValueError(
            f"allowed must allow at least one key in every row, got none in rows {np.flatnonzero(~allowed.any(1))}"
        )
    return allowed


def visible_dim(allowed) -> int:
    r"""$\dim V_A = \sum_i (|A_i| - 1)$: the directions a loss of the masked scores can see."""
    allowed = check_allowed(allowed, np.shape(allowed)[0])
    return int(allowed.sum() - allowed.shape[0])


def project(x: Float[Array, "... n n"], allowed) -> Float[Array, "... n n"]:
    r"""Orthogonal projection $\Pi_A X$ onto $V_A$: keep the allowed entries, remove their row mean.

    NumPy in, NumPy out (bases built on the host); JAX arrays go through a jitted kernel.
    """
    allowed = check_allowed(allowed, np.shape(x)[-1])
    if isinstance(x, np.ndarray):
        return _project(np, x, allowed.astype(x.dtype))
    return _project_jax(x, jnp.asarray(allowed, x.dtype))


def _project(xp, x, keep):
    kept = x * keep
    return (kept - kept.sum(-1, keepdims=True) / keep.sum(-1, keepdims=True)) * keep


_project_jax = jax.jit(partial(_project, jnp))


def gauge_coordinates(x: Float[Array, "... n n"], allowed) -> Float[Array, "... n"]:
    r"""Coordinates $\langle X, e_i \mathbf 1_{A_i}^\top \rangle / \sqrt{|A_i|}$ in the masked gauge."""
    allowed = check_allowed(allowed, np.shape(x)[-1])
    return _gauge_coordinates(x, jnp.asarray(allowed, jnp.result_type(x)))


@jax.jit
def _gauge_coordinates(x, keep):
    return (x * keep).sum(-1) / jnp.sqrt(keep.sum(-1))


def masked_coordinates(x: Float[Array, "... n n"], allowed) -> Float[Array, "... m"]:
    r"""Coordinates $X_{ij}$, $j \notin A_i$ (row-major order): the masked entries."""
    allowed = check_allowed(allowed, np.shape(x)[-1])
    return _entries(x, *(jnp.asarray(index) for index in np.nonzero(~allowed)))


@jax.jit
def _entries(x, rows, columns):
    return x[..., rows, columns]


@jax.jit
def _inner(x, basis):
    return jnp.einsum("...ij,kij->...k", x, basis)


def _gauge_basis(allowed, dtype) -> Float[Array, "n n n"]:
    n = allowed.shape[0]
    return jnp.asarray(np.eye(n)[:, :, None] * allowed[None] / np.sqrt(allowed.sum(1))[:, None, None], dtype)


def _masked_basis(allowed, dtype) -> Float[Array, "m n n"]:
    rows, columns = np.nonzero(~allowed)
    basis = np.zeros((rows.size, *allowed.shape))
    basis[np.arange(rows.size), rows, columns] = 1.0
    return jnp.asarray(basis, dtype)


def _whole_basis(name: str, n: int, dtype) -> np.ndarray:
    r"""Dense basis of the whole family: its coordinate map evaluated on the unit matrices $E_{ij}$.

    ``Family.coordinates`` gives $\langle X, Q_l \rangle$, which is $(Q_l)_{ij}$ at $X = E_{ij}$; the statistics
    of $E_{ij}$ are unit vectors (row i, column j, diagonal j - i): $O(n^3)$ numbers and a few compiled maps,
    where ``Family.basis`` compiles one small program per diagonal.
    """
    i, j = np.divmod(np.arange(n * n), n)
    units = (np.eye(n)[i], np.eye(n)[j], np.eye(2 * n - 1)[j - i + n - 1])
    statistics = directions.Statistics(*(jnp.asarray(u, dtype) for u in units))
    coordinates = directions.family(name, n, dtype=dtype, part="whole").coordinates(statistics)
    return np.asarray(coordinates).T.reshape(-1, n, n)


def _projected_basis(name: str, allowed, dtype) -> Float[Array, "k n n"]:
    r"""Orthonormal basis of $\Pi_A F$ (SVD on the host, ``rank_tolerance``).

    A single direction keeps the orientation of $\Pi_A q$ (its alignment is a signed cosine).
    """
    whole = _whole_basis(name, allowed.shape[0], dtype)
    projected = project(whole, allowed).reshape(whole.shape[0], -1)
    _, s, vt = np.linalg.svd(projected, full_matrices=False)
    basis = vt[: int(np.sum(s > rank_tolerance(s[0], projected.shape, dtype)))]
    if basis.shape[0] == 1:
        basis = basis * np.sign(np.sum(basis * projected))
    return jnp.asarray(basis.reshape(-1, *allowed.shape), dtype)


def family(name: str, allowed, *, dtype=None) -> DenseFamily:
    r"""Family ``name`` under the mask ``allowed``: the masked ``gauge`` (whole), ``masked``, or $\Pi_A F$.

    ``gauge`` is $\{e_i \mathbf 1_{A_i}^\top / \sqrt{|A_i|}\}$ (dimension n) and ``masked`` the masked
    entries $E_{ij}$: both invisible to every loss, measured whole. Any registered name of
    ``directions.family`` gives the orthonormalised $\Pi_A F$ (its dimension is the rank, possibly 0).
    """
    allowed = check_allowed(allowed, np.shape(allowed)[0])
    check_int("n", allowed.shape[0], 2)
    dtype = check_floating_dtype("dtype", dtype)
    n = allowed.shape[0]
    if name == "gauge":
        return DenseFamily(name, n, lambda x: gauge_coordinates(x, allowed), lambda: _gauge_basis(allowed, dtype))
    if name == "masked":
        count = int((~allowed).sum())
        return DenseFamily(name, count, lambda x: masked_coordinates(x, allowed), lambda: _masked_basis(allowed, dtype))
    check_allocation("n (dense family basis under a mask)", (2 * n - 1, n, n), dtype)
    basis = _projected_basis(name, allowed, dtype)
    return DenseFamily(name, basis.shape[0], lambda x: _inner(x, basis), lambda: basis)


def names(allowed, *, bands: int = 2) -> tuple[str, ...]:
    """Return the names under a mask: ``directions.registry_names`` and ``masked`` when an entry is masked."""
    allowed = check_allowed(allowed, np.shape(allowed)[0])
    registered = directions.registry_names(allowed.shape[0], bands=bands)
    masked = ("masked",) if not allowed.all() else ()
    return ("gauge", *masked, *(name for name in registered if name != "gauge"))
