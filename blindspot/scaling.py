r"""Closed forms of detectability at uniform attention as functions of n (P12), in SymPy.

Reconstruction with the copy readout, i.i.d. uniform tokens over V symbols and m masked positions
drawn uniformly: per sample $\partial L/\partial S = \frac1n (W - \bar W \mathbf 1^\top)$ with
$W_{ij} = -\frac1m [i \in M][j \notin M]\,\delta(x_i, x_j)$ (P6). For a unit direction Q with zero row
sums (a family's non-gauge part) the coordinate is $c = \langle \partial L/\partial S, Q\rangle =
\frac1n \langle W, Q\rangle$, and its first two moments depend on Q only through six sums of its
off-diagonal entries (:class:`Invariants`): the $\delta$ of distinct pairs are pairwise independent
($E[\delta_e \delta_f] = 1/V^2 + [e = f](1/V - 1/V^2)$) and the mask enters through the inclusion
probabilities of a uniform m-subset (:func:`inclusion_probabilities`). A family of several
directions adds the invariants of an orthonormal basis (:func:`circulant_invariants`).

Every function does exact arithmetic on what it is given: integers (made SymPy integers), SymPy
expressions, or elements of a SymPy rational-function field (fast for the exponents in n, which
``derivations/p12_scaling.py`` derives from them).
"""

from typing import NamedTuple

import sympy as sp


class Invariants(NamedTuple):
    r"""Off-diagonal sums of a direction Q (the diagonal never meets $W$: $W_{ii} = 0$).

    ``area`` $A = \sum_{i \ne j} Q_{ij}^2$; ``rows`` $R = \sum_i r_i^2$ and ``columns``
    $C = \sum_j c_j^2$ with $r, c$ the off-diagonal row and column sums; ``cross`` $X = \sum_i r_i c_i$;
    ``transpose`` $T = \sum_{i \ne j} Q_{ij} Q_{ji}$; ``total_squared`` $S^2 = (\sum_{i \ne j} Q_{ij})^2$.
    For a family, each is summed over an orthonormal basis.
    """

    area: sp.Expr
    rows: sp.Expr
    columns: sp.Expr
    cross: sp.Expr
    transpose: sp.Expr
    total_squared: sp.Expr


def direct_invariants(q) -> Invariants:
    """Compute the six sums of :class:`Invariants` straight from their definitions.

    ``q``: a square ``sympy.Matrix`` or a list of rows, with entries of any exact type (SymPy numbers or
    expressions, elements of a rational-function field).
    """
    rows_of_q = q.tolist() if isinstance(q, sp.MatrixBase) else q
    n = len(rows_of_q)
    off = [[0 * rows_of_q[i][j] if i == j else rows_of_q[i][j] for j in range(n)] for i in range(n)]
    rows = [sum(off[i]) for i in range(n)]
    cols = [sum(off[i][j] for i in range(n)) for j in range(n)]
    return Invariants(
        area=sum(x * x for row in off for x in row),
        rows=sum(x * x for x in rows),
        columns=sum(x * x for x in cols),
        cross=sum(a * b for a, b in zip(rows, cols)),
        transpose=sum(off[i][j] * off[j][i] for i in range(n) for j in range(n)),
        total_squared=sum(rows) ** 2,
    )


def _exact(x):
    """Python integers become SymPy integers (so that 1/n stays exact); anything else is kept."""
    return sp.Integer(x) if isinstance(x, int) else x


def inclusion_probabilities(n, m) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    r"""Inclusion probabilities $p_2, p_{12}, p_{21}, p_{22}$ of a uniform m-subset M of n positions.

    $p_2 = P(i \in M, j \notin M)$, $p_{12} = P(i \in M; j, l \notin M)$, $p_{21} = P(i, k \in M; j \notin M)$,
    $p_{22} = P(i, k \in M; j, l \notin M)$ for distinct positions: falling factorials
    $m^{\underline a} (n - m)^{\underline b} / n^{\underline{a + b}}$.
    """
    n, m = _exact(n), _exact(m)
    return (
        m * (n - m) / (n * (n - 1)),
        m * (n - m) * (n - m - 1) / (n * (n - 1) * (n - 2)),
        m * (m - 1) * (n - m) / (n * (n - 1) * (n - 2)),
        m * (m - 1) * (n - m) * (n - m - 1) / (n * (n - 1) * (n - 2) * (n - 3)),
    )


def copy_moments(q: Invariants, n, m, vocab) -> tuple[sp.Expr, sp.Expr]:
    r"""Signal squared $\lVert E c\rVert^2$ and $E\lVert c\rVert^2$ of the copy-readout coordinates (P12).

    Notes
    -----
    $E\langle W, Q\rangle = -S p_2 / (mV)$ and
    $E\langle W, Q\rangle^2 = \frac{1}{m^2V^2} E_M\big[(\sum_{i \in M, j \notin M} Q_{ij})^2\big]
    + \frac{1}{m^2}\big(\frac1V - \frac1{V^2}\big) A p_2$ with
    $E_M[\cdot] = A p_2 + (R - A) p_{12} + (C - A) p_{21} + (S^2 - R - C - 2X + A + T) p_{22}$:
    pairs of active entries $(i, j), (k, l)$ either coincide, share the masked query ($k = i$), share the
    unmasked key ($l = j$), or are four distinct positions ($k = j$ or $l = i$ is impossible). Needs $n \ge 4$.
    """
    n, m, vocab = _exact(n), _exact(m), _exact(vocab)
    p2, p12, p21, p22 = inclusion_probabilities(n, m)
    a, r, c, x, t, s2 = q
    mask_second = a * p2 + (r - a) * p12 + (c - a) * p21 + (s2 - r - c - 2 * x + a + t) * p22
    second = (mask_second / vocab**2 + (1 / vocab - 1 / vocab**2) * a * p2) / (m**2 * n**2)
    return s2 * p2**2 / (n * m * vocab) ** 2, second


def detectability(q: Invariants, n, m, vocab) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    r"""Signal squared, noise $\mathrm{tr\,Cov}\, c$ and $B^*$ = noise / signal squared, exact (P12)."""
    signal_squared, second = copy_moments(q, n, m, vocab)
    noise = second - signal_squared
    return signal_squared, noise, noise / signal_squared


def toeplitz_invariants(n, diagonal, total, row_squares, frobenius) -> Invariants:
    r"""Invariants of the unit non-gauge part of a symmetric matrix X from four of its sums.

    Parameters: X's diagonal value $d_0$ (constant), $s_1 = \mathbf 1^\top X \mathbf 1$,
    $s_2 = \sum_i r_i^2$ (row sums $r_i$) and $s_3 = \lVert X\rVert_F^2$.

    Notes
    -----
    $Y = X - X\mathbf 1\mathbf 1^\top/n$, $Y_{ij} = X_{ij} - r_i/n$, has $\lVert Y\rVert_F^2 = s_3 - s_2/n$;
    off the diagonal its row sums are $r_i/n - d_0$, its column sums $(1 + \frac1n) r_j - d_0 - s_1/n$
    (X symmetric), and the six sums follow by expanding the squares (hand derivation, checked
    exactly against the definitions in ``derivations/p12_scaling.py``).
    """
    n = _exact(n)
    d0, s1, s2, s3 = (_exact(v) for v in (diagonal, total, row_squares, frobenius))
    alpha, beta = 1 + 1 / n, d0 + s1 / n
    off = s3 - n * d0**2 - 2 * (s2 - d0 * s1) / n
    raw = Invariants(
        area=off + (n - 1) * s2 / n**2,
        rows=s2 / n**2 - 2 * d0 * s1 / n + n * d0**2,
        columns=alpha**2 * s2 - 2 * alpha * beta * s1 + n * beta**2,
        cross=alpha * s2 / n - beta * s1 / n - alpha * d0 * s1 + n * d0 * beta,
        transpose=off + (s1**2 - s2) / n**2,
        total_squared=(s1 / n - n * d0) ** 2,
    )
    norm_squared = s3 - s2 / n
    return Invariants(*(v / norm_squared for v in raw))


def band_sums(n) -> tuple[sp.Expr, ...]:
    r"""$(d_0, s_1, s_2, s_3)$ of $D_1 + D_{-1}$ (ones where $|i - j| = 1$): $0, 2(n-1), 4n - 6, 2(n-1)$."""
    n = _exact(n)
    return 0 * n, 2 * (n - 1), 4 * n - 6, 2 * (n - 1)


def _lag_sum(n, x, end) -> sp.Expr:
    r"""$\sum_{i, j < n} x^{|i - j|} = n + 2\sum_{k=1}^{n-1} (n - k) x^k = n + 2x(n - nx - 1 + x^n)/(1 - x)^2$.

    ``end`` stands for $x^n$.
    """
    return n + 2 * x * (n - n * x - 1 + end) / (1 - x) ** 2


def proximity_sums(n, lam, end=None) -> tuple[sp.Expr, ...]:
    r"""$(d_0, s_1, s_2, s_3)$ of $K_{ij} = \lambda^{|i-j|}$, $0 < \lambda < 1$, in closed form (geometric sums).

    Notes
    -----
    Row sums $r_i = (1 + \lambda - \lambda^{i+1} - \lambda^{n-i})/(1 - \lambda)$; squaring and summing the
    geometric terms over $i = 0..n-1$ gives
    $(1 - \lambda)^2 s_2 = n(1 + \lambda)^2 - 4\lambda(1 + \lambda)(1 - \lambda^n)/(1 - \lambda)
    + 2\lambda^2(1 - \lambda^{2n})/(1 - \lambda^2) + 2n\lambda^{n+1}$. ``end`` is $\lambda^n$ (default);
    ``end = 0`` drops the terms that are exponentially small in n (for the leading orders).
    """
    n, lam = _exact(n), _exact(lam)
    if end is None:
        end = lam ** (int(n) if isinstance(n, sp.Integer) else n)
    s2 = (
        n * (1 + lam) ** 2
        - 4 * lam * (1 + lam) * (1 - end) / (1 - lam)
        + 2 * lam**2 * (1 - end**2) / (1 - lam**2)
        + 2 * n * lam * end
    ) / (1 - lam) ** 2
    return 0 * n + 1, _lag_sum(n, lam, end), s2, _lag_sum(n, lam**2, end**2)


def circulant_invariants(n, even) -> Invariants:
    r"""Invariants summed over an orthonormal basis of the zero-sum circulants (``even`` = [n even]).

    Notes
    -----
    $\sum_l \langle W, Q_l\rangle^2 = \sum_{k=1}^{n-1}\langle W, C_k\rangle^2
    - \langle W, \mathbf 1\mathbf 1^\top\rangle^2/n^2$ ($C_0$ is diagonal). Each $C_k$ has
    $A = R = C = X = 1$, $S^2 = n$ and $T = [2k \equiv 0]$ (only $k = n/2$ is symmetric);
    $\mathbf 1\mathbf 1^\top$ has $A = T = n(n-1)$, $R = C = X = n(n-1)^2$, $S^2 = n^2(n-1)^2$.
    Hence $A = (n-1)^2/n$, $R = C = X = (n-1)/n$, $T = [n \text{ even}] - (n-1)/n$, $S^2 = n - 1$.
    """
    n, even = _exact(n), _exact(even)
    rows = (n - 1) / n
    return Invariants((n - 1) ** 2 / n, rows, rows, rows, even - rows, n - 1)


def family_invariants(name: str, n, lam=None) -> Invariants:
    r"""Invariants of the non-gauge part of ``band_1``, ``proximity`` ($\lambda = e^{-1/l}$) or ``circulant``.

    ``n`` must be an integer for ``circulant`` (its parity enters) unless ``even`` is substituted later.
    """
    if name == "band_1":
        return toeplitz_invariants(n, *band_sums(n))
    if name == "proximity":
        return toeplitz_invariants(n, *proximity_sums(n, lam))
    if name == "circulant":
        return circulant_invariants(n, 1 - sp.Mod(n, 2) if isinstance(n, sp.Basic) else 1 - int(n) % 2)
    raise ValueError(f"name must be one of {{band_1, proximity, circulant}}, got {name!r}")


def leading_order(value, n: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    r"""Exponent $a$ and coefficient $c$ with $value = c\, n^a (1 + O(1/n))$, $n \to \infty$, value rational in n.

    ``value``: an element of a rational-function field (``sympy.field``) that has n among its
    generators. The difference of the degrees in n of numerator and denominator, and the ratio of
    their leading coefficients in n.
    """
    top, bottom = sp.Poly(value.numer.as_expr(), n), sp.Poly(value.denom.as_expr(), n)
    return sp.Integer(top.degree() - bottom.degree()), sp.factor(top.LC() / bottom.LC())


def leading_orders() -> dict:
    r"""Exponent and coefficient of signal squared, noise and $B^*$ per family with $m = rn$, $n \to \infty$ (P12).

    ``{family: {"signal^2" | "noise" | "B*": (exponent, coefficient)}}`` for ``circulant``, ``band_1`` and
    ``proximity`` (terms in $\lambda^n$ dropped), coefficients in the symbols r, V and $\lambda$; computed in
    the rational-function field $\mathbb Q(n, r, V, \lambda)$.
    """
    _, n, r, vocab, lam = sp.field("n, r, V, lambda", sp.QQ)
    invariants = {
        "circulant": circulant_invariants(n, 1),
        "band_1": toeplitz_invariants(n, *band_sums(n)),
        "proximity": toeplitz_invariants(n, *proximity_sums(n, lam, end=0)),
    }
    symbol = sp.Symbol("n")
    quantities = ("signal^2", "noise", "B*")
    return {
        name: dict(zip(quantities, (leading_order(v, symbol) for v in detectability(q, n, r * n, vocab))))
        for name, q in invariants.items()
    }


def label_band_factor(n) -> sp.Expr:
    r"""Label coordinate on ``band_1`` per unit $-(w_0 + w_{n-1})$: $\sqrt{n / (2(n^2 - 3n + 3))}$ (P4, P12).

    Notes
    -----
    A label gradient $\mathbf 1 w^\top$ ($w^\top \mathbf 1 = 0$) meets a unit direction Q as
    $\langle w, Q^\top\mathbf 1\rangle$; the column sums of $D_1 + D_{-1}$ are 2 except 1 at both ends,
    so with $\nu^2 = s_3 - s_2/n$ the coordinate is $-(w_0 + w_{n-1})/\nu$, $\nu^2 = 2(n^2 - 3n + 3)/n$.
    """
    n = _exact(n)
    _, _, s2, s3 = band_sums(n)
    return 1 / sp.sqrt(s3 - s2 / n)
