r"""P7: spectra of the score-space Hessian restricted to the blind families, Gauss-Newton vs functional.

At uniform attention ($S = 0$), for a batch-mean loss $L(S) = \ell(z(S))$ with outputs $z$ (class
logits of the batch, or reconstruction logits of the masked positions), the Hessian restricted to
a family with orthonormal basis $Q$, $Q^\top \nabla^2 L\, Q$, and its split into the Gauss-Newton
part $(JQ)^\top H_\ell (JQ)$ and the functional part $Q^\top \nabla^2 \langle g, z \rangle Q$
(``curvature.gauss_newton_split``). Families: circulant (P3) and Toeplitz (P4), whole
(``directions.family(name, n, part="whole")``: the gauge part included, along which the Hessian
vanishes, P1). Objectives: label cross-entropy without MLP, with a tanh MLP (no residual), and
masked cross-entropy reconstruction with the same MLP. Run: ``python experiments/restricted_hessian.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot import directions  # noqa: E402
from blindspot.config import ModelConfig  # noqa: E402
from blindspot.curvature import gauss_newton_split  # noqa: E402
from blindspot.data import paired_task, sample_masks  # noqa: E402
from blindspot.model import class_logits_at_scores, features_at_scores, init, mask_tokens  # noqa: E402
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
OBJECTIVES = ("classification, no MLP", "classification, tanh MLP", "reconstruction, tanh MLP")
FAMILIES = ("circulant", "toeplitz")
PARTS = ("total", "gauss_newton", "functional")


def settings(small: bool = False) -> dict:
    """Sizes."""
    if small:
        return {"n": 8, "d": 8, "vocab": 4, "mlp": 8, "batch": 16, "families": ["circulant"]}
    return {"n": 16, "d": 16, "vocab": 8, "mlp": 32, "batch": 256, "families": list(FAMILIES)}


def problems(s: dict, key):
    """Build the (outputs, loss_of_outputs) pair of each objective as functions of the score matrix."""
    k_init, k_data, k_mask = jax.random.split(key, 3)
    tokens, labels = paired_task(k_data, s["batch"], s["n"], s["vocab"])
    plain = ModelConfig(n=s["n"], d=s["d"], vocab=s["vocab"])
    mlp = ModelConfig(n=s["n"], d=s["d"], vocab=s["vocab"], mlp=s["mlp"])
    masks = sample_masks(k_mask, s["batch"], s["n"], mlp.mask_rate)
    masked = jax.vmap(lambda x, m: mask_tokens(mlp, x, m))(tokens, masks)

    def classification(config):
        params = init(k_init, config)

        def outputs(x):
            return jax.vmap(lambda t: class_logits_at_scores(params, config, t, x))(tokens)

        def loss(z):
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), labels[:, None], axis=1))

        return outputs, loss

    params = init(k_init, mlp)

    def rec_outputs(x):
        f = jax.vmap(lambda t: features_at_scores(params, mlp, t, x))(masked)
        return f @ params.reconstructor.weight + params.reconstructor.bias

    def rec_loss(z):
        nll = -jnp.take_along_axis(jax.nn.log_softmax(z), tokens[..., None], axis=-1)[..., 0]
        weights = masks.astype(nll.dtype)
        return jnp.mean(jnp.sum(weights * nll, axis=1) / jnp.sum(weights, axis=1))

    return [classification(plain), classification(mlp), (rec_outputs, rec_loss)]


def compute(small: bool = False, root=None) -> None:
    """Eigenvalues of the three restricted matrices, per objective and family."""
    s = settings(small)
    n = s["n"]
    zero = jnp.zeros((n, n))
    eig = {}
    for a, (outputs, loss) in enumerate(problems(s, jax.random.PRNGKey(11))):
        for name in s["families"]:
            basis = directions.family(name, n, part="whole").basis()
            split = gauss_newton_split(outputs, loss, zero, basis)
            for part in PARTS:
                m = np.asarray(getattr(split, part))
                eig[f"{a}/{name}/{part}"] = np.linalg.eigvalsh((m + m.T) / 2)
        print(f"{NAME}: {OBJECTIVES[a]} done", flush=True)
    write_npz(data_dir(NAME, root) / "spectra.npz", **eig)
    write_json(data_dir(NAME, root) / "settings.json", {**s, "objectives": OBJECTIVES, "key": 11})


def plot(root=None):
    """Sorted eigenvalues (symlog) of total, Gauss-Newton and functional parts."""
    f = read_npz(data_dir(NAME, root) / "spectra.npz")
    s = read_json(data_dir(NAME, root) / "settings.json")
    families = s["families"]
    fig, axes = plt.subplots(
        len(families), len(OBJECTIVES), figsize=(14, 3.5 * len(families)), sharey=True, squeeze=False
    )
    styles = {
        "total": ("black", "o", "total Hessian"),
        "gauss_newton": ("tab:blue", "s", "Gauss-Newton part"),
        "functional": ("tab:red", "^", "functional part"),
    }
    largest = max(np.max(np.abs(v)) for v in f.values())
    for a, objective in enumerate(OBJECTIVES):
        for b, name in enumerate(families):
            ax = axes[b, a]
            for part in PARTS:
                color, marker, label = styles[part]
                values = f[f"{a}/{name}/{part}"]
                ax.plot(
                    np.arange(1, len(values) + 1),
                    values,
                    marker=marker,
                    color=color,
                    linestyle="none",
                    markersize=4,
                    label=label,
                    fillstyle="none" if part == "total" else "full",
                )
            ax.set_yscale("symlog", linthresh=largest * 1e-8)
            top = np.ceil(np.log10(largest))
            decades = 10.0 ** np.arange(top - 7, top + 1, 2)
            ax.set_yticks(np.concatenate([-decades[::-1], [0.0], decades]))
            ax.axhline(0, color="grey", linewidth=0.6)
            ax.set_title(f"{objective}: {name} family (dim {len(values)})")
            ax.set_xlabel("eigenvalue index (ascending)")
            ax.grid(alpha=0.3)
        axes[0, a].legend(fontsize=7, loc="upper left")
    for b in range(len(families)):
        axes[b, 0].set_ylabel("eigenvalue of $Q^T H Q$ (loss / score$^2$)")
    fig.suptitle(
        f"P7: Hessian restricted to blind families at uniform attention (n = {s['n']}, d = {s['d']}, "
        f"batch {s['batch']}; symlog axis, linear below {largest * 1e-8:.0e})"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
