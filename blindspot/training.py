"""Training in the minimal setup (P9): supervised from scratch vs self-pretraining then fine-tuning.

Both arms train the same model (same configuration, same fixed positional encoding) for the
same total number of optimiser steps: supervised runs ``total_steps`` steps of label
cross-entropy; self-pretraining (SPT) runs ``spt_steps`` steps of masked reconstruction on the
*training sequences themselves* (labels unused) and then ``total_steps - spt_steps`` steps of
label cross-entropy, with a fresh optimiser state. A run holds several seeds at once (``vmap``);
``train`` runs the seeds one after another, which on CPU is faster per seed and step than a
vmapped batch of seeds and shares one compilation between any number of seeds. The steps between
two evaluations run as one jitted ``lax.scan``.

The model is the theory model of a ``ModelConfig`` or the reference Transformer of a
``TransformerConfig`` (``blindspot.architectures``: one training loop for both).

The pieces are public for the ablation arms (``blindspot.ablation``): ``start`` initialises and
evaluates, ``advance`` runs one ``Phase`` (optionally with frozen fields), ``with_params`` swaps
the parameters between phases, ``history`` collects the evaluations.
"""

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from blindspot.architectures import architecture
from blindspot.checks import check_array, check_bool, check_callable, check_choice, check_float, check_int, check_key
from blindspot.config import ModelConfig
from blindspot.data import sample_masks
from blindspot.model import Params
from blindspot.objectives import OBJECTIVES
from blindspot.proximity import proximity_index
from blindspot.transformer import TransformerConfig, TransformerParams

ARMS = ("supervised", "spt")


class Dataset(NamedTuple):
    """A labelled classification data set split into train and test."""

    train_tokens: Int[Array, "b n"]
    train_labels: Int[Array, " b"]
    test_tokens: Int[Array, "b n"]
    test_labels: Int[Array, " b"]


class TrainSettings(NamedTuple):
    """Optimisation settings shared by both arms.

    ``spt_steps`` is the number of reconstruction steps of the SPT arm, taken out of the same
    ``total_steps`` budget; ``eval_every`` must divide both ``spt_steps`` and ``total_steps``.
    ``radius`` and ``width`` define the proximity indices (``proximity.proximity_index``): the 1-D
    index always, the 2-D index of row-major images ``width`` wide as well when ``width`` is set.
    """

    total_steps: int = 2000
    spt_steps: int = 1000
    batch: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    eval_every: int = 100
    eval_size: int = 512
    radius: int = 1
    width: int | None = None


class Phase(NamedTuple):
    """A stretch of ``steps`` optimiser steps on one objective, from a fresh optimiser state.

    ``frozen`` names fields of the parameters (``Params`` or ``TransformerParams``) held fixed
    (gradients and updates zeroed: ``trainable``).
    """

    objective: str
    steps: int
    frozen: tuple[str, ...] = ()


class History(NamedTuple):
    """Evaluations along training, one row per seed.

    ``steps``: optimiser steps done at each evaluation (0 = initialisation);
    ``phase``: 0 for reconstruction (SPT), 1 for label training; ``train_loss``: mean training
    loss (of the phase's objective) of the ``eval_every`` steps before each evaluation after the
    first (``steps[1:]``: no training loss exists at initialisation, so none is recorded);
    ``attention``: mean attention map over the evaluation sequences at the end of training, per
    seed; ``params``: with ``keep_params``, the parameters (leading axis: seed) at every evaluation,
    else ``None``. ``train_accuracy``, ``train_label_loss`` and ``test_label_loss``: accuracy and
    label cross-entropy on the first ``eval_size`` training and test sequences at every evaluation
    (``None`` in data stored before they were recorded); ``proximity_2d``: the 2-D proximity index
    (``settings.width`` set), else ``None``.
    """

    steps: Int[np.ndarray, " t"]
    phase: Int[np.ndarray, " t"]
    test_accuracy: Float[np.ndarray, "s t"]
    proximity: Float[np.ndarray, "s t"]
    train_loss: Float[np.ndarray, "s t"]
    attention: Float[np.ndarray, "s n n"]
    seconds: float
    params: list[Params | TransformerParams] | None = None
    train_accuracy: Float[np.ndarray, "s t"] | None = None
    train_label_loss: Float[np.ndarray, "s t"] | None = None
    test_label_loss: Float[np.ndarray, "s t"] | None = None
    proximity_2d: Float[np.ndarray, "s t"] | None = None


def check_settings(settings: TrainSettings, arm: str) -> None:
    """Refuse inconsistent settings or an unknown P9 arm (one-line ``ValueError``)."""
    _check_settings_values(settings)
    check_choice("arm", arm, ARMS)


def _check_settings_values(settings: TrainSettings) -> None:
    if not isinstance(settings, TrainSettings):
        raise ValueError(f"settings must be a TrainSettings, got {type(settings).__name__}")
    check_int("total_steps", settings.total_steps, 1)
    check_int("eval_every", settings.eval_every, 1, settings.total_steps)
    check_int("spt_steps", settings.spt_steps, 0, settings.total_steps - 1)
    check_int("batch", settings.batch, 1)
    check_int("eval_size", settings.eval_size, 1)
    check_int("radius", settings.radius, 1)
    if settings.width is not None:
        check_int("width", settings.width, 2)
    check_float("learning_rate", settings.learning_rate, 0.0, float("inf"))
    check_float("weight_decay", settings.weight_decay, 0.0, float("inf"), open_low=False)
    if settings.total_steps % settings.eval_every or settings.spt_steps % settings.eval_every:
        raise ValueError(
            f"eval_every must divide total_steps and spt_steps, got {settings.eval_every} for "
            f"{settings.total_steps} and {settings.spt_steps}"
        )


def optimiser(settings: TrainSettings) -> optax.GradientTransformation:
    """AdamW with global-norm clipping at 1; the positional encodings (field ``positional``) are not decayed.

    A fixed buffer gets zero gradients (``stop_gradient`` in the model), so Adam leaves it unchanged;
    the weight-decay mask keeps AdamW from shrinking it (and learned Transformer positions alike).
    """

    def decayed(params: Params | TransformerParams):
        return jax.tree_util.tree_map(lambda _: True, params)._replace(positional=False)

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(settings.learning_rate, weight_decay=settings.weight_decay, mask=decayed),
    )


def trainable(params: Params | TransformerParams, frozen: tuple[str, ...] = ()) -> Params | TransformerParams:
    """Per leaf of ``params``: 0.0 for the fields in ``frozen``, 1.0 for the others (scalars of the leaf's dtype)."""
    ones = jax.tree_util.tree_map(lambda leaf: jnp.ones((), jnp.result_type(leaf)), params)
    return ones._replace(**{f: jax.tree_util.tree_map(jnp.zeros_like, getattr(ones, f)) for f in frozen})


def attention_maps(
    params: Params | TransformerParams,
    config: ModelConfig | TransformerConfig,
    tokens: Int[Array, "b n"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, "b n n"]:
    r"""Attention matrices of a batch of unmasked sequences, scores plus ``score_bias`` $B$ if given.

    Theory model: $A = \mathrm{softmax}_{row}(S + B)$; Transformer: its first layer, mean over heads
    (``blindspot.architectures``).
    """
    return architecture(config).attention_maps(params, config, tokens, score_bias=score_bias)


def _loss(objective: str, config: ModelConfig | TransformerConfig):
    arch = architecture(config)

    def loss(params, tokens, labels, key, bias):
        if objective == "reconstruction":
            masks = sample_masks(key, tokens.shape[0], config.n, config.mask_rate)
            return arch.reconstruction_loss(params, config, tokens, masks, score_bias=bias)
        return arch.classification_loss(params, config, tokens, labels, score_bias=bias)

    return loss


def _compute_settings(settings: TrainSettings) -> TrainSettings:
    """Reset the fields of ``settings`` that a compiled training chunk does not use (shared compilations)."""
    return settings._replace(total_steps=0, spt_steps=0, eval_size=0, radius=0, width=None)


@functools.lru_cache(maxsize=16)
def _chunk(config: ModelConfig | TransformerConfig, settings: TrainSettings, objective: str):
    """Jitted: ``eval_every`` optimiser steps for every seed (vmap over seeds, scan over steps).

    Cached on (config, settings, objective): arms and initialisations reuse one compilation. The
    argument ``factors`` (``trainable``) multiplies gradients and updates leaf by leaf: a frozen
    field (factor 0) gets no update, weight decay included, and adds nothing to the clipping norm
    or the Adam moments; factors 1 change nothing (exact). ``bias``: the fixed score bias $B$
    added to every sequence's scores (zeros: none).
    """
    loss = _loss(objective, config)
    opt = optimiser(settings)

    def masked(tree, factors):
        return jax.tree_util.tree_map(lambda x, f: x * f, tree, factors)

    def one_seed(params, opt_state, key, tokens, labels, factors, bias):
        def step(carry, k):
            p, s = carry
            k_batch, k_mask = jax.random.split(k)
            idx = jax.random.randint(k_batch, (settings.batch,), 0, tokens.shape[0])
            value, grads = jax.value_and_grad(loss)(p, tokens[idx], labels[idx], k_mask, bias)
            updates, s = opt.update(masked(grads, factors), s, p)
            return (optax.apply_updates(p, masked(updates, factors)), s), value

        (params, opt_state), values = jax.lax.scan(
            step, (params, opt_state), jax.random.split(key, settings.eval_every)
        )
        return params, opt_state, jnp.mean(values)

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None, None, None)))


@functools.lru_cache(maxsize=16)
def _evaluator(config: ModelConfig | TransformerConfig):
    """Jitted, per seed: test and train accuracy and label loss, mean attention on the test sequences."""
    arch = architecture(config)

    def one_seed(params, test_x, test_y, train_x, train_y, bias):
        a = arch.attention_maps(params, config, test_x, score_bias=bias)
        return {
            "test_accuracy": arch.accuracy(params, config, test_x, test_y, score_bias=bias),
            "test_label_loss": arch.classification_loss(params, config, test_x, test_y, score_bias=bias),
            "train_accuracy": arch.accuracy(params, config, train_x, train_y, score_bias=bias),
            "train_label_loss": arch.classification_loss(params, config, train_x, train_y, score_bias=bias),
            "attention": jnp.mean(a, axis=0),
        }

    return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None, None, None, None)))


class Run(NamedTuple):
    """A training run of every seed at once, between two phases.

    ``params`` and ``keys`` (the PRNG state of mini-batches and masks) have a leading seed axis;
    ``step``: optimiser steps done; ``rows``: one dictionary of per-seed metrics per evaluation;
    ``score_bias``: the fixed score bias $B$ added to every sequence's scores (zeros: none);
    ``name``: prefix of the progress lines, ``log``: where they go (``None``: silent).
    """

    config: ModelConfig | TransformerConfig
    data: Dataset
    settings: TrainSettings
    params: Params | TransformerParams
    keys: jax.Array
    step: int
    rows: tuple[dict, ...]
    started: float
    score_bias: Float[Array, "n n"]
    name: str = ""
    log: object = None
    keep_params: bool = False


def start(
    config: ModelConfig | TransformerConfig,
    data: Dataset,
    keys: jax.Array,
    *,
    settings: TrainSettings = TrainSettings(),
    first: str = "classification",
    score_bias: Float[Array, "n n"] | None = None,
    name: str = "",
    log=print,
    keep_params: bool = False,
) -> Run:
    r"""Initialise one model per seed key in ``keys`` and evaluate it (step 0).

    Each key is split into an initialisation key and the run key of mini-batches and masks.
    ``first``: the objective of the first phase (the phase id recorded for step 0); ``score_bias``:
    a fixed $n \times n$ bias added to the scores of every sequence in training and evaluation.
    """
    with jax.numpy_dtype_promotion("standard"):
        _check_start(config, data, keys, settings, name, log, keep_params)
        check_choice("first", first, OBJECTIVES)
        if score_bias is not None:
            check_array("score_bias", score_bias, (config.n, config.n))
        init_keys, run_keys = jnp.split(jax.vmap(jax.random.split)(keys), 2, axis=1)
        # one key at a time: the random draws compile once per shape, for every configuration alike
        init = architecture(config).init
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(init(k, config) for k in init_keys[:, 0]))
        dtype = params.token_embedding.dtype
        bias = jnp.zeros((config.n, config.n), dtype) if score_bias is None else jnp.asarray(score_bias)
        run = Run(
            config, data, settings, params, run_keys[:, 0], 0, (), time.perf_counter(), bias, name, log, keep_params
        )
        return _record(run, params, _phase_id(first), None)


def advance(run: Run, phase: Phase) -> Run:
    """Train ``run`` for one phase (fresh optimiser state), evaluating every ``settings.eval_every`` steps.

    Refuses a phase that would take the run past ``settings.total_steps``: every arm gets the same budget.
    """
    _check_phase(run, phase)
    with jax.numpy_dtype_promotion("standard"):
        params, run_keys, every = run.params, run.keys, run.settings.eval_every
        opt_state = jax.vmap(optimiser(run.settings).init)(params)
        compute_config = architecture(run.config).compute_config(run.config)
        chunk = _chunk(compute_config, _compute_settings(run.settings), phase.objective)
        factors = trainable(jax.tree_util.tree_map(lambda leaf: leaf[0], params), phase.frozen)
        for _ in range(phase.steps // every):
            run_keys, chunk_keys = jnp.split(jax.vmap(jax.random.split)(run_keys), 2, axis=1)
            run_keys = run_keys[:, 0]
            data = (run.data.train_tokens, run.data.train_labels, factors, run.score_bias)
            params, opt_state, loss = chunk(params, opt_state, chunk_keys[:, 0], *data)
            run = _record(run._replace(keys=run_keys, step=run.step + every), params, _phase_id(phase.objective), loss)
        return run


def with_params(run: Run, params: Params | TransformerParams) -> Run:
    """Continue ``run`` from other parameters: same step, PRNG state and training loss; its last evaluation redone.

    The surgery between two phases (transplant, reset) of the ablation arms.
    """
    if not isinstance(run, Run):
        raise ValueError(f"run must be a Run (training.start), got {type(run).__name__}")
    seeds = np.shape(run.keys)[0]
    if jax.tree.structure(params) != jax.tree.structure(run.params) or any(
        np.shape(a) != np.shape(b) for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(run.params))
    ):
        raise ValueError(f"params must have the structure and shapes of run.params ({seeds} seeds stacked)")
    last = run.rows[-1]
    with jax.numpy_dtype_promotion("standard"):
        return _record(run._replace(rows=run.rows[:-1]), params, last["phase"], last["loss"])


def history(run: Run) -> History:
    """Return the evaluations of ``run`` as a ``History``."""
    rows = run.rows

    def stacked(key):
        return np.stack([r[key] for r in rows], axis=1) if key in rows[0] else None

    return History(
        steps=np.asarray([r["step"] for r in rows]),
        phase=np.asarray([r["phase"] for r in rows]),
        test_accuracy=stacked("test_accuracy"),
        proximity=stacked("proximity"),
        train_loss=np.stack([r["loss"] for r in rows[1:]], axis=1) if len(rows) > 1 else np.zeros((len(run.keys), 0)),
        attention=rows[-1]["attention"],
        seconds=time.perf_counter() - run.started,
        params=[r["params"] for r in rows] if run.keep_params else None,
        train_accuracy=stacked("train_accuracy"),
        train_label_loss=stacked("train_label_loss"),
        test_label_loss=stacked("test_label_loss"),
        proximity_2d=stacked("proximity_2d"),
    )


def _phase_id(objective: str) -> int:
    return 0 if objective == "reconstruction" else 1


def _record(run: Run, params: Params | TransformerParams, phase: int, loss) -> Run:
    """Evaluate ``params`` at ``run.step``, log one line, and return ``run`` with the row and the params."""
    s = run.settings
    data = run.data
    metrics = _evaluator(architecture(run.config).compute_config(run.config))(
        params,
        data.test_tokens[: s.eval_size],
        data.test_labels[: s.eval_size],
        data.train_tokens[: s.eval_size],
        data.train_labels[: s.eval_size],
        run.score_bias,
    )
    row = {k: np.asarray(v) for k, v in metrics.items()}
    # the index is linear in A: the index of the mean attention map is the mean index of the sequences
    row["proximity"] = np.asarray(jax.vmap(lambda a: proximity_index(a, radius=s.radius))(row["attention"]))
    if s.width is not None:
        index_2d = jax.vmap(lambda a: proximity_index(a, radius=s.radius, width=s.width))
        row["proximity_2d"] = np.asarray(index_2d(row["attention"]))
    row.update(step=run.step, phase=phase, loss=None if loss is None else np.asarray(loss))
    if run.keep_params:
        row["params"] = params
    if run.log is not None:
        shown = "not evaluated" if loss is None else f"{np.mean(loss):.3f}"
        run.log(
            f"{run.name} step {run.step:5d}/{s.total_steps} loss {shown} test acc {np.mean(row['test_accuracy']):.3f} "
            f"proximity {np.mean(row['proximity']):+.3f} ({time.perf_counter() - run.started:.0f}s)"
        )
    return run._replace(params=params, rows=(*run.rows, row))


def _check_start(config, data, keys, settings, name, log, keep_params) -> None:
    arch = architecture(config)
    _check_settings_values(settings)
    check_bool("keep_params", keep_params)
    if not isinstance(name, str):
        raise ValueError(f"name must be a string, got {type(name).__name__}")
    if log is not None:
        check_callable("log", log)
    if not isinstance(data, Dataset):
        raise ValueError(
            f"data must be a Dataset(train_tokens, train_labels, test_tokens, test_labels), got {type(data).__name__}"
        )
    for split in ("train", "test"):
        tokens, labels = getattr(data, f"{split}_tokens"), getattr(data, f"{split}_labels")
        if np.ndim(tokens) != 2 or np.shape(tokens)[0] < 1:
            raise ValueError(f"data.{split}_tokens must have shape (b, {config.n}) with b >= 1, got {np.shape(tokens)}")
        arch.check_batch(config, tokens, labels=labels)
    check_key("keys", keys, stacked=True)


def _check_phase(run: Run, phase: Phase) -> None:
    if not isinstance(run, Run):
        raise ValueError(f"run must be a Run (training.start), got {type(run).__name__}")
    if not isinstance(phase, Phase):
        raise ValueError(f"phase must be a Phase(objective, steps, frozen), got {type(phase).__name__}")
    check_choice("phase.objective", phase.objective, OBJECTIVES)
    left = run.settings.total_steps - run.step
    check_int("phase.steps", phase.steps, 0, left)
    if phase.steps % run.settings.eval_every:
        raise ValueError(f"phase.steps must be a multiple of eval_every = {run.settings.eval_every}, got {phase.steps}")
    if not isinstance(phase.frozen, tuple):
        raise ValueError(f"phase.frozen must be a tuple of parameter fields, got {type(phase.frozen).__name__}")
    for field in phase.frozen:
        check_choice("phase.frozen", field, architecture(run.config).params_type._fields)


def phases(settings: TrainSettings, arm: str) -> tuple[Phase, ...]:
    """Return the phases of a P9 arm: supervised (``total_steps`` label steps) or SPT (reconstruction, then labels)."""
    check_settings(settings, arm)
    if arm == "spt":
        return (
            Phase("reconstruction", settings.spt_steps),
            Phase("classification", settings.total_steps - settings.spt_steps),
        )
    return (Phase("classification", settings.total_steps),)


def train(
    config: ModelConfig | TransformerConfig,
    data: Dataset,
    keys: jax.Array,
    *,
    arm: str,
    settings: TrainSettings = TrainSettings(),
    label: str = "",
    log=print,
    keep_params: bool = False,
) -> History:
    """Train one arm for every seed key in ``keys`` and evaluate along the way.

    Parameters
    ----------
    config
        Model configuration, identical for both arms: a ``ModelConfig`` (the theory model; it fixes the
        positional encoding and the query-key initialisation ``qk_init``) or a ``TransformerConfig``
        (the reference Transformer).
    data
        Train and test split; reconstruction uses ``data.train_tokens`` only.
    keys
        Stacked PRNG keys, one per seed (``jax.random.split(key, seeds)``); each seeds the
        initialisation, the mini-batches and the masks of its run.
    arm
        ``"supervised"`` (``total_steps`` label steps) or ``"spt"`` (``spt_steps`` masked
        reconstruction steps, then ``total_steps - spt_steps`` label steps).
    settings
        Optimisation and evaluation settings.
    label, log
        Progress: one short line per evaluation through ``log`` (``None``: silent).
    keep_params
        Also return the parameters at every evaluation (for analyses along the trajectory).

    Returns
    -------
    ``History``: test accuracy and proximity index (on the first ``eval_size`` test sequences)
    at step 0 and every ``eval_every`` steps, train accuracy and label losses, and the final mean
    attention maps.

    Notes
    -----
    P9. The proximity index is ``proximity.proximity_index`` of the attention on unmasked test
    sequences (``attention_maps``: the Transformer's first layer, mean over heads), radius
    ``settings.radius``. Both arms make exactly ``total_steps`` optimiser steps.
    """
    check_settings(settings, arm)
    check_key("keys", keys, stacked=True)
    plan = phases(settings, arm)
    histories = []
    for seed in range(np.shape(keys)[0]):
        name = f"{label} {arm:10s} seed {seed}"
        first = plan[0].objective
        run = start(
            config,
            data,
            keys[seed : seed + 1],
            settings=settings,
            first=first,
            name=name,
            log=log,
            keep_params=keep_params,
        )
        for phase in plan:
            run = advance(run, phase)
        histories.append(history(run))
    return merge(histories)


def merge(histories: list[History]) -> History:
    """Join the histories of runs with the same evaluation steps along the seed axis (``seconds``: their sum)."""
    first = histories[0]

    def joined(field, values):
        if field in ("steps", "phase"):
            return values[0]
        if field == "seconds":
            return float(sum(values))
        if values[0] is None:
            return None
        if field == "params":
            return [jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *at) for at in zip(*values)]
        return np.concatenate(values)

    return History(**{f: joined(f, [getattr(h, f) for h in histories]) for f in first._fields})


def budget(settings: TrainSettings, arm: str) -> dict:
    """Optimiser steps per phase of ``arm`` (both arms sum to ``total_steps``)."""
    check_settings(settings, arm)
    spt = settings.spt_steps if arm == "spt" else 0
    return {"reconstruction_steps": spt, "label_steps": settings.total_steps - spt, "total_steps": settings.total_steps}
