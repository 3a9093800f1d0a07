"""The ablation arms on scikit-learn's 8x8 digits, with a setting chosen on a validation split.

Images are read row-major as 64-pixel sequences with 16 grey levels (the pixels' 0..16 range kept),
and masked reconstruction masks half of the pixels (as Amos et al. 2024 do for images). Before the
arms run, a small sweep picks the setting on a validation split carved from the training set (the
test set is never looked at): the scale of the token embeddings against the positional encodings,
full or factored query-key weights, and width and budget under a cost cap (budget x width at most
that of d = 32 with 2000 steps, so that the chosen arms regenerate within 30 minutes on two cores).
Every arm of ``blindspot.ablation`` runs (depth: ``ablation.depth_config`` of the chosen setting).
Run: ``python experiments/ablations_digits.py [--small]``.
"""

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from blindspot import ablation  # noqa: E402
from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import digits  # noqa: E402
from blindspot.training import Dataset, TrainSettings, merge  # noqa: E402
from experiments import _ablations  # noqa: E402
from experiments import training_dynamics_digits as dynamics  # noqa: E402
from experiments._dynamics import data_digest  # noqa: E402
from experiments.common import compute_and_plot, data_dir, read_json, stored_settings_match, write_json  # noqa: E402

NAME = Path(__file__).stem
WIDTH = 8
LEVELS = 16
MASK_RATE = 0.5
SEEDS = 5
SWEEP_SEEDS = 2
VALIDATION_FRACTION = 0.2
COST_CAP = 32 * 2000
"""Largest width x budget in the sweep: the arms of the chosen setting must fit 30 minutes on two cores."""
RULE = (
    "highest validation accuracy averaged over the supervised and SPT arms and the sweep's seeds "
    "(both arms trained on the training set minus a stratified 20% validation split, evaluated on that split); "
    "ties go to the cheaper setting (width x budget), then to the earlier one in the sweep's order"
)


def sweep_grid(small: bool = False) -> list[dict]:
    """Return the settings of the sweep: embedding scale x query-key form x (width, budget) within ``COST_CAP``."""
    if small:  # an initialisation-only change: the smoke run compiles nothing new
        return [{"embedding_scale": s, "qk_rank": None, "d": 32, "total_steps": 20} for s in (1.0, 0.25)]
    sizes = [(d, b) for d, b in itertools.product((32, 64), (1000, 2000)) if d * b <= COST_CAP]
    return [
        {"embedding_scale": s, "qk_rank": r, "d": d, "total_steps": b}
        for s, r, (d, b) in itertools.product((1.0, 0.25), (None, 8), sizes)
    ]


def sweep_seeds(small: bool = False) -> int:
    """Seeds per sweep setting (one in the smoke run)."""
    return 1 if small else SWEEP_SEEDS


def model(setting: dict, small: bool = False) -> tuple[ModelConfig, TrainSettings]:
    """Model and training settings of one sweep setting (``small``: the P9 digits smoke model, shared compilations)."""
    if small:
        config, _, settings, _ = dynamics.settings(small=True)
        config = dataclasses.replace(config, embedding_scale=setting["embedding_scale"])
        steps = setting["total_steps"]
        return config, settings._replace(total_steps=steps, spt_steps=steps // 2, width=WIDTH)
    d = setting["d"]
    config = ModelConfig(
        n=64,
        d=d,
        vocab=LEVELS,
        classes=10,
        residual=True,
        mlp=2 * d,
        mask_rate=MASK_RATE,
        embedding_scale=setting["embedding_scale"],
        qk_rank=setting["qk_rank"],
    )
    steps = setting["total_steps"]
    return config, TrainSettings(total_steps=steps, spt_steps=steps // 2, eval_every=100, eval_size=450, width=WIDTH)


def data(small: bool = False) -> tuple[Dataset, Dataset]:
    """Return the sweep's split (training set minus validation; validation in the test slot) and the arms' split."""
    levels = dynamics.LEVELS if small else LEVELS
    full = Dataset(*digits(levels=levels))
    x_fit, x_val, y_fit, y_val = train_test_split(
        np.asarray(full.train_tokens),
        np.asarray(full.train_labels),
        test_size=VALIDATION_FRACTION,
        random_state=1,
        stratify=np.asarray(full.train_labels),
    )
    sweep = Dataset(*(jnp.asarray(a) for a in (x_fit, y_fit, x_val, y_val)))
    if small:  # the training-set size of the P9 digits smoke run
        n = dynamics.settings(small=True)[1]
        sweep = sweep._replace(train_tokens=sweep.train_tokens[:n], train_labels=sweep.train_labels[:n])
        full = full._replace(train_tokens=full.train_tokens[:n], train_labels=full.train_labels[:n])
    return sweep, full


def sweep(small: bool = False, root=None) -> list[dict]:
    """Train supervised and SPT for every sweep setting on the validation split (cached per setting)."""
    split, _ = data(small)
    folder = data_dir(NAME, root) / "sweep"
    folder.mkdir(exist_ok=True)
    record = {
        "grid": sweep_grid(small),
        "seeds": sweep_seeds(small),
        "key": 7,
        "data_sha256": data_digest(split),
        "models": [_describe(*model(s, small)) for s in sweep_grid(small)],
    }
    if not stored_settings_match(folder / "settings.json", record):
        for old in folder.glob("setting*.json"):
            old.unlink()
        write_json(folder / "settings.json", record)
    results = []
    for i, setting in enumerate(sweep_grid(small)):
        path = folder / f"setting{i}.json"
        if not path.exists():
            write_json(path, _sweep_cell(setting, split, small))
        results.append(read_json(path))
    return results


def _describe(config: ModelConfig, settings: TrainSettings) -> dict:
    return {"config": config.to_dict(), "training": settings._asdict()}


def _sweep_cell(setting: dict, split: Dataset, small: bool) -> dict:
    """Train both arms of one setting: validation accuracy and SPT's proximity indices, per sweep seed."""
    config, settings = model(setting, small)
    if not small:  # evaluate at the switch and at the end only, on the whole validation split
        settings = settings._replace(eval_every=settings.spt_steps, eval_size=split.test_tokens.shape[0])
    keys = jax.random.split(jax.random.PRNGKey(7), sweep_seeds(small))
    runs = [  # one seed at a time, as every other training here: one compilation for any number of seeds
        ablation.train_arms(config, split, key[None], arms=("supervised", "spt"), settings=settings, log=None)
        for key in keys
    ]
    h = {arm: merge([r[arm] for r in runs]) for arm in ("supervised", "spt")}
    switch = int(np.flatnonzero(h["spt"].steps == settings.spt_steps)[-1])
    return {
        "setting": setting,
        "validation_accuracy": {arm: h[arm].test_accuracy[:, -1].tolist() for arm in h},
        "spt_proximity_2d_after_pretraining": h["spt"].proximity_2d[:, switch].tolist(),
        "spt_proximity_2d_end": h["spt"].proximity_2d[:, -1].tolist(),
        "supervised_proximity_2d_end": h["supervised"].proximity_2d[:, -1].tolist(),
        "seconds": h["supervised"].seconds + h["spt"].seconds,
    }


def select(results: list[dict]) -> int:
    """Index of the chosen setting under ``RULE``."""

    def score(i):
        r = results[i]
        accuracy = np.mean([np.mean(v) for v in r["validation_accuracy"].values()])
        return (-accuracy, r["setting"]["d"] * r["setting"]["total_steps"], i)

    return min(range(len(results)), key=score)


def compute(small: bool = False, root=None) -> None:
    """Run the sweep, pick the setting, train every arm with it and store the cells."""
    results = sweep(small, root)
    chosen = select(results)
    config, settings = model(results[chosen]["setting"], small)
    _, full = data(small)
    seeds = dynamics.settings(small=True)[3] if small else SEEDS
    extra = {"rule": RULE, "validation_fraction": VALIDATION_FRACTION, "sweep": results, "chosen": chosen}
    _ablations.compute(
        NAME, config, full, settings, seeds=seeds, key=jax.random.PRNGKey(5), arms=ablation.ARMS, root=root, extra=extra
    )


def plot(root=None):
    """Write the figure (PNG and PDF)."""
    return _ablations.plot(NAME, f"Ablations, digits (64 pixels, {LEVELS} grey levels, 50% masked)", root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
