"""Training in the minimal setup (P9): supervised from scratch vs self-pretraining then fine-tuning.

Both arms train the same model (same ``ModelConfig``, same fixed positional encoding) for the
same total number of optimiser steps: supervised runs ``total_steps`` steps of label
cross-entropy; self-pretraining (SPT) runs ``spt_steps`` steps of masked reconstruction on the
*training sequences themselves* (labels unused) and then ``total_steps - spt_steps`` steps of
label cross-entropy, with a fresh optimiser state. Several seeds train at once (``vmap``), the
steps between two evaluations run as one jitted ``lax.scan``.
"""

import dataclasses
import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from blindspot.checks import check_bool, check_callable, check_choice, check_float, check_int, check_key
from blindspot.config import ModelConfig, check_config
from blindspot.data import sample_masks
from blindspot.model import Params, check_params, init, scores
from blindspot.objectives import accuracy, classification_loss, reconstruction_loss
from blindspot.proximity import proximity_index

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
    """

    total_steps: int = 2000
    spt_steps: int = 1000
    batch: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    eval_every: int = 100
    eval_size: int = 512
    radius: int = 1


class History(NamedTuple):
    """Evaluations along training, one row per seed.

    ``steps``: optimiser steps done at each evaluation (0 = initialisation);
    ``phase``: 0 for reconstruction (SPT), 1 for label training; ``train_loss``: mean training
    loss of the ``eval_every`` steps before each evaluation after the first (``steps[1:]``: no
    training loss exists at initialisation, so none is recorded); ``attention``: mean
    attention map over the evaluation sequences at the end of training, per seed; ``params``:
    with ``keep_params``, the parameters (leading axis: seed) at every evaluation, else ``None``.
    """

    steps: Int[np.ndarray, " t"]
    phase: Int[np.ndarray, " t"]
    test_accuracy: Float[np.ndarray, "s t"]
    proximity: Float[np.ndarray, "s t"]
    train_loss: Float[np.ndarray, "s t"]
    attention: Float[np.ndarray, "s n n"]
    seconds: float
    params: list[Params] | None = None


def check_settings(settings: TrainSettings, arm: str) -> None:
    """Refuse inconsistent settings (one-line ``ValueError``)."""
    if not isinstance(settings, TrainSettings):
        raise ValueError(f"settings must be a TrainSettings, got {type(settings).__name__}")
    check_choice("arm", arm, ARMS)
    check_int("total_steps", settings.total_steps, 1)
    check_int("eval_every", settings.eval_every, 1, settings.total_steps)
    check_int("spt_steps", settings.spt_steps, 0, settings.total_steps - 1)
    check_int("batch", settings.batch, 1)
    check_int("eval_size", settings.eval_size, 1)
    check_int("radius", settings.radius, 1)
    check_float("learning_rate", settings.learning_rate, 0.0, float("inf"))
    check_float("weight_decay", settings.weight_decay, 0.0, float("inf"), open_low=False)
    if settings.total_steps % settings.eval_every or settings.spt_steps % settings.eval_every:
        raise ValueError(
            f"eval_every must divide total_steps and spt_steps, got {settings.eval_every} for "
            f"{settings.total_steps} and {settings.spt_steps}"
        )


def optimiser(settings: TrainSettings) -> optax.GradientTransformation:
    """AdamW with global-norm clipping at 1; the fixed positional buffer is not decayed.

    The buffer gets zero gradients (``stop_gradient`` in the model), so Adam leaves it unchanged;
    the weight-decay mask keeps AdamW from shrinking it.
    """

    def decayed(params: Params):
        return jax.tree_util.tree_map(lambda _: True, params)._replace(positional=False)

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(settings.learning_rate, weight_decay=settings.weight_decay, mask=decayed),
    )


def attention_maps(params: Params, config: ModelConfig, tokens: Int[Array, "b n"]) -> Float[Array, "b n n"]:
    r"""Attention matrices $A = \mathrm{softmax}_{row}(S)$ of a batch of (unmasked) sequences."""
    check_params(params, config)
    if np.ndim(tokens) != 2 or np.shape(tokens)[0] < 1:
        raise ValueError(f"tokens must have shape (b, {config.n}) with b >= 1, got {np.shape(tokens)}")
    config.check_batch(tokens)
    return jax.nn.softmax(jax.vmap(lambda x: scores(params, config, x))(tokens), axis=-1)


def _loss(objective: str, config: ModelConfig):
    def loss(params, tokens, labels, key):
        if objective == "reconstruction":
            masks = sample_masks(key, tokens.shape[0], config.n, config.mask_rate)
            return reconstruction_loss(params, config, tokens, masks)
        return classification_loss(params, config, tokens, labels)

    return loss


def _compute_config(config: ModelConfig) -> ModelConfig:
    """``config`` with the initialisation-only fields reset, so compiled steps are shared across inits."""
    return dataclasses.replace(config, qk_init="zero", qk_init_scale=ModelConfig.qk_init_scale)


@functools.lru_cache(maxsize=16)
def _chunk(config: ModelConfig, settings: TrainSettings, objective: str):
    """Jitted: ``eval_every`` optimiser steps for every seed (vmap over seeds, scan over steps).

    Cached on (config, settings, objective): both arms and both initialisations reuse one compilation.
    """
    loss = _loss(objective, config)
    opt = optimiser(settings)

    def one_seed(params, opt_state, key, tokens, labels):
        def step(carry, k):
            p, s = carry
            k_batch, k_mask = jax.random.split(k)
            idx = jax.random.randint(k_batch, (settings.batch,), 0, tokens.shape[0])
            value, grads = jax.value_and_grad(loss)(p, tokens[idx], labels[idx], k_mask)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, opt_state), values = jax.lax.scan(
            step, (params, opt_state), jax.random.split(key, settings.eval_every)
        )
        return params, opt_state, jnp.mean(values)

    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None)))


@functools.lru_cache(maxsize=16)
def _evaluator(config: ModelConfig, settings: TrainSettings):
    def one_seed(params, tokens, labels):
        acc = accuracy(params, config, tokens, labels)
        a = attention_maps(params, config, tokens)
        return acc, proximity_index(a, radius=settings.radius), jnp.mean(a, axis=0)

    return jax.jit(jax.vmap(one_seed, in_axes=(0, None, None)))


def train(
    config: ModelConfig,
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
        Model configuration, identical for both arms (it fixes the positional encoding and the
        query-key initialisation ``qk_init``).
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
    at step 0 and every ``eval_every`` steps, and the final mean attention maps.

    Notes
    -----
    P9. The proximity index is ``proximity.proximity_index`` of the attention on unmasked test
    sequences, radius ``settings.radius``. Both arms make exactly ``total_steps`` optimiser steps.
    """
    with jax.numpy_dtype_promotion("standard"):
        return _train(config, data, keys, arm, settings, label, log, keep_params)


def _train(config, data, keys, arm, settings, label, log, keep_params) -> History:
    """``train`` under standard dtype promotion (optax's Adam bias correction computes float ** int32)."""
    check_config(config)
    check_settings(settings, arm)
    check_bool("keep_params", keep_params)
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {type(label).__name__}")
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
        config.check_batch(tokens, labels=labels)
    check_key("keys", keys, stacked=True)
    start = time.perf_counter()
    init_keys, run_keys = jnp.split(jax.vmap(jax.random.split)(keys), 2, axis=1)
    params = jax.vmap(lambda k: init(k, config))(init_keys[:, 0])
    run_keys = run_keys[:, 0]
    opt = optimiser(settings)
    evaluate = _evaluator(_compute_config(config), settings)
    test_x, test_y = data.test_tokens[: settings.eval_size], data.test_labels[: settings.eval_size]
    phases = [("classification", settings.total_steps)]
    if arm == "spt":
        phases = [("reconstruction", settings.spt_steps), ("classification", settings.total_steps - settings.spt_steps)]
    steps, phase_ids, accs, proxs, losses, kept = [], [], [], [], [], []

    def record(params, step, phase, loss):
        """Evaluate and log; ``loss`` is the chunk's mean training loss, ``None`` at initialisation."""
        if keep_params:
            kept.append(params)
        acc, prox, att = evaluate(params, test_x, test_y)
        steps.append(step)
        phase_ids.append(phase)
        accs.append(np.asarray(acc))
        proxs.append(np.asarray(prox))
        if loss is not None:
            losses.append(np.asarray(loss))
        if log is not None:
            shown = "not evaluated" if loss is None else f"{np.mean(loss):.3f}"
            log(
                f"{label} {arm:10s} step {step:5d}/{settings.total_steps} "
                f"loss {shown} test acc {np.mean(acc):.3f} proximity {np.mean(prox):+.3f} "
                f"({time.perf_counter() - start:.0f}s)"
            )
        return att

    att = record(params, 0, 0 if arm == "spt" else 1, None)
    done = 0
    for phase, (objective, count) in enumerate(phases):
        phase_id = 0 if objective == "reconstruction" else 1
        opt_state = jax.vmap(opt.init)(params)
        run = _chunk(_compute_config(config), settings, objective)
        for _ in range(count // settings.eval_every):
            run_keys, chunk_keys = jnp.split(jax.vmap(jax.random.split)(run_keys), 2, axis=1)
            run_keys, chunk_keys = run_keys[:, 0], chunk_keys[:, 0]
            params, opt_state, loss = run(params, opt_state, chunk_keys, data.train_tokens, data.train_labels)
            done += settings.eval_every
            att = record(params, done, phase_id, loss)
    return History(
        steps=np.asarray(steps),
        phase=np.asarray(phase_ids),
        test_accuracy=np.stack(accs, axis=1),
        proximity=np.stack(proxs, axis=1),
        train_loss=np.stack(losses, axis=1),
        attention=np.asarray(att),
        seconds=time.perf_counter() - start,
        params=kept if keep_params else None,
    )


def budget(settings: TrainSettings, arm: str) -> dict:
    """Optimiser steps per phase of ``arm`` (both arms sum to ``total_steps``)."""
    check_settings(settings, arm)
    spt = settings.spt_steps if arm == "spt" else 0
    return {"reconstruction_steps": spt, "label_steps": settings.total_steps - spt, "total_steps": settings.total_steps}
