r"""Curvature of a loss in score or parameter space, without forming the Hessian.

A loss is any scalar function ``f`` of an array (the score matrix $S$) or of a parameter
pytree. The tools here apply the Hessian $H = \nabla^2 f(x)$ to vectors (forward over
reverse), restrict it to a family of directions $Q^\top H Q$ from batched JVPs, split it into
its Gauss-Newton and functional parts, bound the dense Hessian by an explicit size guard, and
find its extreme eigenpairs by Lanczos with full re-orthogonalisation (P7: label supervision sees
the first-order blind families only through curvature).

Conventions: a *basis* of $k$ directions is stacked on a leading axis, shape ``(k, *x.shape)``
(for a pytree ``x``: a pytree of the same structure whose leaves carry the leading axis), and
is assumed orthonormal in the Frobenius inner product $\langle A, B \rangle = \sum A \odot B$.

Every entry point refuses a non-callable function and non-finite points, directions or bases
(values when concrete: these functions are meant to be traced, and ``jit`` callers check first).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from blindspot.checks import (
    check_allocation,
    check_callable,
    check_finite_tree,
    check_floating_dtype,
    check_int,
    check_key,
)
from blindspot.tolerances import close_tolerance


def _check_basis(x, basis) -> int:
    """Refuse a basis whose structure, shapes or values do not fit ``x``; return the number of directions."""
    check_finite_tree("x", x)
    x_leaves, x_tree = jax.tree.flatten(x)
    b_leaves, b_tree = jax.tree.flatten(basis)
    if x_tree != b_tree:
        raise ValueError(f"basis must have the pytree structure of x, got {b_tree} for x with {x_tree}")
    counts = set()
    for leaf, direction in zip(x_leaves, b_leaves):
        want = tuple(jnp.shape(leaf))
        got = tuple(jnp.shape(direction))
        if got[1:] != want or len(got) != len(want) + 1:
            raise ValueError(f"basis must have shape (k, {', '.join(map(str, want))}) per leaf of x, got {got}")
        counts.add(got[0])
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"basis must stack the same number k >= 1 of directions in every leaf, got {sorted(counts)}")
    check_finite_tree("basis", basis)
    return counts.pop()


def _check_vector(x, v) -> None:
    """Refuse non-finite ``x``, or a direction ``v`` whose structure, shapes or values do not fit."""
    check_finite_tree("x", x)
    x_leaves, x_tree = jax.tree.flatten(x)
    v_leaves, v_tree = jax.tree.flatten(v)
    if x_tree != v_tree or any(jnp.shape(a) != jnp.shape(b) for a, b in zip(x_leaves, v_leaves)):
        want = [tuple(jnp.shape(a)) for a in x_leaves]
        raise ValueError(
            f"v must have the structure and shapes of x {want}, got {[tuple(jnp.shape(b)) for b in v_leaves]}"
        )
    check_finite_tree("v", v)


def _gram(left, right) -> Float[Array, "k l"]:
    r"""Matrix of Frobenius inner products $\langle L_a, R_b \rangle$ of two stacked pytrees."""
    pairs = zip(jax.tree.leaves(left), jax.tree.leaves(right))
    return sum(a.reshape(a.shape[0], -1) @ b.reshape(b.shape[0], -1).T for a, b in pairs)


def hvp(f, x, v):
    r"""Hessian-vector product $H v$ of a scalar function, forward over reverse.

    Parameters
    ----------
    f
        Scalar function of one array or pytree argument.
    x
        Point at which the Hessian is taken.
    v
        Direction, same structure and shapes as ``x``.

    Returns
    -------
    The product $\nabla^2 f(x)\, v$, same structure as ``x``.

    Notes
    -----
    $H v = \frac{d}{dt} \nabla f(x + t v) \big|_{t=0}$: one JVP of the gradient, costing a small
    constant multiple of one gradient, independent of the dimension.
    """
    check_callable("f", f)
    _check_vector(x, v)
    return jax.jvp(jax.grad(f), (x,), (v,))[1]


def restricted_hessian(f, x, basis) -> Float[Array, "k k"]:
    r"""Hessian restricted to the span of a family of directions, $Q^\top H Q$, never forming $H$.

    Parameters
    ----------
    f
        Scalar function of one array or pytree argument (for example a score-space loss).
    x
        Point at which the Hessian is taken.
    basis
        Orthonormal directions stacked on a leading axis, shape ``(k, *x.shape)``.

    Returns
    -------
    The $k \times k$ matrix with entries $q_a^\top H q_b$ (symmetric up to rounding).

    Notes
    -----
    $k$ Hessian-vector products, batched with ``vmap`` (one linearisation of $\nabla f$, $k$
    tangents), then $k^2$ inner products: cost $O(k)$ gradients and memory $O(k \dim x)$,
    against $O(\dim x)$ gradients and $O(\dim x^2)$ memory for the dense Hessian (P7).
    """
    check_callable("f", f)
    _check_basis(x, basis)
    hq = jax.vmap(lambda q: hvp(f, x, q))(basis)
    return _gram(basis, hq)


class CurvatureSplit(NamedTuple):
    r"""Restricted Hessian and its Gauss-Newton and functional parts, each $k \times k$."""

    total: Float[Array, "k k"]
    gauss_newton: Float[Array, "k k"]
    functional: Float[Array, "k k"]


def gauss_newton_split(outputs, loss_of_outputs, x, basis) -> CurvatureSplit:
    r"""Split the restricted Hessian of $f = \ell \circ z$ into Gauss-Newton and functional parts.

    Parameters
    ----------
    outputs
        The map $z$ from ``x`` to the outputs (for example the class logits of a batch).
    loss_of_outputs
        The scalar loss $\ell$ of the outputs (for example the mean cross-entropy).
    x
        Point at which the Hessian is taken.
    basis
        Orthonormal directions stacked on a leading axis, shape ``(k, *x.shape)``.

    Returns
    -------
    ``CurvatureSplit(total, gauss_newton, functional)``; the three are computed independently,
    so ``total = gauss_newton + functional`` is a check, not a definition.

    Notes
    -----
    $\nabla^2 (\ell \circ z) = J^\top H_\ell J + \sum_c \partial_c \ell \, \nabla^2 z_c$ with
    $J$ the Jacobian of $z$ and $H_\ell$ the Hessian of $\ell$ at $z(x)$. Restricted to the family:
    Gauss-Newton $(J Q)^\top H_\ell (J Q)$ from $k$ JVPs of $z$ and $k$ HVPs of $\ell$ (positive
    semi-definite when $\ell$ is convex, as the cross-entropy is in the logits); functional
    $Q^\top \nabla^2 \langle g, z \rangle Q$ with $g = \nabla \ell(z(x))$ held fixed. P7: along the
    first-order blind families the functional part carries the position-wise nonlinearity.
    """
    check_callable("outputs", outputs)
    check_callable("loss_of_outputs", loss_of_outputs)
    _check_basis(x, basis)
    z = outputs(x)
    jq = jax.vmap(lambda q: jax.jvp(outputs, (x,), (q,))[1])(basis)
    hjq = jax.vmap(lambda u: hvp(loss_of_outputs, z, u))(jq)
    g = jax.lax.stop_gradient(jax.grad(loss_of_outputs)(z))

    def weighted_outputs(y):
        return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(outputs(y))))

    return CurvatureSplit(
        total=restricted_hessian(lambda y: loss_of_outputs(outputs(y)), x, basis),
        gauss_newton=_gram(jq, hjq),
        functional=restricted_hessian(weighted_outputs, x, basis),
    )


def dense_hessian(f, x, *, max_size: int = 2048):
    r"""Dense Hessian of a scalar function, refused above an explicit size guard.

    Parameters
    ----------
    f
        Scalar function of one array or pytree argument.
    x
        Point at which the Hessian is taken.
    max_size
        Largest allowed number of entries of ``x`` (the Hessian has ``size**2`` entries).

    Returns
    -------
    ``jax.hessian(f)(x)``: for an array of shape ``s``, an array of shape ``(*s, *s)``.

    Notes
    -----
    Costs $\dim x$ Hessian-vector products and $O(\dim x^2)$ memory: a reference for small
    problems only. A score matrix has $n^2$ entries, so the dense Hessian has $n^4$; above the
    guard use ``restricted_hessian`` (a family of directions) or ``lanczos_extreme`` (extreme
    eigenpairs from Hessian-vector products).
    """
    check_callable("f", f)
    check_finite_tree("x", x)
    check_int("max_size", max_size, 1)
    size = sum(math.prod(jnp.shape(leaf)) for leaf in jax.tree.leaves(x))
    if size > max_size:
        raise ValueError(
            f"x has {size} entries, above max_size={max_size} for a dense Hessian ({size}**2 entries); "
            "use restricted_hessian (Q^T H Q on a family) or lanczos_extreme (extreme eigenpairs) instead"
        )
    return jax.hessian(f)(x)


class LanczosResult(NamedTuple):
    r"""Extreme Ritz pairs of a symmetric operator and the Lanczos decomposition behind them.

    With $Q_k$ the $m \times k$ matrix whose columns are the rows of ``basis`` and $T_k$ the
    ``tridiagonal``, the Lanczos relation is $A Q_k = Q_k T_k + r\, e_k^\top$ with $r$ the
    ``residual``, and $Q_k^\top Q_k = I$.
    """

    eigenvalues: Float[Array, " 2"]
    r"""Smallest and largest Ritz values $\theta_{min}, \theta_{max}$."""
    eigenvectors: Float[Array, "2 m"]
    """The corresponding unit Ritz vectors $Q_k s$."""
    ritz_values: Float[Array, " k"]
    """All eigenvalues of $T_k$, ascending."""
    ritz_residuals: Float[Array, " k"]
    r"""$\lVert A y_i - \theta_i y_i \rVert = \beta_k |e_k^\top s_i|$: an eigenvalue of $A$ lies within it."""
    basis: Float[Array, "k m"]
    """Orthonormal Krylov basis, one vector per row."""
    tridiagonal: Float[Array, "k k"]
    r"""$T_k = Q_k^\top A Q_k$."""
    residual: Float[Array, " m"]
    r"""$r = \beta_k q_{k+1}$, orthogonal to the basis."""


def lanczos_extreme(matvec, dim: int, num_steps: int, key: jax.Array, *, dtype=None) -> LanczosResult:
    r"""Extreme eigenpairs of a symmetric linear operator by Lanczos with full re-orthogonalisation.

    Parameters
    ----------
    matvec
        The operator $v \mapsto A v$ on vectors of shape ``(dim,)``, symmetric (for example a
        Hessian-vector product on a flattened score matrix); traced once inside ``fori_loop``.
    dim
        Dimension $m$ of the space.
    num_steps
        Number $k$ of Lanczos steps (Krylov dimension), ``1 <= k <= dim``.
    key
        PRNG key of the Gaussian starting vector.
    dtype
        Floating dtype of the iteration (default: JAX's default float).

    Returns
    -------
    ``LanczosResult`` with the smallest and largest Ritz pairs, all Ritz values with their
    residual norms, the Krylov basis, $T_k$ and the residual vector.

    Notes
    -----
    Step $j$: $w = A q_j - \alpha_j q_j - \beta_{j-1} q_{j-1}$, $\alpha_j = q_j^\top A q_j$, then $w$
    is orthogonalised twice against every previous $q$ (classical Gram-Schmidt twice is enough
    in floating point) and $q_{j+1} = w / \beta_j$, $\beta_j = \lVert w \rVert$. If
    $\beta_j \le \tau \lVert A q_j \rVert$, $\tau$ = ``close_tolerance(dtype, m)`` (the rounding level
    of $w$), an invariant subspace has been found: the iteration restarts from a fresh random
    vector orthogonal to the basis and sets $\beta_j = 0$, so the relation holds to that level.
    Ritz values interlace the spectrum, and each lies within its residual norm of an eigenvalue
    of $A$ (P7: extreme curvature of a loss in score space).
    """
    check_callable("matvec", matvec)
    dim = check_int("dim", dim, 1)
    num_steps = check_int("num_steps", num_steps, 1, dim)
    check_key("key", key)
    dtype = check_floating_dtype("dtype", dtype)
    check_allocation("num_steps * dim (Krylov basis)", (num_steps + 1, dim), dtype)
    threshold = close_tolerance(dtype, dim)

    def orthogonalise(basis, w):
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        return w

    start = jax.random.normal(key, (dim,), dtype)
    basis = jnp.zeros((num_steps + 1, dim), dtype).at[0].set(start / jnp.linalg.norm(start))
    alphas = jnp.zeros(num_steps, dtype)
    betas = jnp.zeros(num_steps, dtype)

    def step(j, carry):
        basis, alphas, betas = carry
        q = basis[j]
        aq = matvec(q)
        alpha = jnp.vdot(q, aq)
        previous = jnp.where(j > 0, betas[j - 1], 0.0) * basis[jnp.maximum(j - 1, 0)]
        w = orthogonalise(basis, aq - alpha * q - previous)
        beta = jnp.linalg.norm(w)

        def restart():
            fresh = orthogonalise(basis, jax.random.normal(jax.random.fold_in(key, j + 1), (dim,), dtype))
            return fresh / jnp.linalg.norm(fresh), jnp.zeros((), dtype)

        def advance():
            broken = beta <= threshold * jnp.linalg.norm(aq)
            return jax.lax.cond(broken, restart, lambda: (w / beta, beta))

        # After the last step the (k+1)-th row keeps the unnormalised residual beta_k q_{k+1}.
        next_q, beta = jax.lax.cond(j == num_steps - 1, lambda: (w, beta), advance)
        return basis.at[j + 1].set(next_q), alphas.at[j].set(alpha), betas.at[j].set(beta)

    basis, alphas, betas = jax.lax.fori_loop(0, num_steps, step, (basis, alphas, betas))
    off = betas[:-1]
    tridiagonal = jnp.diag(alphas) + jnp.diag(off, 1) + jnp.diag(off, -1)
    ritz_values, s = jnp.linalg.eigh(tridiagonal)
    krylov = basis[:num_steps]
    vectors = (krylov.T @ s[:, jnp.array([0, num_steps - 1])]).T
    return LanczosResult(
        eigenvalues=ritz_values[jnp.array([0, num_steps - 1])],
        eigenvectors=vectors,
        ritz_values=ritz_values,
        ritz_residuals=betas[-1] * jnp.abs(s[-1]),
        basis=krylov,
        tridiagonal=tridiagonal,
        residual=basis[num_steps],
    )
