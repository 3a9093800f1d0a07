"""P12: detectability at uniform attention as a function of n."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

from fractions import Fraction
from itertools import combinations, product

import sympy as sp
from _common import check, main, tex

from blindspot import scaling as sc

ENUMERATED = ((5, 2, 2), (6, 3, 1), (6, 2, 3), (7, 2, 3))
"""(n, V, m) at which the moment formula is checked against every sequence and mask."""
SIZES = range(4, 10)
FAMILIES = ("circulant", "band_1", "proximity")
QUANTITIES = ("signal^2", "noise", "B*")


def _test_matrix(n: int) -> sp.Matrix:
    """Return a fixed rational matrix with no symmetry (diagonal included: it must not matter)."""
    return sp.Matrix(n, n, lambda i, j: sp.Rational((3 * i + 5 * j) % 7 - 3, 1 + (i + 2 * j) % 3))


def _enumerated_moments(q: sp.Matrix, n: int, vocab: int, m: int) -> tuple[Fraction, Fraction]:
    """E c and E c^2, c = <W, Q>/n, over every i.i.d. uniform sequence and every mask of size m (exact)."""
    entries = [[Fraction(int(sp.numer(q[i, j])), int(sp.denom(q[i, j]))) for j in range(n)] for i in range(n)]
    first = second = Fraction(0)
    count = 0
    for masked in combinations(range(n), m):
        active = [(i, j) for i in masked for j in range(n) if j not in masked]
        for x in product(range(vocab), repeat=n):
            c = -sum((entries[i][j] for i, j in active if x[i] == x[j]), Fraction(0)) / (m * n)
            first, second, count = first + c, second + c * c, count + 1
    return first / count, second / count


def _non_gauge(raw: list) -> tuple[list, object]:
    """Y = X - X 1 1^T / n (rows of a list) and its squared norm (Q = Y / ||Y||, kept without square roots)."""
    n = len(raw)
    y = [[x - sum(row) / n for x in row] for row in raw]
    return y, sum(x * x for row in y for x in row)


def _check_invariants(closed: sc.Invariants, raw: list, what: str) -> None:
    y, norm_squared = _non_gauge(raw)
    for name, a, b in zip(sc.Invariants._fields, closed, sc.direct_invariants(y)):
        check(a - b / norm_squared == 0, f"{what}: {name}")


def _lag(n: int, k: int) -> list:
    return [[sp.Integer(1 if (j - i) % n == k else 0) for j in range(n)] for i in range(n)]


def _zero_sum_circulant_projector(n: int) -> sp.Matrix:
    """Sum of vec(Q_l) vec(Q_l)^T over the Helmert basis of the zero-sum circulants (n^2 x n^2)."""
    lags = [sp.Matrix(_lag(n, k)) for k in range(n)]
    total = sp.zeros(n * n, n * n)
    for level in range(1, n):
        weights = [1] * level + [-level] + [0] * (n - level - 1)
        q = sum((w * c for w, c in zip(weights, lags)), sp.zeros(n, n)).reshape(n * n, 1)
        total += q * q.T / (level * (level + 1) * n)
    return total


def _leading_table(orders: dict) -> str:
    rows = []
    for name in FAMILIES:
        cells = []
        for quantity in QUANTITIES:
            exponent, coefficient = orders[name][quantity]
            cells.append(f"${tex(coefficient)}\\; n^{{{tex(exponent)}}}$")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _label_profiles(size: int) -> None:
    """<1 w^T, Q> for sum-zero symbolic w: -(w_0 + w_{n-1})/nu (band_1), an end profile in lambda (proximity)."""
    field, lam, *w = sp.field(["lambda"] + [f"w{j}" for j in range(size - 1)], sp.QQ)
    w.append(-sum(w))
    for name, raw in (
        ("band_1", [[field(1 if abs(i - j) == 1 else 0) for j in range(size)] for i in range(size)]),
        ("proximity", [[lam ** abs(i - j) for j in range(size)] for i in range(size)]),
    ):
        y, norm_squared = _non_gauge(raw)
        coordinate_squared = sum(y[i][j] * w[j] for i in range(size) for j in range(size)) ** 2 / norm_squared
        if name == "band_1":
            closed = (w[0] + w[-1]) ** 2 * field(sc.label_band_factor(size) ** 2)
        else:
            profile = [-(lam ** (j + 1) + lam ** (size - j)) / (1 - lam) for j in range(size)]
            closed = sum(a * b for a, b in zip(profile, w)) ** 2 / norm_squared
        check(coordinate_squared == closed, f"label profile {name} n={size}")


def markdown() -> str:
    """Derive P12 and return the Markdown text."""
    # 1. the moment formula against every sequence and mask
    for n, vocab, m in ENUMERATED:
        q = _test_matrix(n)
        mean, second = _enumerated_moments(q, n, vocab, m)
        mean_squared, formula_second = sc.copy_moments(sc.direct_invariants(q), n, m, vocab)
        check(sp.Rational(mean.numerator, mean.denominator) ** 2 == mean_squared, f"E c, n={n} V={vocab} m={m}")
        check(sp.Rational(second.numerator, second.denominator) == formula_second, f"E c^2, n={n} V={vocab} m={m}")
    # 2. the invariants of the families in closed form
    field, lam = sp.field("lambda", sp.QQ)
    for size in SIZES:
        band = [[sp.Integer(1 if abs(i - j) == 1 else 0) for j in range(size)] for i in range(size)]
        _check_invariants(sc.toeplitz_invariants(size, *sc.band_sums(size)), band, f"band_1 n={size}")
        kernel = [[lam ** abs(i - j) for j in range(size)] for i in range(size)]
        _check_invariants(sc.toeplitz_invariants(size, *sc.proximity_sums(size, lam)), kernel, f"proximity n={size}")
        summed = [sum(v) for v in zip(*(sc.direct_invariants(_lag(size, k)) for k in range(1, size)))]
        ones = sc.direct_invariants([[sp.Integer(1)] * size] * size)
        for name, a, b, c in zip(sc.Invariants._fields, sc.circulant_invariants(size, 1 - size % 2), summed, ones):
            check(a - b / size + c / size**2 == 0, f"circulant n={size}: {name}")
        _label_profiles(size)
    for size in (4, 5):
        lags = [sp.Matrix(_lag(size, k)).reshape(size**2, 1) for k in range(size)]
        ones = sp.ones(size**2, 1)
        projector = sum((c * c.T for c in lags), sp.zeros(size**2, size**2)) / size - ones * ones.T / size**2
        check((projector - _zero_sum_circulant_projector(size)).is_zero_matrix, f"projector n={size}")
    # 3. exact closed forms and leading orders
    n, m, vocab, r = sp.symbols("n m V r", positive=True)
    band_signal = sp.factor(sc.copy_moments(sc.toeplitz_invariants(n, *sc.band_sums(n)), n, m, vocab)[0])
    circulant_signal = sp.factor(sc.copy_moments(sc.circulant_invariants(n, 1), n, m, vocab)[0])
    orders = sc.leading_orders()
    expected = {"circulant": (-3, -3, 0), "band_1": (-5, -4, 1), "proximity": (-3, -4, -1)}
    for name, exponents in expected.items():
        found = tuple(int(orders[name][q][0]) for q in QUANTITIES)
        check(found == exponents, f"exponents of {name}: {found}")
    return rf"""# P12: detectability at uniform attention, as a function of n

**Result (exact for general $n$, $m$, $V$; the moment formula checked against every sequence and mask at
$(n, V, m) \in \{{{", ".join(str(e) for e in ENUMERATED)}\}}$).** Plain model (mean pooling, no MLP; a
residual is allowed), $W = 0$. For a family F with orthonormal basis $Q_l$ of its non-gauge part and
per-sample coordinates $c_l = \langle \partial L/\partial S, Q_l\rangle$: signal$^2$ $\lVert Ec\rVert^2$,
noise $\mathrm{{tr\,Cov}}\,c$ and $B^* = $ noise / signal$^2$ (the measure of `blindspot.detectability`).

*Reconstruction*, copy readout, i.i.d. uniform tokens over $V$ symbols, $m$ masked positions drawn
uniformly: the moments are rational functions of $n$, $m$, $V$ (`blindspot.scaling`), for example
$$\lVert Ec\rVert^2_{{\text{{circulant}}}} = {tex(circulant_signal)}, \qquad
\lVert Ec\rVert^2_{{\text{{band}}_1}} = {tex(band_signal)},$$
and with $m = rn$ their leading orders as $n \to \infty$ are ($\lambda = e^{{-1/l}}$, $l$ the proximity length):

| family | signal$^2$ | noise | $B^*$ |
|---|---|---|---|
{_leading_table(orders)}

So the signal scales as $n^{{-3/2}}$ (circulant, proximity) and $n^{{-5/2}}$ (band_1), the noise as
$n^{{-3}}$ (circulant) and $n^{{-4}}$ (band_1, proximity), and $B^*$ as $n^0$, $n^{{1}}$ and $n^{{-1}}$. With
i.i.d. tokens the mean gradient is $\frac{{n-m}}{{n^2(n-1)V}}(I - \frac1n\mathbf 1\mathbf 1^\top)$ (P6): a pure
zero-sum circulant, so every family's signal is its overlap with the diagonal, and the band_1 signal is
only the image of the diagonal after the gauge is removed (order $n^{{-1}}$ relative to the circulant's).

*Label supervision* (any data, any head): every per-sample gradient is $\mathbf 1 w^\top$, $w^\top\mathbf 1 = 0$
(P4), so on the zero-sum circulants signal and noise are exactly 0 ($B^*$ infinite), and on a
one-direction family Q the coordinate is $\langle w, Q^\top \mathbf 1\rangle$: the column sums of Q minus
their mean, which live at the two ends of the sequence. Exactly,
$$c_{{\text{{band}}_1}} = -\frac{{w_0 + w_{{n-1}}}}{{\nu_n}}, \quad \nu_n^2 = \frac{{2(n^2 - 3n + 3)}}{{n}}, \qquad
c_{{\text{{proximity}}}} = -\frac{{1}}{{(1 - \lambda)\nu}}\sum_j w_j\big(\lambda^{{j+1}} + \lambda^{{n-j}}\big),$$
$\nu^2 = s_3 - s_2/n \sim n$ for the kernel $\lambda^{{|i-j|}}$. With $w = (u - \bar u\mathbf 1)/n$ and
$u_j = v_j\cdot\nabla_z L/n$, each $w_j$ is $O(n^{{-2}})$, so the label signal on band_1 and proximity is
$O(n^{{-5/2}})$ and the noise $O(n^{{-5}})$, while $B^* = \mathrm{{Var}}\,s / (E s)^2$ with
$s = (v_0 + v_{{n-1}} - 2\bar v)\cdot\nabla_z L$ (band_1) carries no power of $n$: it is set by the data and
the encodings at the two ends of the sequence, and need not be monotone in $n$.

## Hypotheses

- Uniform attention ($W = 0$), mean pooling, no position-wise MLP (label part: any loss of the head).
- Reconstruction: copy readout, tokens i.i.d. uniform over $V$ symbols, exactly $m$ masked positions,
  uniform among the $\binom nm$ subsets and independent of the tokens; $n \ge 4$.

## Steps

1. Per sample $\partial L/\partial S = \frac1n(W - \bar W\mathbf 1^\top)$, $W_{{ij}} = -\frac1m[i\in M][j\notin M]\delta(x_i, x_j)$
   (P6). A direction Q with zero row sums meets it as $c = \frac1n\langle W, Q\rangle$.
2. The indicators $\delta$ of distinct unordered pairs are pairwise independent for uniform tokens:
   $E[\delta_e\delta_f] = V^{{-2}} + [e = f](V^{{-1}} - V^{{-2}})$. Two active entries $(i, j)$, $(k, l)$
   ($i, k \in M$, $j, l \notin M$) are the same pair only if they coincide.
3. Averaging over the mask needs the inclusion probabilities of a uniform $m$-subset for 2, 3 and 4
   distinct positions; grouping the pairs of entries by their coincidences ($k = i$; $l = j$; all
   distinct; $k = j$ and $l = i$ are impossible) gives $E c$ and $E c^2$ from six sums of Q's off-diagonal
   entries (`scaling.copy_moments`). Exact rational enumeration of every sequence and mask equals the
   formula for a fixed non-symmetric rational Q at $(n, V, m) \in \{{{", ".join(str(e) for e in ENUMERATED)}\}}$.
4. The six sums of the unit non-gauge band_1 and proximity directions follow from four sums of the raw
   symmetric matrix (diagonal, total, squared row sums, squared entries; geometric series for
   $\lambda^{{|i-j|}}$); checked exactly against their definitions for $n = {SIZES.start}..{SIZES.stop - 1}$, with
   $\lambda$ a symbol (in the field $\mathbb Q(\lambda)$). The zero-sum circulants'
   projector is $\sum_{{k}} \mathrm{{vec}}\,C_k\,\mathrm{{vec}}\,C_k^\top - \mathrm{{vec}}\,\mathbf 1\mathbf 1^\top\,\mathrm{{vec}}\,\mathbf 1\mathbf 1^\top/n^2$
   (checked for $n = 4, 5$), so its summed sums are those of the lags $C_1..C_{{n-1}}$ minus those of $\mathbf 1\mathbf 1^\top$ over
   $n^2$ (checked for $n = {SIZES.start}..{SIZES.stop - 1}$); the parity of $n$ enters through the symmetric lag $n/2$.
5. With $m = rn$ every moment is a rational function of $n$ (proximity: after dropping the terms in
   $\lambda^n$, exponentially small); the exponent is the difference of the degrees of numerator and
   denominator and the coefficient the ratio of their leading coefficients (computed in the field
   $\mathbb Q(n, r, V, \lambda)$).
6. Label: $\langle \mathbf 1 w^\top, Q\rangle = \langle w, Q^\top\mathbf 1\rangle$, and only the non-constant part of the column
   sums counts ($w^\top\mathbf 1 = 0$); both profiles checked with symbolic $w$ and $\lambda$ for
   $n = {SIZES.start}..{SIZES.stop - 1}$.

## Result

Reconstruction (copy readout, i.i.d. tokens): signal $\propto n^{{-3/2}}, n^{{-5/2}}, n^{{-3/2}}$, noise $\propto n^{{-3}}, n^{{-4}}, n^{{-4}}$,
$B^* \propto n^0, n^1, n^{{-1}}$ for circulant, band_1, proximity, with the coefficients of the table.
Label: $0, 0, \infty$ on the circulants; signal $O(n^{{-5/2}})$, noise $O(n^{{-5}})$, $B^*$ free of powers of
$n$ on band_1 and proximity.
"""


if __name__ == "__main__":
    main(__file__, markdown)
