"""Data sources, each deterministic from an explicit PRNG key, and the mask sampler.

Token ids are int32 in ``[0, vocab)``; ``vocab`` itself is reserved for MASK. Every source checks
its key and sizes first and refuses a size whose arrays would exceed ``checks.MAX_ALLOCATION_BYTES``.
"""

import math
from functools import lru_cache
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from blindspot.checks import check_allocation, check_array, check_float, check_int, check_key

MAX_VOCAB = 2**31 - 1
"""Largest vocabulary: ids are int32."""


def _check_sizes(key, batch: int, n: int, vocab: int | None = None, *, n_min: int = 2) -> None:
    """Check the key, ``batch >= 1``, ``n >= n_min``, ``vocab`` and the (batch, n) float64 work arrays."""
    check_key("key", key)
    check_int("batch", batch, 1)
    check_int("n", n, n_min)
    if vocab is not None:
        check_int("vocab", vocab, 2, MAX_VOCAB)
    check_allocation("batch * n", (batch, n), np.float64)


def iid_tokens(key: jax.Array, batch: int, n: int, vocab: int) -> Int[Array, "b n"]:
    """I.i.d. uniform tokens."""
    _check_sizes(key, batch, n, vocab)
    return jax.random.randint(key, (batch, n), 0, vocab, jnp.int32)


def markov_tokens(key: jax.Array, batch: int, n: int, vocab: int, rho: float) -> Int[Array, "b n"]:
    r"""Sticky Markov chain: keep the previous token with probability ``rho``, else redraw uniformly.

    The first token is uniform, so the chain is stationary (uniform marginals). Vectorised:
    position t copies the fresh draw made at the last "redraw" time $\le t$.
    """
    _check_sizes(key, batch, n, vocab)
    check_float("rho", rho, 0.0, 1.0, open_low=False)
    k_fresh, k_keep = jax.random.split(key)
    fresh = jax.random.randint(k_fresh, (batch, n), 0, vocab, jnp.int32)
    redraw = jax.random.uniform(k_keep, (batch, n)) >= rho
    redraw = redraw.at[:, 0].set(True)
    last = jax.lax.cummax(jnp.where(redraw, jnp.arange(n), 0), axis=1)
    return jnp.take_along_axis(fresh, last, axis=1)


def lag_agreement(lag, vocab: int, rho: float):
    r"""Exact $P(x_i = x_j)$ of the sticky chain at lag $k = |i - j|$ (P6).

    Notes
    -----
    $P(x_i = x_j) = 1/V + (1 - 1/V)\rho^{|k|}$: no redraw in between (probability $\rho^{|k|}$)
    means equal; otherwise the later token is uniform and independent of the earlier one.
    """
    check_int("vocab", vocab, 2)
    check_float("rho", rho, 0.0, 1.0, open_low=False)
    check_array("lag", lag, np.shape(lag), kind="integer")
    return 1.0 / vocab + (1.0 - 1.0 / vocab) * rho ** np.abs(np.asarray(lag))


def paired_task(key: jax.Array, batch: int, n: int, vocab: int) -> tuple[Int[Array, "b n"], Int[Array, " b"]]:
    r"""Synthetic classification whose label is a function of adjacency, not of token counts.

    Each sequence draws $n/2$ i.i.d. uniform tokens $u_k$ and uses each twice, so both classes
    share one law of the multiset of tokens. Label 1 ("paired"): $u_1 u_1 u_2 u_2 \dots$ rolled by
    a random cyclic shift; label 0: a uniformly random permutation of the same multiset. Any
    function of the token counts is therefore at chance; telling the classes apart needs to
    compare neighbours (a proximity pattern). ``n`` must be even.
    """
    _check_sizes(key, batch, n, vocab, n_min=4)
    if n % 2:
        raise ValueError(f"n must be an even integer >= 4, got {n}")
    k_tok, k_lab, k_perm, k_shift = jax.random.split(key, 4)
    pairs = jnp.repeat(jax.random.randint(k_tok, (batch, n // 2), 0, vocab, jnp.int32), 2, axis=1)
    labels = jax.random.bernoulli(k_lab, 0.5, (batch,)).astype(jnp.int32)
    shift = jax.random.randint(k_shift, (batch, 1), 0, n)
    rolled = jnp.take_along_axis(pairs, (jnp.arange(n)[None, :] + shift) % n, axis=1)
    order = jnp.argsort(jax.random.uniform(k_perm, (batch, n)), axis=1)
    shuffled = jnp.take_along_axis(pairs, order, axis=1)
    return jnp.where(labels[:, None] == 1, rolled, shuffled), labels


DIGITS_COUNT = 1797
"""Number of images in scikit-learn's bundled 8x8 digits."""
DIGITS_CLASSES = 10


class Digits(NamedTuple):
    """scikit-learn's 8x8 digits as 64-pixel sequences with quantised grey levels."""

    train_tokens: Int[Array, "b 64"]
    train_labels: Int[Array, " b"]
    test_tokens: Int[Array, "b 64"]
    test_labels: Int[Array, " b"]


@lru_cache(maxsize=8)
def _digits_numpy(levels: int, test_fraction: float):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    tokens = np.minimum((images * levels) // 17, levels - 1).astype(np.int32)
    return train_test_split(tokens, labels.astype(np.int32), test_size=test_fraction, random_state=0, stratify=labels)


def digits(levels: int = 4, test_fraction: float = 0.25) -> Digits:
    """Load the 1797 bundled 8x8 digits (no download), pixels row-major, grey 0..16 binned to ``levels``.

    The split is fixed (stratified, ``random_state=0``): 1347 train / 450 test at the default
    fraction. Tokens are in ``[0, levels)``, so use ``vocab=levels`` and ``classes=10``.
    """
    check_int("levels", levels, 2, 17)
    check_float("test_fraction", test_fraction, 0.0, 1.0)
    test_count = math.ceil(test_fraction * DIGITS_COUNT)
    if min(test_count, DIGITS_COUNT - test_count) < DIGITS_CLASSES:
        raise ValueError(
            f"test_fraction must leave at least {DIGITS_CLASSES} of the {DIGITS_COUNT} digits (one per class) "
            f"in each split, got {test_fraction}"
        )
    x_train, x_test, y_train, y_test = _digits_numpy(levels, test_fraction)
    return Digits(jnp.asarray(x_train), jnp.asarray(y_train), jnp.asarray(x_test), jnp.asarray(y_test))


def sample_masks(key: jax.Array, batch: int, n: int, rate: float) -> Bool[Array, "b n"]:
    r"""Boolean masks with exactly $m = \max(1, \mathrm{round}(rate \cdot n))$ positions each.

    The masked set is uniform among the $\binom{n}{m}$ subsets, so every position is masked
    with probability $m/n$ and the normaliser of the reconstruction loss is constant.
    """
    _check_sizes(key, batch, n)
    check_float("rate", rate, 0.0, 1.0)
    m = max(1, round(rate * n))
    ranks = jnp.argsort(jnp.argsort(jax.random.uniform(key, (batch, n)), axis=1), axis=1)
    return ranks < m


def empirical_lag_agreement(tokens: Int[Array, "b n"]) -> Float[Array, "n n"]:
    """Monte Carlo estimate of $P(x_i = x_j)$ from a batch of sequences."""
    check_array("tokens", tokens, (None, None), kind="integer")
    b, n = np.shape(tokens)
    if b < 1:
        raise ValueError(f"tokens must have shape (b, n) with b >= 1, got {(b, n)}")
    check_allocation("tokens (b * n * n comparisons)", (b, n, n), np.bool_)
    return jnp.mean(tokens[:, :, None] == tokens[:, None, :], axis=0)
