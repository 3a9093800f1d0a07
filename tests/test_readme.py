"""Every command the README documents is run by a named test, and the Makefile mirrors the README."""

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from blindspot import probe, verify

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

CI = ".ci/run"
DERIVATIONS = ("test_derivations.py", "test_the_documented_commands_write_and_check_every_derivation")
FIGURES = ("test_experiments.py", "test_every_figure_is_written")
BENCH = ("test_experiments.py", "test_bench_analysis_smoke_runs_every_benchmark")
LINT = ("test_readme.py", "test_lint_commands_pass")
DEVICE = ("test_experiments.py", "test_device_check_smoke_runs_every_step_on_the_cpu")
COMMANDS = {
    'python -m pip install -e ".[test]"': CI,
    "python -m pytest": CI,
    "python -m blindspot.verify": (
        "test_verify.py",
        "test_every_claim_passes_at_default_size_with_two_evidence_lines_and_a_failing_control",
    ),
    "python -m blindspot.verify --full": ("test_readme.py", "test_verify_full_json_is_byte_identical_for_equal_seeds"),
    "python -m blindspot.probe --n 32 --d 16 --mlp 32 --residual --data markov --rho 0.9 --json report.json": (
        "test_readme.py",
        "test_readme_probe_command_reports_and_its_json_is_byte_identical",
    ),
    "python -m blindspot.probe --help": ("test_probe.py", "test_help_exits_0"),
    "python derivations/run_all.py": DERIVATIONS,
    "python derivations/run_all.py --check": DERIVATIONS,
    "python experiments/run_all.py": FIGURES,  # the same code at full sizes (minutes): the test runs --small
    "python experiments/run_all.py --small": FIGURES,
    "python experiments/bench_analysis.py --quick": BENCH,  # minutes: the test runs the tiny --smoke sizes
    "python experiments/bench_analysis.py --smoke": BENCH,
    'python -m pip install -e ".[dev]"': None,  # needs the network; .ci/run installs the [test] extras alike
    'python -m pip install -e ".[cuda]"': None,  # needs the network and an NVIDIA GPU
    "python -m experiments.device_check": DEVICE,  # minutes, meant for a GPU: the test runs --smoke
    "python -m experiments.device_check --smoke": DEVICE,
    "ruff check .": LINT,
    "ruff format --check .": LINT,
}
"""README command -> (test file, test) that runs it; ``CI``: ``.ci/run`` runs it verbatim."""


def _readme_commands() -> list[str]:
    """Every shell command of the README's ``bash`` blocks, split at ``&&``, comments removed."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            commands += [part.strip() for part in line.split(" && ") if part.strip()]
    return commands


def test_every_readme_command_names_a_test_that_exists():
    assert set(_readme_commands()) == set(COMMANDS)
    for command, where in COMMANDS.items():
        if where == CI:
            assert command in (REPO / CI).read_text(), command
        elif where is not None:
            path, name = where
            assert f"\ndef {name}(" in (REPO / "tests" / path).read_text(encoding="utf-8"), where


def test_every_make_target_mirrors_a_readme_command():
    recipes = re.findall(r"^\t(.+)$", (REPO / "Makefile").read_text(), re.M)
    readme = set(_readme_commands())
    assert recipes
    for recipe in recipes:
        for part in recipe.replace("$(PYTHON)", "python").split(" && "):
            assert part.strip() in readme, recipe


def test_readme_python_example_runs_and_matches_its_comments():
    block = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    promised = [int(m) for m in re.findall(r"# (\d+) ", block)]
    assert [int(line) for line in out.stdout.split()] == promised


def test_readme_equinox_example_runs_and_prints_what_its_comments_promise(capsys):
    """The block of "Probing your own model", run as written (in this process: the suite's budget)."""
    section = README.read_text(encoding="utf-8").split("## Probing your own model\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})
    promised = [line[2:] for line in block.splitlines() if re.fullmatch(r"# \d[\d. ]*", line)]
    assert promised and capsys.readouterr().out.splitlines() == promised


def test_readme_probe_command_reports_and_its_json_is_byte_identical(tmp_path, capsys):
    (command,) = [c for c in _readme_commands() if c.startswith("python -m blindspot.probe --n")]
    argv = shlex.split(command)[3:]
    assert argv[-2:] == ["--json", "report.json"]
    paths = [tmp_path / "report.json", tmp_path / "again.json"]
    for path in paths:
        assert probe.main([*argv[:-1], str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    report = json.loads(paths[0].read_text())
    n = report["config"]["n"]
    cls = report["objectives"]["classification"]
    # residual + MLP: the label gradients leave the (n-1)-dimensional column-sum space (P4's correction)
    assert cls["route"] == "factored-gram" and cls["span_rank"] > n - 1
    assert cls["blind_dim"] == n * n - cls["span_rank"]
    assert (tmp_path / "report.timings.json").is_file() and "report.timings.json" in capsys.readouterr().out


def test_verify_full_json_is_byte_identical_for_equal_seeds(tmp_path, capsys):
    """``python -m blindspot.verify --full`` on its fastest claim, twice."""
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        assert verify.main(["--full", "--claim", "P2", "--json", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    report = json.loads(paths[0].read_text())
    assert report["full"] is True and report["seeds"] == [0, 1, 2] and report["claims"][0]["passed"]
    assert json.loads((tmp_path / "a.timings.json").read_text())["claim_seconds"]["P2"] > 0
    out = capsys.readouterr().out
    assert "P2" in out and "PASS" in out


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff comes with the [dev] extras")
def test_lint_commands_pass():
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
