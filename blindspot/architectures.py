r"""The models that ``blindspot.training`` trains, selected by the type of their configuration.

An ``Architecture`` is the handful of functions a training loop needs from a model: initialise, the two
batch losses and the accuracy (each with an optional fixed score bias $B$), the attention map whose
proximity index is recorded, and the checks of its parameters and data. Two exist:

- ``ModelConfig``: the single-layer theory model (``blindspot.model``, ``blindspot.objectives``);
- ``TransformerConfig``: the reference Transformer (``blindspot.transformer``); $B$ is added to every
  layer's and head's scores, and the recorded attention map is the *first* layer's, averaged over its
  heads (the layer whose scores are formed from the token embeddings and positions themselves, as in
  the theory model; the proximity index is linear in $A$, so this is the mean of the heads' indices).
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Array, Float, Int

from blindspot import objectives, transformer
from blindspot.checks import check_array, check_ids, check_shape
from blindspot.config import ModelConfig
from blindspot.model import Params, check_params, init, scores


class Architecture(NamedTuple):
    """What training needs from a model; every function takes ``(params, config, ...)`` like ``objectives``.

    ``params_type``: the parameters' ``NamedTuple`` (its fields are what a phase can freeze);
    ``check_batch(config, tokens, labels=None)``: data ids in ``[0, vocab)`` and labels;
    ``compute_config(config)``: ``config`` with the fields that only initialisation reads reset, so that
    compiled training steps are shared between initialisations.
    """

    params_type: type
    init: Callable
    check_params: Callable
    check_batch: Callable
    classification_loss: Callable
    reconstruction_loss: Callable
    accuracy: Callable
    attention_maps: Callable
    compute_config: Callable


def architecture(config) -> Architecture:
    """Return the architecture of ``config``: the theory model for a ``ModelConfig``, else the Transformer."""
    if isinstance(config, ModelConfig):
        return THEORY
    if isinstance(config, transformer.TransformerConfig):
        return TRANSFORMER
    raise ValueError(f"config must be a ModelConfig or a TransformerConfig, got {type(config).__name__}")


def _theory_attention_maps(
    params: Params, config: ModelConfig, tokens: Int[Array, "b n"], *, score_bias: Float[Array, "n n"] | None = None
) -> Float[Array, "b n n"]:
    r"""Attention matrices $A = \mathrm{softmax}_{row}(S + B)$ of a batch of unmasked sequences (B: ``score_bias``)."""
    check_params(params, config)
    if np.ndim(tokens) != 2 or np.shape(tokens)[0] < 1:
        raise ValueError(f"tokens must have shape (b, {config.n}) with b >= 1, got {np.shape(tokens)}")
    config.check_batch(tokens)
    s = jax.vmap(lambda x: scores(params, config, x))(tokens)
    if score_bias is not None:
        check_array("score_bias", score_bias, (config.n, config.n))
        s = s + score_bias
    return jax.nn.softmax(s, axis=-1)


def _theory_compute_config(config: ModelConfig) -> ModelConfig:
    return dataclasses.replace(
        config, qk_init="zero", qk_init_scale=ModelConfig.qk_init_scale, embedding_scale=ModelConfig.embedding_scale
    )


def _first_layer_attention(params, config, tokens, *, score_bias=None) -> Float[Array, "b n n"]:
    """Return the Transformer's first-layer attention, mean over heads (the map whose proximity index is recorded)."""
    return transformer.attention_maps(params, config, tokens, score_bias=score_bias)[:, 0].mean(axis=1)


def _transformer_check_batch(config, tokens, labels=None) -> None:
    """Training data of the Transformer: data ids only (masks are drawn anywhere, so no PAD), and labels."""
    check_shape("tokens", tokens, (*np.shape(tokens)[:-1], config.n))
    check_ids("tokens", tokens, 0, config.vocab - 1, note=f" (data ids; {config.mask_id} is MASK, {config.pad_id} PAD)")
    if labels is not None:
        check_shape("labels", labels, np.shape(tokens)[:-1])
        check_ids("labels", labels, 0, config.classes - 1)


THEORY = Architecture(
    params_type=Params,
    init=init,
    check_params=check_params,
    check_batch=lambda config, tokens, labels=None: config.check_batch(tokens, labels=labels),
    classification_loss=objectives.classification_loss,
    reconstruction_loss=objectives.reconstruction_loss,
    accuracy=objectives.accuracy,
    attention_maps=_theory_attention_maps,
    compute_config=_theory_compute_config,
)
TRANSFORMER = Architecture(
    params_type=transformer.TransformerParams,
    init=transformer.init,
    check_params=transformer.check_params,
    check_batch=_transformer_check_batch,
    classification_loss=transformer.classification_loss,
    reconstruction_loss=transformer.reconstruction_loss,
    accuracy=transformer.accuracy,
    attention_maps=_first_layer_attention,
    compute_config=lambda config: config,
)
