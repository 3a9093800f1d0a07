"""P3: circulant score matrices give doubly stochastic attention and a flat label loss."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

SIZES = range(2, 9)


def markdown() -> str:
    """Derive P3 and return the Markdown text."""
    for n in SIZES:
        c = sp.symbols(f"c_0:{n}", real=True)
        a = sym.row_softmax(sym.circulant(c))
        check(a == sym.circulant(list(a[0, :])), f"A circulant, n={n}")
        masses = sym.column_masses(a).applyfunc(sp.cancel)
        check(masses == sp.ones(n, 1), f"column masses 1, n={n}")
        check((a * sp.ones(n, 1)).applyfunc(sp.cancel) == sp.ones(n, 1), f"row sums 1, n={n}")
        v = sym.symbol_matrix(n, 1, "v")
        h = sym.symbol_matrix(n, 1, "h")
        z = sym.mean_pooled_output(a, v, residual=h)
        z0 = sym.mean_pooled_output(sp.ones(n, n) / n, v, residual=h)
        check((z - z0).applyfunc(sp.cancel) == sp.zeros(1, 1), f"pooled output unchanged, n={n}")
    # the open-boundary Toeplitz band B_1 is not flat: column mass of position 0 moves at first order
    n, t = 3, sp.Symbol("t", real=True)
    m0 = sym.column_masses(sym.row_softmax(t * sym.band(n, 1)))[0]
    coeffs = [sp.simplify(x) for x in sym.taylor_coefficients(m0, t, 2)]
    check(coeffs[1] != 0, "Toeplitz B_1 moves m_0")
    c3 = sp.symbols("c_0:3", real=True)
    a3 = sym.row_softmax(sym.circulant(c3))
    return rf"""# P3: circulant flatness

**Correction to the first statement of P3**, which assumed "no residual": as for P2, a residual does
not break P3 (no MLP): the pooled output $z = \frac1n\sum_j m_j v_j + \bar h$ is unchanged. With a
nonlinear position-wise MLP the circulant family is not flat beyond first order (see P7).

**Result (proved for general $n$; fully symbolic check for every $n = {SIZES.start}, \dots, {SIZES.stop - 1}$).**
If $S$ is circulant, $S_{{ij}} = c_{{(j-i) \bmod n}}$, then $A = \mathrm{{softmax}}_{{row}}(S)$ is circulant and
doubly stochastic, $m = A^\top 1 = 1$, and with mean pooling and no MLP $L_{{cls}}(S) = L_{{cls}}(0)$ exactly:
the $n$-dimensional circulant family (every wrap-around kernel, including $b(\min(|i-j|, n - |i-j|))$)
is globally flat for label supervision; its Taylor coefficients of every order $\ge 1$ vanish.

## Hypotheses

- $S$ circulant; mean pooling; no MLP; residual optional (P2).

## Steps

1. Row $i$ of a circulant $S$ is row $0$ shifted cyclically by $i$; the softmax commutes with
   permutations of a row, so $A_{{ij}} = e^{{c_{{(j-i) \bmod n}}}}/\sum_k e^{{c_k}}$: $A$ is circulant with the same
   denominator in every row. For $n = 3$:
   $$A = {tex(a3)}.$$
2. Column $j$ of $A$ sums $e^{{c_{{(j-i) \bmod n}}}}$ over $i$, i.e. each $e^{{c_k}}$ once: $m_j = 1$. Rows sum to
   $1$ by construction, so $A$ is doubly stochastic.
3. By P2, $z = \frac1n\sum_j m_j v_j + \bar h = \bar v + \bar h = z(0)$, so $L_{{cls}}(S) = L_{{cls}}(0)$. Along
   $S = tC$ for a circulant $C$, $L_{{cls}}(tC)$ is constant in $t$: every Taylor coefficient of order $\ge 1$ is $0$.
4. SymPy check, fully symbolic $c_0, \dots, c_{{n-1}}$, $v$, $h$ (width 1, enough since $z$ is linear
   in $v$ and $h$), for every $n = {SIZES.start}, \dots, {SIZES.stop - 1}$: $A$ is circulant, `cancel` gives
   $A^\top 1 = A 1 = 1$ and $z(S) - z(0) = 0$.
5. Boundaries matter. The open-boundary band $B_1$ (Toeplitz, not circulant) for $n = {n}$: the column
   mass $m_0(tB_1)$ has Taylor coefficients $({", ".join(tex(x) for x in coeffs)})$ in $t^0, t^1, t^2$; the
   first-order term is non-zero, so Toeplitz directions are flat only up to boundary terms (P4 measures them).

## Result

$$S \text{{ circulant}} \Rightarrow A^\top 1 = A 1 = 1 \Rightarrow L_{{cls}}(S) = L_{{cls}}(0)\quad
(\text{{mean pooling, no MLP}}).$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
