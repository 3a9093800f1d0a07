"""The figure scripts through ``python experiments/run_all.py --small``, the cache rule, the benchmarks."""

import dataclasses
import json
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import ablation, training
from blindspot.config import ModelConfig
from blindspot.tolerances import close_tolerance
from experiments import _ablations, _dynamics, ablations_synthetic, bench_analysis, device_check, results, run_all
from experiments import training_dynamics_synthetic as synthetic


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One ``run_all.py --small`` (every figure's ``main(small=True)``, then summary and RESULTS.md)."""
    root = tmp_path_factory.mktemp("paper_figs")
    assert run_all.main(["--small", "--root", str(root)]) == 0
    return root


@pytest.mark.parametrize("name", run_all.FIGURES)
def test_every_figure_is_written(name, root):
    for ext in ("png", "pdf"):
        assert (root / f"{name}.{ext}").stat().st_size > 0
    assert (root / name / "settings.json").is_file() and any((root / name).glob("*.npz"))
    assert not [p for p in root.rglob(".*") if p.is_file()], "leftover temporary files"


def test_summary_and_results_agree(root):
    summary = json.loads((root / "summary.json").read_text())
    assert summary["regeneration"]["command"] == "python experiments/run_all.py --small"
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


def test_report_only_rewrites_the_same_summary(root):
    before = (root / "summary.json").read_bytes(), (root / "RESULTS.md").read_bytes()
    assert run_all.main(["--small", "--root", str(root), "--report-only"]) == 0
    assert ((root / "summary.json").read_bytes(), (root / "RESULTS.md").read_bytes()) == before


class Retrained(Exception):
    pass


def _retrain(*args, **kwargs):
    raise Retrained


def _changed(inputs, what):
    if what == "learning rate":
        return {**inputs, "settings": inputs["settings"]._replace(learning_rate=inputs["settings"].learning_rate / 2)}
    if what == "data":
        data = inputs["data"]
        return {**inputs, "data": data._replace(train_labels=1 - data.train_labels)}
    if what == "key":
        return {**inputs, "key": jax.random.PRNGKey(5)}
    return {**inputs, "config": dataclasses.replace(inputs["config"], mask_rate=0.3)}


@pytest.mark.parametrize("what", ["learning rate", "data", "key", "model"])
def test_cached_training_is_reused_only_when_its_settings_match(root, tmp_path, monkeypatch, what):
    shutil.copytree(root / synthetic.NAME, tmp_path / synthetic.NAME)
    cells = sorted((tmp_path / synthetic.NAME).glob("*.npz"))
    assert len(cells) == 4
    monkeypatch.setattr(_dynamics, "train", _retrain)
    inputs = synthetic.inputs(small=True)
    _dynamics.compute(synthetic.NAME, **inputs, root=tmp_path)  # same settings: every cell is reused
    assert sorted((tmp_path / synthetic.NAME).glob("*.npz")) == cells
    changed = _changed(inputs, what)
    with pytest.raises(Retrained):
        _dynamics.compute(synthetic.NAME, **changed, root=tmp_path)
    assert not list((tmp_path / synthetic.NAME).glob("*.npz")), "stale cells must not survive"
    stored = json.loads((tmp_path / synthetic.NAME / "settings.json").read_text())
    assert stored == json.loads(json.dumps(_dynamics.settings_record(**changed)))


def test_results_of_an_empty_root_have_no_training_sections(tmp_path):
    """A summary of an empty root has no training sections and writes a RESULTS.md all the same."""
    run = results.regeneration(small=True, wall_seconds=1.0, figure_seconds={}, fresh=False, cores=2)
    summary = results.write_summary(tmp_path, run)
    results.write_results(tmp_path)
    assert "synthetic" not in summary and (tmp_path / "RESULTS.md").read_text().startswith("# Results")


def test_bench_analysis_smoke_runs_every_benchmark(capsys):
    """``python experiments/bench_analysis.py --smoke``: the README's benchmark command at tiny sizes."""
    assert bench_analysis.main(["--smoke"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "smoke"
    restricted = report["curvature"]["restricted_vs_dense"]
    assert restricted["max_abs_difference"] <= restricted["agreement_tolerance"]  # the two routes agree
    for objective in ("classification", "reconstruction"):
        assert report["curvature"]["hvp_vs_grad"][objective]["hvp_seconds"] > 0
        assert report["c_fast_vs_autodiff"][objective]["factored_seconds"] > 0
    assert report["d_first_order_probe"] == []  # the probe runs of (d) and (f) share probe_run: (f) covers it
    compared = report["e_streamed_vs_dense"]
    assert compared["dense_seconds"] > 0 and compared["streamed_seconds"] > 0
    assert compared["verdict"] in ("pass", "fail") and compared["ratio_dense_over_streamed"] > 0
    scaling = report["f_streamed_scaling"]
    for run in scaling["runs"]:
        assert run["exit"] == 0 and run["peak_rss_mib"] > 0 and run["estimated_peak_mib"] > 0, run
        assert run["route_row"].split()[1:] == ["streamed", "streamed"], run
    assert scaling["time_verdict"] in ("pass", "fail") and scaling["memory_verdict"] in ("pass", "fail")


def test_device_check_smoke_runs_every_step_on_the_cpu(tmp_path, capsys):
    """``python -m experiments.device_check --smoke``: every step at tiny sizes, the summary written after each."""
    assert device_check.main(["--smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("device cpu:") and "dtype float64, matmul precision highest" in out
    summary = json.loads((tmp_path / "device_check.json").read_text())
    assert list(summary)[2:] == list(device_check.STEPS)
    assert all(summary[step]["step_seconds"] > 0 for step in device_check.STEPS)
    assert summary["verify"]["exit"] == 0 and "P2" in out
    assert summary["streamed_vs_dense"]["n"] == 8 and summary["streamed_vs_dense"]["verdict"] in ("pass", "fail")
    assert [run["exit"] for run in summary["scaling"]["runs"]] == [0]
    probe_run = summary["probe"]
    assert probe_run["routes"] == {"classification": "streamed", "reconstruction": "streamed"}
    assert probe_run["span_ranks"] == {"classification": 3, "reconstruction": 3}  # b = 3 < n(n - 1) = 56
    assert probe_run["bit_identical_reruns"] and probe_run["verdict"] == "not a GPU"


@pytest.mark.parametrize("option", [["--steps", "probe,gpu"], ["--steps", ","], ["--out", "a-file"]])
def test_device_check_refuses_a_bad_option_in_one_line(option, tmp_path, capsys):
    (tmp_path / "a-file").write_text("kept")
    option = [str(tmp_path / x) if x == "a-file" else x for x in option]
    assert device_check.main(["--smoke", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("--steps" in err or "--out" in err), err


ABLATIONS = ("ablations_synthetic", "ablations_digits")
PRETRAINED = ("spt", "transplant", "complement", "frozen_qk")


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_arm_makes_the_same_number_of_steps(root, name):
    record = json.loads((root / name / "settings.json").read_text())
    t = record["training"]
    assert "depth" in record["arms"]
    for arm in record["arms"]:
        c = _ablations.load(name, arm, root)
        assert c["steps"][-1] == t["total_steps"] and np.all(np.diff(c["steps"]) == t["eval_every"])
        # every evaluation after the first closes eval_every steps of the phase it records
        steps = {p: t["eval_every"] * int(np.sum(c["phase"][1:] == p)) for p in (0, 1)}
        assert {"reconstruction_steps": steps[0], "label_steps": steps[1], "total_steps": sum(steps.values())} == (
            record["budget"][arm]
        ), arm
        assert len(c["test_accuracy"]) == record["seeds"]


@pytest.mark.parametrize("name", ABLATIONS)
def test_transplant_frozen_and_complement_carry_the_right_query_key(root, name):
    arms = {arm: _ablations.load(name, arm, root) for arm in PRETRAINED + ("supervised",)}
    pretrained = arms["spt"]["query_key_start"]
    assert np.abs(pretrained).max() > 0  # masked reconstruction moved W away from its zero initialisation
    np.testing.assert_array_equal(arms["transplant"]["query_key_start"], pretrained)  # bit for bit
    np.testing.assert_array_equal(arms["frozen_qk"]["query_key_start"], pretrained)
    np.testing.assert_array_equal(arms["frozen_qk"]["query_key_end"], pretrained)  # unchanged by fine-tuning
    np.testing.assert_array_equal(arms["complement"]["query_key_start"], arms["supervised"]["query_key_start"])
    assert not np.array_equal(arms["spt"]["query_key_end"], pretrained)  # unfrozen, W does train


@pytest.mark.parametrize("name", ABLATIONS)
def test_score_bias_alone_gives_the_stated_proximity_index(root, name):
    # W = 0 at initialisation, so the attention there is softmax(c N) whatever the tokens: index (1 - k/n) / 2
    record = json.loads((root / name / "settings.json").read_text())
    c = _ablations.load(name, "prior_bias", root)
    index = c["proximity_2d" if record["training"]["width"] else "proximity"][:, 0]
    k, n = record["prior"]["neighbours_per_interior_position"], record["config"]["n"]
    np.testing.assert_allclose(index, (1 - k / n) / 2, rtol=close_tolerance(np.float64, n * n))


def test_summary_carries_every_arm_per_seed_and_results_shows_them(root):
    summary = json.loads((root / "summary.json").read_text())
    text = (root / "RESULTS.md").read_text()
    for dataset in ("synthetic", "digits"):
        a = summary["ablations"][dataset]
        for arm in a["settings"]["arms"]:
            stat = a["arms"][arm]["test_accuracy"]
            assert len(stat["seeds"]) == a["settings"]["seeds"] and stat["ci95"][0] <= stat["mean"] <= stat["ci95"][1]
            assert f"| {_ablations.ARM_NAMES[arm]} | {stat['mean']:.3f} [" in text
        assert a["claims"]["bottleneck"]["verdict"] in ("holds", "partly", "not supported", "reversed")


def test_the_depth_arm_runs_the_two_layer_model_and_is_read(root):
    record = json.loads((root / "ablations_synthetic" / "settings.json").read_text())
    assert record["depth_model"] == dataclasses.asdict(ablation.depth_config(ModelConfig(**record["config"])))
    assert record["depth_model"]["layers"] == 2
    c = _ablations.load("ablations_synthetic", "depth", root)
    assert c["label_start"] == 0 and "query_key_start" not in c and c["attention_start"].shape[1:] == (16, 16)
    assert c["attention_layers_end"].shape[1:] == (2, 16, 16)
    np.testing.assert_allclose(c["attention_layers_end"].sum(-1), 1.0, rtol=close_tolerance(np.float64, 16))
    summary = json.loads((root / "summary.json").read_text())["ablations"]
    arm = summary["synthetic"]["arms"]["depth"]
    # layer 1's final index from the stored maps is the index the evaluations recorded (first layer, mean over heads)
    np.testing.assert_allclose(
        arm["proximity_layer_1"]["seeds"], arm["proximity"]["seeds"], atol=close_tolerance(np.float64, 16 * 16)
    )
    paired = summary["synthetic"]["paired_vs_supervised"]["depth"]
    assert "proximity_layer_2" in arm and "proximity_layer_1" not in paired  # supervised has one layer
    depth = summary["synthetic"]["claims"]["depth"]["verdict"]
    assert depth in ("closes the gap", "narrows the gap", "does not close the gap", "no resolved gap to close")
    text = (root / "RESULTS.md").read_text()
    for dataset in ("synthetic", "digits"):
        assert f"depth alone **{summary[dataset]['claims']['depth']['verdict']}** here" in text, dataset


def test_the_depth_arms_two_layer_model_learns_a_tiny_task_within_the_budget():
    """The smoke run's depth model and settings (shared compilations) on the majority of 16 binary tokens."""
    inputs = ablations_synthetic.inputs(small=True)
    config, settings = ablation.depth_config(inputs["config"]), inputs["settings"]._replace(total_steps=100)
    assert config.layers == 2
    x = np.random.default_rng(0).integers(0, 2, (384, config.n)).astype(np.int32)  # the smoke data's sizes and dtype
    y = (x.sum(axis=1) > config.n // 2).astype(np.int32)
    data = training.Dataset(*(jnp.asarray(a) for a in (x[:256], y[:256], x[256:], y[256:])))
    keys = jax.random.split(jax.random.PRNGKey(1), 1)  # raw keys, as the smoke run's
    h = training.train(config, data, keys, arm="supervised", settings=settings, log=None)
    # bookkeeping: the arm's budget (label steps only), one evaluation every eval_every steps
    assert ablation.budget(settings, "depth") == {"reconstruction_steps": 0, "label_steps": 100, "total_steps": 100}
    np.testing.assert_array_equal(h.steps, np.arange(0, 101, settings.eval_every))
    assert np.all(h.phase == 1) and h.attention.shape == (1, config.n, config.n)  # the first layer's map
    assert h.test_label_loss[0, -1] < h.test_label_loss[0, 0]
    # above the majority class by four binomial standard deviations of a guesser at that rate
    majority = max(float(np.mean(y[256:])), 1 - float(np.mean(y[256:])))
    assert h.test_accuracy[0, -1] > majority + 4 * np.sqrt(majority * (1 - majority) / len(y[256:]))


def test_adding_an_arm_keeps_the_stored_cells_of_the_others(tmp_path):
    path = tmp_path / "settings.json"
    old = {"config": {"n": 16}, "seeds": 2, "arms": ["supervised", "spt"], "budget": {"supervised": 4, "spt": 4}}
    path.write_text(json.dumps(old))
    new = {**old, "arms": ["supervised", "spt", "depth"], "budget": {**old["budget"], "depth": 4}, "depth_model": {}}
    assert _ablations.reusable_arms(path, new) == {"supervised", "spt"}
    assert _ablations.reusable_arms(path, {**new, "budget": {**new["budget"], "spt": 6}}) == {"supervised"}
    assert _ablations.reusable_arms(path, {**new, "seeds": 3}) == set()  # a shared setting changed: nothing fits
    assert _ablations.reusable_arms(tmp_path / "missing.json", new) == set()
