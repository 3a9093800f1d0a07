r"""Directional Taylor coefficients of a loss, in Taylor mode and by nested JVPs.

Along a direction $v$ the loss $t \mapsto f(x + t v)$ has Taylor coefficients
$c_k = \frac{1}{k!} \frac{d^k}{dt^k} f(x + t v) \big|_{t=0}$. A family is blind to order $K$ when
$c_1 = \dots = c_K = 0$ along all its directions, globally flat when every order vanishes (P3),
and locally but not globally blind when $c_1 = 0 \ne c_2$ (P7).

Both entry points refuse a non-callable ``f`` and non-finite ``x`` or direction (values when
concrete, ``blindspot.checks``).
"""

import math

import jax
import jax.numpy as jnp
from jax.experimental.jet import jet
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from blindspot.checks import check_callable, check_finite_tree, check_int


def _check_direction(f, x, direction) -> None:
    """Refuse a non-callable ``f``, non-finite ``x``, or a direction that does not fit ``x``."""
    check_callable("f", f)
    check_finite_tree("x", x)
    x_leaves, x_tree = jax.tree.flatten(x)
    v_leaves, v_tree = jax.tree.flatten(direction)
    if x_tree != v_tree or any(jnp.shape(a) != jnp.shape(b) for a, b in zip(x_leaves, v_leaves)):
        shapes = [tuple(jnp.shape(a)) for a in x_leaves]
        got = [tuple(jnp.shape(b)) for b in v_leaves]
        raise ValueError(f"direction must have the structure and shapes of x {shapes}, got {got}")
    check_finite_tree("direction", direction)


def taylor_coefficients(f, x, direction, order: int) -> Float[Array, " k"]:
    r"""Taylor coefficients $c_0, \dots, c_K$ of $t \mapsto f(x + t v)$ at $t = 0$, in Taylor mode.

    Parameters
    ----------
    f
        Scalar function of one array or pytree argument.
    x
        Base point.
    direction
        Direction $v$, same structure and shapes as ``x`` (not normalised here).
    order
        Highest order $K \ge 1$.

    Returns
    -------
    Array of shape ``(order + 1,)`` with $c_k = \frac{1}{k!} \frac{d^k}{dt^k} f(x + t v)|_{t=0}$.

    Notes
    -----
    One pass of ``jax.experimental.jet`` with the input series $x + t v$ (coefficients $v$, then
    zeros) and ``factorial_scaled=False``, so that input and output series are plain Taylor
    coefficients: cost $O(K^2)$ times one evaluation, against $O(2^K)$ for nested JVPs. P3, P7.
    """
    order = check_int("order", order, 1)
    _check_direction(f, x, direction)
    flat_x, unravel = ravel_pytree(x)
    flat_v, _ = ravel_pytree(direction)
    series = [flat_v] + [jnp.zeros_like(flat_v)] * (order - 1)
    value, terms = jet(lambda y: f(unravel(y)), (flat_x,), (series,), factorial_scaled=False)
    return jnp.stack([jnp.asarray(value)] + [jnp.asarray(t) for t in terms])


def taylor_coefficients_nested_jvp(f, x, direction, order: int) -> Float[Array, " k"]:
    r"""Taylor coefficients of $t \mapsto f(x + t v)$ at $t = 0$ by nested forward-mode JVPs.

    Parameters
    ----------
    f
        Scalar function of one array or pytree argument.
    x
        Base point.
    direction
        Direction $v$, same structure and shapes as ``x``.
    order
        Highest order $K \ge 1$.

    Returns
    -------
    Array of shape ``(order + 1,)``, the same quantity as ``taylor_coefficients``.

    Notes
    -----
    $g_0(t) = f(x + t v)$, $g_{k+1}(t) = \frac{d}{dt} g_k(t)$ by one JVP in $t$, and
    $c_k = g_k(0) / k!$. An independent computation of the same coefficients (cost doubles with
    each order), used to cross-check Taylor mode.
    """
    order = check_int("order", order, 1)
    _check_direction(f, x, direction)
    dtype = jnp.result_type(*jax.tree.leaves(x))

    def along(t):
        return f(jax.tree.map(lambda a, b: a + t * b, x, direction))

    derivatives = [along]
    for _ in range(order):
        previous = derivatives[-1]
        derivatives.append(lambda t, g=previous: jax.jvp(g, (t,), (jnp.ones((), dtype),))[1])
    zero = jnp.zeros((), dtype)
    return jnp.stack([g(zero) / math.factorial(k) for k, g in enumerate(derivatives)])
