r"""What the claim modules ``claim_p1_*`` ... ``claim_p8_*`` share: float64, tolerances and one sampled batch.

Tolerances come from ``blindspot.tolerances`` (float64 unit roundoff times the size of the
computation) or, for Monte Carlo estimates, from a normal bound with $Z = 4.9$ standard errors (a
false alarm about once in a million per entry).
"""

import jax
import jax.numpy as jnp

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
