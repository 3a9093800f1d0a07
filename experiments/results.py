"""``summary.json`` and ``RESULTS.md`` generated from the stored data (never typed by hand).

Every number in RESULTS.md is read from ``summary.json`` or from the data files of the figures,
so the two cannot disagree.
"""

from pathlib import Path

import numpy as np

from experiments import _dynamics
from experiments.common import read_json, read_npz, write_json, write_text

DATASETS = {"synthetic": "training_dynamics_synthetic", "digits": "training_dynamics_digits"}
HEADLINE_INIT = "zero"
PROXIMITY_DEFINITION = (
    "proximity index pi_r(A) = mean over interior queries r <= i <= n-1-r of the attention mass on keys "
    "1 <= |i-j| <= r, minus its uniform value 2r/n (0 for uniform attention, 1 - 2r/n at most); "
    "averaged over the evaluation test sequences (unmasked), radius r from the training settings"
)


def write_summary(root, *, small: bool, wall_seconds: float, figure_seconds: dict, fresh: bool, cores) -> dict:
    """Collect the final metrics of every training experiment present under ``root``."""
    root = Path(root)
    summary = {"headline_init": HEADLINE_INIT, "by_init": {}, "settings": {"proximity_index": PROXIMITY_DEFINITION}}
    for dataset, name in DATASETS.items():
        if not (root / name / "settings.json").exists():
            continue
        metrics = _dynamics.final_metrics(name, root)
        summary["by_init"][dataset] = metrics
        summary[dataset] = {
            arm: {k: metrics[HEADLINE_INIT][arm][k] for k in ("test_accuracy", "proximity_index")}
            for arm in metrics[HEADLINE_INIT]
        }
        summary["settings"][dataset] = read_json(root / name / "settings.json")
    if (root / "parameter_alignment" / "alignment.npz").exists():
        summary["settings"]["parameter_alignment"] = read_json(root / "parameter_alignment" / "settings.json")
    summary["regeneration"] = {
        "command": "python experiments/run_all.py" + (" --small" if small else "") + (" --fresh" if fresh else ""),
        "wall_seconds": round(wall_seconds, 1),
        "per_figure_seconds": {k: round(v, 1) for k, v in figure_seconds.items()},
        "small": small,
        "fresh": fresh,
        "cpu_count": cores,
    }
    write_json(root / "summary.json", summary)
    return summary


def _pm(stat: dict, digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _seeds(stat: dict, digits: int = 3) -> str:
    return ", ".join(f"{x:.{digits}f}" for x in stat["seeds"])


def _training_section(summary: dict, dataset: str, name: str, title: str, what: str) -> list[str]:
    s = summary["settings"][dataset]
    t, c = s["training"], s["config"]
    lines = [
        f"## {name}: {title}",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/*.npz`, `{name}/settings.json`)",
        "",
        what,
        "",
        f"Command: `python experiments/{name}.py` (or the whole set with `python experiments/run_all.py`).",
        "",
        f"Model: n = {c['n']}, d = {c['d']}, vocab = {c['vocab']}, classes = {c['classes']}, scores "
        f"{c['scores']}, {c['positional']} positional encoding (fixed), pooling {c['pooling']}, residual "
        f"{c['residual']}, MLP width {c['mlp']}; SPT objective: masked {c['reconstruction']} reconstruction, "
        f"mask rate {c['mask_rate']}. Train/test sequences: {s['train_size']}/{s['test_size']} "
        f"(metrics on the first {s['eval_size']} test sequences). Optimiser: AdamW, learning rate "
        f"{t['learning_rate']}, weight decay {t['weight_decay']}, global-norm clip 1, batch {t['batch']}. "
        f"Budget: {t['total_steps']} optimiser steps for both arms; supervised = {t['total_steps']} label "
        f"steps, SPT = {t['spt_steps']} reconstruction steps + {t['total_steps'] - t['spt_steps']} label "
        f"steps (fresh optimiser state). {s['seeds']} seeds; proximity radius r = {t['radius']}.",
        "",
        "Final values (end of training), mean ± std over seeds (population std), per-seed values in brackets:",
        "",
        "| query-key init | arm | test accuracy | proximity index |",
        "|---|---|---|---|",
    ]
    by_init = summary["by_init"][dataset]
    for init, arms in by_init.items():
        for arm, m in arms.items():
            lines.append(
                f"| {init} | {_dynamics.ARM_NAMES[arm]} | {_pm(m['test_accuracy'])} ({_seeds(m['test_accuracy'])}) "
                f"| {_pm(m['proximity_index'], 4)} ({_seeds(m['proximity_index'], 4)}) |"
            )
    lines += ["", "Difference SPT minus supervised (means):", ""]
    for init, arms in by_init.items():
        d_acc = arms["spt"]["test_accuracy"]["mean"] - arms["supervised"]["test_accuracy"]["mean"]
        d_prox = arms["spt"]["proximity_index"]["mean"] - arms["supervised"]["proximity_index"]["mean"]
        verdict_acc = "higher" if d_acc > 0 else "not higher"
        verdict_prox = "higher" if d_prox > 0 else "not higher"
        lines.append(
            f"- init {init}: accuracy {d_acc:+.3f} (SPT {verdict_acc}), proximity index {d_prox:+.4f} "
            f"(SPT {verdict_prox})."
        )
    return lines + [""]


def _alignment_section(root: Path) -> list[str]:
    f = read_npz(root / "parameter_alignment" / "alignment.npz")
    s = read_json(root / "parameter_alignment" / "settings.json")
    from experiments.parameter_alignment import ENCODINGS, OBJECTIVES, SCORES

    name = "parameter_alignment"
    lines = [
        f"## {name}: P8, first gradient step in W vs the positional identity",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/alignment.npz`)",
        "",
        "At W = 0 (uniform attention), the cosine between each objective's first gradient-descent step "
        "-dL/dW (batch mean) and the positional identity direction P^+P (= I here), and the gradient norm, "
        "against n, for sinusoidal/random and raw/centred encodings, position-only and content+position "
        "scores; model without residual or MLP, mean pooling; reconstruction with the copy readout. "
        "'undefined' marks an exactly zero gradient (P5).",
        "",
        "Command: `python experiments/parameter_alignment.py`.",
        "",
        f"Cosine at the largest n = {int(f['ns'][-1])} (d = {s['d']}), mean ± std over {s['seeds']} seeds:",
        "",
        "| scores | encoding | classification | reconstruction | norm cls | norm rec |",
        "|---|---|---|---|---|---|",
    ]
    for a, score in enumerate(SCORES):
        for b, (kind, centred) in enumerate(ENCODINGS):
            if score not in s["scores"] or b not in s["encodings"]:
                continue
            cells = []
            for o in range(len(OBJECTIVES)):
                v = f["cos"][a, b, -1, :, o]
                cells.append("undefined (zero gradient)" if np.all(np.isnan(v)) else f"{np.nanmean(v):+.3f} ± {np.nanstd(v):.3f}")
            norms = [f"{np.mean(f['norm'][a, b, -1, :, o]):.2e}" for o in range(len(OBJECTIVES))]
            lines.append(f"| {score} | {kind}{' centred' if centred else ''} | {' | '.join(cells)} | {' | '.join(norms)} |")
    return lines + [""]


def write_results(root) -> None:
    """Write ``<root>/RESULTS.md`` from ``summary.json`` and the figure data."""
    root = Path(root)
    summary = read_json(root / "summary.json")
    reg = summary["regeneration"]
    lines = [
        "# Results (generated by `experiments/results.py` from `summary.json` and the data files)",
        "",
        f"Regenerate everything: `{reg['command']}` (add `--fresh` for a full recomputation; `--small` "
        "for the smoke versions). All computations in float64 on CPU.",
        "",
        f"Wall time of the run that produced these files: **{reg['wall_seconds']:.0f} s** on a machine with "
        f"{reg['cpu_count']} cores shared with other jobs (fresh run: {reg['fresh']}); per figure: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in reg["per_figure_seconds"].items())
        + ".",
        "",
        f"Proximity index: {summary['settings']['proximity_index']}.",
        "",
        f"Headline numbers (`summary.json`, query-key init '{summary['headline_init']}'):",
        "",
        "| data set | arm | test accuracy | proximity index |",
        "|---|---|---|---|",
    ]
    for dataset in DATASETS:
        if dataset in summary:
            for arm, m in summary[dataset].items():
                lines.append(
                    f"| {dataset} | {_dynamics.ARM_NAMES[arm]} | {_pm(m['test_accuracy'])} "
                    f"| {_pm(m['proximity_index'], 4)} |"
                )
    lines.append("")
    texts = {
        "synthetic": (
            "P9 on the synthetic paired task (label 1: tokens come in adjacent equal pairs, cyclically "
            "shifted; label 0: a random permutation of the same multiset; token counts carry no "
            "information). Left: test accuracy over optimiser steps; middle: proximity index of the "
            "attention on test sequences; right: final attention maps (mean over test sequences, seed 0). "
            "Rows: query-key initialisation W = 0 (uniform attention) and small random W. The dotted "
            "line is where the SPT arm switches from masked reconstruction to labels."
        ),
        "digits": (
            "P9 on scikit-learn's 8x8 digits read row-major as 64-pixel sequences with 4 grey levels "
            "(fixed stratified split, 1347 train / 450 test). Same layout as the synthetic figure. "
            "Pixel neighbours at lag 1 (same row) and lag 8 (same column) are correlated; the index "
            "counts lag <= r only."
        ),
    }
    for dataset, name in DATASETS.items():
        if dataset in summary:
            title = "supervised vs self-pretraining, " + dataset
            lines += _training_section(summary, dataset, name, title, texts[dataset])
    if (root / "parameter_alignment" / "alignment.npz").exists():
        lines += _alignment_section(root)
    write_text(root / "RESULTS.md", "\n".join(lines))
