"""Model configuration: a frozen, hashable dataclass that validates itself.

Being hashable, a config can be a static argument of ``jax.jit``.
"""

from dataclasses import asdict, dataclass, fields

import numpy as np

from blindspot.checks import (
    check_array,
    check_bool,
    check_choice,
    check_float,
    check_ids,
    check_int,
    check_mask,
    check_shape,
)

POSITIONAL = ("sinusoidal", "random")
SCORES = ("content_position", "position")
POOLING = ("mean", "last", "first")
RECONSTRUCTION = ("cross_entropy", "squared", "copy")
QK_INIT = ("zero", "random")


@dataclass(frozen=True, repr=False)
class ModelConfig:
    r"""Single-layer, single-head attention model (derivations/THEORY.md, "Model conventions").

    Parameters
    ----------
    n
        Sequence length, ``>= 2``.
    d
        Width of embeddings and values, ``>= 1``.
    vocab
        Vocabulary size ``V >= 2``; token ids are ``0 .. V-1`` and ``V`` is the MASK id.
    classes
        Number of classes of the classification head, ``>= 2``.
    positional
        Absolute positional encoding: ``"sinusoidal"`` or ``"random"`` (fixed Gaussian).
    centred
        Subtract the mean over positions from the encoding, so that $\sum_i p_i = 0$.
    scores
        ``"content_position"``: $S = H W H^\top/\sqrt d$; ``"position"``: $S = P W P^\top$.
    pooling
        ``"mean"``, ``"last"`` or ``"first"`` (CLS-like) pooling of the per-position features.
    residual
        Add $h_i$ to the attention output $o_i$.
    mlp
        Hidden width of the position-wise MLP $\phi(o) = W_2 \tanh(W_1 o + b_1) + b_2$; 0 = no MLP.
    mask_rate
        Fraction of masked positions for reconstruction, in (0, 1); each sequence masks
        exactly ``max(1, round(mask_rate * n))`` positions.
    reconstruction
        Reconstruction objective: ``"cross_entropy"`` or ``"squared"`` (linear head), or
        ``"copy"`` (one-hot values, identity readout, loss $-q_{i,x_i}$; see ``objectives``).
    qk_init
        ``"zero"`` ($W = 0$, uniform attention) or ``"random"`` (entries $N(0, s^2/d)$).
    qk_init_scale
        The scale $s > 0$ of the random query-key initialisation.
    qk_rank
        ``None``: $W$ is a free $d \times d$ matrix; ``r >= 1``: factored $W = W_Q W_K^\top$ of rank r.
    embedding_scale
        Standard deviation $s > 0$ of the token embeddings, drawn $N(0, s^2)$. At $s = 1$ a token
        embedding has squared norm about $d$, twice that of a sinusoidal encoding ($d/2$), so content
        outweighs position in the scores; smaller $s$ lets positions shape them.
    """

    n: int = 16
    d: int = 16
    vocab: int = 8
    classes: int = 2
    positional: str = "sinusoidal"
    centred: bool = False
    scores: str = "content_position"
    pooling: str = "mean"
    residual: bool = False
    mlp: int = 0
    mask_rate: float = 0.15
    reconstruction: str = "cross_entropy"
    qk_init: str = "zero"
    qk_init_scale: float = 0.1
    qk_rank: int | None = None
    embedding_scale: float = 1.0

    def __post_init__(self):
        check_int("n", self.n, 2)
        check_int("d", self.d, 1)
        check_int("vocab", self.vocab, 2)
        check_int("classes", self.classes, 2)
        check_choice("positional", self.positional, POSITIONAL)
        check_bool("centred", self.centred)
        check_choice("scores", self.scores, SCORES)
        check_choice("pooling", self.pooling, POOLING)
        check_bool("residual", self.residual)
        check_int("mlp", self.mlp, 0)
        check_float("mask_rate", self.mask_rate, 0.0, 1.0)
        check_choice("reconstruction", self.reconstruction, RECONSTRUCTION)
        check_choice("qk_init", self.qk_init, QK_INIT)
        check_float("qk_init_scale", self.qk_init_scale, 0.0, float("inf"))
        if self.qk_rank is not None:
            check_int("qk_rank", self.qk_rank, 1, self.d)
        check_float("embedding_scale", self.embedding_scale, 0.0, float("inf"))

    @property
    def mask_id(self) -> int:
        """Token id of MASK: ``vocab``."""
        return self.vocab

    @property
    def masked_count(self) -> int:
        """Number of masked positions per sequence: ``max(1, round(mask_rate * n))``."""
        return max(1, round(self.mask_rate * self.n))

    def check_batch(self, tokens, labels=None, masks=None, scores=None) -> None:
        """Refuse a malformed batch before any computation (values when concrete).

        ``tokens``: integer data ids of shape ``(..., n)`` in ``[0, vocab)`` (``vocab`` is MASK, which
        only masking introduces); ``labels``: integers of shape ``tokens.shape[:-1]`` in
        ``[0, classes)``; ``masks``: boolean, shape of ``tokens``, at least one masked position per
        sequence; ``scores``: floating, shape ``(..., n, n)``, finite.
        """
        check_shape("tokens", tokens, (*np.shape(tokens)[:-1], self.n))
        check_ids("tokens", tokens, 0, self.vocab - 1, note=f" (data ids; {self.vocab} is MASK)")
        if labels is not None:
            check_shape("labels", labels, np.shape(tokens)[:-1])
            check_ids("labels", labels, 0, self.classes - 1)
        if masks is not None:
            check_shape("masks", masks, np.shape(tokens))
            check_mask("masks", masks, self.n)
        if scores is not None:
            check_array("scores", scores, (*np.shape(scores)[:-2], self.n, self.n))

    def __repr__(self) -> str:
        changed = (f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default)
        return f"ModelConfig({', '.join(changed)})"

    def to_dict(self) -> dict:
        """Plain dictionary of the fields (for JSON reports)."""
        return asdict(self)


def check_config(config) -> ModelConfig:
    """Refuse anything but a ``ModelConfig``."""
    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
    return config
