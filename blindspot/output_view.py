r"""The objectives as a loss of the attention outputs: $L(S) = \ell(\mathrm{softmax}(S)\, V)$.

In this model every loss depends on the scores only through the attention outputs $O = A V$,
$A = \mathrm{softmax}_{row}(S)$: the residual, the MLP, pooling and the heads act on O afterwards
(position by position, then pooled). For one sequence this module returns the three ingredients:

- the encodings K the scores are built from, $S = c\, K W K^\top$ (the input embedding H of the
  possibly masked input with $c = 1/\sqrt d$, or the positional encoding P with $c = 1$), so that the
  queries are $c K W$ and the keys K (:func:`encodings`, :func:`score_scale`);
- the values V, shape (n, r): $H W_V$, or the one-hot masked input for the copy readout (r = V + 1);
- $\ell(O)$, the loss as a function of the outputs (:func:`loss_of_outputs`).

With $g = \partial \ell / \partial O$ (n x r) the score gradient is, row by row (P1),
$\partial L / \partial S = A \circ (g V^\top - \mathrm{rowdiag}(g O^\top) \mathbf 1^\top)$, since
$\partial o_i / \partial S_{ij} = A_{ij} (v_j - o_i)$. ``fast_paths`` evaluates it at $A = \mathbf 1
\mathbf 1^\top / n$, ``streamed`` at any A, a block of query rows at a time.

The functions are per sequence and meant to be traced (inside ``vmap``, ``grad``, ``jit``): they check
shapes at trace time and values when concrete, as the score-space losses do.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from blindspot.config import ModelConfig
from blindspot.model import Params, embed, mask_tokens, position_wise, positions
from blindspot.objectives import classification_loss_at_features, reconstruction_loss_at_features


def model_inputs(config: ModelConfig, objective: str, tokens: Int[Array, " n"], target) -> Int[Array, " n"]:
    """Input ids the attention sees: the tokens (classification) or the masked tokens (reconstruction)."""
    return tokens if objective == "classification" else mask_tokens(config, tokens, target)


def score_scale(config: ModelConfig) -> float:
    r"""Return the factor c of $S = c\, K W K^\top$: $1/\sqrt d$ for content+position scores, 1 for position-only."""
    return 1.0 if config.scores == "position" else 1.0 / math.sqrt(config.d)


def encodings(params: Params, config: ModelConfig, objective: str, tokens, target) -> Float[Array, "n d"]:
    r"""Return the encodings K of $S = c\, K W K^\top$: P for position-only scores, else H of the model's input."""
    if config.scores == "position":
        return positions(params)
    return embed(params, model_inputs(config, objective, tokens, target))


def read_rows(config: ModelConfig, objective: str, target) -> Bool[Array, " n"]:
    r"""Return the rows whose outputs the loss reads: elsewhere $g_i = 0$, and so is row i of $\partial L / \partial S$.

    Reconstruction: the masked positions (``target``); classification: every row with mean pooling, the
    pooled row with first or last pooling.
    """
    if objective == "reconstruction":
        return jnp.asarray(target)
    if config.pooling == "mean":
        return jnp.ones(config.n, bool)
    return jnp.arange(config.n) == (0 if config.pooling == "first" else config.n - 1)


def values(params: Params, config: ModelConfig, objective: str, tokens, target) -> Float[Array, "n r"]:
    r"""Values V of one sequence: $H W_V$ (r = d), or $e_{\tilde x_j}$ one-hot for the copy readout (r = V + 1)."""
    inputs = model_inputs(config, objective, tokens, target)
    if objective == "reconstruction" and config.reconstruction == "copy":
        return jax.nn.one_hot(inputs, config.vocab + 1, dtype=params.value.dtype)
    return embed(params, inputs) @ params.value


def loss_of_outputs(
    params: Params, config: ModelConfig, objective: str, tokens, target, outputs: Float[Array, "n r"]
) -> Float[Array, ""]:
    r"""Return the loss $\ell(O)$ of one sequence as a function of its attention outputs $O = A V$.

    ``objective="classification"``: ``target`` is the label; ``"reconstruction"``: the boolean mask.
    The residual adds $h_i$ to $o_i$ before the MLP; the copy readout is linear,
    $\ell(O) = -\sum_{i \in M} O_{i, x_i} / |M|$ (its outputs are distributions over the masked input's
    symbols, see ``objectives.reconstruction_loss_at_scores``).
    """
    if objective == "reconstruction" and config.reconstruction == "copy":
        weights = target.astype(outputs.dtype) / jnp.sum(target.astype(outputs.dtype))
        return -jnp.sum(weights * jnp.take_along_axis(outputs, tokens[:, None], axis=1)[:, 0])
    if config.residual:
        outputs = outputs + embed(params, model_inputs(config, objective, tokens, target))
    features = position_wise(params, outputs)
    if objective == "classification":
        return classification_loss_at_features(params, config, features, target)
    return reconstruction_loss_at_features(params, config, tokens, target, features)


def output_gradient(
    params: Params, config: ModelConfig, objective: str, tokens, target, outputs: Float[Array, "n r"]
) -> Float[Array, "n r"]:
    r"""$g = \partial \ell / \partial O$ at the given outputs (autodiff of the position-wise part only)."""
    return jax.grad(loss_of_outputs, argnums=5)(params, config, objective, tokens, target, outputs)
