r"""The two objectives: label supervision and masked reconstruction.

Each exists in two views. The *score-space view* (``*_at_scores``) takes one sequence and a
score matrix $S$ and holds every other parameter fixed: $L_{cls}(S)$, $L_{rec}(S)$. The
*parameter view* (``classification_loss``, ``reconstruction_loss``) computes $S$ from the
parameters and averages over a batch; its optional ``score_bias`` $B$ adds a fixed $n \times n$
perturbation to the scores of every sequence (a fixed relative-position bias: $S + B$).

Validation (``blindspot.checks``): every function checks ``params`` against ``config``, data ids in
``[0, V)`` (MASK is introduced by masking only), labels in ``[0, classes)``, boolean masks and
finite scores; the per-sequence functions are meant to be traced inside ``grad``/``vmap`` and check
values only when they are concrete.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from blindspot.checks import check_array, check_choice, check_ids, check_mask, check_shape
from blindspot.config import ModelConfig, check_config
from blindspot.model import (
    Params,
    check_params,
    class_logits_at_scores,
    features_at_scores,
    mask_tokens,
    pool,
    scores,
)


def _check_sequence(config: ModelConfig, tokens, label=None, mask=None) -> None:
    """Check one sequence: data ids of shape (n,), a label in [0, classes) or a boolean mask of shape (n,)."""
    check_config(config)
    check_shape("tokens", tokens, (config.n,))
    check_ids("tokens", tokens, 0, config.vocab - 1, note=f" (data ids; {config.vocab} is MASK)")
    if label is not None:
        check_shape("label", label, ())
        check_ids("label", label, 0, config.classes - 1)
    if mask is not None:
        check_mask("mask", mask, config.n)


def _check_batch(params, config: ModelConfig, tokens, **targets) -> None:
    """Check a batch: ``params`` fit ``config``, tokens of shape (b, n) with b >= 1, and their targets."""
    check_params(params, config)
    if np.ndim(tokens) != 2 or np.shape(tokens)[0] < 1:
        raise ValueError(f"tokens must have shape (b, {config.n}) with b >= 1, got {np.shape(tokens)}")
    config.check_batch(tokens, **targets)


def classification_loss_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], label, s: Float[Array, "n n"]
) -> Float[Array, ""]:
    """Cross-entropy of the pooled classifier of one sequence at score matrix $S$."""
    _check_sequence(config, tokens, label=label)
    return classification_loss_at_features(params, config, features_at_scores(params, config, tokens, s), label)


def classification_loss_at_features(
    params: Params, config: ModelConfig, features: Float[Array, "n d"], label
) -> Float[Array, ""]:
    """Cross-entropy of the pooled classifier given the per-position features $f_i$ (or one pooled row)."""
    check_params(params, config)
    check_array("features", features, (None, config.d))
    check_shape("label", label, ())
    check_ids("label", label, 0, config.classes - 1)
    logits = pool(config, features) @ params.classifier.weight + params.classifier.bias
    return -jax.nn.log_softmax(logits)[label]


def reconstruction_loss_at_scores(
    params: Params, config: ModelConfig, tokens: Int[Array, " n"], mask: Bool[Array, " n"], s: Float[Array, "n n"]
) -> Float[Array, ""]:
    r"""Masked reconstruction loss of one sequence at score matrix $S$ of the *masked* input.

    Mean over masked positions $i \in M$ of a per-position loss $\ell_i$ that predicts the
    original token $x_i$ from the input where every $j \in M$ carries MASK:

    - ``"cross_entropy"``: $\ell_i = -\log\mathrm{softmax}(z_i)_{x_i}$, $z_i = f_i W_r + b_r$;
    - ``"squared"``: $\ell_i = \tfrac12\lVert z_i - e_{x_i}\rVert^2$;
    - ``"copy"``: one-hot values, identity readout: $q_i = \sum_j A_{ij} e_{\tilde x_j}$ (a
      distribution over the $V + 1$ symbols of the masked input $\tilde x$) and
      $\ell_i = -q_{i, x_i}$, the attention mass on keys that carry the target token (P6).
      This readout ignores embeddings, values, residual and MLP.
    """
    _check_sequence(config, tokens, mask=mask)
    check_params(params, config)
    check_array("s", s, (config.n, config.n))
    masked = mask_tokens(config, tokens, mask)
    if config.reconstruction == "copy":
        a = jax.nn.softmax(s, axis=-1)
        hits = (masked[None, :] == tokens[:, None]).astype(a.dtype)
        per_position = -jnp.sum(a * hits, axis=-1)
        weights = mask.astype(per_position.dtype)
        return jnp.sum(weights * per_position) / jnp.sum(weights)
    return reconstruction_loss_at_features(params, config, tokens, mask, features_at_scores(params, config, masked, s))


def reconstruction_loss_at_features(
    params: Params,
    config: ModelConfig,
    tokens: Int[Array, " n"],
    mask: Bool[Array, " n"],
    features: Float[Array, "n d"],
) -> Float[Array, ""]:
    r"""Masked reconstruction loss given the per-position features of the masked input (linear heads).

    Mean over $i \in M$ of cross-entropy or squared error of $z_i = f_i W_r + b_r$ against $x_i$;
    the ``"copy"`` readout does not use features and is refused.
    """
    _check_sequence(config, tokens, mask=mask)
    check_params(params, config)
    check_array("features", features, (config.n, config.d))
    if config.reconstruction == "copy":
        raise ValueError("config.reconstruction must be one of {cross_entropy, squared} here, got 'copy'")
    z = features @ params.reconstructor.weight + params.reconstructor.bias
    if config.reconstruction == "cross_entropy":
        per_position = -jnp.take_along_axis(jax.nn.log_softmax(z), tokens[:, None], axis=-1)[:, 0]
    else:
        target = jax.nn.one_hot(tokens, config.vocab, dtype=z.dtype)
        per_position = 0.5 * jnp.sum((z - target) ** 2, axis=-1)
    weights = mask.astype(per_position.dtype)
    return jnp.sum(weights * per_position) / jnp.sum(weights)


def reconstruction_scores(params: Params, config: ModelConfig, tokens, mask) -> Float[Array, "n n"]:
    """Score matrix of the masked input of one sequence."""
    _check_sequence(config, tokens, mask=mask)
    return scores(params, config, mask_tokens(config, tokens, mask))


def classification_loss(
    params: Params,
    config: ModelConfig,
    tokens: Int[Array, "b n"],
    labels: Int[Array, " b"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    """Mean classification cross-entropy over a batch (parameter view); scores plus ``score_bias`` if given."""
    _check_batch(params, config, tokens, labels=labels)
    _check_score_bias(config, score_bias)

    def one(x, y):
        return classification_loss_at_scores(params, config, x, y, _biased(scores(params, config, x), score_bias))

    return jnp.mean(jax.vmap(one)(tokens, labels))


def reconstruction_loss(
    params: Params,
    config: ModelConfig,
    tokens: Int[Array, "b n"],
    masks: Bool[Array, "b n"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    """Mean masked reconstruction loss over a batch (parameter view); scores plus ``score_bias`` if given."""
    _check_batch(params, config, tokens, masks=masks)
    _check_score_bias(config, score_bias)

    def one(x, m):
        s = _biased(reconstruction_scores(params, config, x, m), score_bias)
        return reconstruction_loss_at_scores(params, config, x, m, s)

    return jnp.mean(jax.vmap(one)(tokens, masks))


def accuracy(
    params: Params,
    config: ModelConfig,
    tokens: Int[Array, "b n"],
    labels: Int[Array, " b"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    """Fraction of sequences whose arg-max class equals the label; scores plus ``score_bias`` if given."""
    _check_batch(params, config, tokens, labels=labels)
    _check_score_bias(config, score_bias)

    def predict(x):
        logits = class_logits_at_scores(params, config, x, _biased(scores(params, config, x), score_bias))
        return jnp.argmax(logits).astype(jnp.int32)

    return jnp.mean(jax.vmap(predict)(tokens) == jnp.asarray(labels).astype(jnp.int32))


def reconstruction_accuracy(
    params: Params, config: ModelConfig, tokens: Int[Array, "b n"], masks: Bool[Array, "b n"]
) -> Float[Array, ""]:
    r"""Fraction of masked positions whose arg-max reconstruction is the original token (linear heads).

    The prediction at a masked $i$ is $\arg\max_v (f_i W_r + b_r)_v$ with $f$ the features of the masked
    input; the mean is over every masked position of the batch (each sequence masks the same number).
    """
    _check_batch(params, config, tokens, masks=masks)
    if config.reconstruction == "copy":
        raise ValueError("config.reconstruction must be one of {cross_entropy, squared} here, got 'copy'")

    def hits(x, m):
        masked = mask_tokens(config, x, m)
        f = features_at_scores(params, config, masked, scores(params, config, masked))
        guess = jnp.argmax(f @ params.reconstructor.weight + params.reconstructor.bias, axis=-1).astype(jnp.int32)
        return jnp.sum(jnp.where(m, guess == x, False))

    return jnp.sum(jax.vmap(hits)(tokens, masks)) / jnp.sum(masks)


def _check_score_bias(config: ModelConfig, score_bias) -> None:
    if score_bias is not None:
        check_array("score_bias", score_bias, (config.n, config.n))


def _biased(s: Float[Array, "n n"], score_bias) -> Float[Array, "n n"]:
    r"""Scores $S + B$: a fixed additive score perturbation $B$ shared by every sequence (``None``: $S$)."""
    return s if score_bias is None else s + score_bias


OBJECTIVES = ("classification", "reconstruction")


def check_objective(params: Params, config: ModelConfig, objective: str, tokens, target) -> None:
    """Refuse an unknown objective name, ``params`` that do not fit ``config``, or a bad batch.

    The batch is ``tokens`` of shape (b, n) and ``target``: labels (b,) for classification, boolean
    masks (b, n) for reconstruction.
    """
    check_choice("objective", objective, OBJECTIVES)
    if objective == "classification":
        _check_batch(params, config, tokens, labels=target)
    else:
        _check_batch(params, config, tokens, masks=target)


def shared_score_loss(params: Params, config: ModelConfig, objective: str, tokens: Int[Array, "b n"], target: Array):
    r"""Batch-mean loss as a function of one score matrix $S$ shared by every sequence of the batch.

    ``objective="classification"``: ``target`` are labels (b,); ``"reconstruction"``: boolean masks
    (b, n). Returns $S \mapsto \frac1b \sum_b L_b(S)$, the score-space view of a batch used by the
    curvature and Taylor analyses (P3, P7).
    """
    check_objective(params, config, objective, tokens, target)
    one = classification_loss_at_scores if objective == "classification" else reconstruction_loss_at_scores

    def loss(s):
        check_array("s", s, (config.n, config.n))
        return jnp.mean(jax.vmap(lambda x, t: one(params, config, x, t, s))(tokens, target))

    return loss
