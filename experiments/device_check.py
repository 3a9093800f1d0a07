r"""``python -m experiments.device_check``: the package on an accelerator (or the CPU), in one run.

Prints the device, then runs, most telling first: (1) a first-order probe at n = 16384, d = 64, batch 64,
residual + MLP at random initialisation (the streamed route), twice in one process: its wall time with
compilation (target: under 10 s on one modern GPU), without, the device's peak memory, and whether the
two reports are bit-identical (determinism); (2) the benchmark's streamed probe against n
(``bench_analysis`` (f)), (3) its streamed-against-dense comparison ((e)), (4) its closed-form-against-
autodiff comparison ((c)), and (5) ``python -m blindspot.verify --full``. Everything runs in float64 with
matmul precision "highest" (no TF32); the script refuses to run otherwise. With ``--out DIR`` the
summary is rewritten atomically to ``DIR/device_check.json`` after every step, so a run stopped early
keeps the steps it finished.

``--smoke``: every step at tiny sizes (verify: one claim), to check on a CPU in seconds that each runs
(its numbers mean nothing). Exit status: 0 when every step ran and the claims passed, 1 otherwise, 2 for
a bad option.
"""

import json
import sys
import time

import jax

from blindspot import probe, verify
from blindspot.cli import BadOption, Parser, refuse
from blindspot.io import check_output_folder, write_json_atomic
from blindspot.runtime import require_sound_compiler, require_verification_precision

PROG = "python -m experiments.device_check"
GPU_TARGET_SECONDS = 10.0
"""Target wall time of the large probe on one modern GPU."""
LARGE_PROBE = ["--n", "16384", "--d", "64", "--mlp", "64", "--batch", "64", "--residual", "--init", "random"]
SMOKE_PROBE = ["--n", "8", "--d", "4", "--mlp", "4", "--batch", "3", "--residual", "--init", "random"]
FIRST_ORDER = ["--taylor-order", "0", "--max-memory-gb", "64", "--progress", "never"]
"""Both probes: first order only; the memory limit of a GPU host rather than a laptop's."""
STEPS = ("probe", "scaling", "streamed_vs_dense", "closed_form_vs_autodiff", "verify")


def setup() -> str:
    """Sound compiler, float64, matmul precision "highest" (refused if they do not hold); return the device line."""
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    require_verification_precision()
    devices = jax.devices()
    return f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}"


def large_probe(smoke: bool) -> dict:
    """Run the first-order probe twice in this process: seconds with and without compiling, peak, determinism."""
    argv = [*(SMOKE_PROBE if smoke else LARGE_PROBE), *FIRST_ORDER]
    args = probe.build_parser().parse_args(argv)
    seconds, reports = [], []
    for _ in range(2):
        start = time.perf_counter()
        report, timings = probe.run(args)
        seconds.append(time.perf_counter() - start)
        reports.append(report)
    stats = jax.devices()[0].memory_stats() or {}
    on_gpu = jax.devices()[0].platform == "gpu"
    objectives = reports[0]["objectives"]
    return {
        "options": " ".join(argv),
        "seconds": seconds[0],
        "seconds_compiled": seconds[1],
        "objective_seconds": timings["objective_seconds"],
        "routes": {name: entry["route"] for name, entry in objectives.items()},
        "span_ranks": {name: entry["span_rank"] for name, entry in objectives.items()},
        "bit_identical_reruns": json.dumps(reports[0]) == json.dumps(reports[1]),
        "peak_device_bytes": stats.get("peak_bytes_in_use"),
        "target": f"under {GPU_TARGET_SECONDS:g} s on one modern GPU, compilation included",
        "verdict": ("pass" if seconds[0] < GPU_TARGET_SECONDS else "fail") if on_gpu else "not a GPU",
    }


def _bench_sizes(smoke: bool):
    """Return the analysis benchmark module and its full (or smoke) sizes."""
    from experiments import bench_analysis

    return bench_analysis, bench_analysis.SIZES["smoke" if smoke else "full"]


def scaling(smoke: bool) -> dict:
    """Benchmark (f): the streamed probe against n, each n in a fresh process."""
    bench, sizes = _bench_sizes(smoke)
    return bench.streamed_scaling(**sizes["f"])


def streamed_vs_dense(smoke: bool) -> dict:
    """Benchmark (e): the streamed against the dense route where both fit."""
    bench, sizes = _bench_sizes(smoke)
    return bench.streamed_vs_dense(**sizes["e"], repeats=sizes["repeats"])


def closed_form_vs_autodiff(smoke: bool) -> dict:
    """Benchmark (c): closed-form (factored) score gradients against autodiff."""
    bench, sizes = _bench_sizes(smoke)
    return bench.fast_vs_autodiff(**sizes["c"], repeats=sizes["repeats"])


def verify_step(smoke: bool) -> dict:
    """``verify --full`` (``--claim P2`` when smoke): its exit status."""
    return {"exit": verify.main(["--claim", "P2"] if smoke else ["--full"])}


RUNNERS = {
    "probe": large_probe,
    "scaling": scaling,
    "streamed_vs_dense": streamed_vs_dense,
    "closed_form_vs_autodiff": closed_form_vs_autodiff,
    "verify": verify_step,
}


def _steps(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in STEPS]
    if unknown or not names:
        raise BadOption(f"--steps must list steps among {', '.join(STEPS)}, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m experiments.device_check [--smoke] [--steps A,B] [--out DIR]``."""
    parser = Parser(prog=PROG, description=" ".join(__doc__.split("\n\n")[1].split()))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks on a CPU in seconds that it all runs")
    default = ",".join(STEPS)
    parser.add_argument("--steps", default=default, help=f"comma-separated, in order (default: {default})")
    parser.add_argument("--out", help="folder for device_check.json, rewritten after each step")
    try:
        args = parser.parse_args(argv)
        steps = _steps(args.steps)
        out = check_output_folder("--out", args.out) if args.out is not None else None
    except (BadOption, ValueError) as error:
        return refuse(PROG, error)
    device = setup()
    print(f"device {device}, dtype float64, matmul precision highest, jax {jax.__version__}", flush=True)
    summary = {"device": device, "jax": jax.__version__}
    for name in steps:
        start = time.perf_counter()
        summary[name] = {**RUNNERS[name](args.smoke), "step_seconds": time.perf_counter() - start}
        print(f"{name}: {json.dumps(summary[name])}", flush=True)
        if out is not None:
            write_json_atomic(out / "device_check.json", summary)
    print(json.dumps(summary, indent=2))
    failed = [name for name in steps if summary[name].get("exit", 0) != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
