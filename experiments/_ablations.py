"""The ablation arms of ``blindspot.ablation`` on one data set: stored cells, statistics over seeds, figure.

One ``.npz`` per (arm, seed) under ``<root>/<name>/``: the history of that seed (accuracy and label
loss on train and test, proximity indices, training loss, final attention) and the query-key
matrix W where the arm's label phase starts and at the end (not for the depth arm, whose model has
no single W). Resumable: a cell is reused while the stored settings shared by every arm (model,
training, seeds, key, data digest, priors) and those of its own arm (budget; the depth arm's model)
match, so adding an arm computes its cells only; a seed's missing arms are trained together, so the
SPT pretraining is made once per seed. A data set runs the arms listed in its ``settings.json``.
Final values are summarised by their mean and a 95% Student t interval over seeds, and by paired
differences against the supervised arm (same seed: same initialisation and data).
"""

import dataclasses
import json

import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from blindspot import ablation, transformer
from blindspot.checks import check_choice, check_int
from blindspot.config import ModelConfig
from blindspot.data import sample_masks
from blindspot.io import json_text
from blindspot.model import init, query_key_matrix
from blindspot.objectives import reconstruction_accuracy
from blindspot.positional import neighbours
from blindspot.proximity import proximity_index
from blindspot.tolerances import close_tolerance
from blindspot.training import Dataset, TrainSettings, attention_maps
from experiments._dynamics import stored, training_record
from experiments.common import (
    Progress,
    data_dir,
    read_json,
    read_npz,
    save_figure,
    write_json,
    write_npz,
)

ARM_NAMES = {
    "supervised": "supervised from scratch",
    "spt": "SPT then fine-tune",
    "transplant": "QK transplant (SPT's W, rest fresh)",
    "complement": "complement (SPT without W)",
    "frozen_qk": "SPT, W frozen in fine-tuning",
    "prior_init": "proximity prior: W init",
    "prior_bias": "proximity prior: fixed score bias",
    "depth": "two attention layers, supervised",
}
SHORT_NAMES = {
    "supervised": "supervised",
    "spt": "SPT",
    "transplant": "transplant",
    "complement": "complement",
    "frozen_qk": "frozen QK",
    "prior_init": "prior W",
    "prior_bias": "prior bias",
    "depth": "2 layers",
}
STATISTICS = ("test_accuracy", "train_accuracy", "test_label_loss", "train_label_loss", "proximity", "proximity_2d")
LEVEL = 0.95


def cell_path(name: str, arm: str, seed: int, root=None):
    """Return the data file of one (arm, seed) cell."""
    return data_dir(name, root) / f"{arm}_seed{seed}.npz"


def prior_record(config: ModelConfig, width: int | None) -> dict:
    """How the proximity priors are built for ``config`` (seed 0's encoding; sinusoidal: every seed's)."""
    _, prior = ablation.prior_query_key(init(jax.random.key(0), config), config, width)
    k = ablation.neighbour_count(config.n, width)
    return {
        "neighbours_per_interior_position": k,
        "bias_amplitude": ablation.neighbour_amplitude(config.n, width),
        "pushforward_rtol": ablation.PUSHFORWARD_RTOL,
        "pushforward_residual_fraction": prior.residual_fraction,
        "w_gain": prior.gain,
        "w_positional_proximity_index": prior.positional_index,
        "target_proximity_index": 0.5 * (1 - k / config.n),
    }


def settings_record(
    config, data: Dataset, settings: TrainSettings, *, seeds: int, key, arms=ablation.ARMS, extra=None
) -> dict:
    """Everything the cells depend on, the arms, their budgets, the priors, the depth arm's model, and ``extra``.

    ``extra``: e.g. a sweep's selection. ``ARM_FIELDS`` are the entries that belong to single arms.
    """
    depth = {"depth_model": dataclasses.asdict(ablation.depth_config(config))} if "depth" in arms else {}
    return {
        **training_record(config, data, settings, seeds=seeds, key=key),
        "arms": list(arms),
        "budget": {arm: ablation.budget(settings, arm) for arm in arms},
        "prior": prior_record(config, settings.width),
        **depth,
        **({"selection": extra} if extra is not None else {}),
    }


ARM_FIELDS = ("arms", "budget", "depth_model")
"""Entries of the settings record that belong to single arms; every other entry is shared by all arms."""


def reusable_arms(path, record: dict) -> set[str]:
    """Arms of ``record`` whose stored cells under the record ``path`` still fit: shared and own entries equal."""
    if not path.is_file():
        return set()
    old, new = read_json(path), json.loads(json_text(record))
    if {k: v for k, v in old.items() if k not in ARM_FIELDS} != {k: v for k, v in new.items() if k not in ARM_FIELDS}:
        return set()

    def own(r, arm):
        return r["budget"].get(arm), r.get("depth_model") if arm == "depth" else None

    return {arm for arm in new["arms"] if arm in old.get("arms", ()) and own(old, arm) == own(new, arm)}


def compute(
    name: str,
    config,
    data: Dataset,
    settings: TrainSettings,
    *,
    seeds: int,
    key,
    arms=ablation.ARMS,
    root=None,
    extra=None,
):
    """Train every (arm, seed) cell of ``arms`` that has no data file for these settings yet, with a progress bar."""
    check_int("seeds", seeds, 2)  # a t interval needs two
    for arm in arms:
        check_choice("arms", arm, ablation.ARMS)
    record = settings_record(config, data, settings, seeds=seeds, key=key, arms=arms, extra=extra)
    cells = _cells(name, record, root)
    todo = [c for c in cells if not cells[c].exists()]
    if len(todo) < len(cells):
        print(
            f"{name}: {len(cells) - len(todo)} of {len(cells)} cells reused (their settings match; --fresh recomputes)"
        )
    progress = Progress(name, len(todo))
    keys = jax.random.split(key, seeds)
    for s in range(seeds):
        missing = tuple(arm for arm in arms if (arm, s) in todo)
        if not missing:
            continue
        common = {"settings": settings, "label": f"seed {s}", "log": progress.status, "keep_params": True}
        for arm, h in ablation.train_arms(config, data, keys[s : s + 1], arms=missing, **common).items():
            write_npz(cells[(arm, s)], **stored(h), **_label_start(arm, h, config, data, settings))
            progress.advance(f"{arm} seed {s}")
    write_json(data_dir(name, root) / "baselines.json", reconstruction_baselines(config, data, settings))


def _cells(name: str, record: dict, root) -> dict:
    """Return the data file of every (arm, seed) of ``record``; delete those that no longer fit; write ``record``."""
    path = data_dir(name, root) / "settings.json"
    cells = {(arm, s): cell_path(name, arm, s, root) for s in range(record["seeds"]) for arm in record["arms"]}
    kept = reusable_arms(path, record)
    for (arm, _), cell in cells.items():
        if arm not in kept:
            cell.unlink(missing_ok=True)
    write_json(path, record)
    return cells


def _label_start(arm: str, h, config: ModelConfig, data: Dataset, settings: TrainSettings) -> dict:
    """Where the arm's label phase starts (one seed): W there and at the end, attention and reconstruction there.

    Attention: mean map over the first ``eval_size`` test sequences (with the arm's score bias; the depth
    arm: its first layer's, mean over heads, and at the end every layer's, ``attention_layers_end``);
    reconstruction accuracy: masked test positions (``config.mask_rate``, masks from a fixed key). The
    depth arm has neither W nor a trained reconstruction.
    """
    start = int(np.flatnonzero(h.steps == ablation.budget(settings, arm)["reconstruction_steps"])[-1])
    params = [jax.tree.map(lambda leaf: leaf[0], h.params[t]) for t in (start, -1)]
    x = data.test_tokens[: settings.eval_size]
    if arm == "depth":
        maps = [transformer.attention_maps(p, ablation.depth_config(config), x).mean(axis=(0, 2)) for p in params]
        return {"label_start": start, "attention_start": np.asarray(maps[0][0]), "attention_layers_end": maps[1]}
    bias = ablation.prior_scores(config.n, settings.width) if arm == "prior_bias" else None
    masks = sample_masks(jax.random.key(0), x.shape[0], config.n, config.mask_rate)
    return {
        "label_start": start,
        "query_key_start": np.asarray(query_key_matrix(params[0])),
        "query_key_end": np.asarray(query_key_matrix(params[1])),
        "attention_start": np.asarray(attention_maps(params[0], config, x, score_bias=bias).mean(axis=0)),
        "reconstruction_accuracy_start": np.asarray(reconstruction_accuracy(params[0], config, x, masks)),
    }


def load(name: str, arm: str, root=None) -> dict:
    """Every seed's cell of ``arm``, stacked along a leading seed axis (``steps``, ``phase``: seed 0's)."""
    seeds = read_json(data_dir(name, root) / "settings.json")["seeds"]
    files = [read_npz(cell_path(name, arm, s, root)) for s in range(seeds)]
    out = {"steps": files[0]["steps"], "phase": files[0]["phase"], "label_start": int(files[0]["label_start"])}
    stacked = ("query_key_start", "query_key_end", "seconds", "attention_start", "reconstruction_accuracy_start")
    for key in (*stacked, "attention_layers_end"):
        if key in files[0]:
            out[key] = np.stack([f[key] for f in files])
    for key in files[0]:
        if key not in out:
            out[key] = np.concatenate([f[key] for f in files])  # per-seed arrays keep a seed axis of 1
    return out


def arms_of(name: str, root=None) -> tuple[str, ...]:
    """Return the arms of a data set's run, in ``ablation.ARMS`` order (its ``settings.json``)."""
    stored = read_json(data_dir(name, root) / "settings.json")["arms"]
    return tuple(a for a in ablation.ARMS if a in stored)


def training_seconds(name: str, root=None) -> float:
    """Wall time of training every cell, from the cells' own timers.

    Per seed: the arms built from the shared pretraining run one after another from one start (the
    longest timer covers them all); every other arm runs from its own start (timers add up).
    """
    seeds = read_json(data_dir(name, root) / "settings.json")["seeds"]
    total = 0.0
    for s in range(seeds):
        timers = {arm: float(read_npz(cell_path(name, arm, s, root))["seconds"]) for arm in arms_of(name, root)}
        total += max(timers[a] for a in ablation.PRETRAINED)
        total += sum(t for a, t in timers.items() if a not in ablation.PRETRAINED)
    return total


def interval(values) -> dict:
    """Mean, sample std and the 95% Student t interval of the mean over seeds, and the per-seed values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(np.mean(x))
    sem = float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(x) - 1) * sem) if len(x) > 1 else float("nan")
    return {
        "mean": mean,
        "std": float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
        "ci95": [mean - half, mean + half],
        "seeds": [float(v) for v in x],
    }


def direction(stat: dict) -> str:
    """``"higher"`` or ``"lower"`` when the 95% interval excludes 0, else ``"not resolved"``."""
    low, high = stat["ci95"]
    return "higher" if low > 0 else "lower" if high < 0 else "not resolved"


def final_metrics(name: str, root=None) -> dict:
    """Per arm: final values of every statistic and the proximity index where its label phase starts."""
    record = read_json(data_dir(name, root) / "settings.json")
    arms = {arm: _arm_metrics(load(name, arm, root), record["training"]) for arm in arms_of(name, root)}
    paired = {}
    for arm in arms_of(name, root)[1:]:
        paired[arm] = {}
        for key in (k for k in arms[arm] if k in arms["supervised"]):
            diff = np.subtract(arms[arm][key]["seeds"], arms["supervised"][key]["seeds"])
            paired[arm][key] = {**interval(diff), "direction": None}
            paired[arm][key]["direction"] = direction(paired[arm][key])
    spt = load(name, "spt", root)["attention_start"].mean(axis=0)
    learned = {"offsets_after_pretraining": offset_profile(spt, record["training"]["width"])}
    baselines = data_dir(name, root) / "baselines.json"
    if baselines.exists():
        learned["reconstruction_baselines"] = read_json(baselines)
    return {
        "arms": arms,
        "paired_vs_supervised": paired,
        "pretraining": learned,
        "training_seconds": training_seconds(name, root),
    }


def _arm_metrics(c: dict, training: dict) -> dict:
    """Return the final statistics of one arm's cells (``load``) and those where its label phase starts.

    With every layer's final attention (the depth arm), ``proximity_layer_<l>``: layer l's proximity index
    (mean over heads; the 2-D index for images), radius and width from the ``training`` settings.
    """
    out = {key: interval(c[key][:, -1]) for key in STATISTICS if key in c}
    out["proximity_at_label_start"] = interval(c["proximity"][:, c["label_start"]])
    if "proximity_2d" in c:
        out["proximity_2d_at_label_start"] = interval(c["proximity_2d"][:, c["label_start"]])
    if "reconstruction_accuracy_start" in c:
        out["reconstruction_accuracy_at_label_start"] = interval(c["reconstruction_accuracy_start"])
    out["key_position_share_at_label_start"] = interval([key_position_share(a) for a in c["attention_start"]])
    for layer in range(c["attention_layers_end"].shape[1] if "attention_layers_end" in c else 0):
        index = [
            proximity_index(a, radius=training["radius"], width=training["width"])
            for a in c["attention_layers_end"][:, layer]
        ]
        out[f"proximity_layer_{layer + 1}"] = interval([float(i) for i in index])
    return out


def key_position_share(attention: np.ndarray) -> float:
    r"""Share of the attention's departure from uniform that depends on the key position alone.

    $\lVert 1 m^\top - U \rVert_F^2 / \lVert A - U \rVert_F^2$ with $m$ the column means of $A$ and $U$ uniform:
    1 for pure stripes (every query attends to the same keys), 0 for a pattern with uniform column
    means (a proximity band is nearly so) and, by convention, for uniform attention itself.
    """
    n = attention.shape[-1]
    stripes = np.broadcast_to(attention.mean(axis=0), attention.shape) - 1 / n
    departure = np.sum((attention - 1 / n) ** 2)
    return float(np.sum(stripes**2) / departure) if departure > (n * close_tolerance(np.float64, n)) ** 2 else 0.0


def offset_profile(attention: np.ndarray, width: int | None, reach: int = 2) -> dict:
    """Excess attention over uniform at each (row, column) offset up to ``reach``, mean over the queries it fits."""
    n = attention.shape[-1]
    cols = width or n
    row, col = np.arange(n) // cols, np.arange(n) % cols
    rows = range(-reach, reach + 1) if width else (0,)
    out = {}
    for dr in rows:
        for dc in range(-reach, reach + 1):
            ok = (row + dr >= 0) & (row + dr < n // cols) & (col + dc >= 0) & (col + dc < cols)
            i = np.flatnonzero(ok)
            out[f"{dr},{dc}"] = float(np.mean(attention[i, i + dr * cols + dc]) - 1 / n)
    return out


def reconstruction_baselines(config: ModelConfig, data: Dataset, settings: TrainSettings) -> dict:
    """Accuracy on the masked test positions of ``_label_start`` of two guesses that use no attention.

    ``position_mode``: the most frequent training token at that position; ``neighbour_vote``: the most
    frequent token among the unmasked neighbours (``positional.neighbours``, radius 1), the position
    mode where none is unmasked or votes tie.
    """
    x = np.asarray(data.test_tokens[: settings.eval_size])
    masks = np.asarray(sample_masks(jax.random.key(0), x.shape[0], config.n, config.mask_rate))
    train = np.asarray(data.train_tokens)
    mode = np.array([np.bincount(train[:, i], minlength=config.vocab).argmax() for i in range(config.n)])
    near = neighbours(config.n, width=settings.width)
    votes = []
    for seq, m in zip(x, masks):
        for i in np.flatnonzero(m):
            counts = np.bincount(seq[near[i] & ~m], minlength=config.vocab)
            top = np.flatnonzero(counts == counts.max())
            votes.append(top[0] if counts.max() > 0 and len(top) == 1 else mode[i])
    hit = x[masks]
    return {
        "position_mode": float(np.mean(np.broadcast_to(mode, x.shape)[masks] == hit)),
        "neighbour_vote": float(np.mean(np.asarray(votes) == hit)),
    }


def _errorbars(ax, metrics: dict, key: str, label: str, offset=0.0, color="tab:blue"):
    """Mean with its 95% interval per arm, and the per-seed values as dots."""
    arms = tuple(a for a in ablation.ARMS if a in metrics)
    for i, arm in enumerate(arms):
        stat = metrics[arm][key]
        low, high = stat["ci95"]
        ax.errorbar(
            i + offset,
            stat["mean"],
            yerr=[[stat["mean"] - low], [high - stat["mean"]]],
            fmt="o",
            color=color,
            capsize=3,
            label=label if i == 0 else None,
        )
        ax.plot(np.full(len(stat["seeds"]), i + offset + 0.12), stat["seeds"], ".", color=color, alpha=0.4, ms=4)
    ax.set_xticks(range(len(arms)), [SHORT_NAMES[a] for a in arms], rotation=30, ha="right")
    ax.grid(alpha=0.3, axis="y")


def _curves(ax, name: str, arms, root):
    """Test (solid) and train (dashed) accuracy along training, mean over seeds."""
    for arm in arms:
        c = load(name, arm, root)
        (line,) = ax.plot(c["steps"], c["test_accuracy"].mean(axis=0), label=SHORT_NAMES[arm])
        ax.plot(c["steps"], c["train_accuracy"].mean(axis=0), "--", color=line.get_color(), linewidth=1)
    ax.set_xlabel("optimiser step (every arm: same total)")
    ax.set_ylabel("accuracy (solid: test, dashed: train)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


MAPS = (
    ("spt", "attention_start", "SPT after pretraining"),
    ("spt", "attention", "SPT, end"),
    ("supervised", "attention", "supervised, end"),
    ("prior_bias", "attention", "score-bias prior, end"),
)


def plot(name: str, title: str, root=None):
    """Plot final accuracy and proximity per arm (95% intervals), accuracy curves, and attention maps."""
    record = read_json(data_dir(name, root) / "settings.json")
    metrics = final_metrics(name, root)["arms"]
    fig = plt.figure(figsize=(13, 12.5))
    grid = fig.add_gridspec(3, 4, height_ratios=[1, 1, 0.8])
    top = [fig.add_subplot(grid[r, 2 * c : 2 * c + 2]) for r in range(2) for c in range(2)]
    _errorbars(top[0], metrics, "test_accuracy", "test")
    _errorbars(top[0], metrics, "train_accuracy", "train", offset=0.3, color="tab:grey")
    top[0].axhline(metrics["supervised"]["test_accuracy"]["mean"], color="tab:blue", linestyle=":", linewidth=1)
    top[0].set_ylabel("final accuracy (mean, 95% t interval, seeds)")
    top[0].legend(loc="lower right")
    _errorbars(top[1], metrics, "proximity", "1-D (lag 1)")
    if "proximity_2d" in metrics["supervised"]:
        _errorbars(top[1], metrics, "proximity_2d", "2-D (lag 1 in a row, lag width)", offset=0.3, color="tab:red")
    top[1].axhline(0, color="black", linewidth=0.6)
    top[1].set_ylabel(f"final proximity index (r = {record['training']['radius']})")
    top[1].legend(loc="upper left")
    _curves(top[2], name, ("supervised", "spt", "transplant", "complement"), root)
    second = ("supervised", "frozen_qk", "prior_init", "prior_bias", "depth")
    _curves(top[3], name, tuple(a for a in second if a in metrics), root)
    for ax in top[2:]:
        ax.axvline(record["training"]["spt_steps"], color="grey", linestyle=":", linewidth=1)
        ax.set_title("dotted: the arms built from SPT's pretraining switch to labels")
    for c, (arm, key, label) in enumerate(MAPS):
        ax = fig.add_subplot(grid[2, c])
        im = ax.imshow(load(name, arm, root)[key][0], cmap="viridis", vmin=0)
        ax.set_title(f"{label} (seed 0)")
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{title}: {record['seeds']} seeds, {record['training']['total_steps']} optimiser steps per arm")
    fig.tight_layout()
    return save_figure(fig, name, root)


def paired(metrics: dict, arm: str, other: str, key: str = "test_accuracy") -> dict:
    """Per-seed difference ``arm - other`` of a final statistic: t interval and direction."""
    diff = np.subtract(metrics["arms"][arm][key]["seeds"], metrics["arms"][other][key]["seeds"])
    stat = interval(diff)
    return {**stat, "direction": direction(stat)}


def share(metrics: dict, arm: str) -> float | None:
    """Share of SPT's mean test-accuracy gain over supervised that ``arm`` recovers (``None``: SPT gains nothing)."""
    gains = metrics["paired_vs_supervised"]
    spt = gains["spt"]["test_accuracy"]["mean"]
    return gains[arm]["test_accuracy"]["mean"] / spt if spt > 0 else None


RULES = (
    "Claim 1 holds when all four tests pass: SPT's test-accuracy gain over supervised is resolved (its paired 95% "
    "interval lies above 0); the QK transplant's gain is resolved and at least half of SPT's; the transplant beats "
    "the complement (paired, resolved); SPT's final training accuracy beats supervised's (resolved: the shortfall "
    "is one of optimisation, not of generalisation alone). Claim 2 holds when SPT's final proximity index (2-D "
    "for images) exceeds supervised's (resolved) and a proximity prior without SPT has a resolved test-accuracy "
    "gain of at least half of SPT's. A claim whose first test fails the other way (resolved below 0) is "
    "'reversed'; one whose tests all fail is 'not supported'; otherwise 'partly'. Depth alone (the supervised "
    "arm with two attention layers): where SPT's gain is not resolved there is 'no resolved gap to close'; "
    "otherwise depth 'does not close the gap' when its test-accuracy gain over supervised is not resolved above 0 "
    "(what claim 1's 'not depth' predicts), 'narrows the gap' when that gain is resolved but its paired difference "
    "with SPT is resolved below 0, and 'closes the gap' when the gain is resolved and it is not below SPT."
)


def claims(metrics: dict) -> dict:
    """Read the paper's two empirical claims from the final metrics: tests, verdicts and the evidence (``RULES``)."""
    gain = metrics["paired_vs_supervised"]
    tests_1 = {
        "spt_gain_resolved": gain["spt"]["test_accuracy"]["direction"] == "higher",
        "transplant_gain_resolved_and_half": gain["transplant"]["test_accuracy"]["direction"] == "higher"
        and (share(metrics, "transplant") or 0) >= 0.5,
        "transplant_beats_complement": paired(metrics, "transplant", "complement")["direction"] == "higher",
        "spt_train_accuracy_higher": gain["spt"]["train_accuracy"]["direction"] == "higher",
    }
    priors = [a for a in ("prior_init", "prior_bias") if gain[a]["test_accuracy"]["direction"] == "higher"]
    index = proximity_key(metrics)
    tests_2 = {
        "spt_proximity_higher": gain["spt"][index]["direction"] == "higher",
        "a_prior_recovers_half": any((share(metrics, a) or 0) >= 0.5 for a in priors),
    }
    first_reversed = {
        1: gain["spt"]["test_accuracy"]["direction"] == "lower",
        2: gain["spt"][index]["direction"] == "lower",
    }
    return {
        "bottleneck": {"tests": list(tests_1.items()), "verdict": _verdict(tests_1, first_reversed[1])},
        "proximity": {"tests": list(tests_2.items()), "verdict": _verdict(tests_2, first_reversed[2])},
        "transplant_minus_complement": paired(metrics, "transplant", "complement"),
        "frozen_minus_spt": paired(metrics, "frozen_qk", "spt"),
        "shares_of_spt_gain": {a: share(metrics, a) for a in gain},
        **({"depth": depth_claim(metrics)} if "depth" in gain else {}),
    }


def depth_claim(metrics: dict) -> dict:
    """Whether two attention layers alone close SPT's gap (``RULES``), with depth minus SPT for reference."""
    gain = metrics["paired_vs_supervised"]
    if gain["spt"]["test_accuracy"]["direction"] != "higher":
        verdict = "no resolved gap to close"
    elif gain["depth"]["test_accuracy"]["direction"] != "higher":
        verdict = "does not close the gap"
    else:
        below_spt = paired(metrics, "depth", "spt")["direction"] == "lower"
        verdict = "narrows the gap" if below_spt else "closes the gap"
    return {"verdict": verdict, "depth_minus_spt": paired(metrics, "depth", "spt")}


def proximity_key(metrics: dict) -> str:
    """Return the proximity index a claim reads: the 2-D one for images, else the 1-D one."""
    return "proximity_2d" if "proximity_2d" in metrics["arms"]["supervised"] else "proximity"


def _verdict(tests: dict, reversed_: bool) -> str:
    if reversed_:
        return "reversed"
    if all(tests.values()):
        return "holds"
    return "partly" if any(tests.values()) else "not supported"
