"""Smoke tests: every figure script through ``main(small=True)`` into a temporary folder."""

import importlib
import json
import re

import pytest

from experiments import results, run_all


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("paper_figs")


@pytest.mark.parametrize("name", run_all.FIGURES)
def test_figure_runs_small(name, root):
    paths = importlib.import_module(f"experiments.{name}").main(small=True, root=root)
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for ext in ("png", "pdf"):
        assert (root / f"{name}.{ext}").stat().st_size > 0
    assert any((root / name).iterdir())
    assert not [p for p in root.rglob(".*") if p.is_file()], "leftover temporary files"


def test_summary_and_results_agree(root):
    for name in run_all.FIGURES:
        if not (root / f"{name}.png").exists():
            pytest.skip("run the figure smoke tests first")
    run = results.regeneration(small=True, wall_seconds=1.0, figure_seconds={}, fresh=False, cores=2)
    summary = results.write_summary(root, run)
    results.write_results(root)
    assert json.loads((root / "summary.json").read_text()) == summary
    text = (root / "RESULTS.md").read_text()
    for dataset in ("synthetic", "digits"):
        for arm in ("supervised", "spt"):
            entry = summary[dataset][arm]
            for key, digits in (("test_accuracy", 3), ("proximity_index", 4)):
                stat = entry[key]
                assert set(stat) == {"mean", "std", "seeds"}
                assert len(stat["seeds"]) >= 2
                cell = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
                assert re.search(rf"\| {dataset} \| [^|]+ \| .*{re.escape(cell)}", text), (dataset, arm, key)


def test_run_all_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        run_all.main(["--only", "no_such_figure"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("run_all:")
