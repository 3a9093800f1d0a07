"""P11: residual + tanh MLP at uniform attention, the label gradient on the circulants is third order in the MLP's scale."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main, tex

from blindspot import symbolic as sym

N, D, HIDDEN, CLASSES = 3, 1, 2, 2


def _circulant_part(g: sp.Matrix) -> list:
    """Lag sums t_k = sum_i G_{i, i+k} minus their mean: the zero-sum circulant part of G (up to 1/sqrt n)."""
    n = g.rows
    sums = [sum(g[i, (i + k) % n] for i in range(n)) for k in range(n)]
    mean = sum(sums) / n
    return [x - mean for x in sums]


def _taylor_tanh(t):
    r"""$\tanh(b + y)$ to third order in y, given $t = \tanh b$ (exact for derivatives of order $\le 3$ at $y = 0$)."""
    return lambda y: t + (1 - t**2) * (y - t * y**2 + (t**2 - sp.Rational(1, 3)) * y**3)


def _model(eps, bias_tanh):
    r"""Score gradient at S = 0 of the residual + tanh MLP model (first layer eps W_1), loss F(z).

    ``bias_tanh``: the values $\tanh(b_1)$ of the hidden units' biases (0: no bias).

    F is a generic loss of the pooled features, replaced by its second-order Taylor polynomial at
    $z_0 = b_2$ (the features at eps = 0): exact for the eps^3 coefficient, since $z - z_0 = O(\varepsilon)$.
    """
    s = sym.score_matrix(N)
    h = sym.symbol_matrix(N, D, "h")
    wv = sp.Symbol("omega", real=True)
    w1, w2 = sym.symbol_matrix(D, HIDDEN, "a"), sym.symbol_matrix(HIDDEN, D, "g")
    b2, slope = sym.symbol_matrix(1, D, "e"), sym.symbol_matrix(D, 1, "f")
    curvature = sp.Matrix(D, D, lambda i, j: sp.Symbol(f"F_{min(i, j)}{max(i, j)}", real=True))
    hidden = [_taylor_tanh(t) for t in bias_tanh]

    def phi(o):
        pre = eps * o * w1
        return sp.Matrix([[hidden[k](pre[k]) for k in range(HIDDEN)]]) * w2 + b2

    dz = sym.mean_pooled_output(sym.row_softmax(s), wv * h, phi=phi, residual=h) - b2
    loss = (dz * slope)[0] + (dz * curvature * dz.T)[0] / 2
    grad = sym.at_uniform(sym.score_gradient(loss, s), s)
    return grad, dict(h=h, v=wv * h, w1=w1, w2=w2, slope=slope)


def _kappa3(parts) -> sp.Matrix:
    r"""$\kappa_{3,ij} = \frac1n (g_i - \bar g)^{(3)} \cdot (v_j - \bar v)$, $(g_i - \bar g)^{(3)} = -\frac1n [q_0 \circ (a_i^{\circ 2} - \overline{a^{\circ 2}})] W_1^\top$.

    $q_0 = \nabla F(z_0)^\top W_2^\top$ (with the cross-entropy head $\nabla F(z_0) = W_c (p_0 - e_y)$).
    """
    v, h, w1, w2 = parts["v"], parts["h"], parts["w1"], parts["w2"]
    q0 = parts["slope"].T * w2.T
    vbar = sp.ones(1, N) * v / N
    a = [(vbar + h[i, :]) * w1 for i in range(N)]
    squares = [x.applyfunc(lambda y: y**2) for x in a]
    mean_square = sum(squares, sp.zeros(1, HIDDEN)) / N
    rows = [-(q0.multiply_elementwise(sq - mean_square)) * w1.T / N for sq in squares]
    return sp.Matrix(N, N, lambda i, j: (rows[i] * (v[j, :] - vbar).T)[0] / N)


def _orders(grad, eps, count: int) -> list:
    """Circulant parts of the Taylor coefficients c_1..c_count of G(eps) (c_k = G^(k)(0)/k!)."""
    out, current = [], grad
    for k in range(1, count + 1):
        current = current.diff(eps)
        out.append(_circulant_part(current.subs(eps, 0) / sp.factorial(k)))
    return out


def markdown() -> str:
    """Derive P11 and return the Markdown text."""
    eps = sp.Symbol("epsilon", real=True)
    grad, parts = _model(eps, [0] * HIDDEN)
    c1, c2, c3 = _orders(grad, eps, 3)
    check(all(sym.canonical(x) == 0 for x in c1 + c2), "orders 1 and 2 vanish on the zero-sum circulants")
    closed = _circulant_part(_kappa3(parts))
    check(all(sym.canonical(x - y) == 0 for x, y in zip(c3, closed)), "order 3 equals kappa_3")
    check(any(sym.canonical(x) != 0 for x in closed), "kappa_3 is not identically zero")
    biased, _ = _model(eps, [sp.Rational(1, 2)] + [0] * (HIDDEN - 1))
    second = _orders(biased, eps, 2)[1]
    check(any(sym.canonical(x) != 0 for x in second), "a first-layer bias gives an order-2 term")
    return rf"""# P11: residual + MLP at uniform attention, to leading order in the MLP's scale

**Result (hand derivation for general $n$; fully symbolic check for $n = {N}$, $d = {D}$, hidden width
{HIDDEN}, {CLASSES} classes).** Mean pooling, residual, position-wise MLP
$\phi(o) = \tanh(\varepsilon\, o W_1 + b_1) W_2 + b_2$ with $b_1 = 0$, uniform attention ($S = 0$). On the
zero-sum circulants (orthogonal to the gauge and to U) the label gradient is
$$\partial L/\partial S = \varepsilon^3 \kappa_3 + O(\varepsilon^4), \qquad
\kappa_{{3,ij}} = \frac1n (g_i - \bar g)^{{(3)}}\cdot(v_j - \bar v), \qquad
(g_i - \bar g)^{{(3)}} = -\frac1n\big[q_0 \circ (a_i^{{\circ 2}} - \overline{{a^{{\circ 2}}}})\big] W_1^\top,$$
with $a_i = o_i W_1$, $o_i = \bar v + h_i$ and $q_0 = \nabla F(z_0)^\top W_2^\top$ for any loss $F$ of the
pooled features $z$, $z_0$ their value at $\varepsilon = 0$; with the cross-entropy head
$q_0 = (p_0 - e_y) W_c^\top W_2^\top$, $p_0$ the class probabilities at $\varepsilon = 0$. The orders $\varepsilon$ and $\varepsilon^2$ vanish. A first-layer bias $b_1 \ne 0$
brings an $\varepsilon^2$ term ($\tanh''(b_1) \ne 0$).

## Hypotheses

- Uniform attention, mean pooling, residual $o_i = \sum_j A_{{ij}} v_j + h_i$, $v_j = h_j W_V$.
- $\tanh$ MLP with first layer scaled by $\varepsilon$ and first-layer bias $0$ (the initialisation).
- A loss $F(z)$ of the mean-pooled features, twice differentiable at $z_0$ (the cross-entropy head is one).

## Steps

1. At $S = 0$, $\partial L/\partial S_{{ij}} = \frac1n (g_i - \bar g_{{\text{{row}}}})\cdots$: row $i$ is
   $\frac1n g_i\cdot(v_j - \bar v)$ (P1's softmax Jacobian), $g_i = \partial L/\partial o_i$; the part
   $\frac1n \bar g\cdot(v_j - \bar v)$ is in U, so only $g_i - \bar g$ reaches the zero-sum circulants.
2. $g_i = \frac1n \varepsilon\, [q \circ \tanh'(\varepsilon a_i)] W_1^\top$ with $q = \nabla F(z)^\top W_2^\top$;
   $\tanh'(\varepsilon a) = 1 - \varepsilon^2 a^2 + O(\varepsilon^4)$ and $q = q_0 + O(\varepsilon)$ is the same for every $i$,
   so $g_i - \bar g = -\frac{{\varepsilon^3}}n [q_0 \circ (a_i^{{\circ 2}} - \overline{{a^{{\circ 2}}}})] W_1^\top + O(\varepsilon^4)$.
3. SymPy builds the whole model ($n = {N}$, symbolic embeddings, value scale, MLP and output bias), with
   $\tanh(b + y)$ replaced by its third-order Taylor polynomial in $y = \varepsilon\, o W_1$ and $F$ by its
   second-order one at $z_0$ (both exact for the derivatives of order $\le 3$ at $\varepsilon = 0$, since
   $z - z_0 = O(\varepsilon)$ and $g_i - \bar g$ carries a factor $\varepsilon$), differentiates the loss in every $S_{{ij}}$ at $S = 0$, takes the first three derivatives in $\varepsilon$ at 0,
   and reads each on the zero-sum circulants (lag sums minus their mean): orders 1 and 2 are $0$ and
   order 3 equals $\kappa_3$'s, exactly. With a first-layer bias ($\tanh b_1 = (\tfrac12, 0)$) the order-2 part is not $0$.

## Result

$$\langle \partial L_{{cls}}/\partial S, C\rangle = \varepsilon^3 \langle \kappa_3, C\rangle + O(\varepsilon^4) \quad (C \text{{ a zero-sum circulant}}),$$
for example, for $n = {N}$ the lag-0 entry of $\kappa_3$'s circulant part is
${tex(sp.factor(closed[0]))}$.
"""


if __name__ == "__main__":
    main(__file__, markdown)
