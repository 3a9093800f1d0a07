r"""Ablation arms: which part of self-pretraining carries its gain, and does a proximity prior replace it.

The paper's empirical claims, tested causally in the minimal setup: (1) the bottleneck of label
supervision is learning query-key patterns from random initialisation; (2) the gain of SPT comes
from proximity interactions. For one seed, $\theta_0$ is the initialisation (the same for every
arm) and $\theta_{pre}$ the SPT model after ``spt_steps`` masked-reconstruction steps; $W$ is the
query-key weight (``Params.query_key``, the pair $(W_Q, W_K)$ in factored form). The arms:

- ``supervised``: $\theta_0$, then ``total_steps`` label steps;
- ``spt``: $\theta_{pre}$, then ``total_steps - spt_steps`` label steps;
- ``transplant``: $\theta_0$ with $W$ from $\theta_{pre}$, then the same label steps as ``spt``;
- ``complement``: $\theta_{pre}$ with $W$ reset to its value in $\theta_0$, then those label steps;
- ``frozen_qk``: $\theta_{pre}$, then those label steps with $W$ held fixed;
- ``prior_init``: $\theta_0$ with $W$ a scaled pushforward of the neighbour pattern $N$ through the
  positional encoding (``prior_query_key``), then ``total_steps`` label steps;
- ``prior_bias``: $\theta_0$ and the fixed additive score bias $cN$ on every sequence's scores
  (``objectives``' ``score_bias``), then ``total_steps`` label steps;
- ``depth``: the supervised arm with two attention layers: the reference Transformer of
  ``depth_config`` (its own initialisation), then ``total_steps`` label steps.

Every arm makes ``total_steps`` optimiser steps: the arms built from $\theta_{pre}$ count its
``spt_steps`` reconstruction steps (made once per seed and shared, so transplant and complement
split exactly the parameters that SPT hands over), the others are label steps only. Label steps of
the arms built from $\theta_{pre}$ draw the same mini-batches (common random numbers), and so do the
arms that start from an initialisation (supervised, the priors, depth): a seed's key gives every model
the same mini-batches.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from blindspot.checks import check_choice, check_int
from blindspot.config import ModelConfig, check_config
from blindspot.model import Params, check_params, positions
from blindspot.positional import interior, neighbours
from blindspot.proximity import proximity_index
from blindspot.pushforward import pushforward
from blindspot.training import (
    Dataset,
    History,
    Phase,
    TrainSettings,
    advance,
    check_settings,
    history,
    start,
    with_params,
)
from blindspot.transformer import TransformerConfig

ARMS = ("supervised", "spt", "transplant", "complement", "frozen_qk", "prior_init", "prior_bias", "depth")
PRETRAINED = ("spt", "transplant", "complement", "frozen_qk")
"""Arms that start their label phase from the SPT model's pretraining (or a part of it)."""


def neighbour_count(n: int, width: int | None = None) -> int:
    """Neighbours $k$ of an interior position: 2 in a sequence, 4 in an image ``width`` wide."""
    return int(neighbours(n, width=width)[np.argmax(interior(n, width=width))].sum())


def neighbour_amplitude(n: int, width: int | None = None) -> float:
    r"""Amplitude $c = \log(1 + n/k)$ of the proximity prior $cN$: half the largest proximity index.

    Notes
    -----
    With scores $cN$ alone ($N$: the $k$ neighbours of an interior query), a row of the softmax puts
    $k e^c / (k e^c + n - k)$ on the neighbours. Asking for half of the way from uniform ($k/n$) to all
    of it (1), i.e. a proximity index $\frac12(1 - k/n)$, gives $e^c = (n + k)/k$.
    """
    return math.log1p(n / neighbour_count(n, width))


PUSHFORWARD_RTOL = 1e-2
"""Truncation of the prior's pushforward: directions of P with singular value under 1% of the largest are dropped."""

GAINS = 2.0 ** (np.arange(-8, 49) / 4)
"""Gains $\alpha$ tried by ``prior_query_key`` (0.25 to 4096, four per octave)."""


class Prior(NamedTuple):
    """How the ``prior_init`` arm's $W$ was built: pushforward residual, gain, positional proximity index."""

    residual_fraction: float
    gain: float
    positional_index: float


def prior_scores(n: int, width: int | None = None) -> Float[np.ndarray, "n n"]:
    """Return the score bias $cN$ of the ``prior_bias`` arm (``neighbour_amplitude``, radius-1 neighbours)."""
    return neighbour_amplitude(n, width) * neighbours(n, width=width).astype(np.float64)


def prior_query_key(params: Params, config: ModelConfig, width: int | None = None) -> tuple[Params, Prior]:
    r"""``params`` (one seed) with $W$ a scaled pushforward of the neighbour pattern $N$ through $P$.

    Notes
    -----
    $W_1 = P_t^+ N (P_t^+)^\top / a$ (``pushforward.pushforward`` with ``rtol = PUSHFORWARD_RTOL``),
    $a = 1/\sqrt d$ for content+position scores, 1 for position-only; $P_t^+$ is the pseudo-inverse
    of $P$ truncated below 1% of its largest singular value. Sinusoidal encodings of short sequences
    are ill-conditioned (their low frequencies barely vary over $n$ positions), so the full
    pseudo-inverse gives a $W$ orders of magnitude larger that the content part of the scores would
    amplify; what $P W P^\top$ can reach of a sharp band is a smooth bump (``residual_fraction``).
    The gain $\alpha$ of $W = \alpha W_1$ is the first in ``GAINS`` at which the position-only
    attention $\mathrm{softmax}(\alpha a P W_1 P^\top)$ has proximity index (radius 1; 2-D for an
    image ``width`` wide) at least that of the ``prior_bias`` arm, $\frac12(1 - k/n)$; where none reaches
    it, the gain of the largest index (the index falls again once self-attention dominates). In
    factored form, the pair $(U_r \Sigma_r^{1/2}, V_r \Sigma_r^{1/2})$ of the rank-``qk_rank`` SVD.
    """
    check_config(config)
    check_params(params, config)
    scale = 1.0 if config.scores == "position" else 1.0 / math.sqrt(config.d)
    p = positions(params)
    near = neighbours(config.n, width=width)
    pf = pushforward(jnp.asarray(near, p.dtype), p, scale=scale, rtol=PUSHFORWARD_RTOL)
    reached = np.asarray(scale * p @ pf.w @ p.T)
    attention = jnp.asarray(_softmax_rows(GAINS[:, None, None] * reached))
    index = [float(x) for x in jax.vmap(lambda a: proximity_index(a, width=width))(attention)]
    target = 0.5 * (1 - neighbour_count(config.n, width) / config.n)
    best = next((i for i, x in enumerate(index) if x >= target), int(np.argmax(index)))
    w = GAINS[best] * pf.w
    info = Prior(float(pf.residual_fraction), float(GAINS[best]), index[best])
    if config.qk_rank is None:
        return params._replace(query_key=w), info
    u, s, vt = jnp.linalg.svd(w)
    root = jnp.sqrt(s[: config.qk_rank])
    return params._replace(query_key=(u[:, : config.qk_rank] * root, vt[: config.qk_rank].T * root)), info


def _softmax_rows(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


DEPTH_LAYERS = 2
MIRRORED = {
    "positional": "sinusoidal",
    "centred": False,
    "scores": "content_position",
    "pooling": ("mean", "first"),
    "residual": True,
    "reconstruction": "cross_entropy",
}
"""Values of the ``ModelConfig`` fields that the reference Transformer can mirror (``depth_config``)."""


def depth_config(config: ModelConfig) -> TransformerConfig:
    r"""Return the model of the ``depth`` arm: ``config``'s model with two attention layers.

    The reference Transformer (``blindspot.transformer``) with ``DEPTH_LAYERS`` blocks of one head each,
    the same n, width d, vocabulary, classes, MLP width, fixed sinusoidal positions, pooling and mask
    rate, and no layer norm (one such block with $W_K = W_O = I$ and no MLP is the theory model with a
    residual). What still differs from the theory model besides depth: each block's MLP is
    $x + \mathrm{gelu}(x W_1 + b_1) W_2 + b_2$ inside the residual stream (the theory model's is
    $\tanh$, after the residual), the query-key matrix is the product $W_Q W_K^\top$ and the values pass
    through $W_V W_O$, all drawn $N(0, 1/d)$ (``transformer.init``), so the scores do not start at 0, and a
    factored ``qk_rank`` r of ``config`` is not mirrored (each block's query-key product has rank d). The
    token embeddings keep ``config.embedding_scale``.
    Refuses (``ValueError``) a ``config`` with a field outside ``MIRRORED``.
    """
    check_config(config)
    for field, allowed in MIRRORED.items():
        allowed = allowed if isinstance(allowed, tuple) else (allowed,)
        if getattr(config, field) not in allowed:
            shown = ", ".join(map(str, allowed))
            raise ValueError(
                f"config.{field} must be one of {{{shown}}} for the depth arm (the reference Transformer), "
                f"got {getattr(config, field)!r}"
            )
    return TransformerConfig(
        n=config.n,
        d=config.d,
        vocab=config.vocab,
        classes=config.classes,
        layers=DEPTH_LAYERS,
        heads=1,
        mlp=config.mlp,
        positions="sinusoidal",
        pooling=config.pooling,
        layer_norm=False,
        mask_rate=config.mask_rate,
        embedding_scale=config.embedding_scale,
    )


def transplant(fresh: Params, source: Params) -> Params:
    """``fresh`` with the query-key weights of ``source`` (the same arrays, bit for bit)."""
    return fresh._replace(query_key=source.query_key)


def complement(fresh: Params, source: Params) -> Params:
    """``source`` with the query-key weights reset to those of ``fresh`` (its initialisation)."""
    return source._replace(query_key=fresh.query_key)


def budget(settings: TrainSettings, arm: str) -> dict:
    """Optimiser steps of ``arm``: reconstruction (its own or its source's) and label steps; total for all."""
    check_settings(settings, "spt")
    check_choice("arm", arm, ARMS)
    spt = settings.spt_steps if arm in PRETRAINED else 0
    return {"reconstruction_steps": spt, "label_steps": settings.total_steps - spt, "total_steps": settings.total_steps}


def train_arms(
    config: ModelConfig,
    data: Dataset,
    keys: jax.Array,
    *,
    arms: tuple[str, ...] = ARMS,
    settings: TrainSettings = TrainSettings(),
    label: str = "",
    log=print,
    keep_params: bool = False,
) -> dict[str, History]:
    """Train the ``arms`` for every seed key in ``keys``; return their histories by arm.

    ``config`` is the model of every arm; ``settings.width`` (an image's width, ``None`` for a
    sequence) sets the neighbours of the priors. The pretraining is made once and shared by the arms
    in ``PRETRAINED``. A history's
    evaluation at the switch (step ``spt_steps``) is of the model its label phase starts from;
    ``seconds`` counts from the start of its run, the shared pretraining included. Progress lines go
    to ``log`` (``None``: silent), prefixed by ``label`` and the arm.
    """
    check_config(config)
    check_settings(settings, "spt")
    if not isinstance(arms, tuple) or not arms:
        raise ValueError(f"arms must be a non-empty tuple of arm names from {ARMS}, got {arms!r}")
    for arm in arms:
        check_choice("arms", arm, ARMS)
    if "depth" in arms:
        depth_config(config)
    if set(arms) & set(PRETRAINED):
        check_int("spt_steps", settings.spt_steps, settings.eval_every)
    common = {"settings": settings, "log": log, "keep_params": keep_params}
    out = {}
    if set(arms) & set(PRETRAINED):
        origin = start(config, data, keys, first="reconstruction", name=f"{label} {'pretrain':10s}", **common)
        pretrained = advance(origin, Phase("reconstruction", settings.spt_steps))
        for arm in (a for a in PRETRAINED if a in arms):
            out[arm] = _label_phase(arm, origin, pretrained, label, settings)
    for arm in (a for a in ARMS if a in arms and a not in PRETRAINED):
        bias = prior_scores(config.n, settings.width) if arm == "prior_bias" else None
        model = depth_config(config) if arm == "depth" else config
        run = start(model, data, keys, score_bias=bias, name=f"{label} {arm:10s}", **common)
        if arm == "prior_init":
            priors = (prior_query_key(p, config, settings.width)[0] for p in _seeds(run.params))
            run = with_params(run, _stacked(priors))
        out[arm] = history(advance(run, Phase("classification", settings.total_steps)))
    return {arm: out[arm] for arm in ARMS if arm in out}


def _seeds(params: Params) -> list[Params]:
    """Split parameters stacked over seeds into one ``Params`` per seed."""
    return [jax.tree.map(lambda leaf, i=i: leaf[i], params) for i in range(jax.tree.leaves(params)[0].shape[0])]


def _stacked(params) -> Params:
    """Stack per-seed parameters along a leading seed axis."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)


def _label_phase(arm: str, origin, pretrained, label: str, settings: TrainSettings) -> History:
    """Run the label phase of an arm built from the pretraining: surgery at the switch, then label steps."""
    params = pretrained.params
    if arm == "transplant":
        params = transplant(origin.params, pretrained.params)
    elif arm == "complement":
        params = complement(origin.params, pretrained.params)
    run = with_params(pretrained._replace(name=f"{label} {arm:10s}"), params)
    frozen = ("query_key",) if arm == "frozen_qk" else ()
    return history(advance(run, Phase("classification", settings.total_steps - settings.spt_steps, frozen)))
