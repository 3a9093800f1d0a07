r"""The single-layer theory model (``blindspot.model``) as one instance of the score-perturbation hook.

One layer, one head: ``perturbations = (delta,)`` with ``delta`` of shape (1, n, n) added to the
model's scores $S$ (of the masked input for reconstruction), and a sample is ``(tokens, target)``:
a label for ``"classification"``, a boolean mask for ``"reconstruction"``. At ``delta = 0`` the hook's
score gradients are ``jacobian.score_gradients`` and its analysis is the probe's dense route.
"""

import functools

from blindspot.checks import check_choice
from blindspot.config import ModelConfig, check_config
from blindspot.model import mask_tokens, scores
from blindspot.objectives import OBJECTIVES, classification_loss_at_scores, reconstruction_loss_at_scores


def perturbation_shapes(config: ModelConfig) -> tuple[tuple[int, int, int]]:
    """Return the hook's shapes for the theory model: one layer of one head, ``((1, n, n),)``."""
    check_config(config)
    return ((1, config.n, config.n),)


@functools.lru_cache(maxsize=64)
def hooked_loss(config: ModelConfig, objective: str):
    r"""``loss(params, (tokens, target), (delta,))``: the per-sequence loss at scores $S + \Delta_0$.

    Cached on (config, objective), so that equal arguments give the same function and ``jit``
    reuses its compilation.
    """
    check_config(config)
    check_choice("objective", objective, OBJECTIVES)

    def loss(params, sample, perturbations):
        tokens, target = sample
        (delta,) = perturbations
        if objective == "classification":
            return classification_loss_at_scores(
                params, config, tokens, target, scores(params, config, tokens) + delta[0]
            )
        s = scores(params, config, mask_tokens(config, tokens, target))
        return reconstruction_loss_at_scores(params, config, tokens, target, s + delta[0])

    return loss
