"""P10: the label gradient near uniform attention, to first order in the score scale."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N = 3


def _first_order_gradient(n: int):
    """SymPy: d/dsigma of dL/dS at S = sigma T, sigma = 0, for L = F(m(S)) with F to second order at m = 1."""
    s, t = sym.score_matrix(n, "s"), sym.score_matrix(n, "t")
    sigma = sp.Symbol("sigma", real=True)
    u = sym.symbol_matrix(n, 1, "u")
    hessian = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"F_{min(i, j)}{max(i, j)}", real=True))
    dm = sym.column_masses(sym.row_softmax(s)) - sp.ones(n, 1)
    loss = (u.T * dm)[0] + (dm.T * hessian * dm)[0] / 2  # F's Taylor polynomial: exact for a first-order G
    grad = sp.Matrix(n, n, lambda i, j: sp.diff(loss, s[i, j]))
    scaled = {s[i, j]: sigma * t[i, j] for i in range(n) for j in range(n)}
    first = grad.subs(scaled).diff(sigma).subs(sigma, 0)
    return first, t, u, hessian


def _closed_form(t, u, hessian):
    r"""$\frac1n[\tilde T \circ 1(u - \bar u)^\top - \frac1n (\tilde T u) 1^\top + 1(\delta u - \overline{\delta u})^\top]$."""
    n = t.rows
    ones = sp.ones(n, 1)
    centred = t - t * ones * ones.T / n
    ubar = (ones.T * u)[0] / n
    du = hessian * centred.T * ones / n
    dubar = (ones.T * du)[0] / n
    return sp.Matrix(
        n, n, lambda i, j: (centred[i, j] * (u[j] - ubar) - (centred[i, :] * u)[0] / n + du[j] - dubar) / n
    )


def _kappa(t, u):
    r"""$\kappa = \frac1n \tilde T^c \circ 1 (u - \bar u 1)^\top$: the first-order coefficient along $C \perp$ gauge, U."""
    n = t.rows
    ones = sp.ones(n, 1)
    centred = t - t * ones * ones.T / n
    ubar = (ones.T * u)[0] / n
    return sp.Matrix(n, n, lambda i, j: sp.factor(centred[i, j] * (u[j] - ubar) / n))


def markdown() -> str:
    """Derive P10 and return the Markdown text."""
    first, t, u, hessian = _first_order_gradient(N)
    check((first - _closed_form(t, u, hessian)).applyfunc(sp.simplify) == sp.zeros(N, N), f"first-order G, n={N}")
    kappa = _kappa(t, u)
    for k in range(N):
        c = sp.Matrix(N, N, lambda i, j, k=k: 1 if (j - i) % N == k else 0) - sp.ones(N, N) / N
        pair = sum(((first - kappa)[i, j] * c[i, j] for i in range(N) for j in range(N)), sp.Integer(0))
        check(sp.simplify(pair) == 0, f"circulant coordinate k={k}")
    return rf"""# P10: the label gradient near uniform attention

**Result (proved for general $n$; fully symbolic check for $n = {N}$).** Plain model: mean pooling, no
MLP (a residual is allowed, P2), scores $S = \sigma \tilde S$ with $\tilde S$ any fixed matrix per sample
(for example $\tilde S = H \tilde W H^\top/\sqrt d$ at a random query-key matrix $\tilde W$). Write
$\tilde S^c = \tilde S - \frac1n \tilde S 1 1^\top$ (row means removed), $u_j = \partial F/\partial m_j$ and
$\delta u = \nabla^2 F\, \delta m$, $\delta m = \frac1n (\tilde S^c)^\top 1$, at uniform attention, where
$L_{{cls}} = F(m)$ (P2). Then
$$\frac{{\partial L_{{cls}}}}{{\partial S}}(\sigma\tilde S) = \frac1n 1 (u - \bar u 1)^\top
+ \frac\sigma n\Big[\tilde S^c \circ 1 (u - \bar u 1)^\top - \frac1n (\tilde S^c u) 1^\top
+ 1(\delta u - \overline{{\delta u}} 1)^\top\Big] + O(\sigma^2).$$
Along any direction $C$ orthogonal to the gauge and to the column-sum space U, in particular the
non-gauge circulant family, the last two terms vanish and the coordinate is
$$\langle \partial L_{{cls}}/\partial S, C\rangle = \sigma\,\langle \kappa, C\rangle + O(\sigma^2), \qquad
\kappa = \frac1n\, \tilde S^c \circ 1 (u - \bar u 1)^\top .$$
Consequences for the detectability of such a family F over the data (one fixed $\tilde S$ per sample):
signal $\lVert E c_F\rVert = \sigma \lVert E \kappa_F \rVert + O(\sigma^2)$, noise
$\operatorname{{tr}}\mathrm{{Cov}}\, c_F = \sigma^2 \operatorname{{tr}}\mathrm{{Cov}}\,\kappa_F + O(\sigma^3)$, so the
detectability $B^*_F = \operatorname{{tr}}\mathrm{{Cov}}\,\kappa_F / \lVert E\kappa_F\rVert^2 + O(\sigma)$ has a
finite limit as $\sigma \to 0$, while the share of the mean step in F is $O(\sigma)$: the label loss
is blind to F at $\sigma = 0$ because every sample's component vanishes, not because it is noisy, and
near $\sigma = 0$ the step along F is $\sigma$ times smaller than in U. Reconstruction's signal along
the same family is of order one at $\sigma = 0$ (P6), so the label signal reaches it only at
$\sigma^* = \lVert E c^{{rec}}_F(0)\rVert / \lVert E\kappa_F\rVert$, the radius of local blindness.

## Hypotheses

- Mean pooling, no position-wise MLP; residual optional (it shifts $z$ by $\bar h$, independent of $S$).
- Any loss $F$ of the column masses $m = A^\top 1$ (P2), twice differentiable at $m = 1$.

## Steps

1. P1-P2: $\partial L/\partial S_{{ij}} = A_{{ij}}\big(u_j(m) - \sum_l A_{{il}} u_l(m)\big)$ with $u = \nabla F(m)$.
2. $A(\sigma \tilde S) = \frac1n(1 1^\top + \sigma \tilde S^c) + O(\sigma^2)$ (softmax Jacobian at uniform
   attention, P1), so $m = 1 + \sigma\,\delta m + O(\sigma^2)$ and $u(m) = u + \sigma\,\delta u + O(\sigma^2)$.
3. Multiply out to first order in $\sigma$: the displayed expansion. SymPy differentiates
   $F(m(S))$, with $F$ replaced by its second-order Taylor polynomial at $m = 1$ (exact for the
   first-order gradient), at $S = \sigma T$ for a fully symbolic $T$ ($n = {N}$), and the difference from
   the displayed form simplifies to $0$.
4. A direction $C$ orthogonal to the gauge has zero row sums, killing $\frac1n(\tilde S^c u) 1^\top$; orthogonal to U it has constant
   column sums, killing $1(\delta u - \overline{{\delta u}})^\top$. For the non-gauge circulants
   $C_k - \frac1n 1 1^\top$ SymPy confirms that the first-order part of $\langle \partial L/\partial S - \sigma\kappa, C\rangle$ is $0$ for every $k$
   ($n = {N}$).

## Result

$$\langle \partial L_{{cls}}/\partial S, C\rangle = \frac\sigma n \sum_{{ij}} \tilde S^c_{{ij}} (u_j - \bar u)\, C_{{ij}} + O(\sigma^2)
\quad (C \perp \text{{gauge}}, C \perp U),$$
for example, for $n = 2$ and $\tilde S = T$: $\kappa = {tex(_kappa(sym.score_matrix(2, "t"), sym.symbol_matrix(2, 1, "u")))}$.
"""


if __name__ == "__main__":
    main(__file__, markdown)
