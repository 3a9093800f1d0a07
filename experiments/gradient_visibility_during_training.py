r"""Label-loss visibility of proximity along its own supervised training trajectory.

Does label supervision stay blind to proximity as it trains?

Supervised training on the synthetic paired task (the model and settings of
``training_dynamics_synthetic``, query-key init W = 0). At every evaluation the per-sample score
gradients of the label loss of a batch of test sequences, $\partial L_b / \partial S$ at the current
scores (``jacobian.score_gradients``, autodiff), span a subspace $G$; the figure shows the visible
fraction $\lVert Q_G^\top Q_F \rVert_F^2 / \dim F$ of the proximity families (band 1, band 2,
Toeplitz, circulant, the proximity kernel), each measured on its non-gauge part
$(I - \Pi_g) F$ (``directions.family``; ceiling 1, reached when G holds every non-gauge direction),
with the rank of $G$ relative to the non-gauge dimension $n(n-1)$ (the level a random subspace of
that rank would reach), the alignment of the *mean* gradient with each family
(``subspaces.expected_alignment_from_projections``: the norm of its component in the family's
non-gauge part over its norm, i.e. how much the average descent step moves along the family), and
test accuracy and proximity index. Run:
``python experiments/gradient_visibility_during_training.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot import directions, jacobian, subspaces  # noqa: E402
from blindspot.data import paired_task  # noqa: E402
from blindspot.training import Dataset, train  # noqa: E402
from experiments import training_dynamics_synthetic as synthetic  # noqa: E402
from experiments.common import (  # noqa: E402
    band,
    compute_and_plot,
    data_dir,
    read_json,
    read_npz,
    save_figure,
    write_json,
    write_npz,
)

NAME = Path(__file__).stem
FAMILIES = ("band_1", "band_2", "toeplitz", "circulant", "proximity")


def settings(small: bool = False) -> dict:
    """Training reuses the synthetic figure's settings; ``batch`` sequences per gradient span."""
    return {"batch": 32 if small else 256}


def visibility(params, config, tokens, labels) -> tuple[list[float], list[float], int]:
    """Visible fraction and expected-gradient alignment of every family, and the span rank, at one state."""
    grads = jacobian.score_gradients(params, config, "classification", tokens, labels)
    span = subspaces.span(grads.reshape(grads.shape[0], -1), keep_basis=False)
    stats = directions.statistics(grads)
    mean_norm = float(np.linalg.norm(np.asarray(grads).mean(axis=0)))
    fractions, alignments = [], []
    for name in FAMILIES:
        coords = directions.family(name, config.n).coordinates(stats)
        fractions.append(subspaces.visible_fraction(span, coords).fraction)
        alignments.append(abs(subspaces.expected_alignment_from_projections(coords, mean_norm)))
    return fractions, alignments, span.rank


def compute(small: bool = False, root=None) -> None:
    """Train the supervised arm keeping the parameters, then measure visibility at every evaluation."""
    config, n_train, n_test, train_settings, seeds = synthetic.settings(small)
    s = settings(small)
    x, y = paired_task(jax.random.PRNGKey(0), n_train, config.n, config.vocab)
    xt, yt = paired_task(jax.random.PRNGKey(1), n_test, config.n, config.vocab)
    h = train(
        config,
        Dataset(x, y, xt, yt),
        jax.random.split(jax.random.PRNGKey(2), seeds),
        arm="supervised",
        settings=train_settings,
        label=NAME,
        keep_params=True,
    )
    frac, align, rank = _visibility_along_training(h, config, xt[: s["batch"]], yt[: s["batch"]], seeds)
    write_npz(
        data_dir(NAME, root) / "visibility.npz",
        steps=h.steps,
        fraction=frac,
        alignment=align,
        rank=rank,
        test_accuracy=h.test_accuracy,
        proximity=h.proximity,
    )
    write_json(
        data_dir(NAME, root) / "settings.json",
        {
            **s,
            "families": FAMILIES,
            "config": config.to_dict(),
            "training": train_settings._asdict(),
            "seeds": seeds,
            "non_gauge_dim": config.n * (config.n - 1),
            "family_part": "non_gauge",
        },
    )


def _visibility_along_training(h, config, tokens, labels, seeds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``visibility`` at every kept state of every seed: fractions, alignments (seeds, steps, families), ranks."""
    frac = np.zeros((seeds, len(h.steps), len(FAMILIES)))
    align = np.zeros_like(frac)
    rank = np.zeros((seeds, len(h.steps)), dtype=np.int64)
    for t, stacked in enumerate(h.params):
        for seed in range(seeds):
            params = jax.tree_util.tree_map(lambda leaf, i=seed: leaf[i], stacked)
            frac[seed, t], align[seed, t], rank[seed, t] = visibility(params, config, tokens, labels)
        print(
            f"{NAME}: step {int(h.steps[t])}: visible band_1 {frac[:, t, 0].mean():.2e}, "
            f"span rank {rank[:, t].mean():.0f}/{config.n * (config.n - 1)}",
            flush=True,
        )
    return frac, align, rank


def plot(root=None):
    """Visible fractions (log) and span rank over steps; accuracy and proximity alongside."""
    f = read_npz(data_dir(NAME, root) / "visibility.npz")
    s = read_json(data_dir(NAME, root) / "settings.json")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    _plot_visibility(axes[0], f, s)
    _plot_alignment(axes[1], f)
    _plot_training(axes[2], f)
    for ax in axes:
        ax.set_xlabel("optimiser step (supervised, W = 0 init)")
        ax.grid(alpha=0.3)
    c = s["config"]
    fig.suptitle(
        f"Label-loss visibility along supervised training, synthetic paired task (n = {c['n']}, d = {c['d']}, "
        f"MLP {c['mlp']}, residual {c['residual']}; mean $\\pm$ std over {s['seeds']} seeds)"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def _plot_visibility(ax, f, s) -> None:
    """Visible fraction of each family (log) and the span rank over n(n-1), the random-subspace level."""
    steps = f["steps"]
    for b, name in enumerate(FAMILIES):
        band(ax, steps, np.maximum(f["fraction"][:, :, b], 1e-18), name)
    ax.set_yscale("log")
    part = s.get("family_part", "whole").replace("_", "-")  # data written before the non-gauge measure: whole
    ax.set_ylabel(f"visible fraction ({part} part) for the label loss")
    ax.set_title(f"first-order visibility of proximity families (batch {s['batch']})")
    band(
        ax,
        steps,
        f["rank"] / s["non_gauge_dim"],
        "span rank / n(n-1) (random-subspace level)",
        color="black",
        linestyle="--",
    )
    ax.legend(fontsize=7)


def _plot_alignment(ax, f) -> None:
    """Alignment |cos| of the mean gradient with each family (log)."""
    for b, name in enumerate(FAMILIES):
        band(ax, f["steps"], np.maximum(f["alignment"][:, :, b], 1e-18), name)
    ax.set_yscale("log")
    ax.set_ylabel("|cos| of the mean gradient with the family")
    ax.set_title("expected-gradient alignment with each family")
    ax.legend(fontsize=7)


def _plot_training(ax, f) -> None:
    """Test accuracy and, on a twin axis, the proximity index of the supervised arm."""
    band(ax, f["steps"], f["test_accuracy"], "test accuracy", color="tab:blue")
    ax2 = ax.twinx()
    band(ax2, f["steps"], f["proximity"], "proximity index (r = 1)", color="tab:orange")
    ax.set_ylabel("test accuracy (fraction)", color="tab:blue")
    ax2.set_ylabel("proximity index (r = 1)", color="tab:orange")
    ax.set_title("supervised arm: accuracy and proximity index")


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
