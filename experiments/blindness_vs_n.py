r"""P4: visible fraction of the band, Toeplitz and circulant families as n grows, with closed forms.

At uniform attention ($W = 0$) the per-sample score gradients of a batch span a subspace $G$; the
visible fraction of a family F is $\lVert Q_G^\top Q_F \rVert_F^2 / \dim F$
(``subspaces.visible_fraction``, gradients in factored form from ``fast_paths``, so nothing of size
$n^2$ per sample is formed), measured on the non-gauge part $F' = (I - \Pi_g) F$ of each family
(``directions.family``; ceiling 1, since every gradient is orthogonal to the gauge, P1).
Classification: mean pooling, no residual, no MLP, batch $b = 2n$ (enough to span the whole
column-sum space $U$ of P4). Reconstruction: copy readout, batch $b = \min(2n^2, b_{max})$: its
per-sample gradients span the non-gauge space (dimension $n(n-1)$, P6) only when the batch is large
enough, so for large n the batch, not the loss, limits the measured fraction (the dotted line
$b / (n(n-1))$ shows that limit).

Closed forms for classification when $G = U$. P4 gives $\cos^2(D, U) =
\lVert c - \bar c \mathbf 1 \rVert^2 / (n \lVert D \rVert_F^2)$, $c = D^\top \mathbf 1$, for the whole
direction D; U is orthogonal to the gauge, so the non-gauge part reads
$\cos^2(D, U) / (1 - \lVert \Pi_g D \rVert_F^2 / \lVert D \rVert_F^2)$:

- band $B_k$ ($n \ge 2k$): column sums are 2 except $2k$ boundary columns with 1, so
  $\lVert c - \bar c \rVert^2 = 2k(n - 2k)/n$, $\lVert B_k \rVert^2 = 2(n - k)$ and whole
  $\cos^2 = k(n - 2k) / (n^2 (n - k))$; the row sums are the same, so $\lVert \Pi_g B_k \rVert^2 =
  (4n - 6k)/n$ and the non-gauge part reads $k(n - 2k) / (n (n^2 - nk - 2n + 3k))$;
- Toeplitz: whole (orthogonal diagonals $D_k$, $\cos^2(D_k, U) = |k| / n^2$) $(n - 1) / (n (2n - 1))$.
  Non-gauge part (dimension $2n - 2$): the zero-sum circulants are orthogonal to U and the pairs
  $A_a = (n - a) D_{n-a} - a D_{-a}$ of ``directions.Family`` have Gram matrix
  $M = \mathrm{diag}(a(n - a)) - \Gamma$ after projection and $\Gamma_{ab} = \min(a, b) - ab/n$ after
  projection onto U, so it reads $\mathrm{tr}(M^{-1} \Gamma) / (2n - 2)$: exact at each n ($O(n^3)$),
  no closed form in n (the trace tends to about 1.55);
- circulant: every column sum is equal, so 0 (P3).

Run: ``python experiments/blindness_vs_n.py [--small]``.
"""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot import directions, fast_paths, subspaces  # noqa: E402
from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import iid_tokens, sample_masks  # noqa: E402
from blindspot.model import init  # noqa: E402
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
FAMILIES = ("band_1", "band_2", "toeplitz", "circulant")
OBJECTIVES = ("classification", "reconstruction")


def settings(small: bool = False) -> dict:
    """Sequence lengths, widths and batch sizes."""
    if small:
        return {"ns": [8], "d": 8, "vocab": 4, "rec_batch": 64, "seeds": 1}
    return {"ns": [8, 16, 32, 64, 128, 256, 512, 1024], "d": 16, "vocab": 4, "rec_batch": 512, "seeds": 1}


def closed_form(name: str, n, part: str = "non_gauge") -> np.ndarray:
    """P4 visible fraction of a family's part for mean-pooled classification when the gradient span is U."""
    n = np.asarray(n, dtype=float)
    if name.startswith("band_"):
        k = int(name.split("_")[1])
        whole = k * (n - 2 * k) / (n**2 * (n - k))
        return whole if part == "whole" else whole / (1.0 - (4 * n - 6 * k) / (2 * n * (n - k)))
    if name == "toeplitz":
        return (n - 1) / (n * (2 * n - 1)) if part == "whole" else np.vectorize(_toeplitz_non_gauge)(n)
    return np.zeros_like(n)


def _toeplitz_non_gauge(n: float) -> float:
    r"""$\mathrm{tr}(M^{-1} \Gamma) / (2n - 2)$ at an integer n (see the module docstring), $O(n^3)$."""
    a = np.arange(1, int(n))
    gamma = np.minimum.outer(a, a) - np.outer(a, a) / n
    return float(np.trace(np.linalg.solve(np.diag(a * (n - a)) - gamma, gamma))) / (2 * n - 2)


def visible(config: ModelConfig, objective: str, key, batch: int) -> list[float]:
    """Visible fraction of every family for one batch at uniform attention."""
    k_init, k_data, k_target = jax.random.split(key, 3)
    params = init(k_init, config)
    tokens = iid_tokens(k_data, batch, config.n, config.vocab)
    n = config.n
    if objective == "classification":
        labels = jax.random.randint(k_target, (batch,), 0, config.classes, jnp.int32)
        w = fast_paths.classification_column_factors(params, config, tokens, labels)
        span = subspaces.span(math.sqrt(n) * w, size=n * n, keep_basis=False)
        stats = directions.factor_statistics(jnp.ones((batch, n, 1), w.dtype), w[..., None])
    else:
        masks = sample_masks(k_target, batch, n, config.mask_rate)
        factors = fast_paths.uniform_score_factors(params, config, objective, tokens, masks)
        span = subspaces.span_from_gram(subspaces.gram_from_factors(factors), n * n)
        stats = directions.factor_statistics(factors.rows, factors.columns)
    return [
        subspaces.visible_fraction(span, directions.family(name, n).coordinates(stats)).fraction for name in FAMILIES
    ]


def compute(small: bool = False, root=None) -> None:
    """Visible fractions for every n, objective, family and seed."""
    s = settings(small)
    frac = np.zeros((len(OBJECTIVES), len(s["ns"]), s["seeds"], len(FAMILIES)))
    for c, n in enumerate(s["ns"]):
        config = ModelConfig(n=n, d=s["d"], vocab=s["vocab"], reconstruction="copy")
        for a, objective in enumerate(OBJECTIVES):
            batch = 2 * n if objective == "classification" else min(2 * n * n, s["rec_batch"])
            for seed in range(s["seeds"]):
                frac[a, c, seed] = visible(config, objective, jax.random.PRNGKey(10 * seed + c), batch)
        print(f"{NAME}: n = {n} done", flush=True)
    write_npz(data_dir(NAME, root) / "visible.npz", fraction=frac, ns=np.asarray(s["ns"]))
    write_json(
        data_dir(NAME, root) / "settings.json",
        {**s, "families": FAMILIES, "family_part": "non_gauge", "classification_batch": "2n"},
    )


def plot(root=None):
    """Visible fraction against n (log-log), closed forms dashed."""
    f = read_npz(data_dir(NAME, root) / "visible.npz")
    s = read_json(data_dir(NAME, root) / "settings.json")
    ns = f["ns"]
    floor = 1e-18
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = dict(zip(FAMILIES, ("tab:blue", "tab:cyan", "tab:green", "tab:purple")))
    part = s.get("family_part", "whole")  # data written before families were measured on the non-gauge part
    fine = np.geomspace(ns[0], ns[-1], 200)
    for a, objective in enumerate(OBJECTIVES):
        ax = axes[a]
        for b, name in enumerate(FAMILIES):
            mean = np.mean(f["fraction"][a, :, :, b], axis=1)
            ax.plot(ns, np.maximum(mean, floor), "o", color=colors[name], label=f"{name}: measured")
            if objective == "classification" and name != "circulant":
                grid = ns if (name, part) == ("toeplitz", "non_gauge") else fine  # exact at integer n only
                ax.plot(grid, closed_form(name, grid, part), "--", color=colors[name], label=f"{name}: P4 closed form")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylim(floor / 10, 2)
        ax.set_xlabel("sequence length n")
        ax.grid(alpha=0.3)
        batch = "b = 2n" if objective == "classification" else f"b = min(2n^2, {s['rec_batch']})"
        if objective == "reconstruction":
            limit = np.minimum(1.0, np.minimum(2 * fine**2, s["rec_batch"]) / (fine * (fine - 1)))
            ax.plot(fine, limit, ":", color="black", label="batch limit b / (n(n-1))")
            ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"{objective} at uniform attention ({batch})")
    axes[0].set_ylabel(f"visible fraction, {part.replace('_', '-')} part (0 = blind, 1 = visible)")
    axes[0].legend(fontsize=7, loc="center left")
    note = "circulant: rounding level (< 1e-18), plotted at 1e-18"
    axes[0].text(ns[min(1, len(ns) - 1)], floor * 10, note, fontsize=7, color="tab:purple")
    fig.suptitle(
        f"P4: first-order visibility of proximity families (d = {s['d']}, V = {s['vocab']}, "
        f"mean over {s['seeds']} seeds)"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
