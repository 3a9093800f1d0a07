r"""Claim P2: with mean pooling and no MLP, the label loss depends on $S$ only through $m = A^\top \mathbf 1$.

Three lines, each a route of its own (``measure`` lists them); the control adds a tanh MLP.
"""

from functools import partial
from typing import NamedTuple

import jax
import numpy as np
import sympy as sp

from blindspot import numpy_model, symbolic
from blindspot.claim_support import rounding, sample_batch
from blindspot.config import ModelConfig
from blindspot.evidence import Claim, Control, Evidence
from blindspot.model import scores
from blindspot.objectives import classification_loss_at_scores


class Settings(NamedTuple):
    """Sequence length, MLP width (0: none, the hypothesis), pooling and the number of sequences."""

    n: int
    mlp: int = 0
    pooling: str = "mean"
    batch: int = 4


DEFAULT = Settings(n=8)
FULL = Settings(n=32)


def _config(settings: Settings) -> ModelConfig:
    """Random attention and a residual (allowed by P2)."""
    return ModelConfig(
        n=settings.n,
        d=4,
        vocab=4,
        residual=True,
        mlp=settings.mlp,
        pooling=settings.pooling,
        qk_init="random",
        qk_init_scale=0.5,
    )


@partial(jax.jit, static_argnums=1)
def _gradients_and_attention(params, config, tokens, labels):
    def one(x, y):
        s = scores(params, config, x)
        return jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, s), jax.nn.softmax(s, axis=-1)

    return jax.vmap(one)(tokens, labels)


def autodiff_separable(settings: Settings, seed: int) -> Evidence:
    r"""Route "autodiff": $Q = (\partial L/\partial S) \oslash A$ is a column term minus a row term.

    If $L = f(A^\top\mathbf 1)$ then $\partial L/\partial A_{ij} = f'_j$ and
    $\partial L/\partial S_{ik} = A_{ik}(f'_k - \sum_j A_{ij} f'_j)$, so the double centring of $Q$ vanishes;
    measured relative to $\max|Q|$, at random attention.
    """
    config = _config(settings)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    grads, attention = (np.asarray(t) for t in _gradients_and_attention(params, config, tokens, labels))
    q = grads / attention
    centred = q - q.mean(axis=2, keepdims=True) - q.mean(axis=1, keepdims=True) + q.mean(axis=(1, 2), keepdims=True)
    return Evidence(
        f"per-sample dL/dS / A, double centred, random attention, n={settings.n} (rel. to max |dL/dS / A|)",
        "autodiff",
        float(np.abs(centred).max() / np.abs(q).max()),
        0.0,
        rounding(settings.n * settings.n),
    )


def _mass_preserving(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r"""Perturb $A$ to $A + \epsilon\, C X C$, $C = I - \mathbf 1\mathbf 1^\top/n$: same row, column sums."""
    n = a.shape[0]
    c = np.eye(n) - np.ones((n, n)) / n
    e = c @ rng.standard_normal((n, n)) @ c
    return a + 0.5 * a.min() * e / np.abs(e).max()


def numpy_mass_preserving_change(settings: Settings, seed: int) -> Evidence:
    r"""Route "numpy-forward": $L(\log A') = L(S)$ for $A'$ with the column masses of $A = \mathrm{softmax}(S)$."""
    config = _config(settings)
    params, tokens, labels, _ = sample_batch(config, seed, settings.batch)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for x, y in zip(np.asarray(tokens), np.asarray(labels)):
        s = np.asarray(scores(params, config, x))
        before = numpy_model.classification_loss(params, config, x, y, s)
        after = numpy_model.classification_loss(
            params, config, x, y, np.log(_mass_preserving(numpy_model.softmax_rows(s), rng))
        )
        worst = max(worst, abs(after - before) / abs(before))
    return Evidence(
        f"|L(S') - L(S)| / L(S), S' with the column masses of S, random attention, n={settings.n}",
        "numpy-forward",
        worst,
        0.0,
        rounding(settings.n * settings.n),
    )


def sympy_column_mass_form(settings: Settings, seed: int) -> Evidence:
    r"""Route "sympy": the SymPy model's $z(A) = \frac1n\sum_i (A V)_i + \bar h$ equals $\frac1n m^\top V + \bar h$.

    $A$, $V$ and the residual rows $H$ are matrices of symbols ($n$ the claim's, $d = 4$); counts the
    entries of the difference that do not expand to $0$ (``seed`` unused).
    """
    n, d = settings.n, 4
    a = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"a_{i}_{j}", real=True))
    values, residual = symbolic.symbol_matrix(n, d, "v"), symbolic.symbol_matrix(n, d, "h")
    z = symbolic.mean_pooled_output(a, values, residual=residual)
    form = (symbolic.column_masses(a).T * values + sp.ones(1, n) * residual) / n
    return Evidence(
        f"SymPy pooled output z(A) minus (1/n) m^T V + h_bar, symbolic A, V, H, n={n}: entries not identically 0",
        "sympy",
        float(sum(1 for x in z - form if sp.expand(x) != 0)),
        0.0,
        0.0,
    )


def control(settings: Settings, seed: int) -> Control:
    """Repeat the autodiff line with a tanh MLP after attention."""
    return Control("a tanh MLP after attention", autodiff_separable(settings._replace(mlp=8), seed))


LINES = (autodiff_separable, numpy_mass_preserving_change, sympy_column_mass_form)


def measure(full: bool, seed: int) -> tuple[list[Evidence], Control]:
    r"""P2 by three routes that share nothing but the model's definition.

    - autodiff (``autodiff_separable``): $\partial L/\partial S \oslash A$ of the JAX model has the separable form
      $f'_j - c_i$ that a loss of $m$ alone gives (first order, every $S$).
    - numpy-forward (``numpy_mass_preserving_change``): the numpy re-implementation is unchanged by a finite
      change of $S$ that keeps the column masses (all orders).
    - sympy (``sympy_column_mass_form``): the identity $z = \frac1n m^\top V + \bar h$ in symbols, at the claim's $n$.

    Control: a tanh MLP breaks the separable form.
    """
    settings = FULL if full else DEFAULT
    return [line(settings, seed) for line in LINES], control(settings, seed)


CLAIM = Claim(
    "P2",
    "label loss depends on S only through the column masses m = A^T 1",
    "mean pooling, no MLP (a residual is allowed)",
    measure,
)
