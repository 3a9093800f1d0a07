r"""Benchmarks of the analysis toolkit, printed as one JSON object (issue 4, item 7).

(a) restricted Hessian on ``toeplitz`` vs dense ``jax.hessian`` then projection, n = 24, and (b) one HVP
vs one gradient, n = 256: ``curvature_benchmarks`` of ``experiments/bench_curvature.py``.
(c) closed-form (factored) per-sample score gradients vs autodiff through the softmax, n = 1024.
(d) wall time and peak resident memory of a first-order probe (``--taylor-order 0``) at n = 1024,
d = 64, batch 64 and at n = 4096, each in a fresh subprocess (peak RSS = ``ru_maxrss``).

Timings are best-of-``repeats`` after a warm-up call (compilation excluded), each ending with
``block_until_ready``. ``--quick``: n = 256 for (c), n = 256 and 512 with batch 16 for (d).
"""

import argparse
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

from blindspot.runtime import require_sound_compiler  # noqa: E402
from experiments.bench_curvature import best_time, curvature_benchmarks  # noqa: E402

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
    """(d): one first-order probe in a fresh process: wall time, peak RSS, and its span ranks."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["--n", str(n), "--d", str(d), "--batch", str(batch), "--taylor-order", "0"]
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
        "span_rank_row": spans[0] if spans else "",
    }


def main(argv=None) -> None:
    """Command line: ``python experiments/bench_analysis.py [--quick] [--skip-curvature]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a sub-minute run")
    parser.add_argument("--skip-curvature", action="store_true", help="leave out (a) and (b)")
    args = parser.parse_args(argv)
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    repeats = 2 if args.quick else 3
    device = jax.devices()[0]
    report = {
        "device": f"{device.platform}:{device.device_kind} x{len(jax.devices())}",
        "cpu_count": os.cpu_count(),
        "dtype": "float64",
        "quick": args.quick,
    }
    if not args.skip_curvature:
        report["curvature"] = curvature_benchmarks(args.quick)
    report["c_fast_vs_autodiff"] = fast_vs_autodiff(256 if args.quick else 1024, batch=8, d=64, repeats=repeats)
    sizes = [(256, 16), (512, 16)] if args.quick else [(1024, 64), (4096, 64)]
    report["d_first_order_probe"] = [probe_run(n, d=64, batch=b) for n, b in sizes]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
