r"""What the claim modules ``claim_p<k>_*`` share: float64, tolerances and one sampled batch.

Tolerances come from ``blindspot.tolerances`` (float64 unit roundoff times the size of the
computation) or, for Monte Carlo estimates, from a normal bound with $Z = 4.9$ standard errors (a
false alarm about once in a million per entry).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from blindspot.config import ModelConfig
from blindspot.data import markov_tokens, sample_masks
from blindspot.model import init
from blindspot.tolerances import close_tolerance

F64 = jnp.float64
Z = 4.9
"""Standard errors a Monte Carlo estimate may miss its expectation by."""


def rounding(size: int) -> float:
    """Relative float64 rounding level of a computation with ``size`` terms (``close_tolerance``)."""
    return close_tolerance(F64, size)


def sample_batch(config: ModelConfig, seed: int, batch: int, *, rho: float = 0.7):
    """Parameters, sticky-chain tokens, labels and masks for ``config``, all drawn from one seed."""
    k = jax.random.split(jax.random.key(seed), 4)
    params = init(k[0], config, F64)
    tokens = markov_tokens(k[1], batch, config.n, config.vocab, rho)
    labels = jax.random.randint(k[2], (batch,), 0, config.classes, jnp.int32)
    masks = sample_masks(k[3], batch, config.n, config.mask_rate)
    return params, tokens, labels, masks


def circulant_profile(x) -> np.ndarray:
    r"""Coordinates of matrices ``(b, n, n)`` on the zero-sum circulants: centred wrap-around lag sums $/\sqrt n$.

    Notes
    -----
    $t_k = \sum_i X_{i, (i + k) \bmod n} / \sqrt n = \langle X, C_k \rangle$ for the orthonormal circulants
    $C_k$; removing the mean over $k$ projects off $\mathbf 1 \mathbf 1^\top$, so $\lVert t - \bar t \rVert$
    is the norm of X's projection on the zero-sum circulants. Plain numpy: the instrument every
    route of P10 and P11 is read with.
    """
    x = np.asarray(x)
    n = x.shape[-1]
    lag = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n
    sums = np.stack([x[..., lag == k].sum(-1) for k in range(n)], axis=-1) / math.sqrt(n)
    return sums - sums.mean(-1, keepdims=True)


def uniform_u(params, config: ModelConfig, tokens, labels) -> np.ndarray:
    r"""Numpy: $u_j = \frac1n v_j \cdot \partial L / \partial o$ at uniform attention, one row per sample.

    At $S = 0$ every $o_i = \bar v$, and mean pooling gives $\partial L / \partial o_i =
    \frac1n J_\phi(\bar v)^\top W_c (p - e_y)$, $p$ the class probabilities ($J_\phi$: the MLP's Jacobian).
    """
    e, p = np.asarray(params.token_embedding), np.asarray(params.positional)
    wv, wc, bc = np.asarray(params.value), np.asarray(params.classifier.weight), np.asarray(params.classifier.bias)
    rows = []
    for x, y in zip(np.asarray(tokens), np.asarray(labels)):
        v = (e[x] + p) @ wv
        o = v.mean(axis=0)
        if params.mlp is None:
            z = o
        else:
            w1, b1, w2, b2 = (np.asarray(t) for t in params.mlp)
            hidden = np.tanh(o @ w1 + b1)
            z = hidden @ w2 + b2
        logits = z @ wc + bc
        prob = np.exp(logits - logits.max())
        grad_z = wc @ (prob / prob.sum() - np.eye(bc.shape[0])[y])
        grad_o = grad_z if params.mlp is None else ((grad_z @ w2.T) * (1.0 - hidden**2)) @ w1.T
        rows.append(v @ grad_o / config.n)
    return np.stack(rows)
