"""P1: the softmax Jacobian, its value at uniform attention, its rank and kernel, the gauge."""

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

SIZES = range(2, 6)


def _algebra_product(x, y, n):
    """Product in span{I, E} (E = 11^T, E^2 = nE): (a I + b E)(c I + d E)."""
    (a, b), (c, d) = x, y
    return (a * c, a * d + b * c + n * b * d)


def markdown() -> str:
    """Derive P1 and return the Markdown text."""
    n = sp.Symbol("n", positive=True, integer=True)
    # 1. closed form Jacobian and Hessian vs SymPy's derivative, concrete n
    for size in SIZES:
        s = sp.Matrix([sp.symbols(f"s_0:{size}", real=True)])
        a = sym.row_softmax(s)
        diff_j = (sym.autodiff_softmax_jacobian(s) - sym.softmax_jacobian(a)).applyfunc(sp.cancel)
        check(diff_j == sp.zeros(size, size), f"Jacobian closed form, n={size}")
        if size <= 3:
            for h_auto, h_closed in zip(sym.autodiff_softmax_hessian(s), sym.softmax_hessian(a)):
                check((h_auto - h_closed).applyfunc(sp.cancel) == sp.zeros(size, size), f"Hessian, n={size}")
    # 2. uniform attention, concrete n
    for size in SIZES:
        j0 = sym.softmax_jacobian(sp.ones(size, 1) / size)
        check(j0 == (sp.eye(size) - sp.ones(size, size) / size) / size, f"uniform value, n={size}")
        check(j0.rank() == size - 1 and j0 * sp.ones(size, 1) == sp.zeros(size, 1), f"rank/kernel n={size}")
    # 3. general n in the algebra span{I, E}: n J0 = I - E/n is idempotent, trace n - 1
    proj = (sp.Integer(1), -1 / n)
    sq = _algebra_product(proj, proj, n)
    check(all(sp.simplify(x - y) == 0 for x, y in zip(sq, proj)), "I - J/n idempotent")
    trace = sp.simplify(n * proj[0] + n * proj[1])
    check(trace == n - 1, "trace n - 1")
    kernel = sp.simplify(proj[0] + n * proj[1])  # (I - J/n) 1 = (1 - n/n) 1
    check(kernel == 0, "1 in kernel")
    # 4. zero row sums of any score gradient: J 1 = a (1 - 1^T a) = 0; concrete check with generic dL/dA
    size = 4
    s = sym.score_matrix(size)
    a = sym.row_softmax(s)
    g = sym.symbol_matrix(size, size, "g")  # g_ij = dL/dA_ij, arbitrary
    loss_grad = sp.zeros(size, size)
    for i in range(size):
        for k in range(size):
            loss_grad[i, k] = sum(g[i, j] * sp.diff(a[i, j], s[i, k]) for j in range(size))
    row_sums = [sp.cancel(sum(loss_grad[i, :])) for i in range(size)]
    check(all(r == 0 for r in row_sums), "zero row sums n=4")
    a_sym = sp.Matrix(sp.symbols("a_0:3", positive=True))
    j_example = sym.softmax_jacobian(a_sym)
    j0_gen = sp.Matrix(3, 3, lambda i, j: sp.KroneckerDelta(i, j) / n - 1 / n**2)
    return f"""# P1: the softmax Jacobian and the gauge

**Result (proved for general $n$).** For one softmax row $a = \\mathrm{{softmax}}(s)$,
$$\\frac{{\\partial a}}{{\\partial s}} = \\mathrm{{diag}}(a) - a a^\\top,$$
at uniform attention ($s = 0$) this is $\\frac1n\\left(I - \\frac1n 1 1^\\top\\right)$, of rank $n - 1$ with
kernel $\\mathrm{{span}}\\{{1\\}}$, and every score gradient $\\partial L/\\partial S$ of a loss that depends
on $S$ only through $A = \\mathrm{{softmax}}_{{row}}(S)$ has zero row sums: the $n$ row-constant directions
$r 1^\\top$ (the gauge) are invisible to every such loss, to all orders.

## Hypotheses

- $A_{{ij}} = e^{{s_{{ij}}}} / \\sum_k e^{{s_{{ik}}}}$ (row softmax), $L$ depends on $S$ only through $A$.

## Steps

1. Differentiating $a_j = e^{{s_j}}/\\sum_k e^{{s_k}}$ gives $\\partial a_j/\\partial s_k = a_j(\\delta_{{jk}} - a_k)$.
   For $n = 3$ with $a = (a_0, a_1, a_2)$:
   $$J = {tex(j_example)}.$$
   SymPy's derivative of the softmax of a fully symbolic row equals this closed form exactly
   (`cancel` of the difference is $0$) for $n = {SIZES.start}, \\dots, {SIZES.stop - 1}$.
2. Second derivatives (used by P7):
   $$\\frac{{\\partial^2 a_j}}{{\\partial s_k \\partial s_l}} = a_j\\left[(\\delta_{{jk}} - a_k)(\\delta_{{jl}} - a_l)
   - a_k(\\delta_{{kl}} - a_l)\\right],$$
   checked against SymPy's Hessian for $n = 2, 3$.
3. At $s = 0$, $a = 1/n$ and $J_0 = \\frac1n I - \\frac1{{n^2}} 1 1^\\top$; for $n = 3$:
   $J_0 = {tex(j0_gen.subs(n, 3))}$.
   Write $E = 1 1^\\top$, so $E^2 = nE$. Then $nJ_0 = I - E/n$ and
   $(I - E/n)^2 = I - 2E/n + E^2/n^2 = I - E/n$: a symmetric idempotent, hence an orthogonal
   projector, with trace $n - 1$ (its rank) and $(I - E/n) 1 = 0$ (its kernel is $\\mathrm{{span}}\\{{1\\}}$).
   SymPy checks these three identities with $n$ a symbol (products in the algebra
   $\\mathrm{{span}}\\{{I, E\\}}$), and the rank and kernel directly for $n = {SIZES.start}, \\dots, {SIZES.stop - 1}$.
4. Gauge. $J 1 = a - a (1^\\top a) = 0$ because $1^\\top a = 1$, and $J$ is symmetric. Row $i$ of the
   score gradient is $\\partial L/\\partial s_i = J(a_i)\\, \\partial L/\\partial a_i$, so its row sum is
   $1^\\top J(a_i)\\, \\partial L/\\partial a_i = 0$ for any $\\partial L/\\partial a_i$. SymPy confirms it for
   $n = 4$ with a fully symbolic $S$ and arbitrary symbols $g_{{ij}} = \\partial L/\\partial A_{{ij}}$.
   To all orders: $\\mathrm{{softmax}}(s + r 1) = \\mathrm{{softmax}}(s)$ exactly, so $L(S + r 1^\\top) = L(S)$.

## Result

$$\\frac{{\\partial a}}{{\\partial s}} = \\mathrm{{diag}}(a) - a a^\\top, \\qquad
\\left.\\frac{{\\partial a}}{{\\partial s}}\\right|_{{s=0}} = \\frac1n\\left(I - \\frac1n 1 1^\\top\\right),\\quad
\\mathrm{{rank}} = n - 1,\\quad \\ker = \\mathrm{{span}}\\{{1\\}},\\qquad
\\frac{{\\partial L}}{{\\partial S}}\\, 1 = 0.$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
