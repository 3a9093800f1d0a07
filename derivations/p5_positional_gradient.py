"""P5: the gradient of label supervision in the positional query-key block at W = 0."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N, DP, D, CLASSES = 3, 2, 1, 2


def markdown() -> str:
    """Derive P5 and return the Markdown text."""
    p = sym.symbol_matrix(N, DP, "p")
    v = sym.symbol_matrix(N, D, "v")
    head, bias = sym.symbol_matrix(D, CLASSES, "w"), sym.symbol_matrix(1, CLASSES, "beta")
    # dL/dW_ab at W = 0 as the derivative of L(t P E_ab P^T) at t = 0 (same value, smaller expressions)
    t = sp.Symbol("t", real=True)
    grad = sp.zeros(DP, DP)
    for a in range(DP):
        for b in range(DP):
            loss = sym.classification_loss(t * p * sp.SparseMatrix(DP, DP, {(a, b): 1}) * p.T, v, head, bias, 0)
            grad[a, b] = sp.diff(loss, t).subs(t, 0)
    u = sym.mean_pool_uniform_u(v, head, bias, 0)
    formula = sym.positional_gradient(p, u)
    check(all(sym.canonical(x) == 0 for x in grad - formula), "chain rule at W = 0")
    check(sym.canonical(formula.det()) == 0, "rank one (2 x 2 determinant)")
    centred = {p[N - 1, c]: -sum(p[r, c] for r in range(N - 1)) for c in range(DP)}
    check(all(sym.canonical(x) == 0 for x in formula.subs(centred)), "zero when centred")
    u_sym = sp.Matrix([sp.symbols(f"u_0:{N}", real=True)])
    rank_one = sym.positional_gradient(p, u_sym)
    return rf"""# P5: positional-only scores at $W = 0$

**Result (proved for general $n$).** With position-only scores $S = P W P^\top$, mean pooling and
no (residual + nonlinear MLP), at $W = 0$
$$\frac{{\partial L_{{cls}}}}{{\partial W}} = \frac1n (P^\top 1)\big((u - \bar u 1)^\top P\big)
= \bar p\, \big((u - \bar u 1)^\top P\big),$$
rank $\le 1$ with query factor $P^\top 1 = n\bar p$. For centred encodings ($\sum_i p_i = 0$) it is exactly
zero for every input and label: $W = 0$ is a stationary point of label supervision in the positional
query-key block. Uncentred, the induced first-step score change
$\Delta S = -\eta P\, \partial L/\partial W\, P^\top = -\frac\eta n (P P^\top 1)\big((u - \bar u 1)^\top P P^\top\big)$ is
rank one, so it cannot form a proximity kernel (a banded Toeplitz matrix of rank $> 1$).

## Hypotheses

- $S = P W P^\top$ (position-only, free $W$); $W = 0$ gives $S = 0$ for every input.
- The hypotheses of P4 (mean pooling; position-wise $\phi$ and no residual, or residual and no MLP).
  With a residual and a nonlinear MLP the rows of $\partial L/\partial S$ differ and the zero fails.

## Steps

1. Chain rule: $dS = P\, dW\, P^\top$, so $\langle G, dS\rangle = \langle P^\top G P, dW\rangle$ and
   $\partial L/\partial W = P^\top G P$ with $G = \partial L/\partial S$.
2. At $W = 0$, $S = 0$ and P4 gives $G = \frac1n 1 (u - \bar u 1)^\top$, hence
   $P^\top G P = \frac1n (P^\top 1)((u - \bar u 1)^\top P)$. For $n = {N}$, $d = {DP}$ with symbols $u_j$:
   $$\frac{{\partial L}}{{\partial W}} = {tex(rank_one)}.$$
3. SymPy check ($n = {N}$, positional width {DP}, value width {D}, {CLASSES} classes, all symbols, no MLP):
   differentiating $L_{{cls}}(P W P^\top)$ with respect to $W_{{ab}}$ at $W = 0$ (as
   $\frac{{d}}{{dt}} L_{{cls}}(t P E_{{ab}} P^\top)|_{{t=0}}$) gives exactly this formula
   (`cancel` of the difference is $0$); its $2 \times 2$ determinant is $0$ (rank $\le 1$); after substituting
   $p_{{n-1}} = -\sum_{{i<n-1}} p_i$ it is exactly $0$.
4. General $n$: $P^\top 1 = \sum_i p_i$, which is $0$ for centred encodings, so the outer product is $0$.

## Result

$$\frac{{\partial L_{{cls}}}}{{\partial W}}\Big|_{{W=0}} = \frac1n (P^\top 1)\big((u - \bar u 1)^\top P\big),
\qquad \sum_i p_i = 0 \Rightarrow \frac{{\partial L_{{cls}}}}{{\partial W}}\Big|_{{W=0}} = 0.$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
