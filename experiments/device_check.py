r"""``python -m experiments.device_check``: the package on an accelerator (or the CPU), in one run.

Prints the device, then runs ``python -m blindspot.verify --full``, the analysis benchmark
(``experiments/bench_analysis.py`` at full sizes) and a first-order probe at n = 16384, d = 64, batch 64,
residual + MLP at random initialisation (the streamed route), and prints their figures: the probe's
wall time (compilation included), against the target of under 10 s on one modern GPU, and the device's
peak memory where the device reports it. Everything runs in float64 with matmul precision "highest"
(no TF32); the script refuses to run otherwise.

``--smoke``: one verify claim, the benchmark's streamed-against-dense comparison at a tiny size and a
probe at n = 8, to check on a CPU in seconds that every step runs (its numbers mean nothing).
Exit status: 0 when every step ran and the claims passed, 1 otherwise, 2 for a bad option.
"""

import json
import sys
import time

import jax

from blindspot import probe, verify
from blindspot.cli import BadOption, Parser, refuse
from blindspot.runtime import require_sound_compiler, require_verification_precision

PROG = "python -m experiments.device_check"
GPU_TARGET_SECONDS = 10.0
"""Target wall time of the large probe on one modern GPU."""
LARGE_PROBE = ["--n", "16384", "--d", "64", "--mlp", "64", "--batch", "64", "--residual", "--init", "random"]
SMOKE_PROBE = ["--n", "8", "--d", "4", "--mlp", "4", "--batch", "3", "--residual", "--init", "random"]
FIRST_ORDER = ["--taylor-order", "0", "--max-memory-gb", "64"]
"""Both probes: first order only; the memory limit of a GPU host rather than a laptop's."""


def setup() -> str:
    """Sound compiler, float64, matmul precision "highest" (refused if they do not hold); return the device line."""
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    require_verification_precision()
    devices = jax.devices()
    return f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}"


def large_probe(argv: list[str]) -> dict:
    """One first-order probe in this process: wall seconds (compilation included), routes, span ranks, peak memory."""
    args = probe.build_parser().parse_args(argv)
    start = time.perf_counter()
    report, timings = probe.run(args)
    seconds = time.perf_counter() - start
    stats = jax.devices()[0].memory_stats() or {}
    on_gpu = jax.devices()[0].platform == "gpu"
    objectives = report["objectives"]
    return {
        "options": " ".join(argv),
        "seconds": seconds,
        "objective_seconds": timings["objective_seconds"],
        "routes": {name: entry["route"] for name, entry in objectives.items()},
        "span_ranks": {name: entry["span_rank"] for name, entry in objectives.items()},
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "target": f"under {GPU_TARGET_SECONDS:g} s on one modern GPU",
        "verdict": ("pass" if seconds < GPU_TARGET_SECONDS else "fail") if on_gpu else "not a GPU",
    }


def benchmark(smoke: bool) -> dict:
    """Run the analysis benchmark: all of it (its JSON printed), or only its (e) comparison at a tiny size."""
    from experiments import bench_analysis

    if smoke:
        return bench_analysis.streamed_vs_dense(**bench_analysis.SIZES["smoke"]["e"], repeats=1)
    return {"exit": bench_analysis.main([])}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m experiments.device_check [--smoke]``."""
    parser = Parser(prog=PROG, description=" ".join(__doc__.split("\n\n")[1].split()))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks on a CPU in seconds that it all runs")
    try:
        args = parser.parse_args(argv)
    except BadOption as error:
        return refuse(PROG, error)
    device = setup()
    print(f"device {device}, dtype float64, matmul precision highest, jax {jax.__version__}")
    start = time.perf_counter()
    verify_exit = verify.main(["--claim", "P2"] if args.smoke else ["--full"])
    summary = {"device": device, "verify_exit": verify_exit, "verify_seconds": time.perf_counter() - start}
    summary["benchmark"] = benchmark(args.smoke)
    summary["probe"] = large_probe([*(SMOKE_PROBE if args.smoke else LARGE_PROBE), *FIRST_ORDER])
    print(json.dumps(summary, indent=2))
    return 0 if verify_exit == 0 and summary["benchmark"].get("exit", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
