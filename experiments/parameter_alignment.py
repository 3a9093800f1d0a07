r"""P8: alignment of each objective's first gradient step in W with the positional identity.

At $W = 0$ (uniform attention) take the batch gradient $G = \partial L / \partial W$ of label
cross-entropy and of masked reconstruction, and report
$\cos(-G, \Pi_P)$ (``pushforward.first_step_cosine`` of the step $-G$): the cosine of the first
gradient-descent step with the "positional identity" direction $\Pi_P = P^+ P$ ($= I$ when $n \ge d$) (with sinusoidal
encodings, $p_i^\top p_j$ depends on $i - j$ only, so $W = I$ is a proximity-type score
pattern in the positional block). Encodings: sinusoidal and random, raw and centred; scores:
position-only $S = P W P^\top$ and content+position $S = H W H^\top / \sqrt d$; model without
residual or MLP, mean pooling (the setting of P4/P5); reconstruction uses the "copy" readout
of P6 (its score gradient follows the data's lag agreement). Data: ``paired_task`` sequences.
A gradient whose norm is below $\epsilon\, d \max$ (max over the seeds and objectives of one
setting, ``tolerances.rank_tolerance``) counts as exactly zero.
Where a gradient is exactly zero (P5: centred encodings, position-only scores, classification)
the cosine is undefined; the figure shows the gradient norm next to the cosine.
Run: ``python experiments/parameter_alignment.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import paired_task, sample_masks  # noqa: E402
from blindspot.model import init  # noqa: E402
from blindspot.objectives import classification_loss, reconstruction_loss  # noqa: E402
from blindspot.pushforward import first_step_cosine  # noqa: E402
from blindspot.tolerances import rank_tolerance  # noqa: E402
from experiments.common import (  # noqa: E402
    compute_and_plot,
    data_dir,
    read_json,
    read_npz,
    save_figure,
    write_json,
    write_npz,
)

NAME = Path(__file__).stem
ENCODINGS = (("sinusoidal", False), ("sinusoidal", True), ("random", False), ("random", True))
SCORES = ("position", "content_position")
OBJECTIVES = ("classification", "reconstruction")


def settings(small: bool = False) -> dict:
    """Sizes: sequence lengths, width, batch, seeds."""
    if small:
        return {"ns": [8], "d": 8, "vocab": 8, "batch": 32, "seeds": 2, "scores": ["position"], "encodings": [0, 1]}
    return {
        "ns": [8, 16, 32, 64, 128],
        "d": 32,
        "vocab": 8,
        "batch": 256,
        "seeds": 5,
        "scores": list(SCORES),
        "encodings": [0, 1, 2, 3],
    }


def first_step(config: ModelConfig, keys, batch: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Cosine with $I$ and Frobenius norm of $-\partial L/\partial W$ at $W = 0$, per seed and objective."""

    def one(key):
        k_init, k_data, k_mask = jax.random.split(key, 3)
        params = init(k_init, config)
        tokens, labels = paired_task(k_data, batch, config.n, config.vocab)
        masks = sample_masks(k_mask, batch, config.n, config.mask_rate)
        losses = (
            lambda w: classification_loss(params._replace(query_key=w), config, tokens, labels),
            lambda w: reconstruction_loss(params._replace(query_key=w), config, tokens, masks),
        )
        grads = [-jax.grad(loss)(params.query_key) for loss in losses]
        norm = jnp.stack([jnp.linalg.norm(g) for g in grads])
        cos = jnp.stack([first_step_cosine(g, params.positional) for g in grads])
        return cos, norm

    cos, norm = jax.jit(jax.vmap(one))(keys)
    cos, norm = np.asarray(cos), np.asarray(norm)
    tiny = norm <= rank_tolerance(np.max(norm), (config.d, config.d), norm.dtype)
    return np.where(tiny, np.nan, cos), norm


def compute(small: bool = False, root=None) -> None:
    """Cosines and norms for every encoding, score type, n and seed."""
    s = settings(small)
    cos = np.full((len(SCORES), len(ENCODINGS), len(s["ns"]), s["seeds"], len(OBJECTIVES)), np.nan)
    norm = np.zeros_like(cos)
    for a, score in enumerate(SCORES):
        for b, (kind, centred) in enumerate(ENCODINGS):
            if score not in s["scores"] or b not in s["encodings"]:
                continue
            for c, n in enumerate(s["ns"]):
                config = ModelConfig(
                    n=n,
                    d=s["d"],
                    vocab=s["vocab"],
                    positional=kind,
                    centred=centred,
                    scores=score,
                    reconstruction="copy",
                )
                keys = jax.random.split(jax.random.PRNGKey(100 + c), s["seeds"])
                cos[a, b, c], norm[a, b, c] = first_step(config, keys, s["batch"])
            print(f"{NAME}: {score} {kind} centred={centred} done")
    write_npz(data_dir(NAME, root) / "alignment.npz", cos=cos, norm=norm, ns=np.asarray(s["ns"]))
    write_json(data_dir(NAME, root) / "settings.json", {**s, "encoding_names": ENCODINGS})


def nanmean(values):
    """Mean over seeds (last axis) ignoring undefined cosines; NaN where all are undefined."""
    count = np.sum(~np.isnan(values), axis=-1)
    return np.where(count > 0, np.nansum(values, axis=-1) / np.maximum(count, 1), np.nan)


def plot(root=None):
    """Cosine (top) and gradient norm (bottom) against n, per score type."""
    f = read_npz(data_dir(NAME, root) / "alignment.npz")
    s = read_json(data_dir(NAME, root) / "settings.json")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    colors = ["tab:blue", "tab:cyan", "tab:red", "tab:pink"]
    styles = {"classification": "-", "reconstruction": "--"}
    for a, score in enumerate(SCORES):
        for b, (kind, centred) in enumerate(ENCODINGS):
            if score not in s["scores"] or b not in s["encodings"]:
                continue
            for o, objective in enumerate(OBJECTIVES):
                label = f"{objective}, {kind}{' centred' if centred else ''}"
                kw = {"color": colors[b], "linestyle": styles[objective], "marker": "o", "markersize": 3}
                axes[0, a].plot(f["ns"], nanmean(f["cos"][a, b, :, :, o]), label=label, **kw)
                axes[1, a].plot(f["ns"], np.mean(f["norm"][a, b, :, :, o], axis=1), label=label, **kw)
        title = "position-only $S = PWP^T$" if score == "position" else "content+position $S = HWH^T/\\sqrt{d}$"
        axes[0, a].set_title(f"{title}: cosine of first step with $\\Pi_P$")
        axes[1, a].set_title(f"{title}: gradient norm")
        axes[0, a].set_ylabel("cos(-dL/dW, $\\Pi_P$) ($\\Pi_P = P^+P$, = I if n >= d)")
        axes[1, a].set_ylabel("||dL/dW||_F at W = 0")
        axes[1, a].set_yscale("symlog", linthresh=1e-12)
        axes[0, a].axhline(0, color="black", linewidth=0.6)
        for ax in axes[:, a]:
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
        axes[1, a].set_xlabel("sequence length n")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(
        f"P8: first gradient step at W = 0 (d = {s['d']}, mean over {s['seeds']} seeds; "
        "solid: classification, dashed: reconstruction)"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
