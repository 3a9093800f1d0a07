r"""The probe's Transformer path: ``--layers``, ``--heads``, ``--causal`` analysed per layer and head.

With ``--layers L > 1``, ``--heads H > 1`` or ``--causal`` the probe builds the reference Transformer
(``blindspot.transformer``: pre-LN, residual, L blocks of H heads) from its options and analyses each
objective through the hook (``hook_analysis.analyse``): dense per-sample score gradients of every layer
and head, their span, the families (under the causal mask: ``masks.family``, with the masked gauge and
the masked entries measured whole) and, at layer 0 head 0, the Taylor coefficients and ``--hessian``.

Option mapping: ``--pe sinusoidal`` fixed positions, ``--pe random`` learned positions drawn $N(0, 1)$;
``--init zero`` sets every $W_Q$ to 0 (uniform attention over the allowed keys), ``--init random`` scales
the reference $W_Q \sim N(0, 1/d)$ by ``--init-scale`` (entries $N(0, s^2/d)$). The theory model's
options the Transformer does not have are refused (:data:`UNSUPPORTED`).
"""

import dataclasses

from blindspot import detectability, hook_analysis, masks, transformer
from blindspot.checks import check_int
from blindspot.cli import BadOption

HESSIAN_MAX_N = 16
"""Largest n for ``--hessian`` with the Transformer (the stacked family basis, masked entries included, ~n^2/2)."""
HOOK_CHUNK = 64
"""Samples per ``vmap`` block of the hook (its activations are held for one block at a time)."""
UNSUPPORTED = (
    ("centred", True, "--centred"),
    ("scores", "position", "--scores position"),
    ("pooling", "last", "--pooling last"),
    ("residual", False, "no --residual (the Transformer always adds the residual: pass --residual)"),
    ("route", "factored", "--route factored"),
    ("route", "streamed", "--route streamed"),
)
"""(dest, value, how to name it): options the Transformer path refuses."""

FIGURES = """with --layers L > 1, --heads H > 1 or --causal (the reference Transformer: pre-LN, residual,
layer norm, GELU MLP of width --mlp; --pe random = learned positions drawn N(0, 1); --init zero: every
W_Q = 0; --init random: the reference W_Q ~ N(0, 1/d) times --init-scale; no parameter_space entry), each
objective reads instead:
  route                "hook": dense per-sample score gradients of every layer and head (hook_analysis)
  masked               true with --causal: families are measured on Pi_A F, the gauge is the masked gauge
                       (constant over the allowed keys j <= i of each row, dim n) and "masked" the n(n-1)/2
                       entries j > i; both are invisible to every loss and read 0
  heads                one entry per layer and head: layer, head, per_sample_rank_max, span_rank, blind_dim,
                       visible_dim (n(n-1), or n(n-1)/2 causal), span_saturated, rank_tolerance,
                       largest_singular_value, families, expected_alignment, detectability (as above)
  curvature            at layer 0, head 0: taylor (as above) and, with --hessian (n <= 16), restricted_hessian
                       (eigenvalues of Q_F^T H Q_F per family)
  config               the Transformer's fields (layers, heads, causal, positions, ...) and the batch options"""


def wanted(args) -> bool:
    """Return whether the options ask for the Transformer path."""
    return args.layers > 1 or args.heads > 1 or args.causal


def check_options(args) -> None:
    """Refuse ``--layers``, ``--heads`` out of range and options the Transformer path does not support."""
    check_int("--layers", args.layers, 1)
    check_int("--heads", args.heads, 1)
    if not wanted(args):
        return
    if args.d % args.heads:
        raise BadOption(f"--heads must divide --d = {args.d}, got {args.heads}")
    for dest, value, name in UNSUPPORTED:
        if getattr(args, dest) == value:
            raise BadOption(f"{name} is not supported with --layers/--heads/--causal (the reference Transformer)")
    if args.reconstruction != "cross_entropy":
        raise BadOption(
            f"--reconstruction must be cross_entropy with --layers/--heads/--causal, got {args.reconstruction}"
        )
    if args.chunk != 0:
        raise BadOption(
            f"--chunk sets the streamed route only; it must be 0 with --layers/--heads/--causal, got {args.chunk}"
        )
    if args.hessian and args.n > HESSIAN_MAX_N:
        raise BadOption(f"--hessian needs --n <= {HESSIAN_MAX_N} with --layers/--heads/--causal, got {args.n}")


def config(args) -> transformer.TransformerConfig:
    """Return the Transformer the options describe (see the module docstring for the mapping)."""
    return transformer.TransformerConfig(
        n=args.n, d=args.d, vocab=args.vocab, classes=args.classes, layers=args.layers, heads=args.heads,
        mlp=args.mlp, positions="learned" if args.pe == "random" else "sinusoidal", causal=args.causal,
        pooling=args.pooling, mask_rate=args.mask_rate,
    )  # fmt: skip


def parameters(key, config: transformer.TransformerConfig, init: str, scale: float) -> transformer.TransformerParams:
    """Draw the reference initialisation with every $W_Q$ set to 0 (``zero``) or scaled by ``scale`` (``random``)."""
    params = transformer.init(key, config)
    factor = 0.0 if init == "zero" else scale
    blocks = tuple(b._replace(attention=b.attention._replace(query=factor * b.attention.query)) for b in params.blocks)
    return params._replace(blocks=blocks)


def analyse(params, config, objective, tokens, target, *, taylor_order, taylor_directions, bands, hessian) -> dict:
    """Per-layer, per-head report of one objective (``hook_analysis.analyse`` with the causal pattern)."""
    allowed = masks.causal(config.n) if config.causal else None
    report = hook_analysis.analyse(
        transformer.hooked_loss(config, objective), params, (tokens, target), transformer.perturbation_shapes(config),
        allowed=allowed, bands=bands, chunk=HOOK_CHUNK, curvature_at=(0, 0), taylor_order=taylor_order,
        taylor_directions=taylor_directions, hessian=hessian,
    )  # fmt: skip
    return {"route": "hook", "masked": report["masked"], "heads": report["heads"], "curvature": report["curvature"]}


def report_config(config: transformer.TransformerConfig, args, batch: int) -> dict:
    """Return the ``config`` entry of the JSON report: the Transformer's fields and the batch options."""
    fields = dataclasses.asdict(config)
    return {**fields, "qk_init": args.init, "qk_init_scale": args.init_scale, "data": args.data, "rho": args.rho,
            "batch": batch, "seed": args.seed}  # fmt: skip


def memory_numbers(args) -> dict[str, int]:
    r"""Float64 numbers the Transformer path holds at its peak, per part.

    Notes
    -----
    With c = min(b, ``HOOK_CHUNK``) samples per block and $a = L (H n^2 + n (d + m))$ activations per
    sample: per-sample score gradients of every layer and head and their span's copies $3 b L H n^2$;
    activations of one block under autodiff $8 c a$; with ``--causal`` dense family bases $4 (2n - 1) n^2$; Taylor
    $8 (K + 1) c a$; Hessian $k n^2 + 12 k c a$ with k the stacked family dimension, at most $n^2 + 4n$.
    Upper bounds by counting (not fitted to measured peaks).
    """
    b, n, d, m, layers, heads = args.batch, args.n, args.d, args.mlp, args.layers, args.heads
    v, classes = args.vocab, args.classes
    c = min(b, HOOK_CHUNK)
    a = layers * (heads * n * n + n * (d + m))
    dims = (n, 2 * n - 2, n * (n - 1) // 2 if args.causal else 0)
    covariance = max((dim for dim in dims if dim <= detectability.COVARIANCE_MAX_DIM), default=0)
    parts = {
        "parameters": layers * (4 * d * d + 2 * d * m) + (v + 2) * d + n * d + d * (classes + v),
        "family covariances": 3 * covariance**2,
        "per-sample score gradients (every layer and head)": 3 * b * layers * heads * n * n,
        "Transformer activations": 8 * c * a,
    }
    if args.causal:
        parts["dense family bases under the mask"] = 4 * (2 * n - 1) * n * n
    if args.taylor_order > 0:
        parts["Taylor series"] = 8 * (args.taylor_order + 1) * c * a
    if args.hessian:
        k = n * n + 4 * n
        parts["Hessian bases and HVPs"] = k * n * n + 12 * k * c * a
    return parts


def table_lines(objectives: dict) -> list[str]:
    """Compact table: per objective, one column per (layer, head), ranks and visible fractions as rows."""
    lines = []
    for objective, entry in objectives.items():
        heads = entry["heads"]
        lines.append(f"{objective} (route {entry['route']}, masked {entry['masked']})")
        lines.append(f"{'':28}" + "".join(f"{'L' + str(h['layer']) + ' H' + str(h['head']):>10}" for h in heads))
        for key in ("per_sample_rank_max", "span_rank", "blind_dim", "visible_dim"):
            lines.append(f"{key:28}" + "".join(f"{h[key]:>10}" for h in heads))
        for fam, first in heads[0]["families"].items():
            label = f"visible {fam} (dim {first['dim']})"
            lines.append(
                f"{label:28}" + "".join(f"{_fraction(h['families'][fam]['visible_fraction']):>10}" for h in heads)
            )
        for direction, coefficients in (entry["curvature"] or {}).get("taylor", {}).items():
            lines.append(f"{'taylor L0 H0 ' + direction:28}" + " ".join(f"{c:.4g}" for c in coefficients))
    return lines


def _fraction(value) -> str:
    return "-" if value is None else f"{value:.4g}"
