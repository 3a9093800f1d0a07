r"""Subspace algebra of sample stacks: numerical rank, spans, principal angles, visible fractions, alignment.

A loss "sees" a score direction D at first order when some per-sample gradient has a component
along D. Stack the b per-sample gradients as the rows of $M \in \mathbb R^{b \times N}$ ($N = n^2$ in
score space); its row space is the gradient span $G$ with orthonormal basis $Q_G$, and for a family
F with orthonormal basis $Q_F$ the *visible fraction* is $\lVert Q_G^\top Q_F \rVert_F^2 / \dim F$
(0 = blind, 1 = fully visible), the mean squared cosine of the principal angles between F and G.
Families are measured on their non-gauge part (``directions.family``): every gradient is orthogonal
to the gauge $r \mathbf 1^\top$ (P1), so only there can the fraction reach 1.

Everything is computed from the thin SVD $M = U \Sigma V^\top$ and the inner products
$P = M Q_F^\top$ of the samples with the family: $Q_G^\top Q_F = \Sigma_r^{-1} U_r^\top P$. The samples
may be dense or factored (``fast_paths.ScoreFactors``); in factored form the left singular pairs
come from the $b \times b$ Gram matrix and P from ``directions.factor_statistics``, so no $n \times n$
object per sample and no $n^4$ object is ever formed. The samples come from ``jacobian`` (the
package's model), ``hook`` (any model) or ``fast_paths`` (closed forms); nothing here knows a model.

Every entry point refuses non-finite input (a NaN would otherwise read as rank 0, "blind").
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot.checks import check_array, check_bool, check_float, check_int, check_shape, is_concrete
from blindspot.fast_paths import ScoreFactors, check_factors
from blindspot.tolerances import close_tolerance, rank_tolerance


class Rank(NamedTuple):
    """Numerical rank with the singular values and the tolerance used (``tolerances.rank_tolerance``)."""

    rank: int
    singular_values: Float[Array, " k"]
    tolerance: float


class Span(NamedTuple):
    r"""Row space of a stack of b samples: rank, singular values, tolerance, $U_r$ and (dense) $Q_G$.

    ``left`` is $U_r$ of shape (b, rank); ``basis`` the orthonormal rows $V_r^\top$ of shape (rank, N)
    when the samples were dense, ``None`` when they were factored.
    """

    rank: int
    singular_values: Float[Array, " k"]
    tolerance: float
    left: Float[Array, "b r"]
    basis: Float[Array, "r N"] | None


class Visibility(NamedTuple):
    """Visible fraction of a family (0 = blind, 1 = fully visible) with the rank tolerance used."""

    fraction: float
    dim: int
    span_rank: int
    tolerance: float


def numerical_rank(matrix: Float[Array, "m k"], *, scale: float = 0.0) -> Rank:
    r"""Rank of a matrix: singular values above $\epsilon \cdot \max(m, k) \cdot \max(\sigma_1, scale)$.

    ``scale`` is the magnitude of the computation that produced ``matrix`` (for example
    $\lVert H \rVert^2 \lVert G \rVert$ for $H^\top G H$): when the result cancels to rounding noise,
    $\sigma_1$ alone would call that noise full rank.
    """
    matrix = _check_stack("matrix", matrix)
    check_float("scale", scale, 0.0, float("inf"), open_low=False)
    s = jnp.linalg.svd(matrix, compute_uv=False)
    tol = rank_tolerance(max(float(s[0]), float(scale)), matrix.shape, matrix.dtype)
    return Rank(int(jnp.sum(s > tol)), s, tol)


def sample_ranks(matrices: Float[Array, "b m k"]) -> Int[Array, " b"]:
    r"""Numerical rank of each matrix of a stack (batched SVD), tolerance ``rank_tolerance`` per matrix."""
    check_array("matrices", matrices, (None, None, None))
    if 0 in np.shape(matrices):
        raise ValueError(f"matrices must have shape (b, m, k) with b, m, k >= 1, got {np.shape(matrices)}")
    return _sample_ranks(matrices)


@jax.jit
def _sample_ranks(matrices):
    s = jnp.linalg.svd(matrices, compute_uv=False)
    return jnp.sum(s > rank_tolerance(1.0, matrices.shape[-2:], s.dtype) * s[..., :1], axis=-1)


@jax.jit
def _factor_ranks(factors):
    n = factors.rows.shape[-2]
    t_r = jnp.linalg.qr(factors.rows, mode="r")
    t_c = jnp.linalg.qr(factors.columns, mode="r")
    s = jnp.linalg.svd(t_r @ jnp.swapaxes(t_c, -1, -2), compute_uv=False)
    return jnp.sum(s > rank_tolerance(1.0, (n, n), s.dtype) * s[..., :1], axis=-1)


def factor_ranks(factors: ScoreFactors) -> Float[Array, " b"]:
    r"""Numerical rank of each $R_b C_b^\top$ from thin QRs of the factors: $O(n r^2)$ per sample.

    Notes
    -----
    $R = Q_R T_R$, $C = Q_C T_C$ give $R C^\top = Q_R (T_R T_C^\top) Q_C^\top$ with the same singular
    values as the $r \times r$ core; tolerance ``rank_tolerance`` with shape (n, n).
    """
    check_factors("factors", factors)
    return _factor_ranks(factors)


def span(stack: Float[Array, "b N"], *, size: int | None = None, keep_basis: bool = True) -> Span:
    r"""Orthonormal basis of the row span of ``stack`` with its numerical rank (thin SVD).

    ``size`` (default N) is the ambient dimension used in the tolerance $\epsilon \max(b, size)
    \sigma_1$, for a ``stack`` that is an isometric image of the samples (a "square root" of their Gram
    matrix, e.g. $\sqrt n\, w_b$ for rank-one gradients $\mathbf 1 w_b^\top$).
    """
    stack = _check_stack("stack", stack)
    if size is not None:
        check_int("size", size, stack.shape[1])
    check_bool("keep_basis", keep_basis)
    u, s, vt = jnp.linalg.svd(stack, full_matrices=False)
    tol = rank_tolerance(s[0], (stack.shape[0], size or stack.shape[1]), stack.dtype)
    r = int(jnp.sum(s > tol))
    return Span(r, s, tol, u[:, :r], vt[:r] if keep_basis else None)


def gram_from_factors(factors: ScoreFactors) -> Float[Array, "b b"]:
    r"""Gram matrix $K_{bc} = \langle R_b C_b^\top, R_c C_c^\top \rangle_F$ from factors, $O(b^2 n r^2)$."""
    check_factors("factors", factors)
    return _gram_from_factors(factors)


@jax.jit
def _gram_from_factors(factors):
    rr = jnp.einsum("bnr,cns->bcrs", factors.rows, factors.rows)
    cc = jnp.einsum("bnr,cns->bcrs", factors.columns, factors.columns)
    return jnp.einsum("bcrs,bcrs->bc", rr, cc)


def span_from_gram(gram: Float[Array, "b b"], size: int) -> Span:
    r"""Span data from the Gram matrix $K = M M^\top$ of samples in an ambient space of dimension ``size``.

    Notes
    -----
    $K = U \Sigma^2 U^\top$. Eigenvalues of K carry absolute errors of order $\epsilon\, size\, \lambda_1$,
    so an eigenvalue counts as non-zero above ``rank_tolerance(lambda_1, (b, size))`` and the reported
    singular-value tolerance is its square root (coarser than the SVD route by a square root: use
    ``span`` on dense samples when they fit). ``basis`` is ``None``.
    """
    gram = _check_stack("gram", gram)
    b = gram.shape[0]
    check_shape("gram", gram, (b, b))
    gram = np.asarray(gram)  # b x b: host LAPACK, no compilation per batch size
    gap = float(np.max(np.abs(gram - gram.T)))
    if gap > close_tolerance(gram.dtype, b) * float(np.max(np.abs(gram))):
        raise ValueError(f"gram must be symmetric (a Gram matrix M M^T), got max |K - K^T| = {gap:.3g}")
    check_int("size", size, 1)
    lam, u = np.linalg.eigh(gram)
    lam, u = lam[::-1], u[:, ::-1]
    lam_tol = rank_tolerance(float(lam[0]), (gram.shape[0], size), gram.dtype)
    r = int(np.sum(lam > lam_tol))
    return Span(r, np.sqrt(np.clip(lam, 0.0, None)), math.sqrt(max(lam_tol, 0.0)), u[:, :r], None)


def null_space(stack: Float[Array, "b N"], *, max_size: int = 4096) -> Float[Array, "m N"]:
    """Orthonormal basis (rows) of the orthogonal complement of the row span of ``stack``.

    Needs a full SVD in the ambient dimension N, so N is guarded by ``max_size``.
    """
    stack = _check_stack("stack", stack)
    check_int("max_size", max_size, 1)
    check_int("stack.shape[1] (ambient dimension, raise max_size to allow)", stack.shape[1], 1, max_size)
    _, s, vt = jnp.linalg.svd(stack, full_matrices=True)
    tol = rank_tolerance(s[0], stack.shape, stack.dtype)
    return vt[int(jnp.sum(s > tol)) :]


def principal_angles(q1: Float[Array, "k N"], q2: Float[Array, "m N"]) -> Float[Array, " p"]:
    r"""Principal angles (ascending, radians) between the row spans of two orthonormal row bases.

    Notes
    -----
    Cosines are the singular values of $Q_1 Q_2^\top$; angles near 0 are taken from the sines (singular
    values of $Q_2 - Q_2 Q_1^\top Q_1$), as in Knyazev and Argentati (2002), for full accuracy.
    """
    q1, q2 = _check_bases(("q1", q1), ("q2", q2))
    if q1.shape[0] < q2.shape[0]:
        q1, q2 = q2, q1
    cos = jnp.linalg.svd(q1 @ q2.T, compute_uv=False)
    sin = jnp.linalg.svd(q2 - (q2 @ q1.T) @ q1, compute_uv=False)[::-1]
    return jnp.where(cos**2 >= 0.5, jnp.arcsin(jnp.clip(sin, 0.0, 1.0)), jnp.arccos(jnp.clip(cos, 0.0, 1.0)))


def visible_fraction(span_: Span, projections: Float[Array, "b k"]) -> Visibility:
    r"""Visible fraction $\lVert Q_G^\top Q_F \rVert_F^2 / \dim F$ from the samples' family coordinates.

    ``projections`` is $P = M Q_F^\top$, the inner products of each sample with the orthonormal family
    basis (``Family.coordinates`` of the samples' statistics); then $Q_G^\top Q_F = \Sigma_r^{-1} U_r^\top P$.

    Notes
    -----
    Gradients are orthogonal to the gauge (P1), so the fraction can reach 1 only for a family orthogonal
    to it: coordinates from ``directions.family(name, n)`` (its non-gauge part F') read 1 for a span
    holding every non-gauge direction. Coordinates of the whole family (``part="whole"``) read at most
    $\mathrm{tr} K / \dim F$, $K$ the Gram matrix of the gauge-projected basis (for example $(n-1)/n$
    for the circulant family).
    """
    if not isinstance(span_, Span):
        raise ValueError(f"span_ must be a Span (subspaces.span or span_from_gram), got {type(span_).__name__}")
    projections = _check_stack("projections", projections)
    check_shape("projections", projections, (span_.left.shape[0], None))
    r = span_.rank
    k = projections.shape[1]
    left, singular_values = np.asarray(span_.left), np.asarray(span_.singular_values)  # small: on the host
    coords = (left.T @ np.asarray(projections)) / singular_values[:r, None]
    return Visibility(float(np.sum(coords**2)) / k, k, r, span_.tolerance)


def subspace_visible_fraction(q_g: Float[Array, "r N"], q_f: Float[Array, "k N"]) -> float:
    r"""Visible fraction $\lVert Q_G Q_F^\top \rVert_F^2 / k$ from two orthonormal row bases (dense)."""
    q_g, q_f = _check_bases(("q_g", q_g), ("q_f", q_f))
    return float(jnp.sum((q_g @ q_f.T) ** 2)) / q_f.shape[0]


def expected_alignment(gradients: Float[Array, "b N"], directions: Float[Array, "k N"]) -> float:
    r"""Alignment of the mean gradient $\bar g$ with a family (dense): $\lVert Q_F \bar g \rVert / \lVert \bar g\rVert$.

    For a single direction (k = 1) the signed cosine $\langle \bar g, q \rangle / \lVert \bar g \rVert$
    (negative: a gradient-descent step moves along $+q$). 0 when $\bar g = 0$.
    """
    gradients = _check_stack("gradients", gradients)
    (directions,) = _check_bases(("directions", directions))
    check_shape("gradients", gradients, (None, directions.shape[1]))
    mean = gradients.mean(axis=0)
    return _alignment(directions @ mean, float(jnp.linalg.norm(mean)))


def expected_alignment_from_projections(projections: Float[Array, "b k"], mean_norm: float) -> float:
    r"""``expected_alignment`` from family coordinates P of the samples and $\lVert \bar g \rVert$.

    The coordinates of $\bar g$ are the column means of P, so no dense gradient is needed; for
    factored samples $\lVert \bar g \rVert^2 = \mathbf 1^\top K \mathbf 1 / b^2$ with K the Gram matrix.
    With the default (non-gauge) family coordinates this is the alignment with F' (for one direction q,
    the signed cosine with $(I - \Pi_g) q$ normalised); for a gradient, orthogonal to the gauge (P1), it
    is at least its alignment with the whole F, since $F' \oplus$ gauge $\supseteq F$.
    """
    projections = _check_stack("projections", projections)
    check_float("mean_norm", mean_norm, 0.0, float("inf"), open_low=False)
    return _alignment(np.asarray(projections).mean(axis=0), float(mean_norm))


def _alignment(coords, norm):
    coords = np.asarray(coords)
    if norm == 0.0:
        return 0.0
    if coords.shape[0] == 1:
        return float(coords[0]) / norm
    return float(np.linalg.norm(coords)) / norm


def _check_stack(name: str, stack) -> Array:
    """Check a finite floating matrix (b, N) with b, N >= 1; return it as a JAX array."""
    check_array(name, stack, (None, None))
    if 0 in np.shape(stack):
        raise ValueError(f"{name} must have shape (b, N) with b, N >= 1, got {np.shape(stack)}")
    return jnp.asarray(stack)


def _check_bases(*named) -> tuple[Array, ...]:
    r"""Check finite row bases (k, N) sharing N, orthonormal ($Q Q^\top = I$, ``close_tolerance``) when concrete.

    Returns them as JAX arrays.
    """
    width, bases = None, []
    for name, q in named:
        bases.append(_check_stack(name, q))
        if width is not None:
            check_shape(name, q, (None, width))
        width = np.shape(q)[1]
        if is_concrete(q):
            q = np.asarray(q)
            gap = float(np.max(np.abs(q @ q.T - np.eye(q.shape[0]))))
            if gap > close_tolerance(q.dtype, width):
                raise ValueError(f"{name} must have orthonormal rows (Q Q^T = I), got max |Q Q^T - I| = {gap:.3g}")
    return tuple(bases)
