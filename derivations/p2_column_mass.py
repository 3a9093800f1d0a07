"""P2: the column-mass identity of mean pooling (and the residual correction)."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N, D = 4, 2


def markdown() -> str:
    """Derive P2 and return the Markdown text."""
    a = sym.symbol_matrix(N, N, "A")  # any attention matrix: the identity does not need softmax
    v = sym.symbol_matrix(N, D, "v")
    h = sym.symbol_matrix(N, D, "h")
    m = sym.column_masses(a)
    for residual in (None, h):
        z = sym.mean_pooled_output(a, v, residual=residual)
        hbar = sp.zeros(1, D) if residual is None else sp.ones(1, N) * h / N
        rhs = m.T * v / N + hbar
        check((z - rhs).expand() == sp.zeros(1, D), f"column-mass identity, residual={residual is not None}")
    # with a nonlinear phi the identity fails: same column masses, different pooled output
    a1, a2 = sp.eye(2), sp.ones(2, 2) / 2
    check(sym.column_masses(a1) == sym.column_masses(a2), "equal masses")
    vals = sp.Matrix([[0], [1]])
    phi = lambda o: o.applyfunc(sp.tanh)  # noqa: E731
    z1 = sym.mean_pooled_output(a1, vals, phi=phi)[0]
    z2 = sym.mean_pooled_output(a2, vals, phi=phi)[0]
    check(sp.simplify(z1 - z2) != 0 and (z1 - z2).evalf() != 0, "MLP counterexample")
    m2 = sym.column_masses(sym.symbol_matrix(2, 2, "A"))
    return rf"""# P2: the column-mass identity

**Correction to the first statement of P2**, which assumed "no residual": that hypothesis is not
needed. With mean pooling and no MLP the identity holds with a residual too,
$z = \frac1n\sum_j m_j v_j + \bar h$ ($\bar h$ does not depend on $S$). What breaks P2 is a nonlinear
position-wise MLP $\phi$ (or last/first pooling).

**Result (proved for general $n$).** With mean pooling, no MLP, with or without residual,
$$z = \frac1n \sum_i o_i = \frac1n\sum_j m_j v_j + [\text{{residual}}]\,\bar h,\qquad m = A^\top 1,$$
so $L_{{cls}}(S) = F(m(S))$ for a function $F$ that does not depend on $S$, and every change of $S$ that
keeps the column masses $m$ fixed leaves $L_{{cls}}$ unchanged, to all orders.

## Hypotheses

- Mean pooling; no position-wise MLP ($\phi$ = identity); residual optional.
- $o_i = \sum_j A_{{ij}} v_j (+ h_i)$, any matrix $A$ (softmax is not used).

## Steps

1. Exchange the two finite sums:
   $$z = \frac1n \sum_i \sum_j A_{{ij}} v_j + \frac1n\sum_i h_i = \frac1n \sum_j \Big(\sum_i A_{{ij}}\Big) v_j + \bar h
   = \frac1n \sum_j m_j v_j + \bar h.$$
   For $n = 2$ the masses are $m = {tex(m2)}$. SymPy expands $z - (\frac1n m^\top V + \bar h)$ to $0$ for
   $n = {N}$, $d = {D}$ with fully symbolic $A$, $V$, $H$, with and without the residual term.
2. The logits $zW + b$ and the cross-entropy depend on $S$ only through $m(S)$: if $m(S(t))$ is
   constant along a curve, $L_{{cls}}(S(t))$ is constant, so all its Taylor coefficients of order $\ge 1$
   vanish.
3. With a nonlinear $\phi$ the identity fails. Counterexample ($n = 2$, $d = 1$, $\phi = \tanh$,
   $v = (0, 1)$): $A = I$ and $A = \frac12 1 1^\top$ have the same masses $m = (1, 1)$ but
   $z = {tex(z1)}$ and $z = {tex(z2)}$, which differ.

## Result

$$z = \frac1n \sum_j m_j(S)\, v_j + \bar h \quad\Rightarrow\quad L_{{cls}}(S) = F(m(S)):
\text{{ every direction that keeps }} m \text{{ fixed is invisible to all orders (no MLP; residual allowed).}}$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
