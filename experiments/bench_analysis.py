r"""Benchmarks of the analysis toolkit, printed as one JSON object.

(a) restricted Hessian on ``toeplitz`` vs dense ``jax.hessian`` then projection, n = 24, and (b) one HVP
vs one gradient, n = 256: ``curvature_benchmarks`` of ``experiments/bench_curvature.py``.
(c) closed-form (factored) per-sample score gradients vs autodiff through the softmax, n = 1024.
(d) wall time and peak resident memory of a first-order probe (``--taylor-order 0``) at n = 1024,
d = 64, batch 64 and at n = 4096, each in a fresh subprocess (peak RSS = ``ru_maxrss``), beside the
probe's own up-front estimate (``probe.memory_estimate``).

Timings are best-of-``repeats`` after a warm-up call (compilation excluded), each ending with
``block_until_ready``. ``--quick``: n = 256 for (c), n = 256 and 512 with batch 16 for (d).
``--smoke``: tiny sizes and one repeat, only to check in seconds that every benchmark runs (its
numbers mean nothing).
"""

import json
import os
import subprocess
import sys
import time
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
    },
    "quick": {"repeats": 2, "curvature": {}, "c": {"n": 256, "batch": 8, "d": 64}, "d": [(256, 64, 16), (512, 64, 16)]},
    "smoke": {
        "repeats": 1,
        "curvature": {"restricted_n": 4, "hvp_n": 8, "repeats": 1},
        "c": {"n": 8, "batch": 2, "d": 4},
        "d": [(8, 4, 2)],
    },
}
"""Sizes per mode: repeats, curvature benchmark sizes, (c) n, batch, d and the (n, d, batch) of each (d) run."""

PROBE_RUN = """
import json, resource, sys, time
start = time.perf_counter()
from blindspot import probe
code = probe.main(sys.argv[1:])
print("BENCH " + json.dumps({"exit": code, "seconds": time.perf_counter() - start,
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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


def probe_run(n: int, *, d: int, batch: int) -> dict:
    """(d): one first-order probe in a fresh process: wall time, peak RSS beside the estimate, span ranks."""
    from blindspot import probe

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["--n", str(n), "--d", str(d), "--batch", str(batch), "--taylor-order", "0"]
    estimate = sum(probe.memory_estimate(probe.build_parser().parse_args(args)).values())
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE_RUN, *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    line = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
    if done.returncode or not line:
        return {"n": n, "d": d, "batch": batch, "error": done.stderr.strip().splitlines()[-1:]}
    stats = json.loads(line[-1][len("BENCH ") :])
    spans = [x for x in done.stdout.splitlines() if x.startswith("span_rank")]
    return {
        "n": n,
        "d": d,
        "batch": batch,
        "process_seconds": wall,
        **stats,
        "estimated_peak_mib": estimate / 2**20,
        "span_rank_row": spans[0] if spans else "",
    }


def main(argv=None) -> int:
    """Command line: ``python experiments/bench_analysis.py [--quick | --smoke] [--skip-curvature]``."""
    parser = Parser(prog=PROG, description=" ".join(__doc__.split("\n\n")[0].split()))
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes, for a sub-minute run")
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
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
