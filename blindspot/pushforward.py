r"""Score directions pushed to the query-key matrix W, and the positional identity direction there (P8, P13).

Scores are $S = c\, H W H^\top$ (content+position, $H = E + P$, $c = 1/\sqrt d$) or $S = P W P^\top$
(position-only): a score direction D is reached in W by the least-squares $W = H^+ D (H^+)^\top / c$
(:func:`pushforward`, :func:`proximity_pushforward` for the registered proximity kernel), and the first
gradient step in W is compared with the positional identity $\Pi_P / \lVert \Pi_P \rVert_F$
(:func:`positional_identity`, :func:`first_step_cosine`). The score-space families are ``directions``.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from blindspot.checks import check_array, check_float, is_concrete
from blindspot.directions import PROXIMITY_LENGTH, proximity_weights
from blindspot.tolerances import rank_tolerance


class Pushforward(NamedTuple):
    """Least-squares query-key matrix $W$ for a score direction, and the unreachable part."""

    w: Float[Array, "d d"]
    residual_fraction: Float[Array, ""]


def pushforward(
    direction: Float[Array, "n n"], encodings: Float[Array, "n d"], *, scale: float = 1.0, rtol: float | None = None
) -> Pushforward:
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
    rtol
        Singular values of H below ``rtol`` times the largest are treated as zero (a truncated
        pseudo-inverse: a W of moderate norm when H is ill-conditioned, at the price of a larger
        residual); ``None``: numpy's default, the numerical rank.

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
    if rtol is not None:
        check_float("rtol", rtol, 0.0, 1.0, open_low=False)
    _check_nonzero("direction", direction)
    pinv = jnp.linalg.pinv(encodings, rtol=rtol)
    w = pinv @ direction @ pinv.T / scale
    residual = direction - scale * encodings @ w @ encodings.T
    return Pushforward(w, jnp.linalg.norm(residual) / jnp.linalg.norm(direction))


def _apply_proximity(x: Float[Array, "n d"], length: float) -> Float[Array, "n d"]:
    r"""Return $K X$ for the unit proximity kernel $K \propto \lambda^{|i-j|}$, $\lambda = e^{-1/l}$, in $O(n d)$.

    Notes
    -----
    $\sum_j \lambda^{|i-j|} x_j = f_i + b_i - x_i$ with the recursions $f_i = x_i + \lambda f_{i-1}$ and
    $b_i = x_i + \lambda b_{i+1}$; the unit kernel is that times its diagonal weight (``proximity_weights``).
    """
    lam = jnp.exp(-1.0 / length).astype(x.dtype)

    def step(carry, row):
        carry = row + lam * carry
        return carry, carry

    zero = jnp.zeros_like(x[0])
    forward = jax.lax.scan(step, zero, x)[1]
    backward = jax.lax.scan(step, zero, x, reverse=True)[1]
    return (forward + backward - x) * proximity_weights(x.shape[0], length, x.dtype)[x.shape[0] - 1]


@partial(jax.jit, static_argnames="scale")
def proximity_pushforward(positions: Float[Array, "n d"], *, scale: float = 1.0) -> Float[Array, "d d"]:
    r"""Return the unit W-direction of the proximity kernel, $\omega_K = P^+ K P^{+\top} / \lVert\cdot\rVert_F$ (P13).

    K is the registered ``proximity`` kernel, whole; ``scale`` is c in $S = c\, P W P^\top$: $P^+ K P^{+\top}/c$
    is the query-key matrix that best produces K from the positional encodings (:func:`pushforward`). K is
    applied by recursions, never formed: $O(n d^2)$ time and $O(n d)$ memory.
    """
    pinv = jnp.linalg.pinv(positions)
    w = pinv @ _apply_proximity(pinv.T, PROXIMITY_LENGTH) / scale
    return w / jnp.linalg.norm(w)


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
    return _first_step_cosine(gradient, positions)


@jax.jit
def _first_step_cosine(gradient, positions):
    direction = positional_identity(positions)
    norm = jnp.linalg.norm(gradient)
    return jnp.where(norm > 0, jnp.sum(gradient * direction) / jnp.where(norm > 0, norm, 1.0), 0.0)


def _check_nonzero(name: str, array) -> None:
    """Refuse an all-zero concrete array (its direction is undefined)."""
    if not is_concrete(array):
        return
    if not np.any(np.asarray(array)):
        raise ValueError(f"{name} must be non-zero (it defines a direction), got all zeros")
