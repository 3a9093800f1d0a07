r"""Detectability $B^*$ of proximity directions: against n, against the init scale, along training (P10, P12).

For per-sample score gradients and a family F (non-gauge part, ``directions.family``), signal
$\lVert Ec\rVert$, noise $\mathrm{tr\,Cov}\,c$ and $B^* = $ noise / signal$^2$ (``blindspot.detectability``,
streamed over blocks of dense autodiff gradients, ``jacobian.score_gradients``). Three panels:

(a) $B^*$ of band_1, proximity and the circulants against n (log-log), label vs reconstruction, in the
    plain model (mean pooling, no MLP; reconstruction with the copy readout, where P12's closed forms
    hold and are drawn dashed) and with a residual and a tanh MLP (reconstruction: cross-entropy
    readout), at W = 0 and at a random query-key matrix of scale ``sigma``; i.i.d. tokens, random
    labels, half of the positions masked.
(b) Signal on the circulants against the score scale $\sigma$ (scores $\sigma\tilde S$, plain model):
    label supervision with P10's leading order $\sigma\lVert E\kappa\rVert$, reconstruction (copy readout).
(c) $B^*$ of the proximity kernel along training on the synthetic paired task (model and settings of
    ``training_dynamics_synthetic``, W = 0 init), for the label loss and the reconstruction loss, in the
    supervised arm and in the SPT arm.

Run: ``python experiments/detectability.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot import directions, jacobian, scaling  # noqa: E402
from blindspot.claim_p10_random_init import closed_form as first_order_profile  # noqa: E402
from blindspot.claim_support import uniform_u  # noqa: E402
from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import iid_tokens, paired_task, sample_masks  # noqa: E402
from blindspot.detectability import combine, estimate, moments  # noqa: E402
from blindspot.model import init, query_key_matrix, scores_from_query_key  # noqa: E402
from blindspot.tolerances import close_tolerance  # noqa: E402
from blindspot.training import ARMS, Dataset, train  # noqa: E402
from experiments import training_dynamics_synthetic as synthetic  # noqa: E402
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
FAMILIES = ("band_1", "proximity", "circulant")
OBJECTIVES = ("classification", "reconstruction")
MODELS = ("plain", "residual_mlp")
INITS = ("zero", "random")
QUANTITIES = ("signal_squared", "noise", "batch_star")
BLOCK = 1000
"""Sequences per block of dense per-sample gradients (b n^2 numbers held at a time)."""


def settings(small: bool = False) -> dict:
    """Sizes, samples and scales of the three panels (``small``: smoke-test sizes)."""
    if small:  # one size, and shapes shared with (a) and gradient_visibility_during_training: few compilations
        return {"sizes": [6], "samples": 64, "seeds": 1, "d": 4, "vocab": 4, "mlp": 8, "sigma": 0.1, "rate": 0.5,
                "sigmas": [0.01, 1.0], "sigma_n": 6, "sigma_samples": 64, "trajectory_batch": 32}  # fmt: skip
    return {"sizes": [8, 16, 32, 64], "samples": 8000, "seeds": 3, "d": 8, "vocab": 4, "mlp": 32, "sigma": 0.1,
            "rate": 0.5, "sigmas": [float(s) for s in np.logspace(-3, 0, 7)], "sigma_n": 16, "sigma_samples": 4000,
            "trajectory_batch": 256}  # fmt: skip


def model_config(s: dict, model: str, n: int) -> ModelConfig:
    """Plain: copy readout (P12's closed forms); residual + MLP: cross-entropy readout (copy ignores the MLP)."""
    extra = {"reconstruction": "copy"} if model == "plain" else {"residual": True, "mlp": s["mlp"]}
    return ModelConfig(n=n, d=s["d"], vocab=s["vocab"], mask_rate=s["rate"], **extra)


def family_estimates(params, config, objective, tokens, target) -> np.ndarray:
    """Signal squared, noise and B* (NaN: no signal) per family, streamed over blocks of dense gradients.

    A mean within rounding (``close_tolerance(n^2)`` times the largest gradient norm) counts as no signal,
    as in the probe: the label loss on the circulants at W = 0 reads exactly 0, not a ratio of rounding errors.
    """
    sums, largest = [None] * len(FAMILIES), 0.0
    for start in range(0, tokens.shape[0], BLOCK):
        part = slice(start, start + BLOCK)
        grads = jacobian.score_gradients(params, config, objective, tokens[part], target[part])
        largest = max(largest, float(jnp.max(jnp.linalg.norm(grads, axis=(1, 2)))))
        stats = directions.statistics(grads)
        blocks = [moments(directions.family(name, config.n).coordinates(stats)) for name in FAMILIES]
        sums = [b if m is None else combine(m, b) for m, b in zip(sums, blocks)]
    resolution = close_tolerance(jnp.float64, config.n**2) * largest
    out = []
    for m in sums:
        e = estimate(m, resolution=resolution)
        out.append([e.signal_squared, e.noise, np.nan if e.batch_star is None else e.batch_star])
    return np.array(out)


def _batch(config: ModelConfig, samples: int, key):
    k = jax.random.split(key, 3)
    tokens = iid_tokens(k[0], samples, config.n, config.vocab)
    labels = jax.random.randint(k[1], (samples,), 0, config.classes, jnp.int32)
    return tokens, labels, sample_masks(k[2], samples, config.n, config.mask_rate)


def _with_scale(params, sigma: float):
    r"""Return the parameters with query-key matrix $\sigma \tilde W$, $\tilde W_{ij} \sim N(0, 1/d)$ (same config)."""
    d = params.value.shape[0]
    unit = jax.random.normal(jax.random.key(7), (d, d), params.value.dtype) / np.sqrt(d)
    return params._replace(query_key=sigma * unit)


def scaling_panel(s: dict) -> np.ndarray:
    """Panel (a): estimates of shape (model, init, objective, seed, size, family, quantity).

    Each seed draws the parameters once (the same embeddings, values and heads for every n) and fresh data.
    """
    shape = (len(MODELS), len(INITS), len(OBJECTIVES), s["seeds"], len(s["sizes"]), len(FAMILIES), len(QUANTITIES))
    out = np.zeros(shape)
    for a, model in enumerate(MODELS):
        for seed, (i, n) in [(seed, size) for seed in range(s["seeds"]) for size in enumerate(s["sizes"])]:
            config = model_config(s, model, n)
            params = init(jax.random.key(seed), config)
            tokens, labels, masks = _batch(config, s["samples"], jax.random.key(1000 * (seed + 1) + n))
            for b, scale in enumerate((0.0, s["sigma"])):
                state = _with_scale(params, scale)
                for c, target in enumerate((labels, masks)):
                    out[a, b, c, seed, i] = family_estimates(state, config, OBJECTIVES[c], tokens, target)
        print(f"{NAME}: (a) {model} done", flush=True)
    return out


def sigma_panel(s: dict) -> dict:
    r"""Panel (b): circulant signal of both objectives against $\sigma$, and P10's $\lVert E\kappa\rVert$ (plain)."""
    config = model_config(s, "plain", s["sigma_n"])
    flat = init(jax.random.key(3), config)
    tokens, labels, masks = _batch(config, s["sigma_samples"], jax.random.key(4))
    circulant = FAMILIES.index("circulant")
    signal = np.zeros((len(s["sigmas"]), len(OBJECTIVES)))
    for i, sigma in enumerate(s["sigmas"]):
        state = _with_scale(flat, sigma)
        for c, target in enumerate((labels, masks)):
            signal[i, c] = np.sqrt(max(family_estimates(state, config, OBJECTIVES[c], tokens, target)[circulant, 0], 0))
    w = query_key_matrix(_with_scale(flat, 1.0))
    unit = jax.vmap(lambda x: scores_from_query_key(w, flat, config, x))(tokens)
    kappa = first_order_profile(unit, uniform_u(flat, config, tokens, labels))
    coords = directions.family("circulant", config.n).coordinates(directions.statistics(jnp.asarray(kappa)))
    lam = float(np.exp(-1.0 / directions.PROXIMITY_LENGTH))
    exact = scaling.detectability(
        scaling.family_invariants("circulant", config.n, lam), config.n, config.masked_count, config.vocab
    )[0]
    return {"signal": signal, "kappa_signal": estimate(moments(coords)).signal, "copy_exact": float(exact) ** 0.5}


def trajectory_panel(small: bool, s: dict) -> dict:
    """Panel (c): proximity B* and signal of both objectives at every evaluation of both arms (synthetic task)."""
    config, n_train, n_test, train_settings, seeds = synthetic.settings(small)
    x, y = paired_task(jax.random.PRNGKey(0), n_train, config.n, config.vocab)
    xt, yt = paired_task(jax.random.PRNGKey(1), n_test, config.n, config.vocab)
    tokens, labels = xt[: s["trajectory_batch"]], yt[: s["trajectory_batch"]]
    masks = sample_masks(jax.random.key(5), tokens.shape[0], config.n, config.mask_rate)
    proximity = FAMILIES.index("proximity")
    out = {}
    for arm in ARMS:
        h = train(
            config,
            Dataset(x, y, xt, yt),
            jax.random.split(jax.random.PRNGKey(2), seeds),
            arm=arm,
            settings=train_settings,
            label=f"{NAME} (c)",
            keep_params=True,
        )
        values = np.zeros((seeds, len(h.steps), len(OBJECTIVES), len(QUANTITIES)))
        for t, stacked in enumerate(h.params):
            for seed in range(seeds):
                params = jax.tree_util.tree_map(lambda leaf, i=seed: leaf[i], stacked)
                for c, target in enumerate((labels, masks)):
                    values[seed, t, c] = family_estimates(params, config, OBJECTIVES[c], tokens, target)[proximity]
        out[arm] = {"steps": h.steps, "values": values, "proximity_index": h.proximity}
    out["spt_steps"] = train_settings.spt_steps
    return out


def compute(small: bool = False, root=None) -> None:
    """Compute the three panels and store them with their settings."""
    s = settings(small)
    folder = data_dir(NAME, root)
    write_npz(folder / "scaling.npz", estimates=scaling_panel(s), sizes=np.asarray(s["sizes"]))
    sig = sigma_panel(s)
    write_npz(folder / "sigma.npz", sigmas=np.asarray(s["sigmas"]), **sig)
    traj = trajectory_panel(small, s)
    arrays = {f"{arm}/{k}": v for arm in ARMS for k, v in traj[arm].items()}
    write_npz(folder / "trajectory.npz", **arrays)
    config = synthetic.settings(small)[0]
    write_json(
        folder / "settings.json",
        {
            **s,
            "families": FAMILIES,
            "objectives": OBJECTIVES,
            "models": MODELS,
            "inits": INITS,
            "quantities": QUANTITIES,
            "spt_steps": traj["spt_steps"],
            "trajectory_config": config.to_dict(),
        },
    )


def closed_form_estimates(s: dict, sizes) -> np.ndarray:
    """P12: exact signal squared, noise and B* of the copy readout with i.i.d. tokens, shape (size, family, 3)."""
    lam = float(np.exp(-1.0 / directions.PROXIMITY_LENGTH))
    out = []
    for n in (int(x) for x in sizes):
        m = model_config(s, "plain", n).masked_count
        rows = [scaling.detectability(scaling.family_invariants(name, n, lam), n, m, s["vocab"]) for name in FAMILIES]
        out.append([[float(v) for v in row] for row in rows])
    return np.array(out)


def seed_median(values: np.ndarray, missing: float = np.inf) -> np.ndarray:
    """Median over seeds (axis 0), a missing value (NaN) counting as ``missing``.

    For B* a missing value is "no signal", an infinite batch (the default); with ``missing=nan`` the
    median is over the seeds that have a value (NaN where none has).
    """
    values = np.asarray(values, dtype=float)
    if np.isnan(missing):
        finite = np.isfinite(values)
        cols = [
            np.median(c[ok]) if ok.any() else np.nan
            for c, ok in zip(values.reshape(len(values), -1).T, finite.reshape(len(values), -1).T)
        ]
        return np.array(cols).reshape(values.shape[1:])
    return np.median(np.where(np.isnan(values), missing, values), axis=0)


def fitted_slopes(sizes, values) -> np.ndarray:
    """Least-squares log-log slopes along the size axis (axis -3 of ``values``); NaN for a non-positive value."""
    moved = np.moveaxis(values, -3, -1)
    if len(sizes) < 2:
        return np.full(moved.shape[:-1], np.nan)
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.log(np.where(moved > 0, moved, np.nan))
    dx = x - x.mean()
    return np.sum(dx * (y - y.mean(axis=-1, keepdims=True)), axis=-1) / np.sum(dx**2)


def _log_scale(ax, values, *, x: bool) -> None:
    """Logarithmic y (and x) axes when the plotted ``values`` hold a positive finite point (a smoke run may not)."""
    values = np.asarray(values, dtype=float)
    if np.any(np.isfinite(values) & (values > 0)):
        ax.set_yscale("log")
        if x:
            ax.set_xscale("log")


COLORS = {
    ("classification", "plain"): "tab:blue",
    ("classification", "residual_mlp"): "tab:cyan",
    ("reconstruction", "plain"): "tab:orange",
    ("reconstruction", "residual_mlp"): "tab:red",
}


def _plot_scaling(axes, s: dict, f: dict) -> None:
    """Panel (a): B* against n per family, every model, init and objective; P12's exact curve dashed."""
    cells = [(a, b, c) for a in range(len(MODELS)) for b in range(len(INITS)) for c in range(len(OBJECTIVES))]
    for k, (ax, name) in enumerate(zip(axes, FAMILIES)):
        for a, b, c in cells:
            objective, model, init_ = OBJECTIVES[c], MODELS[a], INITS[b]
            label = f"{'label' if objective == 'classification' else 'rec.'} {model}, W {init_}"
            style = "-o" if init_ == "zero" else ":s"
            ax.plot(
                f["sizes"],
                seed_median(f["estimates"][a, b, c, :, :, k, 2]),
                style,
                color=COLORS[(objective, model)],
                label=label,
                markersize=3,
            )
        ax.plot(f["sizes"], closed_form_estimates(s, f["sizes"])[:, k, 2], "k--", label="P12 exact (rec. plain, W 0)")
        ax.set(xlabel="sequence length n", ylabel="B* = noise / signal^2")
        _log_scale(ax, [seed_median(f["estimates"][a, b, c, :, :, k, 2]) for a, b, c in cells], x=True)
        ax.set_title(f"(a) {name}: batch size at which the mean gradient sees it")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=6)


def _plot_sigma(ax, f: dict) -> None:
    """Panel (b): circulant signal against the score scale, with P10's leading order and P12's exact value."""
    sig = f["sigmas"]
    ax.plot(sig, f["signal"][:, 0], "-o", color="tab:blue", label="label (measured)", markersize=3)
    ax.plot(sig, sig * float(f["kappa_signal"]), "k--", label="label, P10: sigma ||E kappa||")
    ax.plot(sig, f["signal"][:, 1], "-o", color="tab:orange", label="reconstruction, copy (measured)", markersize=3)
    ax.axhline(float(f["copy_exact"]), color="tab:orange", linestyle=":", label="reconstruction at sigma = 0 (P12)")
    ax.set(xlabel="score scale sigma (S = sigma S~)", ylabel="signal ||E c|| on circulants")
    _log_scale(ax, f["signal"], x=True)
    ax.set_title("(b) plain model: signal on the zero-sum circulants")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6)


def _plot_trajectory(axes, f: dict, spt_steps: int) -> None:
    """Panel (c): proximity B* along training, label and reconstruction loss, both arms."""
    colors = {"supervised": "tab:blue", "spt": "tab:orange"}
    for c, (ax, objective) in enumerate(zip(axes, OBJECTIVES)):
        medians = [seed_median(f[f"{arm}/values"][:, :, c, 2]) for arm in ARMS]
        for arm, median in zip(ARMS, medians):
            ax.plot(f[f"{arm}/steps"], median, "-o", color=colors[arm], label=arm, markersize=3)
        ax.axvline(spt_steps, color="grey", linestyle=":", linewidth=1, label="SPT arm: switch to labels")
        ax.set(xlabel="optimiser step", ylabel="B* of the proximity kernel (median over seeds)")
        _log_scale(ax, medians, x=False)
        ax.set_title(f"(c) synthetic task, {'label' if objective == 'classification' else 'reconstruction'} loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)


def plot(root=None):
    """Write the figure: (a) top row, (b) and (c) bottom row."""
    folder = data_dir(NAME, root)
    s = read_json(folder / "settings.json")
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    _plot_scaling(axes[0], s, read_npz(folder / "scaling.npz"))
    _plot_sigma(axes[1, 0], read_npz(folder / "sigma.npz"))
    _plot_trajectory(axes[1, 1:], read_npz(folder / "trajectory.npz"), s["spt_steps"])
    fig.suptitle(
        f"Detectability B* (i.i.d. tokens, V = {s['vocab']}, half masked, d = {s['d']}; random W: scale {s['sigma']}; "
        "missing points: no signal)"
    )
    fig.tight_layout()
    return save_figure(fig, NAME, root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
