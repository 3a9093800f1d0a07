r"""``python -m blindspot.probe``: report which attention-score directions each loss sees at a given state.

Builds the model from command-line options, draws a batch, evaluates both objectives (label
supervision and masked reconstruction) at the chosen state in the score-space view, and reports
per-sample and batch gradient ranks, the blind dimension, the visible fraction of each direction
family, the alignment of the mean gradient, Taylor coefficients along proximity directions, the
query-key (parameter-space) gradient and, with ``--hessian``, the Hessian restricted to each family.
"""

import argparse
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from blindspot import curvature, data, directions, fast_paths, jacobian, taylor
from blindspot.config import POOLING, POSITIONAL, QK_INIT, RECONSTRUCTION, SCORES, ModelConfig
from blindspot.io import write_json_atomic
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
from blindspot.runtime import require_sound_compiler

DATA = ("iid", "markov", "task", "digits")
ROUTES = ("auto", "dense", "factored")
DENSE_BUDGET = 2**28
"""Largest number of per-sample score-gradient entries (b n^2) the automatic route forms densely."""
HESSIAN_MAX_N = 64
"""Largest n for ``--hessian`` (dense family bases of shape (k, n, n) and k HVPs per family)."""

FIGURES = """reported figures (per objective):
  per_sample_rank_max  largest numerical rank of one sample's n x n score gradient dL/dS
  span_rank            numerical rank of the b per-sample gradients stacked as b x n^2 (their span G)
  blind_dim            n^2 - span_rank: directions no sample's gradient sees at first order
  rank_tolerance       singular values below it count as zero: eps * max(b, n^2) * sigma_1
                       (square root of eps * max(b, n^2) * lambda_1 when the Gram route is used)
  families             per direction family F: dim and visible_fraction = ||Q_G^T Q_F||_F^2 / dim F
                       (0 = first-order blind, 1 = fully visible); gauge is invisible to every loss
  expected_alignment   per family: ||Q_F g_bar|| / ||g_bar|| for the mean gradient g_bar (signed cosine
                       <g_bar, q>/||g_bar|| for one-dimensional families; negative = descent moves along +q)
  taylor               c_0..c_K of t -> mean_b L_b(S_b + t D) along unit directions D: band_1, the
                       symmetric wrap-around band circulant_1 and the proximity kernel (c_k = f^(k)(0)/k!)
  restricted_hessian   (--hessian) per family: eigenvalues of Q_F^T H Q_F and Frobenius norms of its
                       Gauss-Newton and functional parts
  parameter_space      grad_rank: rank of the b per-sample gradients w.r.t. the query-key matrix W;
                       positional_identity_cosine: cosine of the mean W-gradient with the positional
                       identity P^+ P / ||P^+ P||_F (P8); 0 when the mean W-gradient is zero to rounding
                       (below grad_rank_tolerance = eps * max(b, d^2) * max(sigma_1, max_b c ||H_b||^2 ||G_b||))"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _BadOption(message)


class _BadOption(Exception):
    pass


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line interface (every option documented in ``--help``)."""
    p = _Parser(
        prog="python -m blindspot.probe",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        epilog=FIGURES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=_integer, default=16, help="sequence length n >= 2 (default 16)")
    p.add_argument("--d", type=_integer, default=16, help="width d >= 1 (default 16)")
    p.add_argument("--vocab", type=_integer, default=8, help="vocabulary size V >= 2; id V is MASK (default 8)")
    p.add_argument("--classes", type=_integer, default=2, help="number of classes >= 2 (default 2)")
    p.add_argument("--pe", choices=POSITIONAL, default="sinusoidal", help="positional encoding (default sinusoidal)")
    p.add_argument("--centred", action="store_true", help="centre the positional encoding: sum_i p_i = 0")
    p.add_argument(
        "--scores",
        choices=SCORES,
        default="content_position",
        help="content_position: S = H W H^T / sqrt(d); position: S = P W P^T (default content_position)",
    )
    p.add_argument("--pooling", choices=POOLING, default="mean", help="pooling of the classifier (default mean)")
    p.add_argument("--residual", action="store_true", help="add h_i to the attention output o_i")
    p.add_argument("--mlp", type=_integer, default=0, help="hidden width of the position-wise MLP, 0 = none")
    p.add_argument(
        "--reconstruction",
        choices=RECONSTRUCTION,
        default="cross_entropy",
        help="reconstruction readout (default cross_entropy)",
    )
    p.add_argument("--mask-rate", type=float, default=0.15, help="fraction of masked positions in (0, 1)")
    p.add_argument(
        "--data",
        choices=DATA,
        default="iid",
        help="iid uniform tokens with random labels; markov sticky chain (--rho) with random labels; task "
        "paired/shuffled adjacency task (n even); digits: sklearn 8x8 digits (n = 64, vocab = grey levels, "
        "classes >= 10)",
    )
    p.add_argument("--rho", type=float, default=0.9, help="stickiness of the markov source in [0, 1) (default 0.9)")
    p.add_argument("--batch", type=_integer, default=64, help="number of sequences b >= 1 (default 64)")
    p.add_argument("--seed", type=_integer, default=0, help="PRNG seed >= 0 for parameters and data")
    p.add_argument(
        "--init",
        choices=QK_INIT,
        default="zero",
        help="query-key state: zero (W = 0, uniform attention) or random (entries N(0, s^2/d))",
    )
    p.add_argument("--init-scale", type=float, default=0.1, help="scale s > 0 of --init random (default 0.1)")
    p.add_argument(
        "--route",
        choices=ROUTES,
        default="auto",
        help="dense: autodiff per-sample n x n gradients; factored: closed forms at uniform attention "
        "(needs --init zero), no n x n object per sample; auto: factored when W = 0, else dense",
    )
    p.add_argument(
        "--taylor-order",
        type=_integer,
        default=3,
        help="Taylor order K >= 0 of the taylor entry; costs O(b n^2 d) per order; 0 skips it (use 0 at large n)",
    )
    p.add_argument("--bands", type=_integer, default=2, help="report band_1 .. band_K (default 2)")
    p.add_argument("--hessian", action="store_true", help=f"restricted Hessian per family (needs n <= {HESSIAN_MAX_N})")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH (atomically)")
    return p


def _check_options(args) -> ModelConfig:
    for name in ("n", "d", "vocab", "classes", "batch", "seed", "mlp", "taylor_order", "bands"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    config = ModelConfig(
        n=args.n,
        d=args.d,
        vocab=args.vocab,
        classes=args.classes,
        positional=args.pe,
        centred=args.centred,
        scores=args.scores,
        pooling=args.pooling,
        residual=args.residual,
        mlp=args.mlp,
        mask_rate=args.mask_rate,
        reconstruction=args.reconstruction,
        qk_init=args.init,
        qk_init_scale=args.init_scale,
    )
    if args.batch < 1:
        raise ValueError(f"--batch must be an integer >= 1, got {args.batch}")
    if args.data == "markov" and not 0.0 <= args.rho < 1.0:
        raise ValueError(f"--rho must be a real number in [0, 1), got {args.rho}")
    if args.data == "task" and args.n % 2:
        raise ValueError(f"--n must be even for --data task, got {args.n}")
    if args.data == "digits":
        if args.n != 64:
            raise ValueError(f"--n must be 64 for --data digits, got {args.n}")
        if args.classes < 10 or not 2 <= args.vocab <= 17:
            raise ValueError("--data digits needs --classes >= 10 and --vocab in [2, 17] (grey levels)")
    if args.route == "factored" and args.init != "zero":
        raise ValueError("--route factored needs --init zero (the closed forms hold at uniform attention only)")
    if args.route != "factored" and (args.route == "dense" or args.init != "zero"):
        if args.batch * args.n**2 > DENSE_BUDGET:
            raise ValueError(
                f"the dense route would hold b n^2 = {args.batch * args.n**2} > {DENSE_BUDGET} gradient entries; "
                "use --init zero (factored route) or a smaller --batch/--n"
            )
    if args.hessian and args.n > HESSIAN_MAX_N:
        raise ValueError(f"--hessian needs --n <= {HESSIAN_MAX_N}, got {args.n}")
    for name in directions.registry_names(args.n, bands=args.bands):
        directions.family(name, args.n)
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


def _taylor_directions(n, dtype):
    wrap = directions.circulant(n, dtype=dtype)
    return {
        "band_1": directions.band(n, 1, dtype=dtype)[0],
        "circulant_1": _unit(wrap[1] + wrap[n - 1]),
        "proximity": directions.family("proximity", n, dtype=dtype).basis()[0],
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


def analyse(params, config, objective, tokens, target, *, route, taylor_order, bands, hessian) -> dict:
    """First-order (and optional curvature) report of one objective: the ``R`` of the JSON output."""
    n = config.n
    size = n * n
    tokens, target = jacobian.shard_batch(tokens, target)
    rank_one = objective == "classification" and config.pooling == "mean" and not (config.residual and config.mlp > 0)
    if route == "factored":
        factors = fast_paths.uniform_score_factors(params, config, objective, tokens, target)
        per_sample = int(jnp.max(jacobian.factor_ranks(factors)))
        stats = directions.factor_statistics(factors.rows, factors.columns)
        if rank_one:
            w = fast_paths.classification_column_factors(params, config, tokens, target)
            span = jacobian.span(math.sqrt(n) * w, size=size, keep_basis=False)
            mean_norm = math.sqrt(n) * float(jnp.linalg.norm(w.mean(axis=0)))
            score_norms = math.sqrt(n) * jnp.linalg.norm(w, axis=1)
            route_used = "factored-rank-one"
        else:
            gram = jacobian.gram_from_factors(factors)
            span = jacobian.span_from_gram(gram, size)
            mean_norm = math.sqrt(max(float(jnp.sum(gram)), 0.0)) / gram.shape[0]
            score_norms = jnp.sqrt(jnp.clip(jnp.diag(gram), 0.0))
            route_used = "factored-gram"
        w_grads = jacobian.query_key_gradients(params, config, objective, tokens, target, factors=factors)
    else:
        grads = jacobian.score_gradients(params, config, objective, tokens, target)
        per_sample = int(jnp.max(jacobian.sample_ranks(grads)))
        stats = directions.statistics(grads)
        span = jacobian.span(grads.reshape(grads.shape[0], -1), keep_basis=False)
        mean_norm = float(jnp.linalg.norm(grads.mean(axis=0)))
        score_norms = jnp.linalg.norm(grads.reshape(grads.shape[0], -1), axis=1)
        route_used = "dense"
        w_grads = jacobian.query_key_gradients(params, config, objective, tokens, target)
    report = {
        "route": route_used,
        "per_sample_rank_max": per_sample,
        "span_rank": span.rank,
        "blind_dim": size - span.rank,
        "rank_tolerance": span.tolerance,
        "largest_singular_value": float(span.singular_values[0]),
        "families": {},
        "expected_alignment": {},
    }
    for name in directions.registry_names(n, bands=bands):
        fam = directions.family(name, n, dtype=stats.rows.dtype)
        coords = fam.coordinates(stats)
        report["families"][name] = {
            "dim": fam.dim,
            "visible_fraction": jacobian.visible_fraction(span, coords).fraction,
        }
        report["expected_alignment"][name] = jacobian.expected_alignment_from_projections(coords, mean_norm)
    dtype = stats.rows.dtype
    losses = _per_sample_losses(params, config, objective, tokens, target)

    def f(delta):
        return jnp.mean(losses(delta))

    zero = jnp.zeros((n, n), dtype)
    coefficients = jax.jit(lambda d: taylor.taylor_coefficients(f, zero, d, taylor_order))
    report["taylor"] = (
        {name: [float(c) for c in coefficients(d)] for name, d in _taylor_directions(n, dtype).items()}
        if taylor_order > 0
        else {}
    )
    if hessian:
        outputs, outer = _split_outputs(params, config, objective, tokens, target)
        report["restricted_hessian"] = {}
        split_at = jax.jit(lambda basis: curvature.gauss_newton_split(outputs, outer, zero, basis))
        for name in directions.registry_names(n, bands=bands):
            split = split_at(directions.family(name, n, dtype=dtype).basis())
            report["restricted_hessian"][name] = {
                "eigenvalues": [float(e) for e in jnp.linalg.eigvalsh(0.5 * (split.total + split.total.T))],
                "gauss_newton_norm": float(jnp.linalg.norm(split.gauss_newton)),
                "functional_norm": float(jnp.linalg.norm(split.functional)),
            }
    w_scale = jacobian.query_key_scale(params, config, objective, tokens, target, score_norms)
    w_rank = jacobian.numerical_rank(w_grads.reshape(w_grads.shape[0], -1), scale=w_scale)
    w_mean = w_grads.mean(axis=0)
    w_zero = float(jnp.linalg.norm(w_mean)) <= w_rank.tolerance
    report["parameter_space"] = {
        "grad_rank": w_rank.rank,
        "grad_rank_tolerance": w_rank.tolerance,
        "mean_grad_norm": float(jnp.linalg.norm(w_mean)),
        "mean_grad_is_zero": w_zero,
        "positional_identity_cosine": 0.0 if w_zero else float(directions.first_step_cosine(w_mean, params.positional)),
    }
    return report


def _print_table(report) -> None:
    cfg = report["config"]
    print(
        f"blindspot probe  n={cfg['n']} d={cfg['d']} scores={cfg['scores']} pooling={cfg['pooling']} "
        f"residual={cfg['residual']} mlp={cfg['mlp']} data={cfg['data']} batch={cfg['batch']} init={cfg['qk_init']}"
    )
    print(
        f"dtype={report['dtype']} matmul_precision={report['matmul_precision']} device={report['device']} "
        f"seconds={report['seconds']:.2f}"
    )
    objectives = report["objectives"]
    names = list(objectives)
    width = 28
    print(f"{'':{width}}" + "".join(f"{name:>18}" for name in names))
    rows = [
        ("route", "route"),
        ("per_sample_rank_max", "per_sample_rank_max"),
        ("span_rank", "span_rank"),
        ("blind_dim", "blind_dim"),
        ("rank_tolerance", "rank_tolerance"),
    ]
    for label, key in rows:
        print(f"{label:{width}}" + "".join(f"{_fmt(objectives[o][key]):>18}" for o in names))
    first = objectives[names[0]]
    for fam in first["families"]:
        label = f"visible {fam} (dim {first['families'][fam]['dim']})"
        print(
            f"{label:{width}}"
            + "".join(f"{_fmt(objectives[o]['families'][fam]['visible_fraction']):>18}" for o in names)
        )
    for fam in first["expected_alignment"]:
        print(
            f"{'alignment ' + fam:{width}}"
            + "".join(f"{_fmt(objectives[o]['expected_alignment'][fam]):>18}" for o in names)
        )
    for direction in first["taylor"]:
        for k in range(len(first["taylor"][direction])):
            print(
                f"{f'taylor {direction} c{k}':{width}}"
                + "".join(f"{_fmt(objectives[o]['taylor'][direction][k]):>18}" for o in names)
            )
    for fam in first.get("restricted_hessian", {}):
        for key in ("gauss_newton_norm", "functional_norm"):
            print(
                f"{f'hessian {fam} {key[:-5]}':{width}}"
                + "".join(f"{_fmt(objectives[o]['restricted_hessian'][fam][key]):>18}" for o in names)
            )
        print(
            f"{f'hessian {fam} eig max':{width}}"
            + "".join(f"{_fmt(max(objectives[o]['restricted_hessian'][fam]['eigenvalues'])):>18}" for o in names)
        )
    for key in ("grad_rank", "positional_identity_cosine"):
        print(f"{'W ' + key:{width}}" + "".join(f"{_fmt(objectives[o]['parameter_space'][key]):>18}" for o in names))


def _fmt(value):
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return str(int(value))
    return f"{value:.4g}"


def run(args) -> dict:
    """Build the model and batch from parsed options and return the full report (no printing)."""
    config = _check_options(args)
    tokens, labels, masks = _batch(args, config)
    start = time.perf_counter()
    params = init(jax.random.key(args.seed), config)
    route = args.route if args.route != "auto" else ("factored" if args.init == "zero" else "dense")
    options = dict(route=route, taylor_order=args.taylor_order, bands=args.bands, hessian=args.hessian)
    objectives = {
        "classification": analyse(params, config, "classification", tokens, labels, **options),
        "reconstruction": analyse(params, config, "reconstruction", tokens, masks, **options),
    }
    devices = jax.devices()
    return {
        "config": {
            **config.to_dict(),
            "data": args.data,
            "rho": args.rho,
            "batch": int(tokens.shape[0]),
            "seed": args.seed,
        },
        "dtype": str(jnp.result_type(float)),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "device": f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}",
        "seconds": time.perf_counter() - start,
        "objectives": objectives,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, enable float64 and "highest" matmul precision, report; 2 on bad options."""
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_options(args)
        if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
            raise ValueError(f"--json folder does not exist: {os.path.dirname(os.path.abspath(args.json))}")
    except (_BadOption, ValueError) as error:
        print(f"probe: error: {error}", file=sys.stderr)
        return 2
    report = run(args)
    _print_table(report)
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
