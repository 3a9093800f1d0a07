r"""Benchmarks of the analysis toolkit, printed as one JSON object.

(a) restricted Hessian on ``toeplitz`` vs dense ``jax.hessian`` then projection, n = 24, and (b) one HVP
vs one gradient, n = 256: ``curvature_benchmarks`` of ``experiments/bench_curvature.py``.
(c) closed-form (factored) per-sample score gradients vs autodiff through the softmax, n = 1024.
(d) wall time and peak resident memory of a first-order probe (``--taylor-order 0``) at n = 1024,
d = 64, batch 64 and at n = 4096, each in a fresh subprocess (peak RSS = ``ru_maxrss``), beside the
probe's own up-front estimate (``probe.memory_estimate``).
(e) the streamed route against the dense route at random initialisation (residual + MLP, d = 64,
batch 16), first-order data of both objectives, at the largest n whose dense memory estimate fits
4 GiB: the ratio of their times, target streamed at least as fast (ratio >= 1).
(f) the streamed first-order probe at random initialisation (residual + MLP, d = 64, batch 64) at
n = 256 .. 16384, each in a fresh subprocess: wall and CPU seconds and peak RSS against n, the
log-log slopes of the CPU time and of the peak memory a run adds above the smallest run (targets: at
most 2.2, the $n^2$ work; at most 1.2, no $n \times n$ object), and at n = 4096 the target of under 60 s
with a peak under 4 GiB.

Timings are best-of-``repeats`` after a warm-up call (compilation excluded), each ending with
``block_until_ready``; (d) and (f) time whole probe runs, compilation included. ``--quick``: n = 256
for (c), n = 256 and 512 with batch 16 for (d), a 1 GiB budget for (e), n = 64, 256, 512 with batch
16 for (f). ``--smoke``: tiny sizes and one repeat, only to check in seconds that every benchmark runs
(its numbers and verdicts mean nothing). The full sizes take tens of minutes of CPU time: the n = 16384
probe of (f) alone took 1327 s, one timing of the dense route of (e) 457 s.
"""

import json
import math
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from blindspot.cli import BadOption, Parser, refuse  # noqa: E402
from blindspot.runtime import require_sound_compiler  # noqa: E402
from experiments.bench_curvature import best_time, curvature_benchmarks  # noqa: E402

PROG = "python experiments/bench_analysis.py"

SIZES = {
    "full": {
        "repeats": 3,
        "curvature": {},
        "c": {"n": 1024, "batch": 8, "d": 64},
        "d": [(1024, 64, 64), (4096, 64, 64)],
        "e": {"d": 64, "batch": 16, "limit_gib": 4.0},
        "f": {"sizes": (256, 1024, 2048, 4096, 16384), "d": 64, "batch": 64},
    },
    "quick": {
        "repeats": 2,
        "curvature": {},
        "c": {"n": 256, "batch": 8, "d": 64},
        "d": [(256, 64, 16), (512, 64, 16)],
        "e": {"d": 64, "batch": 16, "limit_gib": 1.0},
        "f": {"sizes": (64, 256, 512), "d": 64, "batch": 16},
    },
    "smoke": {
        "repeats": 1,
        "curvature": {"restricted_n": 4, "hvp_n": 8, "repeats": 1},
        "c": {"n": 8, "batch": 2, "d": 4},
        "d": [],
        "e": {"d": 4, "batch": 3, "limit_gib": 0.7, "candidates": (8,)},
        "f": {"sizes": (8,), "d": 4, "batch": 3},
    },
}
"""Sizes per mode: repeats, curvature sizes, (c) n, batch, d, the (n, d, batch) of each (d) run, (e) and (f)."""

RANDOM_INIT = ("--init", "random", "--residual")
"""Options of the (e) and (f) models besides the sizes: random initialisation, residual (and an MLP of width d)."""
TARGET_N, TARGET_SECONDS, TARGET_PEAK_GIB = 4096, 60.0, 4.0
"""(f): the streamed first-order probe at n = 4096 in under 60 s with a peak under 4 GiB."""

PROBE_RUN = """
import json, resource, sys, time
start = time.perf_counter()
import jax
from blindspot import probe
code = probe.main(sys.argv[1:])
usage = resource.getrusage(resource.RUSAGE_SELF)
device = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
print("BENCH " + json.dumps({"exit": code, "seconds": time.perf_counter() - start,
      "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
      "peak_device_mib": device and device / 2**20}))
"""


def fast_vs_autodiff(n: int, *, batch: int, d: int, repeats: int) -> dict:
    """(c): per-sample classification and reconstruction score gradients, closed form vs autodiff."""
    from blindspot import data, fast_paths, jacobian, model
    from blindspot.config import ModelConfig

    config = ModelConfig(n=n, d=d, mlp=d)
    keys = jax.random.split(jax.random.key(0), 4)
    params = model.init(keys[0], config)
    tokens = data.iid_tokens(keys[1], batch, n, config.vocab)
    labels = jax.random.randint(keys[2], (batch,), 0, config.classes, jnp.int32)
    masks = data.sample_masks(keys[3], batch, n, config.mask_rate)
    out = {"n": n, "d": d, "batch": batch, "mlp": d}
    for objective, target in (("classification", labels), ("reconstruction", masks)):
        auto = best_time(jacobian.score_gradients, params, config, objective, tokens, target, repeats=repeats)
        fast = best_time(fast_paths.uniform_score_factors, params, config, objective, tokens, target, repeats=repeats)
        dense = best_time(
            lambda *a: fast_paths.dense_gradients(fast_paths.uniform_score_factors(*a)),
            params,
            config,
            objective,
            tokens,
            target,
            repeats=repeats,
        )
        out[objective] = {
            "autodiff_seconds": auto,
            "factored_seconds": fast,
            "factored_then_dense_seconds": dense,
            "speedup_factored": auto / fast,
            "speedup_factored_then_dense": auto / dense,
        }
    w = best_time(fast_paths.classification_column_factors, params, config, tokens, labels, repeats=repeats)
    out["classification"]["rank_one_seconds"] = w
    out["classification"]["speedup_rank_one"] = out["classification"]["autodiff_seconds"] / w
    out["target"] = ">= 10x (factored vs autodiff)"
    return out


def probe_run(n: int, *, d: int, batch: int, options: tuple = ()) -> dict:
    """(d), (f): one first-order probe in a fresh process: wall time, peak RSS beside the estimate, span ranks."""
    from blindspot import probe

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["--n", str(n), "--d", str(d), "--batch", str(batch), "--taylor-order", "0", *options]
    estimate = sum(probe.memory_estimate(probe.build_parser().parse_args(args)).values())
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE_RUN, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    line = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
    if done.returncode or not line:
        return {"n": n, "d": d, "batch": batch, "exit": done.returncode, "error": done.stderr.strip().splitlines()[-1:]}
    stats = json.loads(line[-1][len("BENCH ") :])
    rows = {x.split()[0]: x for x in done.stdout.splitlines() if x.split()[:1] in (["route"], ["span_rank"])}
    return {
        "n": n,
        "d": d,
        "batch": batch,
        "process_seconds": wall,
        **stats,
        "estimated_peak_mib": estimate / 2**20,
        "route_row": rows.get("route", ""),
        "span_rank_row": rows.get("span_rank", ""),
    }


def _streamed_batch(n: int, d: int, batch: int):
    """Model at random initialisation (residual + MLP of width d) and a batch, as the (e) and (f) probes use."""
    from blindspot import data, model
    from blindspot.config import ModelConfig

    config = ModelConfig(n=n, d=d, mlp=d, residual=True, qk_init="random")
    keys = jax.random.split(jax.random.key(0), 4)
    labels = jax.random.randint(keys[2], (batch,), 0, config.classes, jnp.int32)
    targets = {"classification": labels, "reconstruction": data.sample_masks(keys[3], batch, n, config.mask_rate)}
    return model.init(keys[0], config), config, data.iid_tokens(keys[1], batch, n, config.vocab), targets


def largest_dense_n(*, d: int, batch: int, limit_gib: float, candidates=tuple(2**k for k in range(3, 15))) -> int:
    """Largest candidate n whose dense-route memory estimate (``probe.memory_estimate``) fits ``limit_gib``."""
    from blindspot import probe

    def estimate(n):
        args = ["--n", str(n), "--d", str(d), "--mlp", str(d), "--batch", str(batch), "--taylor-order", "0"]
        parsed = probe.build_parser().parse_args([*args, *RANDOM_INIT, "--route", "dense"])
        return sum(probe.memory_estimate(parsed).values())

    return max((n for n in candidates if estimate(n) <= limit_gib * 2**30), default=min(candidates))


def streamed_vs_dense(*, d: int, batch: int, limit_gib: float, repeats: int, **sizes) -> dict:
    """(e): first-order data of both objectives, dense against streamed route, at the largest n where dense fits."""
    from blindspot import first_order

    n = largest_dense_n(d=d, batch=batch, limit_gib=limit_gib, **sizes)
    params, config, tokens, targets = _streamed_batch(n, d, batch)
    seconds = {}
    for route in ("dense", "streamed"):
        compute = partial(first_order.first_order, route, params, config)
        seconds[route] = sum(best_time(compute, o, tokens, t, repeats=repeats) for o, t in targets.items())
    ratio = seconds["dense"] / seconds["streamed"]
    return {
        "n": n,
        "d": d,
        "batch": batch,
        "dense_fits_gib": limit_gib,
        "dense_seconds": seconds["dense"],
        "streamed_seconds": seconds["streamed"],
        "ratio_dense_over_streamed": ratio,
        "target": "ratio >= 1 (streamed at least as fast as dense)",
        "verdict": "pass" if ratio >= 1.0 else "fail",
    }


def loglog_slope(x, y) -> float | None:
    """Least-squares slope of log y against log x (None with fewer than two positive points)."""
    points = [(math.log(a), math.log(b)) for a, b in zip(x, y) if a > 0 and b > 0]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sum((p[0] - mx) ** 2 for p in points)


def streamed_scaling(*, sizes, d: int, batch: int) -> dict:
    """(f): the streamed first-order probe against n: times, peaks, log-log slopes and the n = 4096 target.

    The slopes are fitted to what a run adds above the smallest run (its start-up, compilation and runtime),
    CPU seconds for time (wall seconds depend on what else the machine runs; on a GPU the wall slope is the
    one to read, also reported), peak RSS for memory (and the device's peak where it reports one).
    """
    options = ("--mlp", str(d), *RANDOM_INIT, "--route", "streamed")
    runs = [probe_run(n, d=d, batch=batch, options=options) for n in sizes]
    ok = [r for r in runs if r.get("exit") == 0]
    sizes_above = [r["n"] for r in ok[1:]]
    time_slope = loglog_slope(sizes_above, [r["cpu_seconds"] - ok[0]["cpu_seconds"] for r in ok[1:]])
    memory_slope = loglog_slope(sizes_above, [r["peak_rss_mib"] - ok[0]["peak_rss_mib"] for r in ok[1:]])
    wall_slope = loglog_slope(sizes_above, [r["process_seconds"] - ok[0]["process_seconds"] for r in ok[1:]])
    report = {
        "runs": runs,
        "wall_time_exponent_above_smallest_run": wall_slope,
        "cpu_time_exponent_above_smallest_run": time_slope,
        "time_target": "exponent <= 2.2 (the n^2 work)",
        "time_verdict": _verdict(time_slope is not None and time_slope <= 2.2),
        "memory_exponent_above_smallest_run": memory_slope,
        "memory_target": "exponent <= 1.2 (no n x n object)",
        "memory_verdict": _verdict(memory_slope is not None and memory_slope <= 1.2),
    }
    at_target = [r for r in ok if (r["n"], r["d"], r["batch"]) == (TARGET_N, 64, 64)]
    if at_target:
        run = at_target[0]
        passed = run["process_seconds"] < TARGET_SECONDS and run["peak_rss_mib"] < TARGET_PEAK_GIB * 1024
        report["target_n_4096"] = f"wall under {TARGET_SECONDS:g} s with a peak under {TARGET_PEAK_GIB:g} GiB"
        report["target_n_4096_verdict"] = _verdict(passed)
    return report


def _verdict(passed: bool) -> str:
    return "pass" if passed else "fail"


def main(argv=None) -> int:
    """Command line: ``python experiments/bench_analysis.py [--quick | --smoke] [--skip-curvature]``."""
    parser = Parser(prog=PROG, description=" ".join(__doc__.split("\n\n")[0].split()))
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: minutes, not tens of minutes")
    sizes.add_argument("--smoke", action="store_true", help="tiny sizes: checks in seconds that everything runs")
    parser.add_argument("--skip-curvature", action="store_true", help="leave out (a) and (b)")
    try:
        args = parser.parse_args(argv)
    except BadOption as error:
        return refuse(PROG, error)
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = SIZES[mode]
    device = jax.devices()[0]
    report = {
        "device": f"{device.platform}:{device.device_kind} x{len(jax.devices())}",
        "cpu_count": os.cpu_count(),
        "dtype": "float64",
        "mode": mode,
    }
    if not args.skip_curvature:
        report["curvature"] = curvature_benchmarks(mode != "full", **size["curvature"])
    report["c_fast_vs_autodiff"] = fast_vs_autodiff(**size["c"], repeats=size["repeats"])
    report["d_first_order_probe"] = [probe_run(n, d=d, batch=b) for n, d, b in size["d"]]
    report["e_streamed_vs_dense"] = streamed_vs_dense(**size["e"], repeats=size["repeats"])
    report["f_streamed_scaling"] = streamed_scaling(**size["f"])
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
