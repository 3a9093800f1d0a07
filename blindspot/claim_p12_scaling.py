r"""Claim P12: how signal, noise and $B^*$ of band_1, proximity and the circulants scale with n at W = 0.

Plain model (mean pooling, no MLP), uniform attention. Reconstruction, copy readout, i.i.d. uniform
tokens over V symbols, $m = rn$ masked positions: the moments of the family coordinates are exact
rational functions of n, m, V (``blindspot.scaling``), with leading orders (``derivations/p12_scaling.md``)

- circulant: signal $\propto n^{-3/2}$, noise $\propto n^{-3}$, $B^* \to (V - 1)/(r(1-r)) + 1$;
- band_1: signal $\propto n^{-5/2}$, noise $\propto n^{-4}$, $B^* \propto n$;
- proximity: signal $\propto n^{-3/2}$, noise $\propto n^{-4}$, $B^* \propto n^{-1}$.

Label supervision: every gradient is $\mathbf 1 w^\top$ (P4): zero on the circulants, and on band_1
exactly $-(w_0 + w_{n-1})/\nu_n$, $\nu_n^2 = 2(n^2 - 3n + 3)/n$, with $w = O(n^{-2})$: signal
$O(n^{-5/2})$, noise $O(n^{-5})$, $B^*$ without a power of n. Three lines, each a route of its own
(``measure`` lists them); the control feeds the sticky chain to the i.i.d. closed form.
"""

import itertools
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import scaling
from blindspot.claim_support import Z, circulant_profile, rounding, sample_batch, uniform_u
from blindspot.config import ModelConfig
from blindspot.detectability import estimate, moments
from blindspot.directions import PROXIMITY_LENGTH, family, statistics
from blindspot.evidence import Claim, Control, Evidence
from blindspot.jacobian import score_gradients
from blindspot.model import init
from blindspot.objectives import classification_loss_at_scores

FAMILIES = ("circulant", "band_1", "proximity")
RATE = 0.5
"""Masked fraction: m = n/2 masked positions."""
BLOCK = 5000
"""Sequences per block of dense per-sample gradients in the Monte Carlo line (it divides ``samples``)."""


class Settings(NamedTuple):
    """Monte Carlo sizes and samples per size, enumerated sizes, vocabulary, label size and the chain's stickiness.

    ``rho = 0`` gives i.i.d. tokens (the hypothesis of the closed forms); ``rho > 0`` the sticky chain.
    """

    sizes: tuple[int, ...]
    samples: int
    enumerated: tuple[int, ...] = (6, 7)
    vocab: int = 2
    label_n: int = 8
    label_batch: int = 64
    rho: float = 0.0


DEFAULT = Settings(sizes=(8, 32), samples=20000)
FULL = Settings(sizes=(8, 16, 32), samples=40000, enumerated=(6, 7, 8), label_n=64, label_batch=1024)


def _config(n: int, vocab: int) -> ModelConfig:
    return ModelConfig(n=n, d=2, vocab=vocab, mask_rate=RATE, reconstruction="copy")


def closed_form(name: str, n: int, vocab: int) -> tuple[float, float]:
    r"""Signal squared and noise of family ``name`` from the exact rational functions (``scaling``), float64."""
    masked = _config(n, vocab).masked_count
    lam = math.exp(-1.0 / PROXIMITY_LENGTH)
    signal_squared, noise, _ = scaling.detectability(scaling.family_invariants(name, n, lam), n, masked, vocab)
    return float(signal_squared), float(noise)


def _unit_non_gauge(x: np.ndarray) -> np.ndarray:
    y = x - x.mean(axis=1, keepdims=True)
    return y / np.linalg.norm(y)


def _numpy_coordinates(name: str, grads: np.ndarray) -> np.ndarray:
    """Numpy: coordinates of (b, n, n) matrices on the family (the circulants in the zero-sum frame of lag sums)."""
    n = grads.shape[-1]
    if name == "circulant":
        return circulant_profile(grads)
    i = np.arange(n)
    lag = np.abs(i[:, None] - i[None, :])
    raw = (lag == 1).astype(float) if name == "band_1" else np.exp(-lag / PROXIMITY_LENGTH)
    return np.einsum("bij,ij->b", grads, _unit_non_gauge(raw))[:, None]


def _copy_gradients(tokens: np.ndarray, masks: np.ndarray) -> np.ndarray:
    r"""Numpy copy-readout gradients $(W - \bar W\mathbf 1^\top)/n$, $W_{ij} = -[i \in M][j \notin M]\delta_{ij}/m$.

    Here $\delta_{ij} = [x_i = x_j]$.
    """
    hits = masks[:, :, None] & ~masks[:, None, :] & (tokens[:, :, None] == tokens[:, None, :])
    w = -hits.astype(float) / masks.sum(axis=1)[:, None, None]
    return (w - w.mean(axis=2, keepdims=True)) / tokens.shape[1]


def _chain_probabilities(sequences: np.ndarray, vocab: int, rho: float) -> np.ndarray:
    """Exact probability of each sequence under the sticky chain (``rho = 0``: i.i.d. uniform)."""
    steps = rho * (sequences[:, 1:] == sequences[:, :-1]) + (1.0 - rho) / vocab
    return np.prod(steps, axis=1) / vocab


def _exact_law(n: int, settings: Settings):
    """Every sequence times every mask, with its probability."""
    masked = _config(n, settings.vocab).masked_count
    sequences = np.array(list(itertools.product(range(settings.vocab), repeat=n)))
    chosen = list(itertools.combinations(range(n), masked))
    masks = np.zeros((len(chosen), n), bool)
    for row, c in enumerate(chosen):
        masks[row, list(c)] = True
    tokens = np.repeat(sequences, len(chosen), axis=0)
    weights = np.repeat(_chain_probabilities(sequences, settings.vocab, settings.rho), len(chosen)) / len(chosen)
    return tokens, np.tile(masks, (len(sequences), 1)), weights


def enumerated_moments(settings: Settings, seed: int) -> Evidence:
    r"""Route "exact-enumeration": exact signal squared and noise over every sequence and mask vs the closed forms.

    Numpy backward pass of the copy readout and numpy family directions; weighted mean and trace of the
    covariance of the coordinates. ``seed`` is unused: the law is enumerated.
    """
    worst, count = 0.0, 0
    for n in settings.enumerated:
        tokens, masks, weights = _exact_law(n, settings)
        grads = _copy_gradients(tokens, masks)
        count = max(count, len(weights))
        for name in FAMILIES:
            c = _numpy_coordinates(name, grads)
            mean = weights @ c
            measured = (float(mean @ mean), float(weights @ np.sum((c - mean) ** 2, axis=1)))
            expected = closed_form(name, n, settings.vocab)
            worst = max(worst, *(abs(a - b) / b for a, b in zip(measured, expected)))
    data = "i.i.d. tokens" if settings.rho == 0 else f"sticky chain rho={settings.rho}"
    return Evidence(
        f"copy readout, {data}, V={settings.vocab}, m=n/2, every sequence and mask at n={settings.enumerated}: "
        f"signal^2 and noise of {', '.join(FAMILIES)} vs the exact rational closed forms (max rel. diff.)",
        "exact-enumeration",
        worst,
        0.0,
        rounding(count * max(settings.enumerated) ** 2),
    )


def draw_tokens(rng: np.random.Generator, samples: int, n: int, vocab: int) -> np.ndarray:
    """I.i.d. uniform tokens (numpy), the hypothesis of the closed forms."""
    return rng.integers(0, vocab, (samples, n), dtype=np.int32)


@partial(jax.jit, static_argnums=1)
def _family_coordinates(params, config, tokens, masks):
    """Autodiff copy-readout gradients of a block, read on each family: one compiled program per size."""
    stats = statistics(score_gradients(params, config, "reconstruction", tokens, masks))
    return tuple(family(name, config.n).coordinates(stats) for name in FAMILIES)


def _sampled_coordinates(n: int, settings: Settings, seed: int) -> dict[str, np.ndarray]:
    """Coordinates of the JAX model's copy-readout gradients for i.i.d. tokens and uniform masks (numpy draws)."""
    config = _config(n, settings.vocab)
    params = init(jax.random.key(seed), config, jnp.float64)
    rng = np.random.default_rng([seed, n])
    tokens = draw_tokens(rng, settings.samples, n, settings.vocab)
    masks = np.argsort(np.argsort(rng.random((settings.samples, n)), axis=1), axis=1) < config.masked_count
    blocks = [
        _family_coordinates(params, config, jnp.asarray(tokens[i : i + BLOCK]), jnp.asarray(masks[i : i + BLOCK]))
        for i in range(0, settings.samples, BLOCK)
    ]
    return {name: np.concatenate([np.asarray(b[k]) for b in blocks]) for k, name in enumerate(FAMILIES)}


def _log_estimates(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""$\log$ of signal squared and noise with their delta-method standard errors."""
    est = estimate(moments(jnp.asarray(c)))
    deviations = np.sum((c - c.mean(axis=0)) ** 2, axis=1)
    noise_se = deviations.std() / math.sqrt(len(c))
    values = np.array([est.signal_squared, est.noise])
    return np.log(values), np.array([est.signal_squared_se, noise_se]) / values


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of the columns of y against x."""
    dx = x - x.mean()
    return dx @ (y - y.mean(axis=0)) / (dx @ dx)


def monte_carlo_slopes(settings: Settings, seed: int) -> Evidence:
    r"""Route "monte-carlo": log-log slopes in n of sampled signal squared and noise vs the closed forms' slopes.

    Estimates of the JAX model's copy-readout gradients (``detectability.estimate`` on ``directions.family``
    coordinates) at each size; the slope's standard error by the delta method. Measured: the largest
    $|$fitted $-$ closed-form slope$|$ over its standard error, against $Z$.
    """
    x = np.log(np.asarray(settings.sizes, dtype=float))
    logs, errors, exact = [], [], []
    for n in settings.sizes:
        sampled = _sampled_coordinates(n, settings, seed)
        pairs = [_log_estimates(sampled[name]) for name in FAMILIES]
        logs.append(np.concatenate([p[0] for p in pairs]))
        errors.append(np.concatenate([p[1] for p in pairs]))
        exact.append(np.log([v for name in FAMILIES for v in closed_form(name, n, settings.vocab)]))
    dx = x - x.mean()
    slope_se = np.sqrt((dx**2) @ np.asarray(errors) ** 2) / (dx @ dx)
    fitted, expected = _slope(x, np.asarray(logs)), _slope(x, np.asarray(exact))
    shown = ", ".join(f"{name} {fitted[2 * i]:.2f}/{fitted[2 * i + 1]:.2f}" for i, name in enumerate(FAMILIES))
    return Evidence(
        f"copy readout, i.i.d. tokens, n={settings.sizes}, {settings.samples} samples each: fitted slopes of "
        f"signal^2/noise ({shown}; exponents -3/-3, -5/-4, -3/-4) vs the closed forms' slopes, max |diff| / s.e.",
        "monte-carlo",
        float(np.max(np.abs(fitted - expected) / slope_se)),
        0.0,
        Z,
    )


@partial(jax.jit, static_argnums=1)
def _label_gradients(params, config, tokens, labels):
    zero = jnp.zeros((config.n, config.n), params.value.dtype)

    def one(x, y):
        return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, zero)

    return jax.vmap(one)(tokens, labels)


def label_end_profile(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": label gradients on band_1 are $-(w_0 + w_{n-1})/\nu_n$ and on the circulants 0.

    JAX autodiff per-sample label gradients read on ``directions.family``; the theory from a numpy
    backward pass of the head ($w = (u - \bar u)/n$) and SymPy's $1/\nu_n$ (``scaling.label_band_factor``).
    """
    n = settings.label_n
    config = ModelConfig(n=n, d=4, vocab=4)
    params, tokens, labels, _ = sample_batch(config, seed, settings.label_batch)
    stats = statistics(_label_gradients(params, config, tokens, labels))
    band, circ = (np.asarray(family(name, n).coordinates(stats)) for name in ("band_1", "circulant"))
    u = uniform_u(params, config, tokens, labels)
    w = (u - u.mean(axis=1, keepdims=True)) / n
    closed = -(w[:, 0] + w[:, -1]) * float(scaling.label_band_factor(n))
    est = estimate(moments(jnp.asarray(closed[:, None])))
    scale = np.abs(closed).max()
    return Evidence(
        f"label, n={n}, {settings.label_batch} samples: band_1 coordinate vs -(w_0 + w_(n-1)) / nu_n, circulant "
        f"coordinates vs 0 (band_1: n^5 signal^2 = {est.signal_squared * n**5:.3g} "
        f"+- {est.signal_squared_se * n**5:.2g}, n^5 noise = {est.noise * n**5:.3g}) (rel. to max |closed|)",
        "autodiff",
        float(max(np.abs(band[:, 0] - closed).max(), np.abs(circ).max()) / scale),
        0.0,
        rounding(n * n),
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the enumeration with the sticky chain (rho = 0.6), against the i.i.d. closed forms."""
    sticky = enumerated_moments(settings._replace(rho=0.6), seed)
    return Control("sticky-chain tokens (rho = 0.6) instead of i.i.d.", sticky)


LINES = (enumerated_moments, monte_carlo_slopes, label_end_profile)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P12 by three routes that share nothing but the model's definition.

    - exact-enumeration (``enumerated_moments``): numpy copy-readout gradients of every sequence and mask
      give signal squared and noise equal to the exact closed forms of ``blindspot.scaling``.
    - monte-carlo (``monte_carlo_slopes``): the JAX model's sampled gradients, through the package's
      detectability estimator, give log-log slopes in n equal to the closed forms' within $Z$ errors.
    - autodiff (``label_end_profile``): label gradients read on band_1 are the closed-form end profile
      $-(w_0 + w_{n-1})/\nu_n$ and vanish on the circulants.

    Control: the sticky chain breaks the i.i.d. hypothesis of the closed forms.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P12",
    "at W = 0 reconstruction's signal, noise and B* scale as n^(-3/2), n^(-3), n^0 (circulant), n^(-5/2), n^(-4), n "
    "(band_1), n^(-3/2), n^(-4), n^(-1) (proximity), exactly; label's are 0 on the circulants and n^(-5/2), n^(-5), "
    "n^0 on band_1",
    "mean pooling, no MLP, uniform attention; copy readout, i.i.d. uniform tokens, m = n/2 masked for reconstruction",
    measure,
)
