r"""Claim P11: with a residual and a tanh MLP at W = 0, the label gradient on the circulants is third order.

At uniform attention every $o_i = \bar v + h_i$ (residual), and the score gradient is
$G_{ij} = \frac1n (g_i - \bar g) \cdot (v_j - \bar v)$ plus terms constant along rows or columns, with
$g_i = \partial L/\partial o_i$. Scale the MLP's first layer by $\varepsilon$:
$\phi(o) = \tanh(\varepsilon o W_1 + b_1) W_2 + b_2$. With $b_1 = 0$ (the initialisation)
$\tanh'(\varepsilon a) = 1 - \varepsilon^2 a^2 + O(\varepsilon^4)$, so the rows of $g$ differ only at order
$\varepsilon^3$:
$$g_i - \bar g = -\frac{\varepsilon^3}{n}\big[q_0 \circ (a_i^{\circ 2} - \overline{a^{\circ 2}})\big] W_1^\top
+ O(\varepsilon^4), \qquad a_i = o_i W_1,\ q_0 = (p_0 - e_y) W_c^\top W_2^\top,$$
$p_0$ the class probabilities at $\varepsilon = 0$. On the zero-sum circulants (orthogonal to the gauge and to U)
the label gradient is therefore $\varepsilon^3 \kappa_3 + O(\varepsilon^4)$ with
$\kappa_{3,ij} = \frac1n (g_i - \bar g)^{(3)} \cdot (v_j - \bar v)$, while the mean gradient in U is $O(\varepsilon)$:
the share of the mean step on the circulants is $O(\varepsilon^2)$, and, as in P10, signal and noise
scale together. A bias $b_1 \ne 0$ brings $\tanh''(b_1) \ne 0$ and an $\varepsilon^2$ term (the control).
Two lines, each a route of its own (``measure`` lists them).
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from blindspot.claim_support import circulant_profile, rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.evidence import Claim, Control, Evidence
from blindspot.fast_paths import dense_gradients, uniform_score_factors
from blindspot.objectives import classification_loss_at_scores


class Settings(NamedTuple):
    """Sequence length, number of sequences, MLP width and the scale of a random first-layer bias (0: none)."""

    n: int
    batch: int
    mlp: int = 6
    bias: float = 0.0


DEFAULT = Settings(n=8, batch=32)
FULL = Settings(n=32, batch=128)


def _setup(settings: Settings, seed: int):
    """Parameters at W = 0 (residual, tanh MLP; first-layer bias drawn at scale ``bias``), tokens and labels."""
    config = ModelConfig(n=settings.n, d=4, vocab=4, residual=True, mlp=settings.mlp)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    bias = settings.bias * jax.random.normal(jax.random.key(seed + 7), params.mlp.b1.shape, params.mlp.b1.dtype)
    return config, params._replace(mlp=params.mlp._replace(b1=bias)), tokens, labels


def _scaled(params, scale):
    """Return the parameters with the MLP's first layer scaled by ``scale``."""
    return params._replace(mlp=params.mlp._replace(w1=scale * params.mlp.w1))


def numpy_coefficient(params, config: ModelConfig, tokens, labels) -> np.ndarray:
    r"""Numpy: $\kappa_{3,ij} = \frac1n (g_i - \bar g)^{(3)} \cdot (v_j - \bar v)$, one matrix per sample (P11)."""
    e, p = np.asarray(params.token_embedding), np.asarray(params.positional)
    wv, wc, bc = np.asarray(params.value), np.asarray(params.classifier.weight), np.asarray(params.classifier.bias)
    w1, _, w2, b2 = (np.asarray(t) for t in params.mlp)
    logits = b2 @ wc + bc
    prob = np.exp(logits - logits.max())
    prob /= prob.sum()
    n = config.n
    out = []
    for x, y in zip(np.asarray(tokens), np.asarray(labels)):
        h = e[x] + p
        v = h @ wv
        a = (v.mean(axis=0) + h) @ w1
        q = (prob - np.eye(bc.shape[0])[y]) @ wc.T @ w2.T
        square = a**2 - (a**2).mean(axis=0)
        dg = -(q * square) @ w1.T / n
        out.append(dg @ (v - v.mean(axis=0)).T / n)
    return np.stack(out)


@partial(jax.jit, static_argnums=1)
def _autodiff_gradients(params, config, tokens, labels):
    zero = jnp.zeros((config.n, config.n), params.value.dtype)

    def one(x, y):
        return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, zero)

    return jax.vmap(one)(tokens, labels)


def _fast_path_gradients(params, config, tokens, labels):
    return dense_gradients(uniform_score_factors(params, config, "classification", tokens, labels))


def _taylor_in_scale(gradients, params, config, tokens, labels) -> list[np.ndarray]:
    r"""Circulant profiles of $c_1, c_2, c_3$ in $G(\varepsilon) = \sum_k c_k \varepsilon^k$ (nested JVPs)."""

    def at(scale):
        return gradients(_scaled(params, scale), config, tokens, labels)

    def derivative(f):
        return lambda s: jax.jvp(f, (s,), (jnp.ones_like(s),))[1]

    zero = jnp.zeros((), params.value.dtype)
    first = derivative(at)
    second = derivative(first)
    third = derivative(second)
    return [circulant_profile(f(zero)) / factor for f, factor in ((first, 1.0), (second, 2.0), (third, 6.0))]


def _line(settings: Settings, seed: int, gradients, route: str, what: str) -> Evidence:
    config, params, tokens, labels = _setup(settings, seed)
    c1, c2, c3 = _taylor_in_scale(gradients, params, config, tokens, labels)
    closed = circulant_profile(numpy_coefficient(params, config, tokens, labels))
    scale = np.abs(closed).max()
    measured = max(np.abs(c1).max(), np.abs(c2).max(), np.abs(c3 - closed).max()) / scale
    return Evidence(
        f"{what}: orders 1, 2, 3 in the MLP scale eps of the label gradient on the zero-sum circulants, "
        f"n={settings.n}: max(|c_1|, |c_2|, |c_3 - kappa_3|) / max |kappa_3|",
        route,
        float(measured),
        0.0,
        rounding(settings.n**2),
    )


def autodiff_orders(settings: Settings, seed: int) -> Evidence:
    r"""Route "nested-jvp": JVPs in $\varepsilon$ of the JAX model's reverse-mode score gradient vs numpy $\kappa_3$."""
    return _line(settings, seed, _autodiff_gradients, "nested-jvp", "JAX model, grad then 3 JVPs")


def fast_path_orders(settings: Settings, seed: int) -> Evidence:
    r"""Route "fast-path": JVPs in $\varepsilon$ of the closed-form factored score gradient vs the numpy $\kappa_3$."""
    return _line(settings, seed, _fast_path_gradients, "fast-path", "fast path at uniform attention, 3 JVPs")


def control(settings: Settings, seed: int) -> Control:
    """Repeat the autodiff line with a random first-layer bias b_1 (tanh''(b_1) != 0: a second-order term)."""
    return Control("a random first-layer bias b_1 ~ N(0, 1)", autodiff_orders(settings._replace(bias=1.0), seed))


LINES = (autodiff_orders, fast_path_orders)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P11 by two routes that share nothing but the model's definition.

    - nested-jvp (``autodiff_orders``): reverse-mode autodiff of the whole JAX model at $S = 0$, then three
      nested forward derivatives in the MLP scale $\varepsilon$; orders 1 and 2 vanish on the zero-sum
      circulants and order 3 equals the numpy closed form $\kappa_3$.
    - fast-path (``fast_path_orders``): the same from the factored closed-form score gradient at uniform
      attention (autodiff of the position-wise head only).

    Control: a random first-layer bias makes the second-order coefficient non-zero.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P11",
    "residual + tanh MLP at W = 0: the label gradient on the zero-sum circulants is eps^3 kappa_3 + O(eps^4) in the "
    "scale eps of the MLP's first layer (orders 1 and 2 vanish)",
    "uniform attention, mean pooling, residual, tanh MLP with first-layer bias 0",
    measure,
)
