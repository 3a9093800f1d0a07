r"""Claim P13: detectability in parameter space, along the pushforward of the proximity kernel to W.

The optimiser receives $\nabla_W L$, not $\partial L/\partial S$. By the chain rule, for a unit
direction $\omega$ of query-key matrices,
$\langle \nabla_W L_s, \omega\rangle = \langle \partial L_s/\partial S, D_s\rangle$ with
$D_s = c\, H_s \omega H_s^\top$ the score direction that $\omega$ produces *in sample s*
($c = 1/\sqrt d$, $H_s$ the input embedding; position-only scores: $H = P$, $c = 1$).
Along the pushforward $\omega_K \propto P^+ K P^{+\top}$ of the proximity kernel K
(``pushforward.pushforward``), at W = 0 in the plain model:

- label supervision: $\nabla_W L_s = \frac{n}{\sqrt d}\,\bar h_s (H_s^\top w_s)^\top$ is rank one (P5), and its
  coordinate $\frac{n}{\sqrt d}\bar h_s^\top \omega_K H_s^\top w_s$ is not zero: the mean embedding $\bar h_s$
  holds the token mean, so even centred encodings leave the label loss a W-signal along $\omega_K$
  (position-only scores and centred encodings: exactly zero, P5);
- position-only scores: $D = P\omega P^\top$ is the same for every sample, so W-space signal, noise and
  $B^*$ along $\omega$ are the score-space ones along D: for the copy readout and i.i.d. tokens, exact by P12.

Two lines, each a route of its own (``measure`` lists them); the control uses last pooling.
"""

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import scaling
from blindspot.claim_support import Z, rounding, sample_batch, uniform_u
from blindspot.config import ModelConfig
from blindspot.detectability import estimate, moments
from blindspot.evidence import Claim, Control, Evidence
from blindspot.model import init, mask_tokens, scores_from_query_key
from blindspot.objectives import classification_loss_at_scores, reconstruction_loss_at_scores
from blindspot.pushforward import proximity_pushforward


class Settings(NamedTuple):
    """Sizes and samples of the label line and of the Monte Carlo line, and the label model's pooling."""

    n: int
    d: int
    batch: int
    samples: int
    vocab: int = 2
    pooling: str = "mean"


DEFAULT = Settings(n=8, d=4, batch=64, samples=20000)
FULL = Settings(n=32, d=8, batch=1024, samples=80000)
BLOCK = 5000
"""Sequences per block of the Monte Carlo line (it divides ``samples``)."""


def unit_pushforward(params, config: ModelConfig) -> np.ndarray:
    r"""$\omega_K$ for the model's encodings and score scale (``pushforward.proximity_pushforward``)."""
    scale = 1.0 if config.scores == "position" else 1.0 / math.sqrt(config.d)
    return np.asarray(proximity_pushforward(params.positional, scale=scale))


def _loss_of_w(params, config, objective, w, x, t):
    inputs = x if objective == "classification" else mask_tokens(config, x, t)
    s = scores_from_query_key(w, params, config, inputs)
    if objective == "classification":
        return classification_loss_at_scores(params, config, x, t, s)
    return reconstruction_loss_at_scores(params, config, x, t, s)


@partial(jax.jit, static_argnums=(1, 2))
def _w_coordinates(params, config, objective, tokens, target, omega):
    r"""$\langle \nabla_W L_s, \omega\rangle$ per sample: jax.grad in W through $S(W)$, at W = 0."""
    zero = jnp.zeros((config.d, config.d), params.value.dtype)
    grad = jax.grad(_loss_of_w, argnums=3)
    return jax.vmap(lambda x, t: jnp.sum(grad(params, config, objective, zero, x, t) * omega))(tokens, target)


def label_closed_form(params, config: ModelConfig, tokens, labels, omega: np.ndarray) -> np.ndarray:
    r"""Numpy: $\frac{n}{\sqrt d}\bar h_s^\top \omega H_s^\top w_s$, $w = (u - \bar u)/n$ (P13, label)."""
    h = np.asarray(params.token_embedding)[np.asarray(tokens)] + np.asarray(params.positional)
    u = uniform_u(params, config, tokens, labels)
    w = (u - u.mean(axis=1, keepdims=True)) / config.n
    query = h.mean(axis=1) @ omega
    return config.n * np.einsum("sd,snd,sn->s", query, h, w) / math.sqrt(config.d)


def autodiff_label(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": label W-gradient coordinates along $\omega_K$ (jax.grad in W) vs the rank-one closed form.

    Content+position scores, centred sinusoidal encodings. The name reports the label's W-space signal
    squared and noise along $\omega_K$, estimated from the closed-form coordinates.
    """
    config = ModelConfig(n=settings.n, d=settings.d, vocab=4, centred=True, pooling=settings.pooling)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    omega = unit_pushforward(params, config)
    measured = np.asarray(_w_coordinates(params, config, "classification", tokens, labels, jnp.asarray(omega)))
    closed = label_closed_form(params, config, tokens, labels, omega)
    est = estimate(moments(jnp.asarray(closed[:, None])))
    return Evidence(
        f"label, content+position, centred encodings, n={settings.n}, d={settings.d}: <grad_W L, omega_K> vs "
        f"(n/sqrt d) h_bar^T omega_K H^T w, {settings.batch} samples (W-space signal^2 = {est.signal_squared:.3g} "
        f"+- {est.signal_squared_se:.2g}, noise {est.noise:.3g}) (rel. to max |closed|)",
        "autodiff",
        float(np.abs(measured - closed).max() / np.abs(closed).max()),
        0.0,
        rounding(settings.n * settings.d**2),
    )


def draw_tokens(rng: np.random.Generator, samples: int, n: int, vocab: int) -> np.ndarray:
    """I.i.d. uniform tokens (numpy), the hypothesis of the exact moments."""
    return rng.integers(0, vocab, (samples, n), dtype=np.int32)


def _exact_w_moments(direction: np.ndarray, n: int, masked: int, vocab: int) -> np.ndarray:
    r"""Signal squared and noise of $\langle G, D\rangle$: P12's exact copy-readout moments of D's non-gauge part."""
    y = direction - direction.mean(axis=1, keepdims=True)
    norm_squared = float(np.sum(y**2))
    signal_squared, second = scaling.copy_moments(
        scaling.direct_invariants(y / math.sqrt(norm_squared)), n, masked, vocab
    )
    return norm_squared * np.array([float(signal_squared), float(second - signal_squared)])


def monte_carlo_reconstruction(settings: Settings, seed: int) -> Evidence:
    r"""Route "monte-carlo": sampled W-space signal squared and noise along $\omega_K$ vs the exact ones of D.

    Position-only scores, copy readout, i.i.d. tokens: $D = P\omega_K P^\top$ for every sample, so the
    moments are P12's (``scaling.copy_moments`` of D's non-gauge part). Measured: the larger
    $|$estimate $-$ exact$|$ over its standard error, against $Z$.
    """
    n = settings.n
    config = ModelConfig(
        n=n, d=settings.d, vocab=settings.vocab, scores="position", mask_rate=0.5, reconstruction="copy"
    )
    params = init(jax.random.key(seed), config, jnp.float64)
    omega = unit_pushforward(params, config)
    p = np.asarray(params.positional)
    exact = _exact_w_moments(p @ omega @ p.T, n, config.masked_count, settings.vocab)
    rng = np.random.default_rng([seed, n])
    tokens = draw_tokens(rng, settings.samples, n, settings.vocab)
    masks = np.argsort(np.argsort(rng.random((settings.samples, n)), axis=1), axis=1) < config.masked_count
    c = np.concatenate(
        [
            np.asarray(
                _w_coordinates(params, config, "reconstruction", tokens[i : i + BLOCK], masks[i : i + BLOCK], omega)
            )
            for i in range(0, settings.samples, BLOCK)
        ]
    )
    est = estimate(moments(jnp.asarray(c[:, None])))
    deviations = (c - c.mean()) ** 2
    errors = np.array([est.signal_squared_se, deviations.std() / math.sqrt(len(c))])
    return Evidence(
        f"copy readout, position-only scores, i.i.d. tokens, n={n}, d={settings.d}, {settings.samples} samples: "
        f"W-space signal^2 and noise along omega_K vs P12's exact moments of P omega_K P^T "
        f"(B* = {exact[1] / exact[0]:.3g}), max |diff| / s.e.",
        "monte-carlo",
        float(np.max(np.abs(np.array([est.signal_squared, est.noise]) - exact) / errors)),
        0.0,
        Z,
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the label line with last pooling: the gradient is no longer rank one with equal rows."""
    return Control("last pooling instead of mean pooling", autodiff_label(settings._replace(pooling="last"), seed))


LINES = (autodiff_label, monte_carlo_reconstruction)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P13 by two routes that share nothing but the model's definition.

    - autodiff (``autodiff_label``): jax.grad of the label loss in W, read along $\omega_K$, equals the
      numpy rank-one closed form $\frac n{\sqrt d}\bar h^\top\omega_K H^\top w$ (non-zero: a finite W-space $B^*$).
    - monte-carlo (``monte_carlo_reconstruction``): sampled copy-readout W-gradients along $\omega_K$ with
      position-only scores have the exact signal and noise of P12 along $P\omega_K P^\top$.

    Control: last pooling breaks the rank-one label gradient.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P13",
    "at W = 0 the W-gradient along the proximity pushforward omega_K reads each sample's score gradient along "
    "c H omega_K H^T: label's is rank one and non-zero (content+position); with position-only scores W-space "
    "detectability is P12's along P omega_K P^T",
    "uniform attention, mean pooling, no MLP; copy readout and i.i.d. tokens for the exact moments",
    measure,
)
