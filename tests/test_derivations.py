"""Each committed derivation equals what its script produces now, and states a result."""

import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest

from blindspot.claims import CLAIMS

DERIVATIONS = Path(__file__).resolve().parent.parent / "derivations"


@cache
def run_all():
    spec = importlib.util.spec_from_file_location("run_all", DERIVATIONS / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def generated(name):
    return run_all().load(name).markdown()


@pytest.mark.parametrize("name", run_all().SCRIPTS)
def test_committed_derivation_is_current(name):
    path = DERIVATIONS / f"{name}.md"
    assert path.exists(), f"{path.name} missing: run python derivations/run_all.py"
    assert path.read_text(encoding="utf-8") == generated(name), (
        f"{path.name} is stale: run python derivations/run_all.py"
    )


@pytest.mark.parametrize("name", run_all().SCRIPTS)
def test_derivation_states_a_result(name):
    text = (DERIVATIONS / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith("# P"), name
    assert "**Result" in text and "\n## Result\n" in text and "\n## Hypotheses\n" in text, name


def test_every_proposition_p1_to_p7_and_p10_to_p12_has_a_derivation():
    titles = {(DERIVATIONS / f"{name}.md").read_text(encoding="utf-8").split(":")[0] for name in run_all().SCRIPTS}
    assert titles == {f"# P{i}" for i in (*range(1, 8), 10, 11, 12)}


def test_check_detects_a_stale_or_missing_file(tmp_path):
    module = run_all()
    assert module.stale_files(DERIVATIONS, generated) == []
    names = module.SCRIPTS
    (tmp_path / f"{names[0]}.md").write_text("stale\n", encoding="utf-8")
    for other in names[2:]:
        (tmp_path / f"{other}.md").write_text(generated(other), encoding="utf-8")
    assert module.stale_files(tmp_path, generated) == [f"{names[0]}.md", f"{names[1]}.md"]


def test_theory_index_links_every_derivation_and_claim():
    text = (DERIVATIONS / "THEORY.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)]+\.md)\)", text):
        assert (DERIVATIONS / target).exists(), target
    for name in run_all().SCRIPTS:
        assert f"]({name}.md)" in text, name
    for i in range(1, 14):
        assert f"\n## P{i}:" in text, f"P{i}"
    for claim in CLAIMS:
        assert f"| `{claim.id}` |" in text, f"claim {claim.id}"


def test_the_documented_commands_write_and_check_every_derivation(tmp_path, monkeypatch, capsys):
    """``python derivations/run_all.py`` and ``--check`` through ``main`` (SymPy results cached)."""
    module = run_all()
    monkeypatch.setattr(module, "generate", generated)
    assert module.main(["--check"]) == 0
    monkeypatch.setattr(module, "HERE", tmp_path)
    assert module.main([]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.md" for name in module.SCRIPTS)
    assert module.stale_files(tmp_path, generated) == []
    (tmp_path / f"{module.SCRIPTS[0]}.md").write_text("stale\n", encoding="utf-8")
    assert module.main(["--check"]) == 1
    assert f"stale derivations: {module.SCRIPTS[0]}.md" in capsys.readouterr().err
