r"""Score-space analysis of any hooked model, per layer and head: the probe's report, model-agnostic.

For a model in the hook's form (``blindspot.hook``) and a batch, each analysed (layer, head) gets the
figures of the probe's dense route: the largest per-sample rank of $\partial L_s / \partial S$, the
rank of their span G (``subspaces.span``), the blind dimension $n^2 - \mathrm{rank}\, G$, the visible
fraction $\lVert Q_G^\top Q_F \rVert_F^2 / \dim F$ of each registered family (``subspaces.visible_fraction``),
the alignment of the mean gradient with it and its detectability (signal, noise, $B^*$, share:
``blindspot.detectability``, with the probe's resolution). For one chosen (layer, head) it adds the
Taylor coefficients of the batch-mean loss along given directions and the Hessian restricted to each
family (``hook.taylor_coefficients``, ``hook.restricted_hessian``).

Families: without a mask, ``directions.family`` (the non-gauge part $(I - \Pi_g)F$, coordinates from
$O(n)$ statistics per sample); with a mask ``allowed``, ``masks.family`` ($\Pi_A F$, dense bases; the
masked gauge and the masked entries measured whole). Memory: one layer's per-sample gradients,
$b \cdot heads \cdot n^2$ numbers, plus ``chunk`` samples' activations (the hook streams them).
"""

import jax.numpy as jnp
import numpy as np

from blindspot import detectability, directions, hook, masks, subspaces
from blindspot.checks import check_bool, check_int
from blindspot.masks import DenseFamily
from blindspot.tolerances import close_tolerance


def registry(n: int, *, allowed=None, bands: int = 2, dtype=None) -> dict[str, DenseFamily]:
    """Return the registered families at length n, each with coordinates of dense score matrices.

    Without ``allowed``: ``directions.registry_names`` measured as ``directions.family`` (non-gauge
    part, via ``directions.statistics``). With a boolean (n, n) ``allowed``: ``masks.names`` measured
    as ``masks.family``.
    """
    check_int("n", n, 2)
    check_int("bands", bands, 0)
    if allowed is not None:
        masks.check_allowed(allowed, n)
        return {name: masks.family(name, allowed, dtype=dtype) for name in masks.names(allowed, bands=bands)}
    entries = {}
    for name in directions.registry_names(n, bands=bands):
        fam = directions.family(name, n, dtype=dtype)
        entries[name] = DenseFamily(name, fam.dim, lambda x, f=fam: f.coordinates(directions.statistics(x)), fam.basis)
    return entries


def family_entries(
    families: dict, coordinates_of, span: subspaces.Span, norms, mean_norm: float, n: int
) -> tuple[dict, dict, dict | None]:
    r"""Visible fraction, mean-gradient alignment and detectability of each family (``None`` where dim is 0).

    ``coordinates_of(family)`` gives the b per-sample gradients' coordinates (b, dim) in the family;
    ``norms`` (b,) are the gradients' norms and ``mean_norm`` is $\lVert \bar g \rVert$ (the span's
    gradients). Detectability needs b >= 2 (``None`` otherwise); the resolution of a mean is
    ``close_tolerance(dtype, n^2)`` times the largest gradient norm (the probe's and every route's).
    The one implementation behind ``probe`` and :func:`head_report`.
    """
    b = norms.shape[0]
    whole = None
    if b >= 2:
        whole = detectability.estimate(detectability.norm_moments(b, mean_norm, float((norms**2).sum())))
        resolution = close_tolerance(norms.dtype, n * n) * float(norms.max())
    visible, alignment, detect = {}, {}, {}
    for name, fam in families.items():
        if fam.dim == 0:
            visible[name], alignment[name], detect[name] = {"dim": 0, "visible_fraction": None}, None, None
            continue
        coords = coordinates_of(fam)
        visible[name] = {"dim": fam.dim, "visible_fraction": subspaces.visible_fraction(span, coords).fraction}
        alignment[name] = subspaces.expected_alignment_from_projections(coords, mean_norm)
        if whole is not None:
            moments = detectability.moments(coords, covariance=fam.dim <= detectability.COVARIANCE_MAX_DIM)
            estimate = detectability.estimate(moments, resolution=resolution)
            detect[name] = {**estimate._asdict(), "share": detectability.share(estimate, whole)}
    return visible, alignment, detect if whole is not None else None


def head_report(grads, families: dict[str, DenseFamily], *, allowed=None) -> dict:
    """First-order report of one head from its per-sample score gradients (b, n, n)."""
    b, n = grads.shape[0], grads.shape[-1]
    span = subspaces.span(grads.reshape(b, -1), keep_basis=False)
    visible_dim = n * (n - 1) if allowed is None else masks.visible_dim(allowed)
    flat = np.asarray(grads).reshape(b, -1)  # norms on the host: b numbers
    norms, mean_norm = np.linalg.norm(flat, axis=1), float(np.linalg.norm(flat.mean(axis=0)))
    fractions, alignment, detect = family_entries(
        families, lambda fam: fam.coordinates(grads), span, norms, mean_norm, n
    )
    return {
        "per_sample_rank_max": int(jnp.max(subspaces.sample_ranks(grads))),
        "span_rank": span.rank,
        "blind_dim": n * n - span.rank,
        "visible_dim": visible_dim,
        "span_saturated": span.rank == b < visible_dim,
        "rank_tolerance": span.tolerance,
        "largest_singular_value": float(span.singular_values[0]),
        "families": fractions,
        "expected_alignment": alignment,
        "detectability": detect,
    }


def curvature_report(
    loss, params, batch, shapes, families: dict[str, DenseFamily], *, layer, head, order, along, hessian, chunk
) -> dict:
    r"""Report Taylor coefficients along each direction of ``along`` and, with ``hessian``, $Q_F^\top H Q_F$ per family.

    The restricted Hessians of all families come from one stacked basis (one compilation), cut into
    blocks; each block is symmetrised before its eigenvalues are taken.
    """
    report = {"layer": layer, "head": head, "taylor": {}}
    for name, direction in along.items() if order > 0 else ():
        coefficients = hook.taylor_coefficients(
            loss, params, batch, shapes, direction, layer=layer, head=head, order=order, chunk=chunk
        )
        report["taylor"][name] = [float(c) for c in coefficients]
    if hessian:
        blocks = {name: np.asarray(fam.basis()) for name, fam in families.items() if fam.dim > 0}
        stacked = jnp.asarray(np.concatenate(list(blocks.values())))
        full = hook.restricted_hessian(loss, params, batch, shapes, stacked, layer=layer, head=head, chunk=chunk)
        full = np.asarray(full)
        ends = np.cumsum([0, *(q.shape[0] for q in blocks.values())])
        report["restricted_hessian"] = {}
        for name, start, end in zip(blocks, ends[:-1], ends[1:]):
            block = full[start:end, start:end]
            eigenvalues = np.linalg.eigvalsh(0.5 * (block + block.T))  # on the host: k x k
            report["restricted_hessian"][name] = {"eigenvalues": [float(e) for e in eigenvalues]}
    return report


def _sites(shapes, layers, heads) -> list[tuple[int, int]]:
    """Return the (layer, head) pairs to analyse; ``None`` selects every layer or every head."""
    for name, chosen in (("layers", layers), ("heads", heads)):
        if chosen is not None and (not isinstance(chosen, tuple | list | range) or len(chosen) == 0):
            raise ValueError(f"{name} must be None or a non-empty list of indices, got {chosen!r}")
    layers = range(len(shapes)) if layers is None else layers
    sites = []
    for layer in layers:
        hook.check_site(shapes, layer)
        for head in range(shapes[layer][0]) if heads is None else heads:
            hook.check_site(shapes, layer, head)
            sites.append((layer, head))
    return sites


def one_dimensional_directions(families: dict[str, DenseFamily]) -> dict:
    """Return the unit direction of every one-dimensional family (bands, proximity): the default Taylor directions."""
    return {name: fam.basis()[0] for name, fam in families.items() if fam.dim == 1}


def analyse(
    loss,
    params,
    batch,
    shapes,
    *,
    layers=None,
    heads=None,
    allowed=None,
    bands: int = 2,
    chunk: int = 64,
    curvature_at: tuple[int, int] | None = None,
    taylor_order: int = 3,
    taylor_directions: dict | None = None,
    hessian: bool = False,
) -> dict:
    """Report per (layer, head) (``heads``: a list of ``head_report`` dicts with ``layer`` and ``head``).

    ``layers``, ``heads``: indices to analyse (default all). ``allowed``: a boolean (n, n) mask
    pattern shared by the analysed layers (the union over samples for padding, ``masks``).
    ``curvature_at``: the (layer, head) of the Taylor coefficients (order ``taylor_order``, along
    ``taylor_directions``, default the one-dimensional families) and, with ``hessian``, the
    restricted Hessians; ``None`` skips them.
    """
    dtype = hook.check_model(loss, params, batch, shapes)
    shapes = hook.check_shapes(shapes)
    check_int("chunk", chunk, 1)
    check_int("taylor_order", taylor_order, 0)
    check_bool("hessian", hessian)
    sites = _sites(shapes, layers, heads)
    _check_curvature_at(shapes, curvature_at, taylor_directions)
    lengths = {shapes[layer][1] for layer, _ in [*sites, *([curvature_at] if curvature_at else [])]}
    families = {n: registry(n, allowed=allowed, bands=bands, dtype=dtype) for n in sorted(lengths)}
    report = {"dtype": str(np.dtype(dtype)), "masked": allowed is not None, "heads": [], "curvature": None}
    for layer in dict.fromkeys(layer for layer, _ in sites):
        grads = hook.score_gradients(loss, params, batch, shapes, layer=layer, chunk=chunk)
        for head in (h for site_layer, h in sites if site_layer == layer):
            entry = head_report(grads[:, head], families[shapes[layer][1]], allowed=allowed)
            report["heads"].append({"layer": layer, "head": head, **entry})
    if curvature_at is not None:
        layer, head = curvature_at
        fams = families[shapes[layer][1]]
        along = one_dimensional_directions(fams) if taylor_directions is None else taylor_directions
        report["curvature"] = curvature_report(
            loss, params, batch, shapes, fams, layer=layer, head=head, order=taylor_order, along=along,
            hessian=hessian, chunk=chunk,
        )  # fmt: skip
    return report


def _check_curvature_at(shapes, curvature_at, taylor_directions) -> None:
    """Refuse a curvature site that is not a (layer, head) pair of the model, or directions that are not a dict."""
    if curvature_at is not None:
        if not isinstance(curvature_at, tuple | list) or len(curvature_at) != 2:
            raise ValueError(f"curvature_at must be a (layer, head) pair or None, got {curvature_at!r}")
        hook.check_site(shapes, *curvature_at)
    if taylor_directions is not None and not isinstance(taylor_directions, dict):
        raise ValueError(f"taylor_directions must be a dict of name -> (n, n) direction, got {type(taylor_directions)}")
