"""P7: locally, not globally, blind: second-order Taylor coefficient along a circulant direction."""

# ruff: noqa: E501  (the Markdown text keeps its LaTeX lines whole)

import sympy as sp
from _common import check, main

from blindspot import symbolic as sym

N, D, HIDDEN, CLASSES = 3, 1, 1, 2


def markdown() -> str:
    """Derive P7 and return the Markdown text."""
    t = sp.Symbol("t", real=True)
    c = sp.symbols(f"c_0:{N}", real=True)
    direction = sym.circulant(c)
    v = sym.symbol_matrix(N, D, "v")
    w1, b1 = sym.symbol_matrix(D, HIDDEN, "a"), sym.symbol_matrix(1, HIDDEN, "b")
    w2, b2 = sym.symbol_matrix(HIDDEN, D, "g"), sym.symbol_matrix(1, D, "e")
    head, bias = sym.symbol_matrix(D, CLASSES, "w"), sym.symbol_matrix(1, CLASSES, "beta")
    phi = sym.tanh_mlp(w1, b1, w2, b2)
    loss = sym.classification_loss(t * direction, v, head, bias, 0, phi=phi)
    coeffs = sym.taylor_coefficients(loss, t, 2)
    check(sym.canonical(coeffs[1]) == 0, "first order zero with MLP")
    closed = sym.circulant_second_order(
        v, direction, head, bias, 0, phi=phi, phi_second=sym.tanh_mlp_second(w1, b1, w2)
    )
    check(sym.canonical(coeffs[2] - closed) == 0, "second-order closed form")
    point = {x: sp.Rational(i + 1, 4) for i, x in enumerate(list(v) + list(w1) + list(w2) + list(head) + list(c))}
    point.update({x: 0 for x in list(b1) + list(b2) + list(bias)})
    value = sp.N(closed.subs(point), 12)
    check(value != 0, "non-zero with MLP")
    # without MLP: every order vanishes (P3); check orders 1..2 symbolically, d = 1
    plain = sym.taylor_coefficients(sym.classification_loss(t * direction, v, head, bias, 0), t, 2)
    check(all(sym.canonical(x) == 0 for x in plain[1:]), "orders 1-2 zero without MLP")
    return rf"""# P7: locally, not globally, blind

**Result (proved for general $n$; symbolic check $n = {N}$, $d = {D}$, hidden width {HIDDEN}, {CLASSES} classes).**
Along a circulant direction $C$ at uniform attention, with mean pooling and no residual:

- with a position-wise $\phi$ (here the $\tanh$ MLP), the first-order coefficient of $L_{{cls}}(tC)$ is $0$
  (P4) and the second-order coefficient is
  $$\frac12 \frac{{d^2}}{{dt^2}} L_{{cls}}(tC)\Big|_{{t=0}} = \frac{{1}}{{2n}} \sum_i \phi''(\bar v)[\dot o_i, \dot o_i]\cdot \nabla_z L,
  \qquad \dot o_i = \frac1n \sum_j (C_{{ij}} - \bar C_i)\, v_j,$$
  generically non-zero: label supervision sees the circulant family only through curvature, a flat
  (first-order blind) direction with non-zero second derivative at initialisation;
- without $\phi$ every Taylor coefficient vanishes (P3).

The Gauss-Newton part $\dot z^\top \nabla^2_z L\, \dot z$ of this coefficient is $0$ because $\dot z = 0$: the
whole second-order coefficient is *functional* (it comes from $\phi''$ and from $\ddot z$, and
$\sum_i \ddot o_i = 0$). The Hessian restricted to the blind families, with its Gauss-Newton /
functional split, is measured numerically by the curvature tools.

## Hypotheses

- $S = tC$, $C$ circulant; mean pooling; no residual; $\phi$ position-wise and twice differentiable.

## Steps

1. Every row of $A(t) = \mathrm{{softmax}}_{{row}}(tC)$ is a permutation of row $0$, and $A(t)$ is doubly stochastic
   (P3), so $m(t) = 1$ and $\sum_i o_i(t) = \sum_j m_j(t) v_j = \sum_j v_j$ for all $t$: $\sum_i \dot o_i = \sum_i \ddot o_i = 0$.
2. By P1, $\dot o_i = \sum_j J_0 (C_i)_j v_j = \frac1n\sum_j (C_{{ij}} - \bar C_i) v_j$ with $\bar C_i$ the mean of row $i$.
3. $z(t) = \frac1n\sum_i \phi(o_i(t))$ and $o_i(0) = \bar v$: $\dot z = \frac1n(\sum_i \dot o_i) J_\phi(\bar v) = 0$ and
   $\ddot z = \frac1n \sum_i \big(\ddot o_i J_\phi(\bar v) + \phi''(\bar v)[\dot o_i, \dot o_i]\big) = \frac1n\sum_i \phi''(\bar v)[\dot o_i, \dot o_i]$.
4. $\frac{{d^2}}{{dt^2}} L = \dot z^\top \nabla_z^2 L\, \dot z + \ddot z \cdot \nabla_z L = \ddot z\cdot\nabla_z L$,
   with $\nabla_z L = W(\mathrm{{softmax}}(\ell) - e_y)$. For $\phi(o) = \tanh(o W_1 + b_1) W_2 + b_2$,
   $\phi''(o)[\delta, \delta] = \big(\tanh''(a) \odot (\delta W_1)^{{\odot 2}}\big) W_2$, $a = oW_1 + b_1$,
   $\tanh'' = -2\tanh(1 - \tanh^2)$.
5. SymPy (all parameters and $c_0, \dots, c_{{n-1}}$ symbols): the Taylor coefficients of $L_{{cls}}(tC)$ computed by
   differentiation satisfy: order 1 is exactly $0$; order 2 equals the closed form exactly (`cancel` of the
   difference after canonicalising the arguments of $\exp$ and $\tanh$). At the rational point
   (parameters $1/4, 2/4, \dots$ in order, biases $0$) the coefficient is ${value}$ (exact value evaluated
   to 12 digits), so it is not identically zero.
6. Without the MLP, the coefficients of orders $1, 2$ are exactly $0$ (SymPy), as P3 proves for all orders.

## Result

$$[t^1]\,L_{{cls}}(tC) = 0,\qquad [t^2]\,L_{{cls}}(tC) = \frac1{{2n}}\sum_i \phi''(\bar v)[\dot o_i, \dot o_i]\cdot\nabla_z L
\;\begin{{cases}} \ne 0 & \text{{with }} \tanh \text{{ MLP (generic parameters)}}\\ = 0 & \text{{without MLP (all orders).}}\end{{cases}}$$
"""


if __name__ == "__main__":
    main(__file__, markdown)
