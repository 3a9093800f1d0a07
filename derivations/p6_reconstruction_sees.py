"""P6: the expected reconstruction score gradient with the copy readout."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

from itertools import combinations, product

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N, V = 4, 2
SUM_SIZES = range(2, 9)


def _uniform_gradient_of_hits(n, masked):
    """Per-sample score gradient at S = 0 as a function of generic hit symbols t_ij."""
    s = sym.score_matrix(n)
    hits = sym.symbol_matrix(n, n, "t")
    grad = sym.at_uniform(sym.score_gradient(sym.copy_reconstruction_loss(s, hits, masked), s), s)
    return grad.applyfunc(sp.nsimplify), hits


def _enumerated_expectation(n, vocab, m, lam):
    """E[dL/dS] at S = 0 by exact enumeration of all sequences and all masks of size m."""
    total = sp.zeros(n, n)
    masks = list(combinations(range(n), m))
    for masked in masks:
        grad, hits = _uniform_gradient_of_hits(n, list(masked))
        for tokens in product(range(vocab), repeat=n):
            weight = sym.sticky_chain_probability(tokens, vocab, lam) / len(masks)
            values = {hits[i, j]: int(j not in masked and tokens[j] == tokens[i]) for i in range(n) for j in range(n)}
            total += weight * grad.subs(values)
    return total.applyfunc(sp.factor)


def markdown() -> str:
    """Derive P6 and return the Markdown text."""
    n, m, lam, vv = sp.symbols("n m lambda V", positive=True)
    # 1. per-sample gradient at uniform attention, general form, n = 3, M = {0}
    g3, hits3 = _uniform_gradient_of_hits(3, [0])
    # 2. pair probability of the uniform mask
    pair = sp.binomial(n - 2, m - 1) / sp.binomial(n, m)
    pair_closed = m * (n - m) / (n * (n - 1))
    check(sp.simplify(sp.combsimp(pair - pair_closed)) == 0, "P(i in M, j not in M)")
    # 3. exact enumeration vs the formula, symbolic lambda
    for masked_count in range(1, N):
        exact = _enumerated_expectation(N, V, masked_count, lam)
        formula = sym.expected_copy_gradient(sym.sticky_agreement(N, V, lam), masked_count)
        check((exact - formula).applyfunc(sp.simplify) == sp.zeros(N, N), f"enumeration m={masked_count}")
        first_statement = sym.design_copy_gradient(sym.sticky_agreement(N, V, lam))
        differs = (exact - first_statement).applyfunc(sp.simplify) != sp.zeros(N, N)
        check(differs, f"first statement differs m={masked_count}")
        rescaled = exact * sp.Rational(N - 1, N - masked_count)
        gap = -(sp.eye(N) - sp.ones(N, N) / N) / N**2
        gap_is_exact = (first_statement - rescaled - gap).applyfunc(sp.simplify) == sp.zeros(N, N)
        check(gap_is_exact, f"first statement gap m={masked_count}")
    # 4. sticky chain closed form: geometric row sums
    for size in SUM_SIZES:
        for i in range(size):
            direct = sum(lam ** abs(i - k) for k in range(size) if k != i)
            check(sp.simplify(direct - sym.sticky_row_sum(i, size, lam)) == 0, f"row sum n={size} i={i}")
    # 4b. the sticky-chain closed form stated at the top, symbolic V, lambda, m
    for size in range(2, 7):
        d = sp.KroneckerDelta
        closed = sp.Matrix(
            size,
            size,
            lambda i, j: (
                -(size - m)
                / (size**2 * (size - 1))
                * (
                    (sp.Rational(1, size) - d(i, j)) / vv
                    + (1 - 1 / vv) * ((1 - d(i, j)) * lam ** abs(i - j) - sym.sticky_row_sum(i, size, lam) / size)
                )
            ),
        )
        formula = sym.expected_copy_gradient(sym.sticky_agreement(size, vv, lam), m)
        check((closed - formula).applyfunc(sp.simplify) == sp.zeros(size, size), f"sticky closed form n={size}")
    # 5. i.i.d. tokens (lambda = 0)
    iid = sym.expected_copy_gradient(sym.sticky_agreement(N, V, 0), 1)
    c = sp.Rational(N - 1, N**2 * (N - 1))
    check(iid == c / V * (sp.eye(N) - sp.ones(N, N) / N), "iid form")
    example = sym.expected_copy_gradient(sym.sticky_agreement(N, V, lam), 1).applyfunc(sp.factor)
    return rf"""# P6: reconstruction sees

**Correction to the first statement of P6 (exact result, no approximation).** The first statement,
$E[\partial L_{{rec}}/\partial S_{{ij}}] = -\frac1{{n^2}}[P(x_j = x_i) - \mathrm{{mean}}_k P(x_k = x_i)]$, is **not exact**.
The exact expectation at uniform attention, for the copy readout of `blindspot/objectives.py`
(masked keys carry MASK and never match; exactly $m$ masked positions, a uniform subset independent
of the tokens; mean over the masked positions), is
$$E\Big[\frac{{\partial L_{{rec}}}}{{\partial S_{{ij}}}}\Big] = -\frac{{n - m}}{{n^2 (n - 1)}}\Big[\tilde\rho_{{ij}}
- \frac1n \sum_k \tilde\rho_{{ik}}\Big],\qquad \tilde\rho_{{ij}} = \begin{{cases}} P(x_i = x_j) & j \ne i\\ 0 & j = i.\end{{cases}}$$
Two changes: the factor $(n - m)/(n - 1)$ (the key $j$ must be unmasked given that the query $i$ is masked),
and the diagonal: the query's own key is masked, so $\tilde\rho_{{ii}} = 0$ instead of $P(x_i = x_i) = 1$.
The first statement's formula differs from the exact one by more than a positive factor: by
$-\frac{{1}}{{n^2}}(I - \frac1n 1 1^\top)$ (after rescaling), a non-gauge direction. The result holds for any
source (stationarity only makes $\rho$ Toeplitz). For the sticky chain
$P(x_i = x_j) = \frac1V + (1 - \frac1V)\lambda^{{|i-j|}}$ ($\lambda$ is `rho` in `blindspot.data`):
$$E\Big[\frac{{\partial L_{{rec}}}}{{\partial S_{{ij}}}}\Big] = -\frac{{n - m}}{{n^2(n-1)}}\Big[\frac1V\Big(\frac1n - \delta_{{ij}}\Big)
+ \Big(1 - \frac1V\Big)\Big((1 - \delta_{{ij}})\lambda^{{|i-j|}} - \frac{{\lambda(2 - \lambda^{{i}} - \lambda^{{n-1-i}})}}{{n(1-\lambda)}}\Big)\Big].$$
For i.i.d. tokens ($\lambda = 0$) it is $\frac{{n-m}}{{n^2(n-1)V}}(I - \frac1n 1 1^\top)$: all off-diagonal entries are
equal, so no lag $k \ge 1$ is preferred (the off-diagonal bands get no *differential* gradient; the
only structure is the self-key penalty on the diagonal).

**Result: proved for general $n$, $m$; checked by exact enumeration ($n = {N}$, $V = {V}$, every $m = 1, \dots, {N - 1}$,
symbolic $\lambda$).**

## Hypotheses

- Uniform attention $S = 0$ (e.g. $W = 0$); copy readout $q_i = \sum_j A_{{ij}} e_{{\tilde x_j}}$, $\ell_i = -q_{{i, x_i}}$,
  $L_{{rec}} = \frac1m \sum_{{i \in M}} \ell_i$, $\tilde x_j = \mathrm{{MASK}}$ for $j \in M$.
- $|M| = m$ exactly, $M$ uniform among the $\binom nm$ subsets and independent of $x$.

## Steps

1. With $t_{{ij}} = [j \notin M][x_j = x_i]$, $L_{{rec}} = -\frac1m\sum_{{i\in M}}\sum_j A_{{ij}} t_{{ij}}$, and by P1
   $$\frac{{\partial L_{{rec}}}}{{\partial S_{{ij}}}} = -\frac1m [i \in M]\, A_{{ij}}\Big(t_{{ij}} - \sum_k A_{{ik}} t_{{ik}}\Big)
   \;\overset{{S=0}}{{=}}\; -\frac{{[i\in M]}}{{mn}}\Big(t_{{ij}} - \frac1n\sum_k t_{{ik}}\Big).$$
   Row $i$ is $\frac1n(w_i - \bar w_i 1)^\top$ with $w_i = -[i\in M]\, t_i / m$ (zero for unmasked queries).
   SymPy, $n = 3$, $M = \{{0\}}$, generic $t_{{ij}}$: $${tex(g3)}.$$
2. Expectation. $[i \in M]\, t_{{ij}} = [i \in M][j \notin M][x_i = x_j]$, and $t_{{ii}} = 0$ when $i \in M$.
   For $j \ne i$, $P(i \in M, j \notin M) = \binom{{n-2}}{{m-1}}/\binom nm = {tex(pair_closed)}$ (SymPy `combsimp`, symbolic
   $n$, $m$). By independence of $M$ and $x$,
   $E([i\in M]\, t_{{ij}}) = \frac{{m(n-m)}}{{n(n-1)}}\tilde\rho_{{ij}}$, and multiplying by $-\frac{{1}}{{mn}}$ gives the result.
3. Exact enumeration: for $n = {N}$, $V = {V}$ and each $m = 1, \dots, {N - 1}$, summing the SymPy gradient over all
   $V^n$ sequences (sticky-chain probabilities, polynomial in $\lambda$) and all $\binom nm$ masks equals the
   formula exactly and differs from the first statement's formula. For $m = 1$:
   $$E\Big[\frac{{\partial L_{{rec}}}}{{\partial S}}\Big] = {tex(example)}.$$
4. Sticky chain: $\sum_{{k \ne i}}\lambda^{{|i-k|}} = \sum_{{r=1}}^{{i}}\lambda^r + \sum_{{r=1}}^{{n-1-i}}\lambda^r
   = \frac{{\lambda(2 - \lambda^i - \lambda^{{n-1-i}})}}{{1 - \lambda}}$ (checked for every $n \le {SUM_SIZES.stop - 1}$, every $i$),
   and $\sum_k \tilde\rho_{{ik}} = \frac{{n-1}}V + (1 - \frac1V)\sum_{{k\ne i}}\lambda^{{|i-k|}}$.
5. Alignment. Off the diagonal, $-E[\partial L/\partial S_{{ij}}]$ is, up to a row constant (gauge, P1), the positive
   multiple $\frac{{(n-m)(1 - 1/V)}}{{n^2(n-1)}}$ of $\lambda^{{|i-j|}}$: descent raises the scores of near keys exactly as
   the lag correlation of the data decays. For $\lambda = 0$, $E[\partial L/\partial S] = \frac{{n-m}}{{n^2(n-1)V}}(I - \frac1n 11^\top)$.
   The closed form for the sticky chain stated at the top equals the general formula with $\rho$ of the
   chain exactly for every $n \le 6$, with $V$, $\lambda$, $m$ symbols.
6. Span (the other half of P6, numerical): per-sample rows $\frac1n(w_i - \bar w_i 1)^\top$ vary with the masked
   query $i$ and the data, so over samples they span the whole non-gauge space of dimension $n(n-1)$ for
   generic data; this is checked numerically by the analysis tools, not here.

## Result

$$E\Big[\frac{{\partial L_{{rec}}}}{{\partial S}}\Big] = -\frac{{n - m}}{{n^2 (n - 1)}}\Big(\tilde\rho - \frac1n\tilde\rho\, 1 1^\top\Big)
\quad\text{{exactly}};\qquad\text{{the first statement's }} -\tfrac1{{n^2}}[\rho - \tfrac1n \rho 11^\top]
\text{{ is not exact.}}$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
