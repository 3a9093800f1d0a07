"""Absolute positional encodings: sinusoidal or fixed Gaussian, raw or centred."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

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
    i = jnp.arange(n, dtype=dtype)[:, None]
    k = (jnp.arange(d) // 2).astype(dtype)
    omega = jnp.power(10000.0, -2.0 * k / d)
    angle = i * omega[None, :]
    return jnp.where(jnp.arange(d) % 2 == 0, jnp.sin(angle), jnp.cos(angle))


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
