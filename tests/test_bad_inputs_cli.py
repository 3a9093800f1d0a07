"""Every command line refuses a bad option before computing anything: exit status 2, one line on stderr.

The line names the option as the user typed it and its allowed values, and no traceback is shown;
a sentinel replaces each command's computation so that reaching it fails the test. Most cases call
``main(argv)`` in-process (fast); a few run the real command to show there is no traceback.
"""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from blindspot import probe, verify

REPO = Path(__file__).resolve().parent.parent
SEED_HIGH = 2**63 - 1  # jax.random.key takes a signed 64-bit seed
VERIFY_SEED_HIGH = 2**62 - 1

derivations_run_all = importlib.import_module("derivations.run_all")
experiments_run_all = importlib.import_module("experiments.run_all")
bench_analysis = importlib.import_module("experiments.bench_analysis")

PROBE = [
    (["--n", "1"], "--n must be an integer >= 2, got 1"),
    (["--d", "0"], "--d must be an integer >= 1, got 0"),
    (["--vocab", "1"], "--vocab must be an integer >= 2, got 1"),
    (["--classes", "1"], "--classes must be an integer >= 2, got 1"),
    (["--mlp", "-1"], "--mlp must be an integer >= 0, got -1"),
    (["--mask-rate", "1.5"], "--mask-rate must be a real number in (0.0, 1.0), got 1.5"),
    (["--mask-rate", "nan"], "--mask-rate must be a real number in (0.0, 1.0), got nan"),
    (["--init-scale", "0"], "--init-scale must be a real number in (0.0, inf), got 0.0"),
    (["--rho", "1"], "--rho must be a real number in [0.0, 1.0), got 1.0"),
    (["--rho", "nan"], "--rho must be a real number in [0.0, 1.0), got nan"),
    (["--batch", "0"], "--batch must be an integer >= 1, got 0"),
    (["--seed", "-1"], f"--seed must be an integer in [0, {SEED_HIGH}], got -1"),
    (["--seed", str(2**63)], f"--seed must be an integer in [0, {SEED_HIGH}], got {2**63}"),
    (["--seed", str(2**64)], f"--seed must be an integer in [0, {SEED_HIGH}], got {2**64}"),
    (["--taylor-order", "-1"], "--taylor-order must be an integer in [0, 8], got -1"),
    (["--taylor-order", "9"], "--taylor-order must be an integer in [0, 8], got 9"),
    (["--bands", "-1"], "--bands must be an integer >= 0, got -1"),
    (["--max-memory-gb", "0"], "--max-memory-gb must be a real number in (0.0, inf), got 0.0"),
    (["--max-memory-gb", "inf"], "--max-memory-gb must be a real number in (0.0, inf), got inf"),
    (["--layers", "0"], "--layers must be an integer >= 1, got 0"),
    (["--heads", "0"], "--heads must be an integer >= 1, got 0"),
    (["--heads", "3", "--residual"], "--heads must divide --d = 16, got 3"),
    (["--layers", "2"], "no --residual (the Transformer always adds the residual: pass --residual) is not supported"),
    (["--causal", "--residual", "--route", "factored"], "--route factored is not supported with --layers/--heads/"),
    (["--heads", "2", "--residual", "--route", "streamed"], "--route streamed is not supported with --layers/"),
    (["--causal", "--residual", "--scores", "position"], "--scores position is not supported with --layers/"),
    (["--causal", "--residual", "--pooling", "last"], "--pooling last is not supported with --layers/"),
    (["--causal", "--residual", "--centred"], "--centred is not supported with --layers/"),
    (["--causal", "--residual", "--reconstruction", "copy"], "--reconstruction must be cross_entropy with --layers/"),
    (["--causal", "--residual", "--chunk", "2"], "--chunk sets the streamed route only; it must be 0 with --layers/"),
    (["--causal", "--residual", "--hessian", "--n", "32"], "--hessian needs --n <= 16 with --layers/--heads/--causal"),
    # Transformer activations 8 c L (H n^2 + n (d + m)), c = 64, L = H = 2, n = 4096, d = 4, m = 0:
    # 8 * 64 * 2 * (2 * 4096^2 + 4096 * 4) = 3.44e10 numbers = 275 GB
    (
        ["--layers", "2", "--heads", "2", "--residual", "--n", "4096", "--d", "4", "--taylor-order", "0"],
        "(Transformer activations: 275 GB) > --max-memory-gb 8;",
    ),
    # memory, by hand from probe.memory_estimate's formulas (float64, 8 bytes; defaults b = 64, d = 16, K = 3):
    # Taylor 8 (K + 1) b n^2 = 8 * 4 * 64 * 1e10 numbers = 1.64e14 B
    (["--n", "100000"], "(Taylor series: 1.64e+05 GB) > --max-memory-gb 8;"),
    (
        ["--n", "131072", "--taylor-order", "0", "--init", "random", "--route", "dense"],
        "(dense per-sample score gradients: ",
    ),
    # streamed, b = 64, n = 2^16 = --chunk, d = r = 16: 4 b c n + b n (d + r) = 1.0996e12 numbers = 8.8e12 B
    (
        ["--n", "65536", "--chunk", "65536", "--taylor-order", "0", "--init", "random"],
        "(streamed blocks and per-sample outputs: 8.8e+03 GB)",
    ),
    # Gram intermediates 3 b^2 r^2 with r = d: 3 * 64^2 * 1e16 numbers = 9.83e20 B
    (["--d", "100000000"], "(score-gradient factors and their Gram matrix: 9.83e+11 GB) > --max-memory-gb 8;"),
    # activations 4 b n (d + h + V + 1 + C) = 4 * 64 * 16 * (1e9 + 19) numbers = 3.28e13 B
    (["--vocab", "1000000000"], "(batch activations: 3.28e+04 GB) > --max-memory-gb 8;"),
    # Gram intermediates 3 b^2 d^2 = 3 * 1e14 * 256 numbers = 6.14e17 B
    (["--batch", "10000000"], "(score-gradient factors and their Gram matrix: 6.14e+08 GB) > --max-memory-gb 8;"),
    (
        ["--init", "random", "--n", "2048", "--taylor-order", "0", "--route", "dense"],
        "> --max-memory-gb 8; lower --n, --batch",
    ),
    (["--chunk", "-1"], "--chunk must be an integer in [0, 16], got -1"),
    (["--chunk", "17"], "--chunk must be an integer in [0, 16], got 17"),
    (["--progress", "sometimes"], "argument --progress: invalid choice: 'sometimes'"),
    (["--max-memory-gb", "0.1"], "(JAX runtime and compiled programs: 0.6 GB) > --max-memory-gb 0.1;"),
    (["--hessian", "--n", "65"], "--hessian needs --n <= 64, got 65"),
    (["--init", "random", "--route", "factored"], "--route factored needs --init zero"),
    (["--data", "task", "--n", "7"], "--n must be an even integer >= 4 for --data task, got 7"),
    (["--data", "task", "--n", "2"], "--n must be an even integer >= 4 for --data task, got 2"),
    (["--data", "digits", "--n", "16"], "--data digits needs --n 64, --classes >= 10 and --vocab in [2, 17]"),
    (["--data", "digits", "--n", "64", "--classes", "10", "--vocab", "30"], "--vocab in [2, 17]"),
    (["--pe", "fourier"], "argument --pe: invalid choice: 'fourier' (choose from"),
    (["--n", "abc"], "argument --n: expected an integer, got 'abc'"),
    (["--mask-rate", "x"], "argument --mask-rate: expected a real number, got 'x'"),
    (["--n"], "argument --n: expected one argument"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]
VERIFY = [
    (["--seed", "-1"], f"--seed must be an integer in [0, {VERIFY_SEED_HIGH}], got -1"),
    (["--seed", str(2**64)], f"--seed must be an integer in [0, {VERIFY_SEED_HIGH}], got {2**64}"),
    (["--seed", str(2**62)], f"--seed must be an integer in [0, {VERIFY_SEED_HIGH}], got {2**62}"),
    (["--seed", "x"], "argument --seed: expected an integer, got 'x'"),
    (["--claim", "P9"], "--claim must be one of {P1, P2, P3, P4, P5, P6, P7, P8, P10, P11, P12, P13}, got 'P9'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]
JSON_TARGETS = [
    (lambda tmp: "", "--json must be a file path, got ''"),
    (lambda tmp: str(tmp), "--json must name a regular file, got "),
    (lambda tmp: str(tmp / "missing" / "r.json"), "--json folder does not exist: "),
    (lambda tmp: "/proc/r.json", "--json folder is not writable: /proc"),
]
EXPERIMENTS = [
    (lambda tmp: ["--root", ""], "--root must be a folder path, got ''"),
    (lambda tmp: ["--root", str(tmp / "file")], "--root must be a folder, got "),
    (lambda tmp: ["--root", "/proc/figures"], "--root folder is not writable: /proc"),
    (lambda tmp: ["--only", "no_such_figure"], "argument --only: invalid choice: 'no_such_figure'"),
    (lambda tmp: ["--report-only", "--root", str(tmp)], "--report-only needs "),
    (lambda tmp: ["--report-only", "--fresh", "--root", str(tmp)], "--report-only computes nothing"),
    (lambda tmp: ["--small", "--bogus"], "unrecognized arguments: --bogus"),
]
OTHERS = [
    (derivations_run_all, "python derivations/run_all.py", ["--bogus"], "unrecognized arguments: --bogus"),
    (derivations_run_all, "python derivations/run_all.py", ["--check", "extra"], "unrecognized arguments: extra"),
    (bench_analysis, "python experiments/bench_analysis.py", ["--quick", "--smoke"], "argument --smoke: not allowed"),
    (bench_analysis, "python experiments/bench_analysis.py", ["--bogus"], "unrecognized arguments: --bogus"),
]


def _computed(*args, **kwargs):
    raise AssertionError("a bad option reached the computation")


@pytest.fixture
def nothing_computed(monkeypatch):
    """Replace the computation of every command by a sentinel that fails the test when reached."""
    monkeypatch.setattr(probe, "run", _computed)
    monkeypatch.setattr(verify, "run_claim", _computed)
    monkeypatch.setattr(derivations_run_all, "write_all", _computed)
    monkeypatch.setattr(derivations_run_all, "stale_files", _computed)
    monkeypatch.setattr(experiments_run_all, "run", _computed)
    monkeypatch.setattr(experiments_run_all, "report", _computed)
    for name in ("curvature_benchmarks", "fast_vs_autodiff", "probe_run"):
        monkeypatch.setattr(bench_analysis, name, _computed)


def _refused(capsys, status: int, prog: str, message: str) -> None:
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"{prog}: error: ") and message in err, err


@pytest.mark.parametrize(("argv", "message"), PROBE, ids=[" ".join(a) for a, _ in PROBE])
def test_probe_refuses(capsys, nothing_computed, argv, message):
    _refused(capsys, probe.main(argv), "python -m blindspot.probe", message)


@pytest.mark.parametrize(("argv", "message"), VERIFY, ids=[" ".join(a) for a, _ in VERIFY])
def test_verify_refuses(capsys, nothing_computed, argv, message):
    _refused(capsys, verify.main(argv), "python -m blindspot.verify", message)


@pytest.mark.parametrize("module", [probe, verify])
@pytest.mark.parametrize(("target", "message"), JSON_TARGETS)
def test_json_target_is_checked_before_computing(capsys, nothing_computed, tmp_path, module, target, message):
    _refused(capsys, module.main(["--json", target(tmp_path)]), module.PROG, message)


@pytest.mark.parametrize(("argv", "message"), EXPERIMENTS)
def test_experiments_run_all_refuses(capsys, nothing_computed, tmp_path, argv, message):
    (tmp_path / "file").write_text("")
    _refused(capsys, experiments_run_all.main(argv(tmp_path)), "python experiments/run_all.py", message)


@pytest.mark.parametrize(("module", "prog", "argv", "message"), OTHERS)
def test_other_scripts_refuse(capsys, nothing_computed, module, prog, argv, message):
    _refused(capsys, module.main(argv), prog, message)


def test_a_larger_memory_limit_lets_the_estimate_through():
    """--max-memory-gb overrides the default limit: the same options pass every check."""
    argv = ["--n", "100000", "--taylor-order", "0"]
    with pytest.raises(ValueError, match="--max-memory-gb 8;"):
        probe._check_options(probe.build_parser().parse_args(argv))
    config = probe._check_options(probe.build_parser().parse_args([*argv, "--max-memory-gb", "1e6"]))
    assert config.n == 100000


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "blindspot.probe", "--mask-rate", "1.5"],
        [sys.executable, "-m", "blindspot.verify", "--seed", str(2**64)],
        [sys.executable, str(REPO / "experiments" / "run_all.py"), "--root", "/proc/figures"],
    ],
    ids=["probe", "verify", "experiments"],
)
def test_the_real_command_shows_one_line_and_no_traceback(command):
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr and " error: --" in done.stderr
