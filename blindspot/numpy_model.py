r"""The model's losses in plain numpy, written apart from ``blindspot.model``: an independent route.

``blindspot.verify`` compares losses computed here with the theory (P1-P3), so an error in the
JAX model, in JAX, and here would have to coincide to go unnoticed. Only the parameters and the
configuration are shared with ``blindspot.model``; the conventions are the same: $h_i = e(x_i) + p_i$,
$A = \mathrm{softmax}_{row}(S)$, $o_i = \sum_j A_{ij} h_j W_V$ (plus $h_i$ with a residual),
$f_i = \phi(o_i)$ with $\phi(o) = \tanh(o W_1 + b_1) W_2 + b_2$ (identity without an MLP).
Every function takes one sequence and a score matrix $S$ (the score-space view).
"""

import numpy as np

from blindspot.config import ModelConfig
from blindspot.model import Params


def softmax_rows(s: np.ndarray) -> np.ndarray:
    r"""Row softmax $A_{ij} = e^{s_{ij} - \max_k s_{ik}} / \sum_l e^{s_{il} - \max_k s_{ik}}$."""
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def features(params: Params, config: ModelConfig, tokens, s) -> np.ndarray:
    r"""Per-position features $f_i = \phi(o_i)$ of one sequence at score matrix $S$, shape (n, d)."""
    h = np.asarray(params.token_embedding)[np.asarray(tokens)] + np.asarray(params.positional)
    o = softmax_rows(np.asarray(s)) @ (h @ np.asarray(params.value))
    if config.residual:
        o = o + h
    if params.mlp is None:
        return o
    w1, b1, w2, b2 = (np.asarray(t) for t in params.mlp)
    return np.tanh(o @ w1 + b1) @ w2 + b2


def classification_loss(params: Params, config: ModelConfig, tokens, label: int, s) -> float:
    """Cross-entropy of the pooled (mean, last or first) classifier of one sequence at score matrix $S$."""
    f = features(params, config, tokens, s)
    z = {"mean": f.mean(axis=0), "last": f[-1], "first": f[0]}[config.pooling]
    logits = z @ np.asarray(params.classifier.weight) + np.asarray(params.classifier.bias)
    return float(-_log_softmax(logits)[int(label)])


def reconstruction_loss(params: Params, config: ModelConfig, tokens, mask, s) -> float:
    r"""Masked cross-entropy reconstruction of one sequence; $S$ is the score matrix of the masked input.

    Mean over masked positions $i$ of $-\log\mathrm{softmax}(f_i W_r + b_r)_{x_i}$, with MASK (id
    ``config.vocab``) at every masked position of the input. Only the ``"cross_entropy"`` readout.
    """
    if config.reconstruction != "cross_entropy":
        raise ValueError(f"config.reconstruction must be 'cross_entropy' here, got {config.reconstruction!r}")
    tokens, mask = np.asarray(tokens), np.asarray(mask)
    f = features(params, config, np.where(mask, config.mask_id, tokens), s)
    logits = f @ np.asarray(params.reconstructor.weight) + np.asarray(params.reconstructor.bias)
    per_position = -_log_softmax(logits)[np.arange(tokens.shape[0]), tokens]
    return float(per_position[mask].mean())
