r"""A reference Transformer in pure JAX, written in the score-perturbation hook's form.

L pre-LN blocks of H heads on a sequence of n ids (head width $k = d / H$):

- input $x_i = e(\mathrm{id}_i) + p_i$, with fixed sinusoidal or learned absolute positions $p_i$;
- attention: $y = \mathrm{LN}(x)$, per head $S^h = (y W_Q^h)(y W_K^h)^\top / \sqrt k + \Delta_l^h$, entries
  outside the mask set to $-\infty$, $A^h = \mathrm{softmax}_{row}(S^h)$, and
  $x \leftarrow x + \sum_h A^h y W_V^h W_O^h$;
- MLP (width ``mlp`` > 0): $x \leftarrow x + \phi(\mathrm{LN}(x))$, $\phi(u) = \mathrm{gelu}(u W_1 + b_1) W_2 + b_2$;
- after the last block $f = \mathrm{LN}(x)$; classification pools f (mean over the non-PAD
  positions, or the first position) into a linear head with cross-entropy; masked reconstruction
  predicts each masked position's id from its $f_i$ with a linear head, cross-entropy averaged over
  the masked positions.

Ids: data ids are ``0 .. V-1``, ``V`` is MASK (put in by masking only) and ``V + 1`` is PAD: keys that
carry PAD are masked out for every query (the padding mask), and PAD positions are left out of the
mean and cannot be masked. With ``causal`` query i sees the keys $j \le i$ only. With
``layer_norm=False`` every LN is the identity; one layer and one head with $W_K = I$, $W_O = I$ and no
MLP is then the theory model with a residual, $W = W_Q$ (``blindspot.model``).

The hook: ``perturbations[l]`` of shape (H, n, n) is $\Delta_l$; ``hooked_loss(config, objective)``
is the model in the hook's form with a sample ``(tokens, target)`` (a label, or a boolean mask for
reconstruction). ``init``, ``classification_loss``, ``reconstruction_loss`` and ``accuracy`` have the
signatures of ``blindspot.model.init`` and ``blindspot.objectives`` (batch means; an optional fixed
``score_bias`` $B$ of shape (n, n) is the perturbation $\Delta_l^h = B$ of every layer and head, none:
$\Delta = 0$), and ``attention_maps`` gives every layer's and head's attention: ``blindspot.training``
trains this model through ``blindspot.architectures``.
"""

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from blindspot.checks import (
    check_allocation,
    check_array,
    check_bool,
    check_choice,
    check_finite_tree,
    check_float,
    check_floating_dtype,
    check_ids,
    check_int,
    check_key,
    check_shape,
    is_concrete,
)
from blindspot.model import Head, Params
from blindspot.positional import sinusoidal

POSITIONS = ("sinusoidal", "learned")
POOLING = ("mean", "first")
OBJECTIVES = ("classification", "reconstruction")
LAYER_NORM_EPS = 1e-5
r"""The $\epsilon$ of $\mathrm{LN}(u) = (u - \bar u) / \sqrt{\mathrm{var}\, u + \epsilon} \odot \gamma + \beta$."""


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes and options of the reference Transformer (frozen, hashable: a static ``jit`` argument).

    ``n`` >= 2 positions, width ``d`` >= 1 divisible by ``heads`` >= 1, ``vocab`` V >= 2 data ids,
    ``classes`` >= 2, ``layers`` >= 1, ``mlp`` >= 0 (hidden width, 0 = no MLP), ``positions``
    (``sinusoidal`` fixed or ``learned``), ``causal``, ``pooling`` (``mean`` or ``first``),
    ``layer_norm``, ``mask_rate`` in (0, 1) (masked positions for reconstruction training) and
    ``embedding_scale`` s > 0 (token embeddings drawn $N(0, s^2)$; learned positions stay $N(0, 1)$).
    """

    n: int = 16
    d: int = 16
    vocab: int = 8
    classes: int = 2
    layers: int = 2
    heads: int = 2
    mlp: int = 32
    positions: str = "sinusoidal"
    causal: bool = False
    pooling: str = "mean"
    layer_norm: bool = True
    mask_rate: float = 0.15
    embedding_scale: float = 1.0

    def __post_init__(self):
        check_int("n", self.n, 2)
        check_int("d", self.d, 1)
        check_int("vocab", self.vocab, 2)
        check_int("classes", self.classes, 2)
        check_int("layers", self.layers, 1)
        check_int("heads", self.heads, 1, self.d)
        if self.d % self.heads:
            raise ValueError(f"d must be a multiple of heads = {self.heads}, got {self.d}")
        check_int("mlp", self.mlp, 0)
        check_choice("positions", self.positions, POSITIONS)
        check_bool("causal", self.causal)
        check_choice("pooling", self.pooling, POOLING)
        check_bool("layer_norm", self.layer_norm)
        check_float("mask_rate", self.mask_rate, 0.0, 1.0)
        check_float("embedding_scale", self.embedding_scale, 0.0, float("inf"))

    @property
    def mask_id(self) -> int:
        """Id of MASK: ``vocab``."""
        return self.vocab

    @property
    def pad_id(self) -> int:
        """Id of PAD: ``vocab + 1``."""
        return self.vocab + 1


class Norm(NamedTuple):
    r"""Layer norm gain $\gamma$ and bias $\beta$."""

    scale: Float[Array, " d"]
    bias: Float[Array, " d"]


class Attention(NamedTuple):
    """Per-head query, key, value maps (h, d, k) and output map (h, k, d)."""

    query: Float[Array, "h d k"]
    key: Float[Array, "h d k"]
    value: Float[Array, "h d k"]
    output: Float[Array, "h k d"]


class FeedForward(NamedTuple):
    r"""Position-wise $\phi(u) = \mathrm{gelu}(u W_1 + b_1) W_2 + b_2$."""

    w1: Float[Array, "d m"]
    b1: Float[Array, " m"]
    w2: Float[Array, "m d"]
    b2: Float[Array, " d"]


class Block(NamedTuple):
    """One pre-LN block; the norms are ``None`` without layer norm, the MLP ``None`` when ``mlp = 0``."""

    attention_norm: Norm | None
    attention: Attention
    mlp_norm: Norm | None
    mlp: FeedForward | None


class TransformerParams(NamedTuple):
    """Parameters, a pytree; ``positional`` is a fixed buffer (no gradient) for sinusoidal positions."""

    token_embedding: Float[Array, "v2 d"]
    positional: Float[Array, "n d"]
    blocks: tuple[Block, ...]
    final_norm: Norm | None
    classifier: Head
    reconstructor: Head


def init(key: jax.Array, config: TransformerConfig, dtype=None) -> TransformerParams:
    r"""Draw parameters: embeddings $N(0, s^2)$, learned positions $N(0, 1)$, weights $N(0, 1/\text{fan-in})$."""
    check_key("key", key)
    _check_config(config)
    dtype = check_floating_dtype("dtype", dtype)
    check_allocation(
        "config (vocab, n, d, mlp)", (max(config.vocab + 2, config.n, config.d, config.mlp), config.d), dtype
    )
    return _init(key, config, np.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(key, config, dtype):
    n, d, h, m, v, c = config.n, config.d, config.heads, config.mlp, config.vocab, config.classes
    fan_in = {
        "embedding": config.embedding_scale**-2,
        "query": d,
        "key": d,
        "value": d,
        "output": d,
        "w1": d,
        "w2": m,
        "head": d,
    }
    shapes = {"embedding": (v + 2, d), "query": (h, d, d // h), "key": (h, d, d // h), "value": (h, d, d // h)}
    shapes |= {"output": (h, d // h, d), "w1": (d, m), "w2": (m, d), "head": (d, c + v)}
    if config.positions == "learned":
        fan_in["positional"], shapes["positional"] = 1.0, (n, d)
    draws = _normal_draws(key, shapes, fan_in, config.layers, dtype)
    zeros, ones = jnp.zeros(d, dtype), jnp.ones(d, dtype)
    norm = Norm(ones, zeros) if config.layer_norm else None

    def block(w):
        attention = Attention(w["query"], w["key"], w["value"], w["output"])
        if not m:
            return Block(norm, attention, None, None)
        return Block(norm, attention, norm, FeedForward(w["w1"], jnp.zeros(m, dtype), w["w2"], zeros))

    head = draws[0]["head"]
    return TransformerParams(
        token_embedding=draws[0]["embedding"],
        positional=draws[0]["positional"] if config.positions == "learned" else sinusoidal(n, d, dtype),
        blocks=tuple(block(w) for w in draws[1:]),
        final_norm=norm,
        classifier=Head(head[:, :c], jnp.zeros(c, dtype)),
        reconstructor=Head(head[:, c:], jnp.zeros(v, dtype)),
    )


def from_theory(params: Params) -> TransformerParams:
    r"""Return the one-layer, one-head Transformer equal to a theory model with a residual and no MLP.

    $W_Q = W$, $W_K = I$, $W_V$ = the theory model's value map, $W_O = I$, no norms, an unused PAD row; its
    ``TransformerConfig`` has ``layers=1, heads=1, mlp=0, layer_norm=False`` and the theory model's sizes.
    """
    eye = jnp.eye(params.value.shape[0], dtype=params.value.dtype)[None]
    attention = Attention(params.query_key[None], eye, params.value[None], eye)
    pad = jnp.zeros((1, params.token_embedding.shape[1]), params.token_embedding.dtype)
    return TransformerParams(
        jnp.concatenate([params.token_embedding, pad]),
        params.positional,
        (Block(None, attention, None, None),),
        None,
        params.classifier,
        params.reconstructor,
    )


def _normal_draws(key, shapes, fan_in, layers, dtype) -> list[dict]:
    r"""One $N(0, 1)$ draw cut into the arrays of the model, each scaled by $1/\sqrt{\text{fan-in}}$.

    Entry 0 holds the embedding, positions and heads; entries 1..L the weights of each block.
    """
    outer = ("embedding", "positional", "head")
    names = [[k for k in shapes if k in outer]] + [[k for k in shapes if k not in outer]] * layers
    sizes = [math.prod(shapes[k]) for group in names for k in group]
    flat = jax.random.normal(key, (sum(sizes),), dtype)
    pieces = iter(jnp.split(flat, np.cumsum(sizes)[:-1]))
    return [{k: next(pieces).reshape(shapes[k]) / math.sqrt(max(fan_in[k], 1)) for k in group} for group in names]


def _check_config(config) -> TransformerConfig:
    if not isinstance(config, TransformerConfig):
        raise ValueError(f"config must be a TransformerConfig, got {type(config).__name__}")
    return config


@functools.lru_cache(maxsize=64)
def _expected(config: TransformerConfig):
    return jax.eval_shape(lambda: init(jax.random.key(0), config))


def check_params(params, config: TransformerConfig) -> None:
    """Refuse parameters whose structure or shapes ``init(key, config)`` would not give, or non-finite ones."""
    _check_config(config)
    if not isinstance(params, TransformerParams):
        raise ValueError(f"params must be TransformerParams (transformer.init), got {type(params).__name__}")
    got, got_tree = jax.tree.flatten(params)
    want, want_tree = jax.tree.flatten(_expected(config))
    if got_tree != want_tree or any(np.shape(a) != b.shape for a, b in zip(got, want)):
        raise ValueError(f"params must have the structure and shapes init gives for {config}, got {got_tree}")
    check_finite_tree("params", params)


def perturbation_shapes(config: TransformerConfig) -> tuple[tuple[int, int, int], ...]:
    """Return the hook's shapes: ``(heads, n, n)`` for each of the ``layers`` layers."""
    _check_config(config)
    return ((config.heads, config.n, config.n),) * config.layers


def allowed(config: TransformerConfig, tokens: Int[Array, " n"]) -> Bool[Array, "n n"]:
    """Mask pattern of one sequence: ``allowed[i, j]`` when key j is not PAD (and ``j <= i`` if causal)."""
    _check_config(config)
    keys = jnp.asarray(tokens) != config.pad_id
    pattern = jnp.broadcast_to(keys[None, :], (config.n, config.n))
    return pattern & jnp.tril(jnp.ones((config.n, config.n), bool)) if config.causal else pattern


def _layer_norm(norm: Norm | None, x):
    if norm is None:
        return x
    centred = x - x.mean(-1, keepdims=True)
    return centred / jnp.sqrt((centred**2).mean(-1, keepdims=True) + LAYER_NORM_EPS) * norm.scale + norm.bias


def _attention_weights(att: Attention, y, pattern, delta):
    q = jnp.einsum("nd,hdk->hnk", y, att.query)
    k = jnp.einsum("nd,hdk->hnk", y, att.key)
    s = jnp.einsum("hnk,hmk->hnm", q, k) / math.sqrt(att.query.shape[-1]) + delta
    return jax.nn.softmax(jnp.where(pattern, s, -jnp.inf), axis=-1)


def _attention(att: Attention, y, a):
    return jnp.einsum("hnm,md,hdk,hke->ne", a, y, att.value, att.output)


def _feed_forward(mlp: FeedForward, u):
    return jax.nn.gelu(u @ mlp.w1 + mlp.b1) @ mlp.w2 + mlp.b2


def _features(params, config, inputs: Int[Array, " n"], perturbations) -> Float[Array, "n d"]:
    r"""Return the final features $f = \mathrm{LN}(x^L)$ of one (possibly masked) input at perturbations $\Delta$."""
    return _forward(params, config, inputs, perturbations)[0]


def _forward(params, config, inputs, perturbations):
    """Return the final features of one input and the attention of every layer, shape (L, H, n, n)."""
    x = jnp.asarray(params.token_embedding)[inputs] + _positions(params, config)
    pattern = allowed(config, inputs)
    maps = []
    for block, delta in zip(params.blocks, perturbations):
        y = _layer_norm(block.attention_norm, x)
        maps.append(_attention_weights(block.attention, y, pattern, delta))
        x = x + _attention(block.attention, y, maps[-1])
        if block.mlp is not None:
            x = x + _feed_forward(block.mlp, _layer_norm(block.mlp_norm, x))
    return _layer_norm(params.final_norm, x), jnp.stack(maps)


def _positions(params, config):
    fixed = config.positions == "sinusoidal"
    return jax.lax.stop_gradient(params.positional) if fixed else params.positional


def _check_inputs(params, config, objective, tokens, target) -> None:
    """Refuse bad inputs of one sample or a batch (leading axes): shapes always, values when concrete."""
    check_params(params, config)
    check_choice("objective", objective, OBJECTIVES)
    lead = np.shape(tokens)[:-1]
    check_shape("tokens", tokens, (*lead, config.n))
    check_ids("tokens", tokens, 0, config.pad_id, note=f" (data ids, or {config.pad_id} = PAD)")
    if objective == "classification":
        check_shape("labels", target, lead)
        check_ids("labels", target, 0, config.classes - 1)
    else:
        check_shape("masks", target, (*lead, config.n))
        if jnp.result_type(target) != np.bool_:
            raise ValueError(f"masks must be a boolean array, got dtype {jnp.result_type(target)}")
    if is_concrete(tokens) and is_concrete(target):
        _check_values(config, objective, np.asarray(tokens), np.asarray(target))


def _check_values(config, objective, tokens, target) -> None:
    pad = tokens == config.pad_id
    if np.any(tokens == config.mask_id):
        raise ValueError(f"tokens must not contain MASK = {config.mask_id} (masking puts it in)")
    if np.any(pad.all(-1)) or (np.any(pad[..., 0]) and (config.causal or config.pooling == "first")):
        raise ValueError("tokens must leave every query a non-PAD key (and start with a non-PAD id if causal or first)")
    if objective == "reconstruction" and (not np.all(target.any(-1)) or np.any(target & pad)):
        raise ValueError("masks must mask at least one position per sequence, and no PAD position")


def _check_perturbations(config, perturbations) -> None:
    if not isinstance(perturbations, tuple | list) or len(perturbations) != config.layers:
        raise ValueError(
            f"perturbations must be a tuple of {config.layers} arrays (one per layer), got {perturbations!r:.60}"
        )
    for layer, delta in enumerate(perturbations):
        check_array(f"perturbations[{layer}]", delta, (config.heads, config.n, config.n))


def loss_at_perturbations(params, config, objective: str, sample, perturbations) -> Float[Array, ""]:
    """Loss of one sample ``(tokens, target)`` at score perturbations (a tuple of (H, n, n), one per layer)."""
    tokens, target = sample
    _check_inputs(params, config, objective, tokens, target)
    _check_perturbations(config, perturbations)
    return _loss(params, config, objective, tokens, target, perturbations)


def _loss(params, config, objective, tokens, target, perturbations):
    if objective == "classification":
        return -jax.nn.log_softmax(_class_logits(params, config, tokens, perturbations))[target]
    inputs = jnp.where(target, config.mask_id, tokens)
    z = _features(params, config, inputs, perturbations) @ params.reconstructor.weight + params.reconstructor.bias
    hits = jax.nn.one_hot(jnp.where(target, tokens, 0), config.vocab, dtype=z.dtype)
    weights = target.astype(z.dtype)
    return -jnp.sum(weights * jnp.sum(hits * jax.nn.log_softmax(z), axis=-1)) / jnp.sum(weights)


def _class_logits(params, config, tokens: Int[Array, " n"], perturbations) -> Float[Array, " c"]:
    """Classification logits of one sequence: pooled features (mean over non-PAD, or first) into the head."""
    f = _features(params, config, tokens, perturbations)
    if config.pooling == "first":
        pooled = f[0]
    else:
        keep = (jnp.asarray(tokens) != config.pad_id).astype(f.dtype)
        pooled = keep @ f / jnp.sum(keep)
    return pooled @ params.classifier.weight + params.classifier.bias


@functools.lru_cache(maxsize=64)
def hooked_loss(config: TransformerConfig, objective: str):
    """Return the model in the hook's form, ``loss(params, (tokens, target), perturbations)`` (cached)."""
    _check_config(config)
    check_choice("objective", objective, OBJECTIVES)

    def loss(params, sample, perturbations):
        return loss_at_perturbations(params, config, objective, sample, perturbations)

    return loss


def _check_batch(params, config, objective, tokens, target, score_bias=None) -> None:
    _check_inputs(params, config, objective, tokens, target)
    if np.ndim(tokens) != 2 or np.shape(tokens)[0] < 1:
        raise ValueError(f"tokens must have shape (b, {config.n}) with b >= 1, got {np.shape(tokens)}")
    if score_bias is not None:
        check_array("score_bias", score_bias, (config.n, config.n))


def _bias_perturbations(params, config, score_bias) -> tuple:
    r"""Return the perturbations $\Delta_l^h = B$ of every layer and head for a score bias $B$ (``None``: 0)."""
    dtype = params.token_embedding.dtype
    bias = jnp.zeros((config.n, config.n), dtype) if score_bias is None else jnp.asarray(score_bias, dtype)
    return tuple(jnp.broadcast_to(bias, shape) for shape in perturbation_shapes(config))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _batch_loss(params, config, objective, tokens, target, score_bias):
    deltas = _bias_perturbations(params, config, score_bias)
    return jax.vmap(lambda x, t: _loss(params, config, objective, x, t, deltas))(tokens, target).mean()


def classification_loss(
    params,
    config,
    tokens: Int[Array, "b n"],
    labels: Int[Array, " b"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    r"""Mean classification cross-entropy over a batch; ``score_bias`` $B$ added to every layer's and head's scores."""
    _check_batch(params, config, "classification", tokens, labels, score_bias)
    return _batch_loss(params, config, "classification", tokens, labels, score_bias)


def reconstruction_loss(
    params,
    config,
    tokens: Int[Array, "b n"],
    masks: Bool[Array, "b n"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    r"""Mean masked-reconstruction cross-entropy over a batch; ``score_bias`` $B$ as in ``classification_loss``."""
    _check_batch(params, config, "reconstruction", tokens, masks, score_bias)
    return _batch_loss(params, config, "reconstruction", tokens, masks, score_bias)


def accuracy(
    params,
    config,
    tokens: Int[Array, "b n"],
    labels: Int[Array, " b"],
    *,
    score_bias: Float[Array, "n n"] | None = None,
) -> Float[Array, ""]:
    """Fraction of sequences whose arg-max class equals the label; ``score_bias`` as in ``classification_loss``."""
    _check_batch(params, config, "classification", tokens, labels, score_bias)
    return _accuracy(params, config, tokens, labels, score_bias)


@functools.partial(jax.jit, static_argnums=(1,))
def _accuracy(params, config, tokens, labels, score_bias):
    deltas = _bias_perturbations(params, config, score_bias)
    predict = jax.vmap(lambda x: jnp.argmax(_class_logits(params, config, x, deltas)).astype(jnp.int32))
    return jnp.mean(predict(tokens) == jnp.asarray(labels).astype(jnp.int32))


def attention_maps(
    params, config, tokens: Int[Array, "b n"], *, score_bias: Float[Array, "n n"] | None = None
) -> Float[Array, "b l h n n"]:
    r"""Attention $A_l^h$ of every layer and head for a batch of unmasked sequences (``score_bias`` as above)."""
    labels = jnp.zeros(np.shape(tokens)[:-1], jnp.int32)  # the classification input check, without a target
    _check_batch(params, config, "classification", tokens, labels, score_bias)
    return _attention_maps(params, config, tokens, score_bias)


@functools.partial(jax.jit, static_argnums=(1,))
def _attention_maps(params, config, tokens, score_bias):
    deltas = _bias_perturbations(params, config, score_bias)
    return jax.vmap(lambda x: _forward(params, config, x, deltas)[1])(tokens)
