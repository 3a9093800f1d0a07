r"""``python -m blindspot.probe``: report which attention-score directions each loss sees at a given state.

Builds the model from command-line options, draws a batch, evaluates both objectives (label
supervision and masked reconstruction) at the chosen state in the score-space view, and reports
per-sample and batch gradient ranks, the blind dimension, the visible fraction of each direction
family, the alignment of the mean gradient, Taylor coefficients along proximity directions, the
query-key (parameter-space) gradient and, with ``--hessian``, the Hessian restricted to each family.
"""

import argparse
import re
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import (
    curvature,
    data,
    detectability,
    directions,
    first_order,
    hook_analysis,
    jacobian,
    output_view,
    pushforward,
    sharding,
    streamed,
    subspaces,
    taylor,
    transformer_probe,
)
from blindspot.checks import check_float, check_int
from blindspot.cli import SEED_HIGH, BadOption, Parser, integer, real, refuse
from blindspot.config import POOLING, POSITIONAL, QK_INIT, RECONSTRUCTION, SCORES, ModelConfig
from blindspot.io import check_output_file, check_output_folder, timings_path, write_report
from blindspot.model import (
    class_logits_at_scores,
    features_at_scores,
    init,
    mask_tokens,
    query_key_matrix,
    scores_from_query_key,
)
from blindspot.objectives import (
    classification_loss_at_scores,
    reconstruction_loss_at_features,
    reconstruction_loss_at_scores,
)
from blindspot.progress import CHOICES as PROGRESS_CHOICES
from blindspot.progress import Progress
from blindspot.runtime import (
    disable_faulty_fusions,
    require_sound_compiler,
    require_verification_precision,
    use_compilation_cache,
)

PROG = "python -m blindspot.probe"
DATA = ("iid", "markov", "task", "digits")
ROUTES = ("auto", *first_order.ROUTES)
HESSIAN_MAX_N = 64
"""Largest n for ``--hessian`` (dense family bases of shape (k, n, n) and k HVPs per family)."""
TAYLOR_MAX_ORDER = 8
"""Largest ``--taylor-order``: the jet carries K series terms and costs O(K^2) forward passes."""
MAX_MEMORY_GB = 8.0
"""Default of ``--max-memory-gb``: a laptop's share of memory for one probe."""
RUNTIME_BYTES = 600_000_000
"""Peak resident memory of the smallest probe run (Python, JAX, compiled programs; 0.51 GB on CPU), rounded up."""
TABLE_LABEL_WIDTH = 28
"""Width of the label column of the probe's table."""
SPAN_ROWS = ("route", "per_sample_rank_max", "span_rank", "blind_dim", "rank_tolerance")
"""Entries of the span in the probe's table, in order."""

CONFIG_OPTIONS = {
    "n": "n",
    "d": "d",
    "vocab": "vocab",
    "classes": "classes",
    "positional": "pe",
    "centred": "centred",
    "scores": "scores",
    "pooling": "pooling",
    "residual": "residual",
    "mlp": "mlp",
    "mask_rate": "mask_rate",
    "reconstruction": "reconstruction",
    "qk_init": "init",
    "qk_init_scale": "init_scale",
}
"""``ModelConfig`` field -> the probe option (its ``argparse`` dest) that sets it."""

DESCRIPTION = """Builds the model from the options below, draws a batch, evaluates both objectives (label
supervision and masked reconstruction) at the chosen state in the score-space view, prints a table and,
with --json PATH, writes the report as JSON. The JSON holds no timings, so equal options give a
byte-identical file; the run's timings go to the sibling file PATH-stem.timings.json (report.json ->
report.timings.json). Before computing anything, the probe estimates the memory it needs (dense
per-sample gradients b n^2, Gram matrices of factors b^2 r^2, streamed blocks b x chunk x n, Taylor
series (K+1) b n^2, Hessian bases and HVPs (2n-1) b n^2 ...) and refuses to start above --max-memory-gb.

What the time goes into, per objective (b = --batch, r = d): the streamed route b n^2 (3d + 2r + b)
multiply-adds and 2 b n^2 exponentials; the factored route O(b n d^2 + b^2 d^2 n); the dense route
autodiff through the softmax plus one SVD per sample, O(b n^3); --taylor-order K a jet of K terms
(O(K^2) passes through the model, (K+1) b n^2 numbers), the largest cost at the default K = 3 when
n is large: use --taylor-order 0 there; --hessian (2n - 1) Hessian-vector products per family."""

FIGURES = """reported figures (per objective):
  per_sample_rank_max  largest numerical rank of one sample's n x n score gradient dL/dS
  span_rank            numerical rank of the b per-sample gradients stacked as b x n^2 (their span G)
  blind_dim            n^2 - span_rank: directions no sample's gradient sees at first order
  span_saturated       span_rank = b < n(n-1): every sample adds a direction, so blind_dim is set by the
                       batch, not the model (a note on stderr gives the batch needed)
  rank_tolerance       singular values below it count as zero: eps * max(b, n^2) * sigma_1
                       (square root of eps * max(b, n^2) * lambda_1 when the Gram route is used)
  families             per direction family F: dim and visible_fraction = ||Q_G^T Q_F||_F^2 / dim F
                       (0 = first-order blind, 1 = fully visible), measured on the non-gauge part of F:
                       Q_F spans (I - P_g) F, P_g X = X 1 1^T / n, so a span of every non-gauge direction
                       reads 1 (circulant: the n-1 zero-sum circulants; toeplitz: dim 2n-2). The gauge
                       r 1^T is invisible to every loss (P1): it has no non-gauge part, is measured whole
                       and reads 0
  expected_alignment   per family: ||Q_F g_bar|| / ||g_bar|| for the mean gradient g_bar (signed cosine
                       <g_bar, q>/||g_bar|| for one-dimensional families, q the unit non-gauge part;
                       negative = descent moves along +q)
  detectability        per family (null with --batch 1): with c_s the coordinates of sample s's gradient
                       in the orthonormal basis Q_F above, mu = E c, Sigma = Cov c over the data:
                       signal_squared  unbiased estimate of ||mu||^2 (can be < 0 below the noise floor),
                                       with its standard error signal_squared_se (null for families of
                                       dim > 4096: no dim x dim covariance); signal = sqrt(max(0, .))
                       noise           tr Sigma (unbiased)
                       batch_star      noise / signal_squared: the batch size at which the batch-mean
                                       gradient's component in F has signal-to-noise 1 (null: no signal)
                       share           ||mu|| / ||E g||: the part of the mean step that points into F
                       (a mean within rounding, 100 eps n ||g||_max, counts as no signal: the gauge)
                       count           b, the samples behind the estimates
  taylor               c_0..c_K of t -> mean_b L_b(S_b + t D) along unit directions D: band_1, the
                       symmetric wrap-around band circulant_1 and the proximity kernel, whole (its gauge
                       part changes no loss, P1) (c_k = f^(k)(0)/k!)
  restricted_hessian   (--hessian) per family: eigenvalues of Q_F^T H Q_F (Q_F as for families) and
                       Frobenius norms of its Gauss-Newton and functional parts
  parameter_space      grad_rank: rank of the b per-sample gradients w.r.t. the query-key matrix W;
                       positional_identity_cosine: cosine of the mean W-gradient with the positional
                       identity P^+ P / ||P^+ P||_F (P8); 0 when the mean W-gradient is zero to rounding
                       (below grad_rank_tolerance = eps * max(b, d^2) * max(sigma_1, max_b c ||H_b||^2 ||G_b||));
                       proximity_pushforward: the detectability figures above (signal_squared, its s.e.,
                       signal, noise, batch_star, share, count) of the per-sample W-gradients, the gradient the
                       optimiser receives, along the unit omega = P^+ K P^+T / ||.||_F: the W that best turns
                       the positional encodings into the proximity kernel K (S = c P W P^T, c = 1/sqrt(d) for
                       content+position scores). Sample b reads its score gradient along c H_b omega H_b^T,
                       so with content+position scores the tokens enter; share is relative to the whole mean
                       W-gradient; a mean below grad_rank_tolerance counts as no signal. At W = 0 without an
                       MLP the label W-gradient is rank one (P5, P13): exactly zero for position-only scores
                       with centred encodings (batch_star null), non-zero otherwise (null with --batch 1)"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the description and epilog as written and show every option's default."""


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface (every option and its default documented in ``--help``)."""
    epilog = FIGURES + "\n\n" + transformer_probe.FIGURES
    p = Parser(prog=PROG, description=DESCRIPTION, epilog=epilog, formatter_class=_Formatter)
    _add_model_options(p)
    _add_batch_options(p)
    _add_route_options(p)
    _add_report_options(p)
    return p


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Options of the model: sizes, encodings, scores, pooling, layers, heads, mask, MLP, readout."""
    p.add_argument("--n", type=integer, default=16, help="sequence length n >= 2")
    p.add_argument("--d", type=integer, default=16, help="width d >= 1")
    p.add_argument("--vocab", type=integer, default=8, help="vocabulary size V >= 2; id V is MASK")
    p.add_argument("--classes", type=integer, default=2, help="number of classes >= 2")
    p.add_argument("--pe", choices=POSITIONAL, default="sinusoidal", help="positional encoding")
    p.add_argument("--centred", action="store_true", help="centre the positional encoding: sum_i p_i = 0")
    p.add_argument(
        "--scores",
        choices=SCORES,
        default="content_position",
        help="content_position: S = H W H^T / sqrt(d); position: S = P W P^T",
    )
    p.add_argument("--pooling", choices=POOLING, default="mean", help="pooling of the classifier")
    p.add_argument("--residual", action="store_true", help="add h_i to the attention output o_i")
    p.add_argument(
        "--layers", type=integer, default=1, help="attention layers L >= 1; L > 1: the reference Transformer"
    )
    p.add_argument(
        "--heads",
        type=integer,
        default=1,
        help="heads H >= 1 per layer, dividing --d; H > 1: the reference Transformer",
    )
    p.add_argument(
        "--causal", action="store_true", help="causal mask (query i sees keys j <= i): the reference Transformer"
    )
    p.add_argument("--mlp", type=integer, default=0, help="hidden width >= 0 of the position-wise MLP, 0 = none")
    p.add_argument("--reconstruction", choices=RECONSTRUCTION, default="cross_entropy", help="reconstruction readout")


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    """Options of the batch and the state: masking, data source, size, seed, query-key init."""
    p.add_argument("--mask-rate", type=real, default=0.15, help="fraction of masked positions, in (0, 1)")
    p.add_argument(
        "--data",
        choices=DATA,
        default="iid",
        help="iid uniform tokens with random labels; markov sticky chain (--rho) with random labels; task "
        "paired/shuffled adjacency task (n even, >= 4); digits: sklearn 8x8 digits (n = 64, vocab = grey "
        "levels in [2, 17], classes >= 10)",
    )
    p.add_argument("--rho", type=real, default=0.9, help="stickiness of the markov source, in [0, 1)")
    p.add_argument("--batch", type=integer, default=64, help="number of sequences b >= 1")
    p.add_argument("--seed", type=integer, default=0, help=f"PRNG seed in [0, 2^63 - 1 = {SEED_HIGH}]")
    p.add_argument(
        "--init",
        choices=QK_INIT,
        default="zero",
        help="query-key state: zero (W = 0, uniform attention) or random (entries N(0, s^2/d))",
    )
    p.add_argument("--init-scale", type=real, default=0.1, help="scale s > 0 of --init random")


def _add_route_options(p: argparse.ArgumentParser) -> None:
    """Options of how the first order is computed: route, chunk, progress lines."""
    p.add_argument(
        "--route",
        choices=ROUTES,
        default="auto",
        help="dense: autodiff per-sample n x n gradients, the only route that gives per_sample_rank_max; "
        "factored: closed forms at uniform attention (needs --init zero), no n x n object per sample; "
        "streamed: any --init, blocks of --chunk query rows, no n x n object per sample (per_sample_rank_max "
        "null); auto: factored when W = 0, else streamed (no slower than dense at any n measured, 16 to 1024)",
    )
    p.add_argument(
        "--chunk",
        type=integer,
        default=0,
        help="query rows per block of the streamed route, in [0, n]; memory grows as batch x chunk x n; "
        f"0 = batch x chunk x n about {streamed.BLOCK_NUMBERS:.3g} numbers ({streamed.BLOCK_NUMBERS * 8 // 2**20} MiB)",
    )
    p.add_argument(
        "--progress",
        choices=PROGRESS_CHOICES,
        default="auto",
        help="one stderr line per objective and stage (first order with its route, families, Taylor, Hessian, "
        "W) with the seconds taken; auto: only when stderr is a terminal",
    )


def _add_report_options(p: argparse.ArgumentParser) -> None:
    """Options of what is reported and where: Taylor, bands, Hessian, memory, cache, JSON."""
    p.add_argument(
        "--taylor-order",
        type=integer,
        default=3,
        help=f"Taylor order K in [0, {TAYLOR_MAX_ORDER}] of the taylor entry; holds (K+1) b n^2 numbers, "
        "so use 0 (skip it) at large n",
    )
    p.add_argument(
        "--bands", type=integer, default=2, help="report band_1 .. band_K, K >= 0 (only the bands k <= n - 1 exist)"
    )
    p.add_argument("--hessian", action="store_true", help=f"restricted Hessian per family (needs n <= {HESSIAN_MAX_N})")
    p.add_argument(
        "--max-memory-gb",
        type=real,
        default=MAX_MEMORY_GB,
        help="refuse to start when the estimated memory (see above) exceeds this many GB (10^9 bytes)",
    )
    p.add_argument(
        "--compilation-cache",
        metavar="DIR",
        help="keep the compiled programs in DIR and reuse them in later runs (most of a first run's time at small n "
        "and on GPUs is compilation); default: none",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the report as strict JSON to PATH, without timings (they go to PATH-stem.timings.json)",
    )


def _model_config(args) -> ModelConfig:
    """Build the ``ModelConfig``; its errors name the probe option (``--mask-rate``), not the field."""
    try:
        return ModelConfig(**{field: getattr(args, dest) for field, dest in CONFIG_OPTIONS.items()})
    except ValueError as error:
        field = re.match(r"\w+", str(error)).group(0)
        if field not in CONFIG_OPTIONS:
            raise
        option = "--" + CONFIG_OPTIONS[field].replace("_", "-")
        raise BadOption(option + str(error)[len(field) :]) from None


def memory_estimate(args) -> dict[str, int]:
    r"""Bytes the probe needs, per part, from the options alone (nothing is allocated).

    Notes
    -----
    Counts of float64 numbers, with b = ``--batch``, r = d (V + 1 for the copy readout), k = 2n - 1
    (the largest family, Toeplitz), K = ``--taylor-order`` and c the streamed route's block of query
    rows: batch activations $4 b n (d + h + V + C)$; the route (:func:`_route_numbers`); family
    coordinate covariances $3 k_c^2$, $k_c$ the largest family dimension up to ``detectability.COVARIANCE_MAX_DIM``;
    Taylor $8 (K + 1) b n^2$; Hessian $12 k b n^2 + k n^2$ (k HVPs, batched). Add the JAX runtime and
    compiled programs, 0.6 GB (0.9 GB with ``--hessian``). The constants are upper bounds fitted to the
    peak resident memory of CPU runs at several sizes (the steps run one after another, so the sum
    bounds the peak). The Transformer path (``--layers``, ``--heads``, ``--causal``) counts its own parts:
    ``transformer_probe.memory_numbers``.
    """
    runtime = RUNTIME_BYTES + (RUNTIME_BYTES // 2 if args.hessian else 0)
    if transformer_probe.wanted(args):
        numbers = transformer_probe.memory_numbers(args)
        return {**{name: 8 * count for name, count in numbers.items()}, "JAX runtime and compiled programs": runtime}
    b, n, d, h, v, c = args.batch, args.n, args.d, args.mlp, args.vocab, args.classes
    k = 2 * n - 1
    covariance = max((dim for dim in (n, n - 1, 2 * n - 2) if dim <= detectability.COVARIANCE_MAX_DIM), default=0)
    parts = {
        "parameters": (v + 1) * d + n * d + 2 * d * d + 2 * d * h + d * (c + v + 1),
        "batch activations": 4 * b * n * (d + h + v + 1 + c),
        "query-key gradients": 2 * b * d * d,
        "family covariances": 3 * covariance**2,
        **_route_numbers(args),
    }
    if args.taylor_order > 0:
        parts["Taylor series"] = 8 * (args.taylor_order + 1) * b * n * n
    if args.hessian:
        parts["Hessian bases and HVPs"] = 12 * k * b * n * n + k * n * n
    sizes = {name: 8 * count for name, count in parts.items()}
    return {**sizes, "JAX runtime and compiled programs": runtime}


def _route_numbers(args) -> dict[str, int]:
    r"""Numbers the first-order route holds at its peak.

    Dense: $6 b n^2 + \min(b, n^2) n^2$ (per-sample gradients, their copies, the SVD's right factor);
    factored: $10 b n r + 3 b^2 r^2$ (factors, their FFTs, the Gram matrix's $b \times b \times r \times r$
    intermediates); streamed: $4 b c n + b n (d + r)$ (four $(b, c, n)$ blocks: scores and their
    exponentials, $g V^\top$, the gradient rows, the placed block; the read rows' outputs and gradients
    beside the batch activations). Measured peaks of the streamed probe (d = h = 64, b = 64, ``--taylor-order
    0``): 0.76, 1.85, 1.90 and 2.24 GB at n = 256, 1024, 2048 and 4096 against estimates of 0.83, 2.14,
    2.80 and 3.52 GB.
    """
    b, n, d = args.batch, args.n, args.d
    r = args.vocab + 1 if args.reconstruction == "copy" else d
    route = _route(args)
    if route == "dense":
        return {"dense per-sample score gradients": 6 * b * n * n + min(b, n * n) * n * n}
    if route == "streamed":
        chunk = args.chunk or streamed.default_chunk(b, n)
        return {"streamed blocks and per-sample outputs": 4 * b * chunk * n + b * n * (d + r)}
    return {"score-gradient factors and their Gram matrix": 10 * b * n * r + 3 * b * b * r * r}


def _route(args) -> str:
    """Return the route ``--route`` names (auto: factored at W = 0, else streamed)."""
    if args.route != "auto":
        return args.route
    return "factored" if args.init == "zero" else "streamed"


def _check_options(args) -> ModelConfig:
    """Refuse every bad option (a ``ValueError`` naming it) before anything is computed; return the config."""
    config = _model_config(args)
    transformer_probe.check_options(args)
    check_int("--batch", args.batch, 1)
    check_int("--seed", args.seed, 0, SEED_HIGH)
    check_int("--taylor-order", args.taylor_order, 0, TAYLOR_MAX_ORDER)
    check_int("--bands", args.bands, 0)
    check_int("--chunk", args.chunk, 0, args.n)
    check_float("--rho", args.rho, 0.0, 1.0, open_low=False)
    check_float("--max-memory-gb", args.max_memory_gb, 0.0, float("inf"))
    if args.data == "task" and (args.n % 2 or args.n < 4):
        raise BadOption(f"--n must be an even integer >= 4 for --data task, got {args.n}")
    if args.data == "digits" and (args.n != 64 or args.classes < 10 or not 2 <= args.vocab <= 17):
        raise BadOption(
            "--data digits needs --n 64, --classes >= 10 and --vocab in [2, 17] (grey levels), "
            f"got --n {args.n} --classes {args.classes} --vocab {args.vocab}"
        )
    if args.route == "factored" and args.init != "zero":
        raise BadOption("--route factored needs --init zero (the closed forms hold at uniform attention only)")
    if args.hessian and args.n > HESSIAN_MAX_N:
        raise BadOption(f"--hessian needs --n <= {HESSIAN_MAX_N}, got {args.n}")
    parts = memory_estimate(args)
    if sum(parts.values()) > args.max_memory_gb * 1e9:
        largest = max(parts, key=parts.get)
        raise BadOption(
            f"the probe would need about {sum(parts.values()) / 1e9:.3g} GB ({largest}: "
            f"{parts[largest] / 1e9:.3g} GB) > --max-memory-gb {args.max_memory_gb:g}; lower --n, --batch, "
            "--d or --taylor-order, use --init zero (factored route) or --route streamed, or raise --max-memory-gb"
        )
    if args.json is not None:
        check_output_file("--json", args.json)
    if args.compilation_cache is not None:
        check_output_folder("--compilation-cache", args.compilation_cache)
    return config


def _batch(args, config):
    key = jax.random.key(args.seed)
    k_data, k_label, k_mask = jax.random.split(jax.random.fold_in(key, 1), 3)
    if args.data == "digits":
        digits = data.digits(levels=config.vocab)
        count = min(args.batch, digits.train_tokens.shape[0])
        tokens, labels = digits.train_tokens[:count], digits.train_labels[:count]
    elif args.data == "task":
        tokens, labels = data.paired_task(k_data, args.batch, config.n, config.vocab)
    else:
        if args.data == "markov":
            tokens = data.markov_tokens(k_data, args.batch, config.n, config.vocab, args.rho)
        else:
            tokens = data.iid_tokens(k_data, args.batch, config.n, config.vocab)
        labels = jax.random.randint(k_label, (args.batch,), 0, config.classes, jnp.int32)
    masks = data.sample_masks(k_mask, tokens.shape[0], config.n, config.mask_rate)
    return tokens, labels, masks


def _unit(x):
    return x / jnp.linalg.norm(x)


def taylor_directions(n: int, dtype) -> dict:
    r"""Return the unit n x n directions of the taylor entry: $B_1$, the wrap-around band at lag $\pm 1$, proximity.

    Each is built as one n x n matrix (never a whole family basis).
    """
    i = jnp.arange(n)
    lag = (i[None, :] - i[:, None]) % n
    return {
        "band_1": directions.band(n, 1, dtype=dtype)[0],
        "circulant_1": _unit(((lag == 1) | (lag == n - 1)).astype(dtype)),
        "proximity": directions.family("proximity", n, dtype=dtype, part="whole").basis()[0],
    }


def _per_sample_losses(params, config, objective, tokens, target):
    r"""$\Delta \mapsto (L_b(S_b + \Delta))_b$ in the score-space view."""
    w = query_key_matrix(params)

    def one(delta, x, t):
        if objective == "classification":
            return classification_loss_at_scores(
                params, config, x, t, scores_from_query_key(w, params, config, x) + delta
            )
        s = scores_from_query_key(w, params, config, mask_tokens(config, x, t))
        return reconstruction_loss_at_scores(params, config, x, t, s + delta)

    return lambda delta: jax.vmap(one, in_axes=(None, 0, 0))(delta, tokens, target)


def _split_outputs(params, config, objective, tokens, target):
    """Return outputs and outer loss for the Gauss-Newton split (logits; features; or per-sample losses for copy)."""
    w = query_key_matrix(params)
    if objective == "classification":

        def outputs(delta):
            return jax.vmap(
                lambda x: class_logits_at_scores(params, config, x, scores_from_query_key(w, params, config, x) + delta)
            )(tokens)

        def loss(z):
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), target[:, None], axis=1))

        return outputs, loss
    if config.reconstruction == "copy":
        return _per_sample_losses(params, config, objective, tokens, target), jnp.mean

    def outputs(delta):
        def one(x, t):
            masked = mask_tokens(config, x, t)
            return features_at_scores(params, config, masked, scores_from_query_key(w, params, config, masked) + delta)

        return jax.vmap(one)(tokens, target)

    def loss(f):
        return jnp.mean(
            jax.vmap(lambda x, t, fx: reconstruction_loss_at_features(params, config, x, t, fx))(tokens, target, f)
        )

    return outputs, loss


def _family_entries(first: first_order.FirstOrder, n: int, bands: int) -> tuple[dict, dict, dict | None]:
    """Visible fraction, mean-gradient alignment and detectability of every registered family."""
    dtype = first.statistics.rows.dtype
    families = {name: directions.family(name, n, dtype=dtype) for name in directions.registry_names(n, bands=bands)}
    return hook_analysis.family_entries(
        families, lambda fam: fam.coordinates(first.statistics), first.span, first.score_norms, first.mean_norm, n
    )


@partial(jax.jit, static_argnums=(1, 2, 6))
def _taylor_coefficients(params, config, objective, tokens, target, direction, order):
    """Jitted with the batch as arguments (a closure over it would be constant-folded by XLA)."""
    losses = _per_sample_losses(params, config, objective, tokens, target)
    zero = jnp.zeros_like(direction)
    return taylor.taylor_coefficients(lambda s: jnp.mean(losses(s)), zero, direction, order)


def _taylor_entry(params, config, objective, tokens, target, order: int) -> dict:
    """Taylor coefficients $c_0..c_K$ of the batch-mean loss along each of ``taylor_directions``."""
    return {
        name: [float(c) for c in _taylor_coefficients(params, config, objective, tokens, target, d, order)]
        for name, d in taylor_directions(config.n, jnp.result_type(float)).items()
    }


@partial(jax.jit, static_argnums=(1, 2))
def _gauss_newton_split(params, config, objective, tokens, target, basis):
    """Jitted with the batch as arguments (a closure over it would be constant-folded by XLA)."""
    outputs, outer = _split_outputs(params, config, objective, tokens, target)
    return curvature.gauss_newton_split(outputs, outer, jnp.zeros(basis.shape[1:], basis.dtype), basis)


def _hessian_entry(params, config, objective, tokens, target, bands: int) -> dict:
    r"""Per family: eigenvalues of $Q_F^\top H Q_F$ and the norms of its Gauss-Newton and functional parts."""
    n, dtype = config.n, jnp.result_type(float)
    entry = {}
    for name in directions.registry_names(n, bands=bands):
        basis = directions.family(name, n, dtype=dtype).basis()
        split = _gauss_newton_split(params, config, objective, tokens, target, basis)
        entry[name] = {
            "eigenvalues": [float(e) for e in jnp.linalg.eigvalsh(0.5 * (split.total + split.total.T))],
            "gauss_newton_norm": float(jnp.linalg.norm(split.gauss_newton)),
            "functional_norm": float(jnp.linalg.norm(split.functional)),
        }
    return entry


def _parameter_space_entry(params, config, objective, tokens, target, first: first_order.FirstOrder) -> dict:
    """Rank of the per-sample W-gradients and the cosine of their mean with the positional identity (P5, P8)."""
    w_grads = np.asarray(first.query_key_gradients)  # b x d x d: small, on the host
    w_scale = jacobian.query_key_scale(params, config, objective, tokens, target, first.score_norms)
    w_rank = subspaces.numerical_rank(w_grads.reshape(w_grads.shape[0], -1), scale=w_scale)
    w_mean = w_grads.mean(axis=0)
    w_zero = float(np.linalg.norm(w_mean)) <= w_rank.tolerance
    cosine = 0.0 if w_zero else float(pushforward.first_step_cosine(w_mean, params.positional))
    return {
        "grad_rank": w_rank.rank,
        "grad_rank_tolerance": w_rank.tolerance,
        "mean_grad_norm": float(np.linalg.norm(w_mean)),
        "mean_grad_is_zero": w_zero,
        "positional_identity_cosine": cosine,
        "proximity_pushforward": _pushforward_detectability(params, config, w_grads, w_rank.tolerance),
    }


def _pushforward_detectability(params, config, w_grads, resolution: float) -> dict | None:
    r"""Return the detectability of the per-sample W-gradients along the proximity pushforward $\omega_K$ (P13)."""
    if w_grads.shape[0] < 2:
        return None
    omega = pushforward.proximity_pushforward(params.positional, scale=output_view.score_scale(config))
    flat = w_grads.reshape(w_grads.shape[0], -1)
    along_omega = flat @ np.asarray(omega).reshape(-1, 1)
    along = detectability.estimate(detectability.moments(along_omega), resolution=resolution)
    whole = detectability.estimate(detectability.moments(flat, covariance=False))
    return {**along._asdict(), "share": detectability.share(along, whole)}


def _rank_entries(first: first_order.FirstOrder, n: int) -> dict:
    """Route, ranks, blind dimension and saturation of the span of one objective's gradients."""
    return {
        "route": first.route,
        "per_sample_rank_max": first.per_sample_rank_max,
        "span_rank": first.span.rank,
        "blind_dim": n**2 - first.span.rank,
        "span_saturated": first.span.rank == first.score_norms.shape[0] < n * (n - 1),
        "rank_tolerance": first.span.tolerance,
        "largest_singular_value": float(first.span.singular_values[0]),
    }


def _route_text(route: str, n: int, chunk: int) -> str:
    count = -(-n // chunk)
    blocks = f" ({count} block{'s' * (count > 1)} of {chunk} query rows)" if route == "streamed" else ""
    return f"first order by the {route} route{blocks}"


def analyse(params, config, objective, tokens, target, *, route, chunk, taylor_order, bands, hessian, progress) -> dict:
    """First-order (and optional curvature) report of one objective: the ``R`` of the JSON output.

    ``progress`` (a ``progress.Progress``) announces each stage on stderr.
    """
    tokens, target = sharding.shard_batch(tokens, target)
    batch = (params, config, objective, tokens, target)
    with progress.stage(f"{objective}: {_route_text(route, config.n, chunk)}"):
        first = first_order.first_order(route, *batch, chunk=chunk)
        report = _rank_entries(first, config.n)
    with progress.stage(f"{objective}: families, alignment, detectability"):
        report["families"], report["expected_alignment"], report["detectability"] = _family_entries(
            first, config.n, bands
        )
    report["taylor"] = {}
    if taylor_order:
        with progress.stage(f"{objective}: Taylor coefficients to order {taylor_order}"):
            report["taylor"] = _taylor_entry(*batch, taylor_order)
    if hessian:
        with progress.stage(f"{objective}: restricted Hessians"):
            report["restricted_hessian"] = _hessian_entry(*batch, bands)
    with progress.stage(f"{objective}: query-key gradients"):
        report["parameter_space"] = _parameter_space_entry(*batch, first)
    return report


def _warn_saturated(report) -> None:
    """Say on stderr when a span rank equals the batch: then blind_dim describes the sample, not the model."""
    n, batch = report["config"]["n"], report["config"]["batch"]
    for objective, entry in report["objectives"].items():
        if entry["span_saturated"]:
            print(
                f"{PROG}: note: the {objective} span rank equals the batch ({batch}), so blind_dim is a property of "
                f"the sample; a batch of at least n(n-1) = {n * (n - 1)} is needed to reach every non-gauge direction",
                file=sys.stderr,
            )


def _print_header(report, timings) -> None:
    cfg = report["config"]
    if cfg.get("model") == "transformer":
        shape = f"layers={cfg['layers']} heads={cfg['heads']} causal={cfg['causal']} positions={cfg['positions']}"
    else:
        shape = f"scores={cfg['scores']} pooling={cfg['pooling']} residual={cfg['residual']}"
    print(
        f"blindspot probe  n={cfg['n']} d={cfg['d']} {shape} "
        f"mlp={cfg['mlp']} data={cfg['data']} batch={cfg['batch']} init={cfg['qk_init']}"
    )
    print(
        f"dtype={report['dtype']} matmul_precision={report['matmul_precision']} device={report['device']} "
        f"seconds={timings['seconds']:.2f}"
    )


def _print_table(report, timings) -> None:
    _print_header(report, timings)
    objectives = report["objectives"]
    names = list(objectives)
    print(f"{'':{TABLE_LABEL_WIDTH}}" + "".join(f"{name:>18}" for name in names))
    rows = _first_order_rows(objectives[names[0]]) + _second_order_rows(objectives[names[0]])
    for label, value in rows:
        print(f"{label:{TABLE_LABEL_WIDTH}}" + "".join(f"{_fmt(value(objectives[o])):>18}" for o in names))
    _warn_saturated(report)


def _first_order_rows(first: dict) -> list:
    """(label, value of one objective's report) for the span, the families, the alignment and detectability."""
    rows = [(key, lambda r, k=key: r[k]) for key in SPAN_ROWS]
    for fam in first["families"]:
        label = f"visible {fam} (dim {first['families'][fam]['dim']})"
        rows.append((label, lambda r, f=fam: r["families"][f]["visible_fraction"]))
    for fam in first["expected_alignment"]:
        rows.append(("alignment " + fam, lambda r, f=fam: r["expected_alignment"][f]))
    for fam in first["detectability"] or {}:
        for key in ("batch_star", "share"):
            rows.append((f"{key} {fam}", lambda r, f=fam, k=key: r["detectability"][f][k]))
    return rows


def _second_order_rows(first: dict) -> list:
    """(label, value of one objective's report) for the Taylor coefficients, the Hessians and the W view."""
    rows = []
    for direction in first["taylor"]:
        for k in range(len(first["taylor"][direction])):
            rows.append((f"taylor {direction} c{k}", lambda r, d=direction, k=k: r["taylor"][d][k]))
    for fam in first.get("restricted_hessian", {}):
        for key in ("gauss_newton_norm", "functional_norm"):
            rows.append((f"hessian {fam} {key[:-5]}", lambda r, f=fam, k=key: r["restricted_hessian"][f][k]))
        rows.append((f"hessian {fam} eig max", lambda r, f=fam: max(r["restricted_hessian"][f]["eigenvalues"])))
    for key in ("grad_rank", "positional_identity_cosine"):
        rows.append(("W " + key, lambda r, k=key: r["parameter_space"][k]))
    return rows


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{value:.4g}"


def run(args) -> tuple[dict, dict]:
    """Check the options, build the model and batch, return the report and its timings (no printing).

    Refuses to run without float64 and matmul precision "highest" (``main`` sets both).
    """
    config = _check_options(args)
    require_verification_precision()
    tokens, labels, masks = _batch(args, config)
    if transformer_probe.wanted(args):
        return _run_transformer(args, tokens, labels, masks)
    params = init(jax.random.key(args.seed), config)
    chunk = args.chunk or streamed.default_chunk(int(tokens.shape[0]), config.n)
    options = dict(
        route=_route(args),
        chunk=chunk,
        taylor_order=args.taylor_order,
        bands=args.bands,
        hessian=args.hessian,
        progress=Progress(PROG, args.progress),
    )
    objectives, seconds = {}, {}
    for objective, target in (("classification", labels), ("reconstruction", masks)):
        start = time.perf_counter()
        objectives[objective] = analyse(params, config, objective, tokens, target, **options)
        seconds[objective] = time.perf_counter() - start
    settings = {"data": args.data, "rho": args.rho, "batch": int(tokens.shape[0]), "seed": args.seed}
    return _report({**config.to_dict(), **settings}, objectives), _timings(seconds)


def _run_transformer(args, tokens, labels, masks) -> tuple[dict, dict]:
    """Run the Transformer path (``transformer_probe``): every layer and head of both objectives."""
    config = transformer_probe.config(args)
    params = transformer_probe.parameters(jax.random.key(args.seed), config, args.init, args.init_scale)
    along = taylor_directions(config.n, jnp.result_type(float))
    options = dict(taylor_order=args.taylor_order, taylor_directions=along, bands=args.bands, hessian=args.hessian)
    progress = Progress(PROG, args.progress)
    objectives, seconds = {}, {}
    for objective, target in (("classification", labels), ("reconstruction", masks)):
        start = time.perf_counter()
        with progress.stage(f"{objective}: every layer and head through the hook"):
            objectives[objective] = transformer_probe.analyse(params, config, objective, tokens, target, **options)
        seconds[objective] = time.perf_counter() - start
    settings = transformer_probe.report_config(config, args, int(tokens.shape[0]))
    return _report({"model": "transformer", **settings}, objectives), _timings(seconds)


def _report(config: dict, objectives: dict) -> dict:
    devices = jax.devices()
    return {
        "config": config,
        "dtype": str(jnp.result_type(float)),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "device": f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}",
        "objectives": objectives,
    }


def _timings(seconds: dict) -> dict:
    return {"seconds": sum(seconds.values()), "objective_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    """Entry point: check every option (exit status 2 on a bad one), enable float64, report; 0 on success."""
    disable_faulty_fusions()  # before option checks that may create arrays
    try:
        args = build_parser().parse_args(argv)
        _check_options(args)
    except ValueError as error:
        return refuse(PROG, error)
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    if args.compilation_cache is not None:
        use_compilation_cache(args.compilation_cache)
    report, timings = run(args)
    if transformer_probe.wanted(args):
        _print_header(report, timings)
        print("\n".join(transformer_probe.table_lines(report["objectives"])))
    else:
        _print_table(report, timings)
    if args.json is not None:
        try:
            write_report(args.json, report, timings)
        except ValueError as error:
            print(f"{PROG}: error: --json not written: {error}", file=sys.stderr)
            return 1
        print(f"wrote {args.json} and {timings_path(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
