r"""SymPy constructions behind the derivations of P1-P7 (``derivations/``) and their tests.

Only the derivation scripts, the tests and ``blindspot.verify`` import this module; the rest
of the package never imports SymPy. Matrices are ``sympy.Matrix`` in the row-vector convention
of ``blindspot.model``: $A = \mathrm{softmax}_{row}(S)$, $o_i = \sum_j A_{ij} v_j$ with $v_j$
the rows of ``values``.

Sizes. Functions that build a matrix of symbols take a *concrete* size $n$ (SymPy cannot
build an $n \times n$ matrix of symbols for symbolic $n$); the general-$n$ statements are
closed forms in a symbol $n$ (``band_visible_fraction``, ``expected_copy_gradient``,
``sticky_row_sum``) or arguments in the derivations.
"""

import sympy as sp


def score_matrix(n: int, name: str = "s") -> sp.Matrix:
    r"""Return an $n \times n$ matrix of real symbols $s_{ij}$ (concrete $n \ge 1$)."""
    _check_size("n", n)
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{i}{j}" if n <= 10 else f"{name}_{i}_{j}", real=True))


def symbol_matrix(rows: int, cols: int, name: str) -> sp.Matrix:
    """Return a ``rows x cols`` matrix of real symbols named ``name_{i}{j}``."""
    _check_size("rows", rows)
    _check_size("cols", cols)
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def row_softmax(s: sp.Matrix) -> sp.Matrix:
    r"""Row softmax $A_{ij} = e^{s_{ij}} / \sum_k e^{s_{ik}}$ (P1)."""
    rows = []
    for i in range(s.rows):
        e = [sp.exp(s[i, j]) for j in range(s.cols)]
        total = sp.Add(*e)
        rows.append([x / total for x in e])
    return sp.Matrix(rows)


def softmax_jacobian(a: sp.Matrix) -> sp.Matrix:
    r"""Return the closed form $\partial a / \partial s = \mathrm{diag}(a) - a a^\top$ of one softmax row (P1).

    ``a`` is a row or column vector of probabilities.
    """
    a = sp.Matrix(list(a))
    return sp.diag(*a) - a * a.T


def softmax_hessian(a: sp.Matrix) -> list[sp.Matrix]:
    r"""Return the closed-form Hessians $\partial^2 a_j / \partial s_k \partial s_l$, one matrix per $j$ (P1, P7).

    Notes
    -----
    $\partial^2 a_j/\partial s_k\partial s_l = a_j[(\delta_{jk} - a_k)(\delta_{jl} - a_l)
    - a_k(\delta_{kl} - a_l)]$.
    """
    a = list(a)
    n = len(a)
    d = sp.KroneckerDelta
    return [
        sp.Matrix(n, n, lambda k, q, j=j: a[j] * ((d(j, k) - a[k]) * (d(j, q) - a[q]) - a[k] * (d(k, q) - a[q])))
        for j in range(n)
    ]


def autodiff_softmax_jacobian(s_row: sp.Matrix) -> sp.Matrix:
    r"""SymPy derivative of the softmax of one symbolic row: $J_{jk} = \partial a_j/\partial s_k$."""
    a = row_softmax(sp.Matrix([list(s_row)]))
    return a.T.jacobian(list(s_row))


def autodiff_softmax_hessian(s_row: sp.Matrix) -> list[sp.Matrix]:
    """SymPy Hessians of the softmax of one symbolic row, one matrix per output entry."""
    a = row_softmax(sp.Matrix([list(s_row)]))
    return [sp.hessian(a[0, j], list(s_row)) for j in range(len(s_row))]


def column_masses(a: sp.Matrix) -> sp.Matrix:
    r"""Column masses $m = A^\top 1$, a column vector (P2)."""
    return a.T * sp.ones(a.rows, 1)


def tanh_mlp(w1: sp.Matrix, b1: sp.Matrix, w2: sp.Matrix, b2: sp.Matrix):
    r"""Return the position-wise MLP $\phi(o) = \tanh(o W_1 + b_1) W_2 + b_2$ on a row vector ``o``."""

    def phi(o: sp.Matrix) -> sp.Matrix:
        return (o * w1 + b1).applyfunc(sp.tanh) * w2 + b2

    return phi


def attention_outputs(a: sp.Matrix, values: sp.Matrix, *, residual: sp.Matrix | None = None) -> sp.Matrix:
    r"""Rows $o_i = \sum_j A_{ij} v_j$ (plus $h_i$ when ``residual`` holds the rows $h_i$)."""
    o = a * values
    return o + residual if residual is not None else o


def mean_pooled_output(a: sp.Matrix, values: sp.Matrix, *, phi=None, residual: sp.Matrix | None = None) -> sp.Matrix:
    r"""Mean-pooled features $z = \frac1n\sum_i \phi(o_i)$, a row vector (P2, P4, P7).

    ``phi=None`` is the identity (no MLP).
    """
    o = attention_outputs(a, values, residual=residual)
    rows = [o[i, :] if phi is None else phi(o[i, :]) for i in range(o.rows)]
    return sum(rows, sp.zeros(1, o.cols)) / o.rows


def cross_entropy(logits: sp.Matrix, label: int) -> sp.Expr:
    r"""$-\log\mathrm{softmax}(\text{logits})_{label}$ of a row vector of logits."""
    return sp.log(sum(sp.exp(x) for x in logits)) - logits[label]


def classification_loss(
    s: sp.Matrix,
    values: sp.Matrix,
    head: sp.Matrix,
    bias: sp.Matrix,
    label: int,
    *,
    phi=None,
    residual: sp.Matrix | None = None,
) -> sp.Expr:
    """Mean-pooled classification cross-entropy $L_{cls}(S)$ with logits $z W + b$ (P2-P4, P7)."""
    z = mean_pooled_output(row_softmax(s), values, phi=phi, residual=residual)
    return cross_entropy(z * head + bias, label)


def score_gradient(loss: sp.Expr, s: sp.Matrix) -> sp.Matrix:
    r"""Matrix of partial derivatives $\partial L/\partial s_{ij}$."""
    return s.applyfunc(lambda x: sp.diff(loss, x))


def at_uniform(expr, s: sp.Matrix):
    """Substitute $S = 0$ (uniform attention) into ``expr``."""
    return expr.subs({x: 0 for x in s})


def mean_pool_uniform_gradient(u: sp.Matrix) -> sp.Matrix:
    r"""Return the closed form $\partial L/\partial S = \frac1n 1 (u - \bar u 1)^\top$ at uniform attention (P4).

    ``u`` holds $u_j = \partial L/\partial A_{ij}$, the same for every query $i$ at uniform
    attention with mean pooling and no (residual + nonlinear MLP).
    """
    u = sp.Matrix(list(u)).T
    n = u.cols
    return sp.ones(n, 1) * (u - sp.ones(1, n) * sum(u) / n) / n


def mean_pool_uniform_u(
    values: sp.Matrix,
    head: sp.Matrix,
    bias: sp.Matrix,
    label: int,
    *,
    phi=None,
    phi_jacobian=None,
    residual_mean: sp.Matrix | None = None,
) -> sp.Matrix:
    r"""$u_j = \frac1n\, v_j J_\phi(\bar v) W \nabla_{\text{logits}}$ at uniform attention (P4), a row.

    At $S = 0$ every $o_i = \bar v$; $\nabla_{\text{logits}} = \mathrm{softmax}(\text{logits}) - e_y$.
    ``phi=None`` is the identity; otherwise ``phi_jacobian(o)`` returns $J_\phi(o)$ (d x d, row
    convention $\phi(o + \delta) \approx \phi(o) + \delta J_\phi(o)$). ``residual_mean`` is
    $\bar h$ of a residual without MLP (it shifts $z$ only); a residual with an MLP has no such form.
    """
    if phi is not None and residual_mean is not None:
        raise ValueError("residual_mean must be None when phi is given (residual + MLP breaks P4)")
    n = values.rows
    vbar = sp.ones(1, n) * values / n
    z = vbar if phi is None else phi(vbar)
    if residual_mean is not None:
        z = z + residual_mean
    logits = z * head + bias
    p = logits.applyfunc(sp.exp)
    p = p / sum(p)
    delta = p - sp.Matrix([[1 if c == label else 0 for c in range(p.cols)]])
    jac = sp.eye(values.cols) if phi is None else phi_jacobian(vbar)
    return (values * jac * head * delta.T / n).T


def tanh_mlp_jacobian(w1: sp.Matrix, b1: sp.Matrix, w2: sp.Matrix):
    r"""$J_\phi(o) = W_1 \mathrm{diag}(1 - \tanh^2(o W_1 + b_1)) W_2$ of ``tanh_mlp`` (row convention)."""

    def jac(o: sp.Matrix) -> sp.Matrix:
        t = (o * w1 + b1).applyfunc(sp.tanh)
        return w1 * sp.diag(*[1 - x**2 for x in t]) * w2

    return jac


def circulant(c) -> sp.Matrix:
    r"""Circulant matrix $C_{ij} = c_{(j - i) \bmod n}$ (P3)."""
    c = list(c)
    n = len(c)
    return sp.Matrix(n, n, lambda i, j: c[(j - i) % n])


def toeplitz(n: int, offsets: dict) -> sp.Matrix:
    r"""Open-boundary Toeplitz matrix $T_{ij} = c_{j - i}$, $c$ given as {offset: value} (P3, P4)."""
    _check_size("n", n)
    return sp.Matrix(n, n, lambda i, j: offsets.get(int(j - i), 0))


def band(n: int, k: int) -> sp.Matrix:
    r"""Band direction $B_k$: ones where $|i - j| = k$, an $n \times n$ 0/1 Toeplitz matrix (P4)."""
    _check_size("n", n)
    if not 0 <= k < n:
        raise ValueError(f"k must be an integer in [0, {n - 1}], got {k!r}")
    return toeplitz(n, {k: 1, -k: 1})


def band_visible_fraction_direct(n: int, k: int) -> sp.Rational:
    r"""$\cos^2(B_k, U) = \lVert c - \bar c 1\rVert^2 / (n \lVert B_k\rVert^2)$, $c = B_k^\top 1$, exact (P4).

    Computed from the definition with exact integers (no closed form), for concrete ``n``, ``k``.
    """
    _check_size("n", n)
    if not 0 <= k < n:
        raise ValueError(f"k must be an integer in [0, {n - 1}], got {k!r}")
    c = [sum(1 for i in range(n) if abs(i - j) == k) for j in range(n)]
    total = sum(c)  # = ||B_k||^2, entries are 0/1
    centred_sq = sp.Rational(n * sum(x * x for x in c) - total * total, n)
    return centred_sq / (n * total)


def band_visible_fraction(n=None, k=None) -> sp.Expr:
    r"""Return the closed form of the visible fraction of band $B_k$ for general $n$, $k$ (P4).

    Notes
    -----
    $\cos^2(B_k, U) = k(n - 2k)/(n^2(n - k))$ for $2k \le n$ and $(2k - n)/n^2$ for
    $2k > n$ ($0 \le k < n$). With ``n``/``k`` omitted the result is in symbols $n$, $k$.
    """
    n = sp.Symbol("n", positive=True, integer=True) if n is None else sp.Integer(n)
    k = sp.Symbol("k", nonnegative=True, integer=True) if k is None else sp.Integer(k)
    return sp.Piecewise((k * (n - 2 * k) / (n**2 * (n - k)), 2 * k <= n), ((2 * k - n) / n**2, True))


def gradient_span_basis(n: int) -> sp.Matrix:
    r"""Columns: $\mathrm{vec}(1 w^\top)$ for $w = e_j - e_{n-1}$, a basis of $U$ (P4), $n^2 \times (n-1)$."""
    _check_size("n", n)
    cols = []
    for j in range(n - 1):
        w = sp.zeros(1, n)
        w[j], w[n - 1] = 1, -1
        cols.append(list(sp.ones(n, 1) * w))
    return sp.Matrix(cols).T


def positional_gradient(p: sp.Matrix, u: sp.Matrix) -> sp.Matrix:
    r"""$\partial L/\partial W = \frac1n (P^\top 1)((u - \bar u 1)^\top P)$ at $W = 0$, $S = P W P^\top$ (P5)."""
    return p.T * mean_pool_uniform_gradient(u) * p


def taylor_coefficients(f: sp.Expr, t: sp.Symbol, order: int) -> list[sp.Expr]:
    """Coefficients $f^{(r)}(0)/r!$, $r = 0..order$, of $f(t)$ (P3, P7)."""
    out, g = [], f
    for r in range(order + 1):
        out.append(g.subs(t, 0) / sp.factorial(r))
        g = sp.diff(g, t)
    return out


def circulant_second_order(
    values: sp.Matrix, direction: sp.Matrix, head: sp.Matrix, bias: sp.Matrix, label: int, *, phi, phi_second
) -> sp.Expr:
    r"""Return the closed form of the $t^2$ coefficient of $L_{cls}(tC)$ at $S = 0$ for circulant $C$ (P7).

    Notes
    -----
    $\tfrac12 L''(0) = \tfrac12 \nabla_z L \cdot \frac1n \sum_i \phi''(\bar v)[\dot o_i, \dot o_i]$,
    $\dot o_i = \frac1n\sum_j (C_{ij} - \bar C_{i})\, v_j$. ``phi_second(o, delta)`` returns
    the row vector $\phi''(o)[\delta, \delta]$ (zero without an MLP).
    """
    n = values.rows
    vbar = sp.ones(1, n) * values / n
    logits = phi(vbar) * head + bias
    p = logits.applyfunc(sp.exp)
    p = p / sum(p)
    grad_z = head * (p - sp.Matrix([[1 if c == label else 0 for c in range(p.cols)]])).T
    total = sp.zeros(1, values.cols)
    for i in range(n):
        row = direction[i, :]
        rbar = sum(row) / n
        o_dot = (row - sp.ones(1, n) * rbar) * values / n
        total += phi_second(vbar, o_dot)
    return sp.Rational(1, 2) * (total * grad_z)[0, 0] / n


def tanh_mlp_second(w1: sp.Matrix, b1: sp.Matrix, w2: sp.Matrix):
    r"""$\phi''(o)[\delta, \delta] = (\tanh''(a) \odot (\delta W_1)^2) W_2$, $a = o W_1 + b_1$ (P7)."""

    def second(o: sp.Matrix, delta: sp.Matrix) -> sp.Matrix:
        a = o * w1 + b1
        dw = delta * w1
        return sp.Matrix([[-2 * sp.tanh(a[q]) * (1 - sp.tanh(a[q]) ** 2) * dw[q] ** 2 for q in range(a.cols)]]) * w2

    return second


def copy_reconstruction_loss(s: sp.Matrix, hits: sp.Matrix, masked: list[int]) -> sp.Expr:
    r"""Copy-readout loss $-\frac1m \sum_{i \in M} \sum_j A_{ij} t_{ij}$ (P6).

    ``hits[i, j]`` is $t_{ij} = [j \notin M][x_j = x_i]$ (MASK never equals a token), symbolic or 0/1.
    """
    a = row_softmax(s)
    return -sum(a[i, j] * hits[i, j] for i in masked for j in range(s.cols)) / len(masked)


def expected_copy_gradient(agreement: sp.Matrix, m) -> sp.Matrix:
    r"""Exact $E[\partial L_{rec}/\partial S]$ at uniform attention, copy readout (P6).

    Parameters
    ----------
    agreement
        $\rho_{ij} = P(x_i = x_j)$, an $n \times n$ matrix (concrete $n$, entries symbolic or exact).
    m
        Number of masked positions, drawn uniformly among the $\binom nm$ subsets, independent of $x$.

    Returns
    -------
    sympy.Matrix
        $-\frac{n - m}{n^2 (n - 1)}\,[\tilde\rho_{ij} - \frac1n\sum_k \tilde\rho_{ik}]$,
        $\tilde\rho = \rho$ off the diagonal and $0$ on it.
    """
    n = agreement.rows
    rho = sp.Matrix(n, n, lambda i, j: 0 if i == j else agreement[i, j])
    factor = -sp.sympify(n - m) / (n**2 * (n - 1))
    return factor * (rho - rho * sp.ones(n, n) / n)


def design_copy_gradient(agreement: sp.Matrix) -> sp.Matrix:
    r"""Return P6's first statement $-\frac1{n^2}[\rho_{ij} - \frac1n\sum_k \rho_{ik}]$ (not exact: a control)."""
    n = agreement.rows
    return -(agreement - agreement * sp.ones(n, n) / n) / n**2


def sticky_agreement(n: int, vocab, lam) -> sp.Matrix:
    r"""$P(x_i = x_j) = 1/V + (1 - 1/V)\lambda^{|i - j|}$ of the sticky chain (P6)."""
    _check_size("n", n)
    return sp.Matrix(n, n, lambda i, j: 1 / sp.sympify(vocab) + (1 - 1 / sp.sympify(vocab)) * lam ** abs(i - j))


def sticky_row_sum(i, n, lam) -> sp.Expr:
    r"""$\sum_{k \ne i} \lambda^{|i - k|} = \lambda(2 - \lambda^i - \lambda^{n-1-i})/(1 - \lambda)$ (P6)."""
    return lam * (2 - lam**i - lam ** (n - 1 - i)) / (1 - lam)


def sticky_chain_probability(tokens, vocab: int, lam) -> sp.Expr:
    """Exact probability of a token sequence under the sticky chain (first token uniform) (P6)."""
    p = sp.Rational(1, vocab)
    for a, b in zip(tokens[:-1], tokens[1:]):
        p *= (lam if a == b else 0) + (1 - lam) / vocab
    return p


def _check_size(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def canonical(expr: sp.Expr) -> sp.Expr:
    r"""Expand the arguments of ``exp``/``tanh`` and ``cancel``: $0$ exactly when ``expr`` is identically $0$.

    With canonical arguments the expression is a rational function of the distinct $e^{(\cdot)}$ and
    $\tanh(\cdot)$ atoms and the remaining symbols, which ``cancel`` decides exactly; much faster
    than ``simplify`` on the loss gradients of P4 and P7.
    """
    expr = expr.replace(sp.tanh, lambda x: sp.tanh(sp.expand(x))).replace(sp.exp, lambda x: sp.exp(sp.expand(x)))
    return sp.cancel(sp.expand(expr))
