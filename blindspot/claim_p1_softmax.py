r"""Claim P1: the softmax Jacobian is $\mathrm{diag}(a) - aa^\top$, and row-constant score directions are invisible.

Three lines, each a route of its own (``measure`` lists them); the control adds a score penalty.
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import sympy as sp
from sympy.polys.matrices import DomainMatrix

from blindspot import numpy_model, symbolic
from blindspot.claim_support import rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.evidence import Claim, Control, Evidence
from blindspot.model import scores
from blindspot.objectives import classification_loss_at_scores, reconstruction_loss_at_scores, reconstruction_scores


class Settings(NamedTuple):
    """Sequence length ``n`` (every line) and the number of sampled sequences."""

    n: int
    batch: int = 4


DEFAULT = Settings(n=8)
FULL = Settings(n=32)


def _config(settings: Settings) -> ModelConfig:
    """Random attention, residual, tanh MLP and last pooling: nothing but the row softmax is assumed."""
    return ModelConfig(
        n=settings.n, d=4, vocab=4, mlp=6, residual=True, pooling="last", qk_init="random", qk_init_scale=2.0
    )


def sympy_identities(settings: Settings, seed: int) -> Evidence:
    r"""Route "sympy": SymPy differentiates the symbolic row softmax at the claim's $n$ (``seed`` unused).

    Counts the identities that fail among: $\partial a_j/\partial s_k = \mathrm{diag}(a) - aa^\top$ entry by
    entry, $\mathbf 1^\top a = 1$ (so $J\mathbf 1 = a(1 - \mathbf 1^\top a) = 0$: the gauge), and the exact rank of
    $J$ at $s = 0$ (rational, by fraction-free elimination) equal to $n - 1$.
    """
    n = settings.n
    s = sp.symbols(f"s0:{n}", real=True)
    a = symbolic.row_softmax(sp.Matrix([s]))
    jac = symbolic.autodiff_softmax_jacobian(sp.Matrix(s))
    failed = sum(1 for x in jac - symbolic.softmax_jacobian(a) if x != 0)
    failed += sp.together(sum(a)) != 1
    failed += DomainMatrix.from_Matrix(jac.xreplace({x: sp.Integer(0) for x in s})).rank() != n - 1
    return Evidence(
        f"SymPy derivative of the symbolic softmax, n={n}: identities J = diag(a) - a a^T, 1^T a = 1 (so J 1 = 0), "
        "rank J(0) = n - 1 that fail",
        "sympy",
        float(failed),
        0.0,
        0.0,
    )


@partial(jax.jit, static_argnums=1)
def _score_gradients(params, config, tokens, labels, masks, score_penalty):
    """Per-sample label and reconstruction score gradients, stacked (jax.grad of the model's losses)."""

    def penalised(loss):
        return lambda s, *args: loss(params, config, *args, s) + score_penalty * 0.5 * jnp.mean(s**2)

    def label_gradient(x, y):
        return jax.grad(penalised(classification_loss_at_scores))(scores(params, config, x), x, y)

    def masked_gradient(x, m):
        return jax.grad(penalised(reconstruction_loss_at_scores))(reconstruction_scores(params, config, x, m), x, m)

    return jnp.concatenate([jax.vmap(label_gradient)(tokens, labels), jax.vmap(masked_gradient)(tokens, masks)])


def autodiff_row_sums(settings: Settings, seed: int, *, score_penalty: float = 0.0) -> Evidence:
    r"""Route "autodiff": row sums of per-sample $\partial L/\partial S$ (jax.grad), label and reconstruction losses.

    At the model's random-attention scores; relative to $\max|\partial L/\partial S|$. ``score_penalty`` adds
    $\lambda \cdot \frac12 \mathrm{mean}(S^2)$ to both losses, a term that sees $S$ outside the softmax (the control).
    """
    config = _config(settings)
    params, tokens, labels, masks = sample_batch(config, seed, settings.batch)
    grads = np.asarray(_score_gradients(params, config, tokens, labels, masks, score_penalty))
    row_sums = np.abs(grads.sum(axis=2)).max() / np.abs(grads).max()
    return Evidence(
        f"row sums of every per-sample dL/dS, label and reconstruction losses, random attention, n={settings.n} "
        "(rel. to max |dL/dS|)",
        "autodiff",
        float(row_sums),
        0.0,
        rounding(settings.n),
    )


def numpy_gauge_shift(settings: Settings, seed: int) -> Evidence:
    r"""Route "numpy-forward": $L(S + r\mathbf 1^\top) = L(S)$ for the plain-numpy losses, a finite shift.

    $S$ and $r$ have $N(0, 9)$ entries: invariance to all orders, not only at first order.
    """
    config = _config(settings)
    params, tokens, labels, masks = sample_batch(config, seed, settings.batch)
    rng = np.random.default_rng(seed)
    n = settings.n
    worst = 0.0
    for x, y, m in zip(np.asarray(tokens), np.asarray(labels), np.asarray(masks)):
        s, r = 3.0 * rng.standard_normal((n, n)), 3.0 * rng.standard_normal((n, 1))
        for loss, target in ((numpy_model.classification_loss, y), (numpy_model.reconstruction_loss, m)):
            before = loss(params, config, x, target, s)
            worst = max(worst, abs(loss(params, config, x, target, s + r) - before) / abs(before))
    return Evidence(
        f"|L(S + r 1^T) - L(S)| / L(S), S and r ~ N(0, 9), both losses, n={n}",
        "numpy-forward",
        worst,
        0.0,
        rounding(n * n),
    )


def control(settings: Settings, seed: int) -> Control:
    r"""Repeat the autodiff line for the losses plus a score penalty, which sees $S$ outside the softmax."""
    return Control(
        "both losses plus the score penalty mean(S^2)/2 (a loss that sees S outside the softmax)",
        autodiff_row_sums(settings, seed, score_penalty=1.0),
    )


LINES = (sympy_identities, autodiff_row_sums, numpy_gauge_shift)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P1 by three routes that share nothing but the model's definition.

    - sympy (``sympy_identities``): SymPy's own derivative of the symbolic softmax equals
      $\mathrm{diag}(a) - aa^\top$, the softmax sums to one (so $J\mathbf 1 = 0$), rank $J(0) = n - 1$, exactly.
    - autodiff (``autodiff_row_sums``): per-sample $\partial L/\partial S$ of the JAX model have zero row sums.
    - numpy-forward (``numpy_gauge_shift``): the numpy re-implementation is unchanged by a finite $r\mathbf 1^\top$.

    Control: a score penalty makes the autodiff row sums non-zero.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P1",
    "softmax Jacobian is diag(a) - a a^T, rank n-1 at uniform attention; row-constant directions are invisible",
    "row softmax; any loss of the attention",
    measure,
)
