"""``summary.json`` and ``RESULTS.md`` generated from the stored data (never typed by hand).

Every number in RESULTS.md is read from ``summary.json`` or from the data files of the figures,
so the two cannot disagree.
"""

from pathlib import Path

import numpy as np

from blindspot.ablation import ARMS, depth_config
from blindspot.config import ModelConfig
from blindspot.io import write_text_atomic
from experiments import _ablations, _dynamics
from experiments.common import read_json, read_npz, write_json

DATASETS = {"synthetic": "training_dynamics_synthetic", "digits": "training_dynamics_digits"}
ABLATIONS = {"synthetic": "ablations_synthetic", "digits": "ablations_digits"}
HEADLINE_INIT = "zero"
PROXIMITY_DEFINITION = (
    "proximity index pi_r(A) = mean over interior queries r <= i <= n-1-r of the attention mass on keys "
    "1 <= |i-j| <= r, minus its uniform value 2r/n (0 for uniform attention, 1 - 2r/n at most); "
    "averaged over the evaluation test sequences (unmasked), radius r from the training settings"
)


def regeneration(*, small: bool, wall_seconds: float, figure_seconds: dict, fresh: bool, cores) -> dict:
    """Record of the run that produced the data: command, wall time, per-figure time, cores."""
    return {
        "command": "python experiments/run_all.py" + (" --small" if small else "") + (" --fresh" if fresh else ""),
        "wall_seconds": round(wall_seconds, 1),
        "per_figure_seconds": {k: round(v, 1) for k, v in figure_seconds.items()},
        "small": small,
        "fresh": fresh,
        "cpu_count": cores,
    }


def write_summary(root, run: dict) -> dict:
    """Collect the final metrics of every training experiment present under ``root``; ``run``: ``regeneration``."""
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
    for dataset, name in ABLATIONS.items():
        if (root / name / "settings.json").exists():
            metrics = _ablations.final_metrics(name, root)
            metrics["claims"] = _ablations.claims(metrics)
            summary.setdefault("ablations", {})[dataset] = {
                **metrics,
                "settings": read_json(root / name / "settings.json"),
            }
    if (root / "parameter_alignment" / "alignment.npz").exists():
        summary["settings"]["parameter_alignment"] = read_json(root / "parameter_alignment" / "settings.json")
    summary["regeneration"] = run
    write_json(root / "summary.json", summary)
    return summary


def _pm(stat: dict, digits: int = 3) -> str:
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _seeds(stat: dict, digits: int = 3) -> str:
    return ", ".join(f"{x:.{digits}f}" for x in stat["seeds"])


LAGS = (0, 1, 2, 7, 8, 9)


def lag_excess(attention: np.ndarray, lag: int) -> float:
    """Excess attention mass at distance exactly ``lag`` over uniform, final maps averaged over seeds.

    Mean over queries i with both $i - k$ and $i + k$ in range of $A_{i,i-k} + A_{i,i+k}$, minus
    its uniform value $2/n$ ($A_{ii} - 1/n$ for $k = 0$).
    """
    a = np.mean(attention, axis=0)
    n = a.shape[-1]
    if lag == 0:
        return float(np.mean(np.diag(a)) - 1 / n)
    i = np.arange(lag, n - lag)
    return float(np.mean(a[i, i - lag] + a[i, i + lag]) - 2 / n)


def _verdict(diff: float, arms: dict, key: str) -> str:
    """Word the SPT-minus-supervised difference against the seed spread (root sum of the two variances)."""
    spread = float(np.hypot(arms["spt"][key]["std"], arms["supervised"][key]["std"]))
    side = "SPT higher" if diff > 0 else "SPT not higher"
    return f"{side}; {'larger' if abs(diff) > spread else 'not larger'} than the seed spread {spread:.4f}"


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
    n = c["n"]
    lags = [k for k in LAGS if 2 * k < n]
    lines += [
        "",
        "Where the final attention goes: excess mass over uniform at distance exactly k (both sides; "
        "mean attention map over test sequences, averaged over seeds; k = 0 is the query itself, "
        "k = 8 on digits is the pixel above/below):",
        "",
        "| query-key init | arm | " + " | ".join(f"k = {k}" for k in lags) + " |",
        "|---|---|" + "---|" * len(lags),
    ]
    for init in by_init:
        for arm in by_init[init]:
            att = _dynamics.load(name, init, arm, summary["_root"]).attention
            lines.append(
                f"| {init} | {_dynamics.ARM_NAMES[arm]} | "
                + " | ".join(f"{lag_excess(att, k):+.4f}" for k in lags)
                + " |"
            )
    lines += ["", "Difference SPT minus supervised (means):", ""]
    for init, arms in by_init.items():
        d_acc = arms["spt"]["test_accuracy"]["mean"] - arms["supervised"]["test_accuracy"]["mean"]
        d_prox = arms["spt"]["proximity_index"]["mean"] - arms["supervised"]["proximity_index"]["mean"]
        verdict_acc = _verdict(d_acc, arms, "test_accuracy")
        verdict_prox = _verdict(d_prox, arms, "proximity_index")
        lines.append(
            f"- init {init}: accuracy {d_acc:+.3f} ({verdict_acc}), proximity index {d_prox:+.4f} ({verdict_prox})."
        )
    return lines + [""]


def _ci(stat: dict, digits: int = 3, sign: str = "") -> str:
    """``mean [low, high]`` of a statistic with its 95% interval."""
    low, high = stat["ci95"]
    return f"{stat['mean']:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def _share(value) -> str:
    return "no SPT gain to share" if value is None else f"{100 * value:.0f}% of SPT's gain"


ARM_TEXT = (
    "Arms (every one makes the same total number of optimiser steps; theta_0 is the seed's initialisation, "
    "the same for every arm, and theta_pre the SPT model after its masked-reconstruction steps): supervised = "
    "theta_0 then label steps only; SPT = theta_pre then label steps; QK transplant = theta_0 with the "
    "query-key weights W of theta_pre, then the same label steps as SPT; complement = theta_pre with W reset to "
    "its initial value, then those label steps; frozen QK = SPT with W held fixed during fine-tuning; proximity "
    "prior, W init = theta_0 with W a scaled pushforward of the neighbour pattern through the positional "
    "encoding, then label steps only; proximity prior, score bias = theta_0 and a fixed additive score bias c N "
    "on every sequence (N: neighbours, c chosen so that the bias alone gives half the largest proximity index), "
    "then label steps only; two attention layers = the supervised arm with a two-layer Transformer (one head "
    "per layer, residual and MLP in each block, no layer norm; same width, positions and data), from its own "
    "initialisation, then label steps only (besides depth it differs from the supervised arm's model in its "
    "random query-key initialisation, its factored query-key and value-output weights, and its GELU MLP inside "
    "the residual stream; no one-layer version of it was run to separate these). The arms built from theta_pre "
    "count its reconstruction steps in their budget."
)


def _ablation_table(a: dict, two_d: bool) -> list[str]:
    arms, gain = a["arms"], a["paired_vs_supervised"]
    head = "| arm | test accuracy | train accuracy | test label loss | train label loss | proximity index "
    head += "| 2-D proximity index " if two_d else ""
    head += "| proximity at label start | test accuracy - supervised (paired) |"
    lines = [head, "|" + "---|" * (8 + two_d)]
    for arm in (a for a in ARMS if a in arms):
        m = arms[arm]
        cells = [_ci(m[k]) for k in ("test_accuracy", "train_accuracy", "test_label_loss", "train_label_loss")]
        cells += [_ci(m["proximity"], 4, "+")] + ([_ci(m["proximity_2d"], 4, "+")] if two_d else [])
        cells += [_ci(m["proximity_at_label_start"], 4, "+")]
        cells += ["(reference)" if arm == "supervised" else _ci(gain[arm]["test_accuracy"], 3, "+")]
        lines.append(f"| {_ablations.ARM_NAMES[arm]} | " + " | ".join(cells) + " |")
    return lines


def _claim_sentences(a: dict) -> list[str]:
    gain, arms, c = a["paired_vs_supervised"], a["arms"], a["claims"]
    shares = c["shares_of_spt_gain"]
    key = _ablations.proximity_key(a)
    index = "2-D proximity" if key == "proximity_2d" else "proximity"

    def test_gain(arm):
        return _ci(gain[arm]["test_accuracy"], 3, "+")

    one = (
        "- Claim 1 (label supervision's bottleneck is learning query-key patterns from random initialisation): "
        f"**{c['bottleneck']['verdict']}** here. SPT minus supervised, test accuracy {test_gain('spt')}; QK "
        f"transplant {test_gain('transplant')} ({_share(shares['transplant'])}); complement "
        f"{test_gain('complement')} ({_share(shares['complement'])}); transplant minus complement "
        f"{_ci(c['transplant_minus_complement'], 3, '+')}; frozen QK minus SPT {_ci(c['frozen_minus_spt'], 3, '+')}. "
        f"Supervised ends at train accuracy {_ci(arms['supervised']['train_accuracy'])} and test accuracy "
        f"{_ci(arms['supervised']['test_accuracy'])}; SPT minus supervised, train accuracy "
        f"{_ci(gain['spt']['train_accuracy'], 3, '+')}. Tests: " + _tests(c["bottleneck"]["tests"]) + "."
    )
    two = (
        f"- Claim 2 (the gain comes from proximity interactions): **{c['proximity']['verdict']}** here. SPT minus "
        f"supervised, final {index} index {_ci(gain['spt'][key], 4, '+')}; proximity prior without SPT, "
        f"test accuracy: W init {test_gain('prior_init')} ({_share(shares['prior_init'])}), fixed score bias "
        f"{test_gain('prior_bias')} ({_share(shares['prior_bias'])}). Tests: " + _tests(c["proximity"]["tests"]) + "."
    )
    return [one, two, _depth_sentence(a)]


def _depth_sentence(a: dict) -> str:
    """Whether depth alone closes the gap (``_ablations.RULES``), or why the arm did not run on this data set."""
    if "depth" not in a["claims"]:
        try:
            depth_config(ModelConfig(**a["settings"]["config"]))
            why = "this data set's run leaves it out"
        except ValueError as error:
            why = f"its model cannot mirror this setting ({error})"
        return f"- Depth (the supervised arm with two attention layers): not run here: {why}."
    gain, c = a["paired_vs_supervised"]["depth"], a["claims"]["depth"]
    layers = sorted(k for k in a["arms"]["depth"] if k.startswith("proximity_layer_"))
    by_layer = ", ".join(f"layer {k.rsplit('_', 1)[1]} {_ci(a['arms']['depth'][k], 4, '+')}" for k in layers)
    return (
        f"- Depth (the supervised arm with two attention layers; claim 1 says the bottleneck is not depth): depth "
        f"alone **{c['verdict']}** here. Two layers minus supervised, test accuracy "
        f"{_ci(gain['test_accuracy'], 3, '+')} ({_share(a['claims']['shares_of_spt_gain']['depth'])}), train "
        f"accuracy {_ci(gain['train_accuracy'], 3, '+')}; two layers minus SPT, test accuracy "
        f"{_ci(c['depth_minus_spt'], 3, '+')}; final proximity index per layer (mean over heads; the table "
        f"shows layer 1): {by_layer}."
    )


def _pretraining_lines(a: dict) -> list[str]:
    """Describe what masked reconstruction learned: the SPT model where its label phase starts, and controls."""
    arms, learned = a["arms"], a["pretraining"]
    two_d = "proximity_2d_at_label_start" in arms["spt"]
    index = f", 2-D proximity index {_ci(arms['spt']['proximity_2d_at_label_start'], 4, '+')}" if two_d else ""
    base = learned.get("reconstruction_baselines")
    guesses = (
        f"; guesses without attention: the position's most frequent training token {base['position_mode']:.3f}, "
        f"the vote of the unmasked neighbours {base['neighbour_vote']:.3f}"
        if base
        else ""
    )
    lines = [
        "What masked reconstruction learned (the SPT model at the end of its pretraining, test sequences): "
        f"proximity index {_ci(arms['spt']['proximity_at_label_start'], 4, '+')}{index}; share of the attention's "
        "departure from uniform that depends on the key position alone (stripes) "
        f"{_ci(arms['spt']['key_position_share_at_label_start'])}. Accuracy on masked test positions: SPT's model "
        f"{_ci(arms['spt']['reconstruction_accuracy_at_label_start'])}, the same model with W reset to its "
        f"initialisation (the complement's start) {_ci(arms['complement']['reconstruction_accuracy_at_label_start'])}"
        f"{guesses}. Excess mean attention over uniform by offset (rows, columns) from the query, after pretraining:",
        "",
    ]
    offsets = {tuple(int(v) for v in k.split(",")): x for k, x in learned["offsets_after_pretraining"].items()}
    rows, cols = sorted({r for r, _ in offsets}), sorted({c for _, c in offsets})
    lines += ["| row offset | " + " | ".join(f"column {c:+d}" for c in cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {r:+d} | " + " | ".join(f"{offsets[r, c]:+.4f}" for c in cols) + " |" for r in rows]
    if base:
        lines += ["", _reading(arms, base, "proximity_2d_at_label_start" if two_d else "proximity_at_label_start")]
    seconds = a["training_seconds"]
    lines += [
        "",
        f"Training time of these cells: {seconds:.0f} s (sum of the cells' timers; 2 cores shared with other jobs).",
    ]
    return lines


def _reading(arms: dict, base: dict, index: str) -> str:
    """One sentence on what pretraining learned, worded from the numbers."""
    spt = arms["spt"]["reconstruction_accuracy_at_label_start"]
    guess, value = max(base.items(), key=lambda kv: kv[1])
    margin = spt["mean"] - value
    reset = spt["mean"] - arms["complement"]["reconstruction_accuracy_at_label_start"]["mean"]
    low, high = arms["spt"][index]["ci95"]
    return (
        f"Reading: after pretraining, SPT's accuracy on masked positions minus that of the best guess that uses no "
        f"attention ({guess.replace('_', ' ')}) is {margin:+.3f}; resetting its W changes it by {-reset:+.3f}; its "
        f"attention is {'local' if low > 0 else 'not resolved as local'} (proximity index interval [{low:+.4f}, "
        f"{high:+.4f}])."
    )


def _sweep_lines(selection: dict) -> list[str]:
    """Describe the sweep on the validation split: every setting, both arms, SPT's locality, the choice."""
    lines = [
        f"Setting chosen on a validation split ({100 * selection['validation_fraction']:.0f}% of the training set, "
        f"stratified; the test set is not used): {selection['rule']}. Every setting of the sweep (validation "
        "accuracy, mean over the sweep's seeds; SPT's 2-D proximity index after pretraining and at the end):",
        "",
        "| # | embedding scale | query-key | width | budget | supervised | SPT | SPT 2-D index after pretraining "
        "| SPT 2-D index, end | supervised 2-D index, end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(selection["sweep"]):
        s, acc = r["setting"], r["validation_accuracy"]
        chosen = " (chosen)" if i == selection["chosen"] else ""
        lines.append(
            f"| {i}{chosen} | {s['embedding_scale']} | {'rank ' + str(s['qk_rank']) if s['qk_rank'] else 'full'} "
            f"| {s['d']} | {s['total_steps']} | {np.mean(acc['supervised']):.3f} | {np.mean(acc['spt']):.3f} "
            f"| {np.mean(r['spt_proximity_2d_after_pretraining']):+.4f} | {np.mean(r['spt_proximity_2d_end']):+.4f} "
            f"| {np.mean(r['supervised_proximity_2d_end']):+.4f} |"
        )
    seconds = sum(r["seconds"] for r in selection["sweep"])
    return lines + ["", f"Training time of the sweep: {seconds:.0f} s (sum of its timers; 2 shared cores)."]


def _tests(tests: list) -> str:
    return ", ".join(f"{name.replace('_', ' ')}: {'yes' if ok else 'no'}" for name, ok in tests)


def _ablations_section(a: dict, dataset: str, name: str) -> list[str]:
    s, p = a["settings"], a["settings"]["prior"]
    t, c = s["training"], s["config"]
    two_d = "proximity_2d" in a["arms"]["supervised"]
    return [
        f"## {name}: which part of self-pretraining carries its gain ({dataset})",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/<arm>_seed<k>.npz`, `{name}/settings.json`)",
        "",
        ARM_TEXT,
        "",
        f"Command: `python experiments/{name}.py` (resumable per arm and seed).",
        "",
        f"Model: n = {c['n']}, d = {c['d']}, vocab = {c['vocab']}, classes = {c['classes']}, MLP width {c['mlp']}, "
        f"residual {c['residual']}, query-key init {c['qk_init']}, query-key rank {c['qk_rank'] or 'full'}, token "
        f"embeddings N(0, {c['embedding_scale']}^2), mask rate {c['mask_rate']}. Train/test sequences: "
        f"{s['train_size']}/{s['test_size']} (metrics on the first {s['eval_size']} of each). Budget: "
        f"{t['total_steps']} optimiser steps per arm, SPT's pretraining {t['spt_steps']} of them; batch "
        f"{t['batch']}, AdamW learning rate {t['learning_rate']}. {s['seeds']} seeds. Proximity priors: "
        f"{p['neighbours_per_interior_position']} neighbours per interior position, bias amplitude c = "
        f"{p['bias_amplitude']:.4f} (index {p['target_proximity_index']:.4f} from the bias alone); W prior: "
        f"pushforward truncated at {p['pushforward_rtol']} of P's largest singular value (unreachable part "
        f"{p['pushforward_residual_fraction']:.3f} of the pattern), gain {p['w_gain']:.3g}, giving the positional "
        f"block alone an index of {p['w_positional_proximity_index']:.4f}.",
        "",
        *(_sweep_lines(s["selection"]) + [""] if "selection" in s else []),
        "Final values: mean [95% Student t interval over seeds]; paired differences against the supervised arm "
        "per seed (same initialisation and data). Per-seed values are in `summary.json`.",
        "",
        *_ablation_table(a, two_d),
        "",
        f"The paper's claims, read from these numbers. {_ablations.RULES}",
        "",
        *_claim_sentences(a),
        "",
        *_pretraining_lines(a),
        "",
    ]


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
        "'undefined' marks an exactly zero gradient (P5). Reading of the committed run: P8's contrast "
        "(classification at the boundary-term level, reconstruction of order one) holds for position-only "
        "scores with sinusoidal encodings, where P P^T is Toeplitz; with random encodings the reconstruction "
        "cosine is of order one but negative (P P^T is not a proximity pattern, so Pi_P is not the target), "
        "and in the content+position view every cosine is small and negative (|cos| < 0.2 at n = 128).",
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
                cells.append(
                    "undefined (zero gradient)" if np.all(np.isnan(v)) else f"{np.nanmean(v):+.3f} ± {np.nanstd(v):.3f}"
                )
            norms = [f"{np.mean(f['norm'][a, b, -1, :, o]):.2e}" for o in range(len(OBJECTIVES))]
            lines.append(
                f"| {score} | {kind}{' centred' if centred else ''} | {' | '.join(cells)} | {' | '.join(norms)} |"
            )
    return lines + [""]


def _blindness_section(root: Path) -> list[str]:
    from experiments.blindness_vs_n import FAMILIES, OBJECTIVES, closed_form

    name = "blindness_vs_n"
    f = read_npz(root / name / "visible.npz")
    s = read_json(root / name / "settings.json")
    part = s.get("family_part", "whole")  # data written before the non-gauge measure were measured whole
    lines = [
        f"## {name}: P4, visible fraction of proximity families as n grows",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/visible.npz`)",
        "",
        "Visible fraction ||Q_G^T Q_F||_F^2 / dim F of the band (k = 1, 2), Toeplitz and circulant families in "
        "the span G of the per-sample score gradients at uniform attention, classification (mean pooling, no "
        "residual, no MLP, batch 2n) vs masked reconstruction (copy readout, batch min(2n^2, "
        f"{s['rec_batch']})), with the closed forms derived in the script's docstring (dashed). "
        + _part_text(part)
        + " Reconstruction sees every non-gauge direction when the batch is large enough; beyond that its "
        "measured fraction follows the batch limit b / (n(n-1)) for every family alike, while classification's "
        "is capped by the loss itself (span inside the (n-1)-dimensional column-sum space U).",
        "",
        f"Command: `python experiments/{name}.py`.",
        "",
        "| n | cls band_1 | P4 band_1 | cls toeplitz | P4 toeplitz | cls circulant | rec band_1 | rec toeplitz |",
        "|---|---|---|---|---|---|---|---|",
    ]
    frac = f["fraction"].mean(axis=2)
    c, r = OBJECTIVES.index("classification"), OBJECTIVES.index("reconstruction")
    b1, tp, ci = FAMILIES.index("band_1"), FAMILIES.index("toeplitz"), FAMILIES.index("circulant")
    for i, n in enumerate(f["ns"]):
        lines.append(
            f"| {int(n)} | {frac[c, i, b1]:.3e} | {float(closed_form('band_1', n, part)):.3e} | "
            f"{frac[c, i, tp]:.3e} | {float(closed_form('toeplitz', n, part)):.3e} | {frac[c, i, ci]:.1e} | "
            f"{frac[r, i, b1]:.3e} | "
            f"{frac[r, i, tp]:.3e} |"
        )
    return lines + [""]


def _part_text(part: str) -> str:
    """Describe what the visible fractions of a data file were measured on (``family_part`` of its settings)."""
    if part == "non_gauge":
        return (
            "Each family is measured on its non-gauge part (I - P_g) F, P_g X = X 1 1^T / n: every gradient is "
            "orthogonal to the gauge (P1), so a span of every non-gauge direction reads 1."
        )
    return (
        "These data measure each family whole, gauge part included, so a span of every non-gauge direction "
        "reads only tr K / dim F (K the Gram matrix of the gauge-projected basis: (n-1)/n for the circulant and "
        "Toeplitz families, 1 - ||P_g B_k||^2 for a band), not 1; rerun the script for the non-gauge measure."
    )


def _taylor_section(root: Path) -> list[str]:
    from experiments.taylor_profiles import DIRECTIONS, OBJECTIVES

    name = "taylor_profiles"
    f = read_npz(root / name / "profiles.npz")
    c = f["coefficients"]
    lines = [
        f"## {name}: P3/P7, the loss along proximity directions and its Taylor coefficients",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/profiles.npz`)",
        "",
        "Batch-mean loss L(tD) - L(0) in score space at uniform attention along a unit circulant "
        "(wrap-around) proximity kernel and the open-boundary kernel exp(-|i-j|/l), with the order-4 Taylor "
        "polynomial from `taylor.taylor_coefficients` (jet). P3: without MLP the classification loss is "
        "exactly flat along the circulant direction (every coefficient at rounding level); P7: with a tanh "
        "MLP c_1 vanishes but c_2 does not; reconstruction has c_1 != 0.",
        "",
        f"Command: `python experiments/{name}.py`.",
        "",
        "| objective | direction | c_1 | c_2 | c_3 | c_4 |",
        "|---|---|---|---|---|---|",
    ]
    for a, objective in enumerate(OBJECTIVES):
        for b, direction in enumerate(DIRECTIONS):
            lines.append(f"| {objective} | {direction} | " + " | ".join(f"{v:+.3e}" for v in c[a, b, 1:]) + " |")
    return lines + [""]


def _hessian_section(root: Path) -> list[str]:
    from experiments.restricted_hessian import OBJECTIVES, PARTS

    name = "restricted_hessian"
    f = read_npz(root / name / "spectra.npz")
    lines = [
        f"## {name}: P7, Hessian restricted to the blind families, Gauss-Newton vs functional",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/spectra.npz`)",
        "",
        "Eigenvalues of Q^T H Q at uniform attention for the circulant and Toeplitz families, and of its "
        "Gauss-Newton and functional parts (`curvature.gauss_newton_split`). Along the circulant family the "
        "label loss has no Gauss-Newton curvature (its logits do not move at first order); with the MLP its "
        "curvature there is purely functional and indefinite (a saddle, P7).",
        "",
        f"Command: `python experiments/{name}.py`.",
        "",
        "| objective | family | " + " | ".join(f"{p} min / max" for p in PARTS) + " |",
        "|---|---|---|---|---|",
    ]
    for a, objective in enumerate(OBJECTIVES):
        for fam in read_json(root / name / "settings.json")["families"]:
            cells = [f"{f[f'{a}/{fam}/{p}'][0]:+.2e} / {f[f'{a}/{fam}/{p}'][-1]:+.2e}" for p in PARTS]
            lines.append(f"| {objective} | {fam} | " + " | ".join(cells) + " |")
    return lines + [""]


def _visibility_section(root: Path) -> list[str]:
    from experiments.gradient_visibility_during_training import FAMILIES

    name = "gradient_visibility_during_training"
    f = read_npz(root / name / "visibility.npz")
    s = read_json(root / name / "settings.json")
    lines = [
        f"## {name}: does the label loss stay blind along its own trajectory?",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/visibility.npz`)",
        "",
        "Supervised arm of the synthetic experiment (same model and settings, W = 0 init). At each evaluation: "
        f"visible fraction of the proximity families in the span of {s['batch']} per-sample label-loss score "
        "gradients, the span rank over the non-gauge dimension n(n-1) (the level a random subspace of that "
        "rank reaches), and the alignment |cos| of the mean gradient with each family. "
        + _part_text(s.get("family_part", "whole"))
        + " This model has a residual and an MLP, so (derivations/THEORY.md, P4: the rows of dL/dS differ with a "
        "residual and a nonlinear MLP) its per-sample gradients are not confined to the column-sum space even at "
        "W = 0: first-order visibility is not the obstacle here; compare the mean-gradient alignment and the "
        "proximity index.",
        "",
        f"Command: `python experiments/{name}.py`.",
        "",
        "| step | span rank / n(n-1) | "
        + " | ".join(f"visible {x}" for x in FAMILIES)
        + " | "
        + " | ".join(f"align {x}" for x in FAMILIES)
        + " | proximity index |",
        "|---|---|" + "---|" * (2 * len(FAMILIES) + 1),
    ]
    picks = sorted({0, len(f["steps"]) // 4, len(f["steps"]) // 2, len(f["steps"]) - 1})
    for t in picks:
        rank = np.mean(f["rank"][:, t]) / s["non_gauge_dim"]
        vis = " | ".join(f"{np.mean(f['fraction'][:, t, b]):.3f}" for b in range(len(FAMILIES)))
        ali = " | ".join(f"{np.mean(f['alignment'][:, t, b]):.3f}" for b in range(len(FAMILIES)))
        lines.append(f"| {int(f['steps'][t])} | {rank:.3f} | {vis} | {ali} | {np.mean(f['proximity'][:, t]):+.4f} |")
    lines += ["", f"Means over {s['seeds']} seeds."]
    return lines + [""]


def _detectability_section(root: Path) -> list[str]:
    name = "detectability"
    s = read_json(root / name / "settings.json")
    sizes = read_npz(root / name / "scaling.npz")["sizes"]
    lines = [
        f"## {name}: P10, P12, how many samples each loss needs to see a proximity direction",
        "",
        f"![{name}]({name}.png) ([PDF]({name}.pdf); data: `{name}/*.npz`, `{name}/settings.json`)",
        "",
        "Signal ||E c||, noise tr Cov c and B* = noise / signal^2 of the per-sample score gradients' coordinates c "
        "in a family's non-gauge part (the batch size at which the batch-mean gradient sees the family). "
        f"(a) against n = {', '.join(str(int(n)) for n in sizes)} ({s['samples']} i.i.d. sequences each, V = "
        f"{s['vocab']}, d = {s['d']}, half of the positions masked, random labels), plain model (mean pooling, no "
        f"MLP; copy readout) and residual + tanh MLP (width {s['mlp']}; cross-entropy readout), at W = 0 and at a "
        f"random W of scale {s['sigma']}; (b) the signal on the circulants against the score scale sigma; (c) the "
        "proximity kernel's B* along training on the synthetic task.",
        "",
        f"Command: `python experiments/{name}.py`.",
        "",
    ]
    return lines + _scaling_rows(root, name) + _sigma_rows(root, name, s) + _trajectory_rows(root, name) + [""]


def _scaling_rows(root: Path, name: str) -> list[str]:
    from blindspot.scaling import leading_orders
    from experiments.detectability import (
        FAMILIES,
        INITS,
        MODELS,
        OBJECTIVES,
        closed_form_estimates,
        fitted_slopes,
        seed_median,
    )

    f = read_npz(root / name / "scaling.npz")
    estimates = np.moveaxis(f["estimates"], 3, 0)  # seeds first
    slopes = seed_median(fitted_slopes(f["sizes"], estimates), missing=np.nan)
    largest = seed_median(estimates[:, :, :, :, -1, :, 2])
    orders = leading_orders()
    exact = fitted_slopes(f["sizes"], closed_form_estimates(read_json(root / name / "settings.json"), f["sizes"]))
    header = ["| model | W | objective | " + " | ".join(FAMILIES) + " |", "|---|---|---|" + "---|" * len(FAMILIES)]
    exponents = " | ".join("/".join(str(orders[x][q][0]) for q in ("signal^2", "noise", "B*")) for x in FAMILIES)
    closed = " | ".join("/".join(_number(v, "+.2f") for v in exact[k]) for k in range(len(FAMILIES)))
    slope_rows = [
        f"| plain | 0 | reconstruction, P12 exponents (n to infinity) | {exponents} |",
        f"| plain | 0 | reconstruction, P12 closed form over these n | {closed} |",
    ]
    star_rows = []
    for a, b, c in np.ndindex(len(MODELS), len(INITS), len(OBJECTIVES)):
        row = f"| {MODELS[a]} | {INITS[b]} | {OBJECTIVES[c]} | "
        cells = ["/".join(_number(v, "+.2f") for v in slopes[a, b, c, k]) for k in range(len(FAMILIES))]
        slope_rows.append(row + " | ".join(cells) + " |")
        star_rows.append(row + " | ".join(_number(v, ".3g") for v in largest[a, b, c]) + " |")
    return [
        f"(a) Fitted log-log slopes in n (least squares over the sizes, median over {estimates.shape[0]} parameter "
        "seeds; '-' where no seed had a signal at every size) of signal^2 / noise / B*, and P12's exponents and "
        "exact slopes (copy readout, i.i.d. tokens, m = rn). The label loss in the plain model has no power law "
        "in n (P12: its B* is set by the sequence's two ends), so its fitted slopes only summarise these sizes:",
        "",
        *header,
        *slope_rows,
        "",
        f"B* at n = {int(f['sizes'][-1])} (median over the seeds, no signal counting as infinite; '-': infinite):",
        "",
        *header,
        *star_rows,
    ]


def _number(value: float, spec: str) -> str:
    return "-" if not np.isfinite(value) else format(value, spec)


def _sigma_rows(root: Path, name: str, s: dict) -> list[str]:
    f = read_npz(root / name / "sigma.npz")
    kappa = float(f["kappa_signal"])
    ratios = ", ".join(f"{v / (x * kappa):.3f}" for x, v in zip(f["sigmas"], f["signal"][:, 0]))
    return [
        "",
        f"(b) Plain model, n = {s['sigma_n']}, {s['sigma_samples']} sequences: label signal on the circulants over "
        f"P10's leading order sigma ||E kappa|| (||E kappa|| = {kappa:.3g}) at sigma = "
        + ", ".join(f"{x:.3g}" for x in f["sigmas"])
        + f": {ratios}; reconstruction's (copy readout) at the smallest sigma {f['signal'][0, 1]:.3g}, P12's exact "
        f"value at sigma = 0: {float(f['copy_exact']):.3g}.",
    ]


def _trajectory_rows(root: Path, name: str) -> list[str]:
    from blindspot.training import ARMS
    from experiments.detectability import seed_median

    f = read_npz(root / name / "trajectory.npz")
    lines = [
        "",
        "(c) Synthetic paired task (model and training of training_dynamics_synthetic, W = 0 init): B* of the "
        "proximity kernel and its signal ||E c|| (medians over seeds, no signal counting as an infinite B*, '-') "
        "for the label and the reconstruction loss, and the proximity index, at a few evaluations:",
        "",
        "| arm | step | B* label | B* reconstruction | signal label | signal reconstruction | proximity index |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        steps = f[f"{arm}/steps"]
        label, rec = (seed_median(f[f"{arm}/values"][:, :, c, 2]) for c in (0, 1))
        signals = [seed_median(np.sqrt(np.maximum(f[f"{arm}/values"][:, :, c, 0], 0.0))) for c in (0, 1)]  # 0: none
        for t in sorted({0, len(steps) // 2, len(steps) - 1}):
            cells = " | ".join(_number(v, ".3g") for v in (label[t], rec[t], signals[0][t], signals[1][t]))
            index = np.mean(f[f"{arm}/proximity_index"][:, t])
            lines.append(f"| {arm} | {int(steps[t])} | {cells} | {index:+.4f} |")
    return lines


def write_results(root) -> None:
    """Write ``<root>/RESULTS.md`` from ``summary.json`` and the figure data."""
    root = Path(root)
    summary = read_json(root / "summary.json")
    summary["_root"] = root
    reg = summary["regeneration"]
    lines = [
        "# Results (generated by `experiments/results.py` from `summary.json` and the data files)",
        "",
        "Regenerate everything: `python experiments/run_all.py` (resumable: finished training cells are kept "
        "while their stored settings match; "
        f"`--fresh` recomputes all; `--small` runs the smoke versions). The recorded run was `{reg['command']}`. "
        "All computations in float64 on CPU.",
        "",
        f"Wall time of the run that produced these files: **{reg['wall_seconds']:.0f} s** on a machine with "
        f"{reg['cpu_count']} cores shared with other jobs (fresh run: {reg['fresh']}); per figure: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in reg["per_figure_seconds"].items())
        + ".",
        "",
        "Smoke versions of every figure: `python experiments/run_all.py --small` (written to `paper_figs/small/`, "
        "not committed); test: `pytest tests/test_experiments.py` (runs `run_all.py --small` into a temporary "
        "folder).",
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
            "counts lag <= r only. Reading of the committed run (the tables below carry the numbers): the "
            "final attention maps of both arms are dominated by vertical stripes, i.e. attention to fixed key "
            "positions (informative pixel locations), not by diagonals; masked reconstruction at this "
            "model size and budget did not learn a local (lag 1 or lag 8) pattern here, so the precondition "
            "of the P9 mechanism (SPT grows the proximity index) fails on digits and SPT gives no accuracy "
            "gain either."
        ),
    }
    for dataset, name in DATASETS.items():
        if dataset in summary:
            title = "supervised vs self-pretraining, " + dataset
            lines += _training_section(summary, dataset, name, title, texts[dataset])
    for dataset, name in ABLATIONS.items():
        if dataset in summary.get("ablations", {}):
            lines += _ablations_section(summary["ablations"][dataset], dataset, name)
    sections = (
        ("parameter_alignment/alignment.npz", _alignment_section),
        ("blindness_vs_n/visible.npz", _blindness_section),
        ("taylor_profiles/profiles.npz", _taylor_section),
        ("restricted_hessian/spectra.npz", _hessian_section),
        ("gradient_visibility_during_training/visibility.npz", _visibility_section),
        ("detectability/trajectory.npz", _detectability_section),
    )
    for path, section in sections:
        if (root / path).exists():
            lines += section(root)
    write_text_atomic(root / "RESULTS.md", "\n".join(lines))
