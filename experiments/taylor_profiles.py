r"""P3/P7: the loss along circulant and open-boundary proximity directions, with Taylor coefficients.

In score space at uniform attention ($S = 0$), the batch-mean loss $L(tD)$ along two unit
(Frobenius) proximity directions: the wrap-around kernel $D \propto \sum_k e^{-\min(k, n-k)/l} C_k$
(circulant family) and the open-boundary kernel $K_{ij} \propto e^{-|i-j|/l}$
(``directions.proximity_kernel``), for three objectives: label cross-entropy without MLP (P3: every
Taylor coefficient vanishes along the circulant direction), with a tanh MLP and no residual (P7:
first order vanishes, second does not), and masked reconstruction with the copy readout (P6: first
order non-zero). Taylor coefficients $c_1..c_4$ from ``taylor.taylor_coefficients`` (jet).
Run: ``python experiments/taylor_profiles.py [--small]``.
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
from blindspot.directions import circulant, proximity_kernel  # noqa: E402
from blindspot.model import init  # noqa: E402
from blindspot.objectives import shared_score_loss  # noqa: E402
from blindspot.taylor import taylor_coefficients  # noqa: E402
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
OBJECTIVES = ("classification, no MLP", "classification, tanh MLP", "reconstruction (copy)")
DIRECTIONS = ("circulant proximity", "open-boundary proximity")
ORDER = 4


def settings(small: bool = False) -> dict:
    """Sizes and the kernel length."""
    if small:
        return {"n": 8, "d": 8, "vocab": 4, "mlp": 8, "batch": 16, "length": 2.0, "points": 9}
    return {"n": 16, "d": 16, "vocab": 8, "mlp": 32, "batch": 256, "length": 4.0, "points": 41}


def circulant_proximity(n: int, length: float) -> jnp.ndarray:
    r"""Build the unit wrap-around kernel $\sum_k e^{-\min(k, n-k)/l} C_k$ in the circulant family."""
    k = np.arange(n)
    weights = jnp.asarray(np.exp(-np.minimum(k, n - k) / length))
    d = jnp.einsum("k,kij->ij", weights, circulant(n))
    return d / jnp.linalg.norm(d)


def batch_losses(s: dict, key):
    r"""Build the three score-space batch-mean losses $S \mapsto L(S)$."""
    k_init, k_data, k_mask = jax.random.split(key, 3)
    base = ModelConfig(n=s["n"], d=s["d"], vocab=s["vocab"])
    tokens, labels = paired_task(k_data, s["batch"], s["n"], s["vocab"])
    masks = sample_masks(k_mask, s["batch"], s["n"], base.mask_rate)
    plain, with_mlp = base, ModelConfig(n=s["n"], d=s["d"], vocab=s["vocab"], mlp=s["mlp"])
    copy = ModelConfig(n=s["n"], d=s["d"], vocab=s["vocab"], reconstruction="copy")
    p_plain, p_mlp, p_copy = init(k_init, plain), init(k_init, with_mlp), init(k_init, copy)

    return (
        shared_score_loss(p_plain, plain, "classification", tokens, labels),
        shared_score_loss(p_mlp, with_mlp, "classification", tokens, labels),
        shared_score_loss(p_copy, copy, "reconstruction", tokens, masks),
    )


def compute(small: bool = False, root=None) -> None:
    """Loss profiles and Taylor coefficients at $S = 0$."""
    s = settings(small)
    n = s["n"]
    dirs = [circulant_proximity(n, s["length"]), proximity_kernel(n, s["length"])[0]]
    t_max = 3.0 / max(float(jnp.max(jnp.abs(d))) for d in dirs)
    t = np.linspace(-t_max, t_max, s["points"])
    losses = batch_losses(s, jax.random.PRNGKey(7))
    zero = jnp.zeros((n, n))
    profile = np.zeros((len(OBJECTIVES), len(DIRECTIONS), len(t)))
    coeffs = np.zeros((len(OBJECTIVES), len(DIRECTIONS), ORDER + 1))
    for a, f in enumerate(losses):
        line = jax.jit(jax.vmap(lambda tau, d, f=f: f(tau * d), in_axes=(0, None)))
        for b, d in enumerate(dirs):
            profile[a, b] = np.asarray(line(jnp.asarray(t), d)) - float(f(zero))
            coeffs[a, b] = np.asarray(taylor_coefficients(f, zero, d, ORDER))
    write_npz(data_dir(NAME, root) / "profiles.npz", t=t, profile=profile, coefficients=coeffs)
    write_json(data_dir(NAME, root) / "settings.json", {**s, "order": ORDER, "key": 7})


def plot(root=None):
    """One panel per objective: measured $L(tD) - L(0)$ and the order-4 Taylor polynomial; bar panel of $|c_k|$."""
    f = read_npz(data_dir(NAME, root) / "profiles.npz")
    s = read_json(data_dir(NAME, root) / "settings.json")
    t, c = f["t"], f["coefficients"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.9))
    colors = ("tab:purple", "tab:green")
    for a, objective in enumerate(OBJECTIVES):
        ax = axes[a]
        for b, direction in enumerate(DIRECTIONS):
            ax.plot(t, f["profile"][a, b], color=colors[b], label=f"{direction}: measured")
            poly = sum(c[a, b, k] * t**k for k in range(1, ORDER + 1))
            ax.plot(t, poly, color=colors[b], linestyle="--", label=f"{direction}: Taylor order {ORDER}")
        ax.set_title(objective)
        ax.set_xlabel("step t along the unit direction D (score units)")
        ax.set_ylabel("L(tD) - L(0) (nats)" if a < 2 else "L(tD) - L(0) (loss units)")
        ax.set_ylim(
            *np.percentile(f["profile"][a], [0, 100]) + np.array([-1, 1]) * (np.ptp(f["profile"][a]) * 0.1 + 1e-3)
        )
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper center", fontsize=7)
    ax = axes[3]
    width = 0.13
    floor = 1e-20
    for a, objective in enumerate(OBJECTIVES):
        for b, direction in enumerate(DIRECTIONS):
            offset = (a * 2 + b - 2.5) * width
            ax.bar(
                np.arange(1, ORDER + 1) + offset,
                np.maximum(np.abs(c[a, b, 1:]), floor),
                width,
                label=f"{objective} / {direction.split()[0]}",
                hatch="//" if b else None,
            )
    ax.set_yscale("log")
    ax.set_ylim(floor / 10, None)
    ax.axhline(floor, color="black", linewidth=0.6, linestyle=":")
    ax.set_xticks(range(1, ORDER + 1))
    ax.set_xlabel("Taylor order k")
    ax.set_ylabel("|c_k| (loss units, clipped at 1e-20)")
    ax.set_title("Taylor coefficients at S = 0")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        f"Loss along proximity directions at uniform attention (n = {s['n']}, d = {s['d']}, "
        f"kernel length {s['length']}, batch {s['batch']})"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
