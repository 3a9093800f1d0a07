"""P9 training-dynamics experiment shared by the synthetic and digits figure scripts.

For each query-key initialisation (``zero``, ``random``) and arm (``supervised``, ``spt``) it
trains the same model for the same optimiser-step budget over several seeds
(``blindspot.training.train``) and stores one ``.npz`` per (init, arm): resumable, a finished
cell is not recomputed while the stored settings (model, training, seeds, key, data digest) match.
The figure shows test accuracy and proximity index over training (mean and one standard deviation
over seeds) and the final mean attention maps of seed 0.
"""

import dataclasses
import hashlib

import jax
import matplotlib.pyplot as plt
import numpy as np

from blindspot.config import ModelConfig
from blindspot.training import ARMS, Dataset, History, TrainSettings, budget, train
from experiments.common import (
    band,
    data_dir,
    read_json,
    read_npz,
    save_figure,
    stored_settings_match,
    write_json,
    write_npz,
)

INITS = ("zero", "random")
ARM_NAMES = {"supervised": "supervised from scratch", "spt": "SPT then fine-tune"}


def cell_path(name: str, init: str, arm: str, root=None):
    """Return the data file of one (init, arm) cell."""
    return data_dir(name, root) / f"{init}_{arm}.npz"


def settings_record(config: ModelConfig, data: Dataset, settings: TrainSettings, *, seeds: int, key) -> dict:
    """Everything the stored cells depend on: model, training, seeds, PRNG key and a digest of the data."""
    return {
        **training_record(config, data, settings, seeds=seeds, key=key),
        "inits": list(INITS),
        "budget": {arm: budget(settings, arm) for arm in ARMS},
    }


def data_digest(data: Dataset) -> str:
    """SHA-256 of the bytes of every array of a data set (train and test, tokens and labels)."""
    digest = hashlib.sha256()
    for array in data:
        digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    return digest.hexdigest()


def training_record(config: ModelConfig, data: Dataset, settings: TrainSettings, *, seeds: int, key) -> dict:
    """Return the part of a training experiment's settings record that every arm design shares."""
    return {
        "config": config.to_dict(),
        "training": settings._asdict(),
        "seeds": seeds,
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "data_sha256": data_digest(data),
        "train_size": int(data.train_tokens.shape[0]),
        "test_size": int(data.test_tokens.shape[0]),
        "eval_size": int(min(settings.eval_size, data.test_tokens.shape[0])),
        "dtype": "float64",
    }


def compute(name: str, config: ModelConfig, data: Dataset, settings: TrainSettings, *, seeds: int, key, root=None):
    """Train every (init, arm) cell that has no data file for these settings yet.

    The cells are reused only when ``settings.json`` beside them holds exactly ``settings_record``;
    otherwise they are deleted before the new record is written, so an interrupted run resumes with
    the cells of its own settings only.
    """
    record = settings_record(config, data, settings, seeds=seeds, key=key)
    path = data_dir(name, root) / "settings.json"
    cells = {(init, arm): cell_path(name, init, arm, root) for init in INITS for arm in ARMS}
    if not stored_settings_match(path, record):
        for cell in cells.values():
            cell.unlink(missing_ok=True)
        write_json(path, record)
    keys = jax.random.split(key, seeds)
    for (init, arm), cell in cells.items():
        if cell.exists():
            print(f"{name}: {cell.name} reused (its settings match; --fresh recomputes it)")
            continue
        cfg = dataclasses.replace(config, qk_init=init)
        h = train(cfg, data, keys, arm=arm, settings=settings, label=f"{name} {init:6s}")
        write_npz(cell, **stored(h))


def stored(h: History) -> dict:
    """Return the arrays of a history that a data file keeps (not the parameters, not the fields that are ``None``)."""
    return {k: v for k, v in h._asdict().items() if k != "params" and v is not None}


def load(name: str, init: str, arm: str, root=None) -> History:
    """Read one cell back (fields the file lacks, such as those recorded later, are ``None``)."""
    return history_from(read_npz(cell_path(name, init, arm, root)))


def history_from(f: dict) -> History:
    """Return a ``History`` from the arrays of one data file."""
    fields = {k: f[k] for k in History._fields if k in f}
    return History(**{**fields, "seconds": float(f["seconds"])})


def final_metrics(name: str, root=None) -> dict:
    """Per init and arm: final test accuracy and proximity index, mean, std and per seed."""
    out = {}
    for init in INITS:
        out[init] = {}
        for arm in ARMS:
            h = load(name, init, arm, root)
            out[init][arm] = {
                key: {
                    "mean": float(np.mean(v[:, -1])),
                    "std": float(np.std(v[:, -1])),
                    "seeds": [float(x) for x in v[:, -1]],
                }
                for key, v in (("test_accuracy", h.test_accuracy), ("proximity_index", h.proximity))
            }
            out[init][arm]["train_seconds"] = h.seconds
    return out


def plot(name: str, title: str, root=None):
    """Accuracy, proximity and final attention maps; rows are the query-key initialisations."""
    settings = read_json(data_dir(name, root) / "settings.json")
    spt_steps = settings["training"]["spt_steps"]
    radius = settings["training"]["radius"]
    fig, axes = plt.subplots(2, 4, figsize=(14, 6.4), gridspec_kw={"width_ratios": [1.25, 1.25, 1, 1]})
    colors = {"supervised": "tab:blue", "spt": "tab:orange"}
    for row, init in enumerate(INITS):
        ax_acc, ax_prox = axes[row, 0], axes[row, 1]
        for col, arm in enumerate(ARMS):
            h = load(name, init, arm, root)
            band(ax_acc, h.steps, h.test_accuracy, ARM_NAMES[arm], color=colors[arm])
            band(ax_prox, h.steps, h.proximity, ARM_NAMES[arm], color=colors[arm])
            ax = axes[row, 2 + col]
            im = ax.imshow(h.attention[0], cmap="viridis", vmin=0)
            ax.set_title(f"{ARM_NAMES[arm]}\n(init {init}, seed 0, end)")
            ax.set_xlabel("key position j")
            ax.set_ylabel("query position i")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean attention $A_{ij}$")
        for ax in (ax_acc, ax_prox):
            ax.axvline(spt_steps, color="grey", linestyle=":", linewidth=1, label="SPT arm: switch to labels")
            ax.set_xlabel("optimiser step (both arms: same total)")
            ax.grid(alpha=0.3)
        ax_acc.set_ylabel("test accuracy (fraction)")
        ax_prox.set_ylabel(f"proximity index (r = {radius})")
        ax_acc.set_title(f"test accuracy, query-key init: {init}")
        ax_prox.set_title(f"proximity index, query-key init: {init}")
        ax_acc.legend(loc="lower right")
        ax_prox.axhline(0, color="black", linewidth=0.6)
    fig.suptitle(f"{title}: mean $\\pm$ std over {settings['seeds']} seeds")
    fig.tight_layout()
    return save_figure(fig, name, root)
