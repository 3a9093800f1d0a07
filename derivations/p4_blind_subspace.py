"""P4: the first-order blind subspace of label supervision at uniform attention."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N, D, HIDDEN, CLASSES = 3, 2, 2, 2
MAX_N = 40
DIM_SIZES = range(2, 7)


def _model(n, d, hidden, classes):
    s = sym.score_matrix(n)
    v = sym.symbol_matrix(n, d, "v")
    w1, b1 = sym.symbol_matrix(d, hidden, "a"), sym.symbol_matrix(1, hidden, "b")
    w2, b2 = sym.symbol_matrix(hidden, d, "c"), sym.symbol_matrix(1, d, "e")
    head, bias = sym.symbol_matrix(d, classes, "w"), sym.symbol_matrix(1, classes, "beta")
    return s, v, (w1, b1, w2, b2), head, bias


def _rank_one_checks():
    s, v, (w1, b1, w2, b2), head, bias = _model(N, D, HIDDEN, CLASSES)
    phi = sym.tanh_mlp(w1, b1, w2, b2)
    # with the tanh MLP, no residual
    loss = sym.classification_loss(s, v, head, bias, 0, phi=phi)
    grad = sym.at_uniform(sym.score_gradient(loss, s), s)
    u = sym.mean_pool_uniform_u(v, head, bias, 0, phi=phi, phi_jacobian=sym.tanh_mlp_jacobian(w1, b1, w2))
    check(all(sym.canonical(x) == 0 for x in grad - sym.mean_pool_uniform_gradient(u)), "rank-one form, MLP")
    # residual without MLP: still identical rows (the lead's correction)
    h = sym.symbol_matrix(N, D, "h")
    loss = sym.classification_loss(s, v, head, bias, 1, residual=h)
    grad = sym.at_uniform(sym.score_gradient(loss, s), s)
    u = sym.mean_pool_uniform_u(v, head, bias, 1, residual_mean=sp.ones(1, N) * h / N)
    check(all(sym.canonical(x) == 0 for x in grad - sym.mean_pool_uniform_gradient(u)), "rank-one form, residual")
    # residual + MLP: rows differ (exact rational point, d = hidden = 1)
    s1, v1, (w1, b1, w2, b2), head1, bias1 = _model(N, 1, 1, 2)
    h1 = sym.symbol_matrix(N, 1, "h")
    loss = sym.classification_loss(s1, v1, head1, bias1, 0, phi=sym.tanh_mlp(w1, b1, w2, b2), residual=h1)
    point = {x: sp.Rational(i + 1, 3) for i, x in enumerate(list(v1) + list(w1) + list(w2) + list(head1))}
    point.update({x: sp.Rational(i, 2) for i, x in enumerate(h1)})
    point.update({x: 0 for x in list(b1) + list(b2) + list(bias1)})
    grad = sym.at_uniform(sym.score_gradient(loss, s1), s1).subs(point)
    diff = [sp.N(x, 12) for x in grad[0, :] - grad[1, :]]
    check(any(x != 0 for x in diff), "residual + MLP rows differ")
    return diff


def _subspace_checks():
    for n in DIM_SIZES:
        basis = sym.gradient_span_basis(n)
        check(basis.rank() == n - 1, f"dim U, n={n}")
        check(len(basis.T.nullspace()) == n * n - n + 1, f"dim blind, n={n}")


def _closed_form():
    n = sp.Symbol("n", positive=True, integer=True)
    k = sp.Symbol("k", nonnegative=True, integer=True)  # the symbols of sym.band_visible_fraction()
    # column sums of B_k: c_j = [j >= k] + [j + k <= n - 1]
    # 2k <= n: k ones at each end, n - 2k twos; 2k > n: 2(n - k) ones, no twos
    cases = {"2k <= n": (2 * k, n - 2 * k), "2k > n": (2 * (n - k), 0)}
    norm_b = 2 * (n - k)  # ||B_k||^2 = number of ones, k >= 1
    derived = {}
    for name, (ones, twos) in cases.items():
        total = ones + 2 * twos
        check(sp.simplify(total - 2 * (n - k)) == 0, f"sum c = 2(n - k), {name}")
        sq = ones + 4 * twos
        var = sq - total**2 / n
        derived[name] = (sp.factor(sp.simplify(sq)), sp.factor(sp.simplify(var)), sp.factor(var / (n * norm_b)))
    closed = sym.band_visible_fraction()
    check(sp.simplify(derived["2k <= n"][2] - closed.args[0][0]) == 0, "closed form 2k <= n")
    check(sp.simplify(derived["2k > n"][2] - closed.args[1][0]) == 0, "closed form 2k > n")
    count = 0
    for size in range(2, MAX_N + 1):
        for lag in range(size):
            direct = sym.band_visible_fraction_direct(size, lag)
            check(direct == sym.band_visible_fraction(size, lag), f"exact n={size} k={lag}")
            check(direct <= sp.Rational(size - 2, size**2), f"bound n={size} k={lag}")
            count += 1
        check(sym.band_visible_fraction_direct(size, size - 1) == sp.Rational(size - 2, size**2), "max at k=n-1")
    return derived, closed, count


def markdown() -> str:
    """Derive P4 and return the Markdown text."""
    diff = _rank_one_checks()
    _subspace_checks()
    derived, closed, count = _closed_form()
    examples = ", ".join(
        f"$\\cos^2(B_{{{lag}}}, U)|_{{n={size}}} = {tex(sym.band_visible_fraction(size, lag))}$"
        for size, lag in ((8, 1), (8, 2), (8, 7), (16, 1), (64, 1))
    )
    return rf"""# P4: the first-order blind subspace at uniform attention

**Correction to the first statement of P4**, which said "with a residual the rows differ": that needs a
nonlinear position-wise MLP as well. With mean pooling, a residual and no MLP, every
$g_i = \partial L/\partial o_i = \frac1n W\nabla$ is the same, so the rows are still identical (checked
symbolically below). Rows differ, and the blind subspace
shrinks, only with a residual *and* a nonlinear $\phi$ (or with last/first pooling). The size of that
shrinkage is measured numerically by the analysis tools, not derived here.

**Result (proved for general $n$, $k$; closed form checked against exact rationals for all $n \le {MAX_N}$,
$0 \le k < n$, {count} pairs).** At uniform attention, with mean pooling, any position-wise $\phi$ and no
residual (or a residual and no MLP), every per-sample gradient is
$$\frac{{\partial L_{{cls}}}}{{\partial S}} = \frac1n 1 (u - \bar u 1)^\top,\qquad
u_j = \frac{{\partial L}}{{\partial A_{{ij}}}} = \frac1n\, v_j J_\phi(\bar v) W (\mathrm{{softmax}}(\ell) - e_y),$$
rank $\le 1$ with identical rows. These gradients span at most $U = \{{1 w^\top : w^\top 1 = 0\}}$,
$\dim U = n - 1$, and the first-order blind subspace $U^\perp = \{{D : D^\top 1 \in \mathrm{{span}}(1)\}}$ has
dimension $n^2 - n + 1$. The band $B_k$ (ones where $|i - j| = k$) has visible fraction
$$\cos^2(B_k, U) = \frac{{\lVert c - \bar c 1\rVert^2}}{{n\lVert B_k\rVert^2}} = {tex(closed)},$$
at most $(n-2)/n^2 < 1/n$ (attained at $k = n - 1$), so every band is blind up to $O(1/n)$; for fixed $k$
it is $k/n^2 + O(n^{{-3}})$.

## Hypotheses

- Uniform attention $S = 0$ ($W = 0$); mean pooling; position-wise $\phi$ (any, here $\tanh$ MLP) and no
  residual, or a residual and no MLP; linear head and cross-entropy with logits $\ell = zW + b$.

## Steps

1. At $S = 0$, $A = \frac1n 1 1^\top$, so every $o_i = \bar v$ and every $g_i = \partial L/\partial o_i =
   \frac1n J_\phi(\bar v) W(\mathrm{{softmax}}(\ell) - e_y)$ is the same. Hence $\partial L/\partial A_{{ij}} = g_i \cdot v_j = u_j$
   does not depend on $i$, and by P1 row $i$ of the score gradient is
   $J_0 u = \frac1n(u - \bar u 1)$. With a residual and no MLP, $o_i = \bar v + h_i$ differ but
   $J_\phi = I$, so $g_i$ is still the same for all $i$.
2. SymPy check ($n = {N}$, $d = {D}$, hidden width {HIDDEN}, {CLASSES} classes, every parameter a symbol): the
   derivative of the loss at $S = 0$ minus $\frac1n 1(u - \bar u 1)^\top$ is exactly $0$, with the
   $\tanh$ MLP and no residual, and with a residual and no MLP.
3. Residual + MLP ($d = 1$, hidden 1, a rational point): rows $0$ and $1$ of the gradient differ by
   $({", ".join(str(x) for x in diff)})$ (exact value evaluated to 12 digits), non-zero: the
   identical-rows form fails.
4. Dimension. $w \mapsto 1 w^\top$ is injective, so $\dim U = \dim\{{w^\top 1 = 0\}} = n - 1$. $D \perp U$ iff
   $\langle D, 1 w^\top\rangle = (D^\top 1)^\top w = 0$ for all $w \perp 1$, i.e. $D^\top 1 \in \mathrm{{span}}(1)$:
   $\dim U^\perp = n^2 - n + 1$. SymPy: rank of a basis of $U$ and nullity of its transpose for
   $n = {DIM_SIZES.start}, \dots, {DIM_SIZES.stop - 1}$. Every circulant matrix has constant column sums, so lies in $U^\perp$.
5. Visible fraction. $\{{1 w^\top/\sqrt n\}}$ with $w$ orthonormal in $1^\perp$ is an orthonormal basis of $U$ and
   $\langle B, 1 w^\top\rangle = c^\top w$ with $c = B^\top 1$, so
   $\lVert \Pi_U B\rVert^2 = \lVert c - \bar c 1\rVert^2/n$. For $B_k$, $1 \le k < n$: $c_j = [j \ge k] + [j + k \le n - 1]$,
   $\lVert B_k\rVert^2 = 1^\top c = 2(n-k)$.
   - $2k \le n$: $k$ ones at each end, $n - 2k$ twos: $\sum c_j^2 = {tex(derived["2k <= n"][0])}$,
     $\lVert c - \bar c 1\rVert^2 = {tex(derived["2k <= n"][1])}$, $\cos^2 = {tex(derived["2k <= n"][2])}$.
   - $2k > n$: $2(n-k)$ ones, no twos: $\sum c_j^2 = {tex(derived["2k > n"][0])}$,
     $\lVert c - \bar c 1\rVert^2 = {tex(derived["2k > n"][1])}$, $\cos^2 = {tex(derived["2k > n"][2])}$.
   - $k = 0$: $B_0 = I$, $c = 1$, $\cos^2 = 0$, which the first branch also gives.
   Both branches vanish at $2k = n$. The exact rational from the definition equals the closed form for
   every $2 \le n \le {MAX_N}$ and $0 \le k < n$, and never exceeds $(n-2)/n^2$, the value at $k = n - 1$.
   Examples: {examples}.

## Result

$$\frac{{\partial L_{{cls}}}}{{\partial S}}\Big|_{{S=0}} = \frac1n 1(u - \bar u 1)^\top,\quad
\dim U^\perp = n^2 - n + 1,\quad
\cos^2(B_k, U) = \begin{{cases}} \dfrac{{k(n-2k)}}{{n^2(n-k)}} & 2k \le n \\[4pt] \dfrac{{2k-n}}{{n^2}} & 2k > n \end{{cases}}
\;\le\; \frac{{n-2}}{{n^2}}.$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
