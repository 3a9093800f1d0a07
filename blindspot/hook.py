r"""The score-perturbation hook: any attention model, seen through additive perturbations of its scores.

A model is a function ``loss(params, sample, perturbations) -> scalar`` of its parameters (a pytree),
one sample (a pytree of arrays: tokens, target, ...) and ``perturbations``, a tuple with one array
$\Delta_l$ of shape ``(heads, n, n)`` per attention layer l that the model adds to that layer's
pre-softmax scores, $S_l^h \to S_l^h + \Delta_l^h$ (before any mask sets entries to $-\infty$). At
$\Delta = 0$ the model is unchanged, and the per-sample score gradient of layer l, head h is

$$\frac{\partial L_s}{\partial S_l^h} = \frac{\partial L_s}{\partial \Delta_l^h}\Big|_{\Delta = 0},$$

so every score-space analysis (span, visible fractions, detectability: ``hook_analysis``; Taylor
coefficients and restricted Hessians along a direction of one head: here) needs nothing else. The
single-layer theory model is one instance (``hook_theory``), the reference Transformer another
(``transformer``).

Memory: per-sample work is streamed over the batch in chunks of ``chunk`` samples (``vmap`` within a
chunk, ``lax.map`` or a ``lax.scan`` accumulating a sum across chunks), so the model's intermediates
exist for ``chunk`` samples at a time; ``score_gradients`` returns $b \cdot heads \cdot n^2$ numbers for
one layer.

Under ``jit`` the parameters and the batch are arguments, never closed over (XLA would fold them into
the program as constants); ``loss``, ``shapes``, layer, head and chunk are static. A model with
non-array fields (an Equinox module) is split first, ``params, static = eqx.partition(model,
eqx.is_array)``, and its ``loss`` recombines them (``eqx.combine(params, static)``).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from blindspot import curvature, taylor
from blindspot.checks import check_array, check_callable, check_int

Shapes = tuple[tuple[int, int, int], ...]
"""One ``(heads, n, n)`` per attention layer: the shapes of the score perturbations."""


def check_shapes(shapes) -> Shapes:
    """Return ``shapes`` as a tuple of ``(heads, n, n)`` integer triples (heads >= 1, n >= 2), one per layer."""
    ok = isinstance(shapes, tuple | list) and len(shapes) >= 1
    ok = ok and all(isinstance(s, tuple | list) and len(s) == 3 for s in shapes)
    ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for s in shapes for v in s)
    ok = ok and all(s[0] >= 1 and s[1] >= 2 and s[1] == s[2] for s in shapes)
    if not ok:
        raise ValueError(
            f"shapes must be a non-empty tuple of (heads, n, n) per layer, heads >= 1, n >= 2, got {shapes!r}"
        )
    return tuple(tuple(int(v) for v in s) for s in shapes)


def zero_perturbations(shapes: Shapes, dtype=None) -> tuple[Float[Array, "h n n"], ...]:
    """Return the neutral perturbations: one zero array of shape ``(heads, n, n)`` per layer."""
    return tuple(jnp.zeros(s, dtype or jnp.result_type(float)) for s in check_shapes(shapes))


def check_model(loss, params, batch, shapes) -> np.dtype:
    """Refuse a bad model before any computation; return the floating dtype of its perturbations.

    ``loss`` must be callable; ``params`` a pytree of arrays whose floating leaves are finite (the
    perturbations take their dtype); ``batch`` a pytree of arrays sharing one leading axis of size
    >= 1; and ``loss(params, sample, perturbations)`` on one sample a real floating scalar (checked
    abstractly, with ``jax.eval_shape``).
    """
    check_callable("loss", loss)
    shapes = check_shapes(shapes)
    dtype = _parameter_dtype(params)
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else 0 for leaf in jax.tree.leaves(batch)}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"batch must be a pytree of arrays sharing one leading axis of size >= 1, got sizes {sizes}")
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            check_array("batch" + jax.tree_util.keystr(path), leaf)
    sample = jax.tree.map(lambda leaf: leaf[0], batch)
    try:
        out = jax.eval_shape(loss, params, sample, zero_perturbations(shapes, dtype))
    except Exception as error:  # the model's own error, on one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"loss(params, sample, perturbations of shapes {shapes}) must run, got: {first}") from None
    if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss must return a real floating scalar for one sample, got {out}")
    return dtype


def _parameter_dtype(params) -> np.dtype:
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if any(not hasattr(leaf, "dtype") for _, leaf in leaves):
        raise ValueError("params must be a pytree of arrays (split an Equinox module with eqx.partition first)")
    floating = [leaf for _, leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)]
    if not floating:
        raise ValueError("params must hold at least one floating array (the perturbations take its dtype)")
    for path, leaf in leaves:
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            check_array("params" + jax.tree_util.keystr(path), leaf)
    return jnp.result_type(*floating)


def check_site(shapes: Shapes, layer: int, head: int | None = None) -> None:
    """Refuse a layer outside ``[0, layers)`` or a head outside ``[0, heads of that layer)``."""
    shapes = check_shapes(shapes)
    check_int("layer", layer, 0, len(shapes) - 1)
    if head is not None:
        check_int("head", head, 0, shapes[layer][0] - 1)


def _with(perturbations, layer, head, direction):
    """``perturbations`` with ``direction`` (n, n) added at (layer, head)."""
    changed = perturbations[layer].at[head].add(direction)
    return (*perturbations[:layer], changed, *perturbations[layer + 1 :])


def score_gradients(
    loss, params, batch, shapes: Shapes, *, layer: int, head: int | None = None, chunk: int = 64
) -> Float[Array, "b h n n"] | Float[Array, "b n n"]:
    r"""Per-sample score gradients $\partial L_s / \partial S_l^h$ of one layer l: every head, or ``head``.

    Reverse mode with respect to $\Delta_l$ at $\Delta = 0$, one sample at a time (``vmap`` within a
    chunk of ``chunk`` samples, ``lax.map`` across chunks). Returns shape (b, heads, n, n), or (b, n, n)
    for one ``head`` (the backward pass gives every head of the layer at once).
    """
    dtype = check_model(loss, params, batch, shapes)
    check_site(shapes, layer, head)
    check_int("chunk", chunk, 1)
    grads = _score_gradients(loss, check_shapes(shapes), layer, chunk, np.dtype(dtype), params, batch)
    return grads if head is None else grads[:, head]


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _score_gradients(loss, shapes, layer, chunk, dtype, params, batch):
    zeros = zero_perturbations(shapes, dtype)

    def one(sample):
        def at(delta):
            return loss(params, sample, (*zeros[:layer], delta, *zeros[layer + 1 :]))

        return jax.grad(at)(zeros[layer])

    blocks, _ = _chunks(batch, chunk)
    grads = jax.lax.map(jax.vmap(one), blocks)
    return grads.reshape(-1, *grads.shape[2:])[: jax.tree.leaves(batch)[0].shape[0]]


def _chunks(batch, chunk: int):
    """Split a batch into blocks of ``chunk`` samples, the last one filled up with copies of sample 0.

    Returns the blocks (leading axes: blocks, chunk) and boolean weights (blocks, chunk), False on the
    copies; one traced body serves every block (no separate remainder to compile).
    """
    size = jax.tree.leaves(batch)[0].shape[0]
    count = -(-size // chunk)
    extra = count * chunk - size

    def split(x):
        filled = jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, *x.shape[1:]))]) if extra else x
        return filled.reshape(count, chunk, *x.shape[1:])

    return jax.tree.map(split, batch), (jnp.arange(count * chunk) < size).reshape(count, chunk)


def batch_mean(per_sample, batch, chunk: int):
    r"""$\frac1b \sum_s$ ``per_sample(sample_s)``, accumulated chunk by chunk (``lax.scan``; traceable).

    Memory: the values of one chunk at a time, never the b per-sample results.
    """
    blocks, weights = _chunks(batch, chunk)
    one = jax.tree.map(lambda x: x[0, 0], blocks)
    zero = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), jax.eval_shape(per_sample, one))

    def step(total, block):
        samples, keep = block
        values = jax.vmap(per_sample)(samples)
        return jax.tree.map(lambda t, v: t + jnp.tensordot(keep.astype(v.dtype), v, axes=1), total, values), None

    total, _ = jax.lax.scan(step, zero, (blocks, weights))
    return jax.tree.map(lambda t: t / jax.tree.leaves(batch)[0].shape[0], total)


def taylor_coefficients(
    loss,
    params,
    batch,
    shapes: Shapes,
    direction: Float[Array, "n n"],
    *,
    layer: int,
    head: int,
    order: int,
    chunk: int = 64,
) -> Float[Array, " k"]:
    r"""Taylor coefficients $c_0..c_K$ of $t \mapsto \frac1b \sum_s L_s(t D)$, D at one (layer, head).

    Taylor mode per sample (``taylor.taylor_coefficients``), averaged over the batch chunk by chunk
    (the coefficients are linear in the loss). P3, P7.
    """
    dtype = check_model(loss, params, batch, shapes)
    check_site(shapes, layer, head)
    check_array("direction", direction, check_shapes(shapes)[layer][1:])
    check_int("order", order, 1)
    check_int("chunk", chunk, 1)
    direction = jnp.asarray(direction, dtype)  # the perturbations' dtype
    return _taylor(loss, check_shapes(shapes), layer, head, order, chunk, np.dtype(dtype), params, batch, direction)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _taylor(loss, shapes, layer, head, order, chunk, dtype, params, batch, direction):
    zeros = zero_perturbations(shapes, dtype)

    def one(sample):
        def along(d):
            return loss(params, sample, _with(zeros, layer, head, d))

        return taylor.taylor_coefficients(along, jnp.zeros_like(direction), direction, order)

    return batch_mean(one, batch, chunk)


def restricted_hessian(
    loss, params, batch, shapes: Shapes, basis: Float[Array, "k n n"], *, layer: int, head: int, chunk: int = 64
) -> Float[Array, "k k"]:
    r"""Hessian of the batch-mean loss in the scores of one (layer, head), restricted to a family: $Q^\top H Q$.

    ``basis``: directions (k, n, n), orthonormal for $Q^\top H Q$ to be the restriction (any stack gives the
    matrix of $\langle q_a, H q_b \rangle$). Per sample ``curvature.restricted_hessian`` (k HVPs), averaged
    chunk by chunk: memory one chunk's k HVPs. P7.
    """
    dtype = check_model(loss, params, batch, shapes)
    check_site(shapes, layer, head)
    check_array("basis", basis, (None, *check_shapes(shapes)[layer][1:]))
    check_int("chunk", chunk, 1)
    basis = jnp.asarray(basis, dtype)  # the perturbations' dtype
    return _hessian(loss, check_shapes(shapes), layer, head, chunk, np.dtype(dtype), params, batch, basis)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _hessian(loss, shapes, layer, head, chunk, dtype, params, batch, basis):
    zeros = zero_perturbations(shapes, dtype)

    def one(sample):
        def at(d):
            return loss(params, sample, _with(zeros, layer, head, d))

        return curvature.restricted_hessian(at, jnp.zeros(basis.shape[1:], basis.dtype), basis)

    return batch_mean(one, batch, chunk)
