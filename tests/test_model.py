import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot.config import ModelConfig
from blindspot.data import iid_tokens
from blindspot.model import (
    class_logits_at_scores,
    embed,
    features_at_scores,
    init,
    query_key_matrix,
    scores,
)
from blindspot.tolerances import close_tolerance

CONFIGS = [
    ModelConfig(n=6, d=4, vocab=3, classes=3, scores=s, pooling=p, residual=r, mlp=h, qk_init=q, qk_rank=k)
    for s, p, r, h, q, k in itertools.product(
        ("content_position", "position"),
        ("mean", "last", "first"),
        (False, True),
        (0, 5),
        ("zero", "random"),
        (None, 2),
    )
]


def reference_logits(params, config, tokens):
    """Loop-by-loop numpy forward pass, written from the model's definition independently of the model code."""
    p = np.asarray(params.positional)
    h = np.asarray(params.token_embedding)[np.asarray(tokens)] + p
    qk = params.query_key
    w = np.asarray(qk[0]) @ np.asarray(qk[1]).T if isinstance(qk, tuple) else np.asarray(qk)
    n = config.n
    s = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            s[i, j] = p[i] @ w @ p[j] if config.scores == "position" else h[i] @ w @ h[j] / math.sqrt(config.d)
    a = np.exp(s - s.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    f = []
    for i in range(n):
        o = sum(a[i, j] * (h[j] @ np.asarray(params.value)) for j in range(n))
        if config.residual:
            o = o + h[i]
        if params.mlp is not None:
            m = params.mlp
            o = np.tanh(o @ np.asarray(m.w1) + np.asarray(m.b1)) @ np.asarray(m.w2) + np.asarray(m.b2)
        f.append(o)
    f = np.array(f)
    z = {"mean": f.mean(axis=0), "last": f[-1], "first": f[0]}[config.pooling]
    return z @ np.asarray(params.classifier.weight) + np.asarray(params.classifier.bias)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_forward_pass_matches_a_loop_reference(config):
    params = init(jax.random.key(0), config)
    tokens = iid_tokens(jax.random.key(1), 1, config.n, config.vocab)[0]
    logits = class_logits_at_scores(params, config, tokens, scores(params, config, tokens))
    assert logits.shape == (config.classes,)
    expected = reference_logits(params, config, tokens)
    tol = close_tolerance(logits.dtype, config.n * config.d)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("scores_kind", ["content_position", "position"])
@pytest.mark.parametrize("rank", [None, 3])
def test_zero_query_key_init_gives_uniform_attention(scores_kind, rank):
    config = ModelConfig(n=7, d=5, scores=scores_kind, qk_rank=rank, qk_init="zero")
    params = init(jax.random.key(2), config)
    assert np.all(np.asarray(query_key_matrix(params)) == 0.0)
    tokens = iid_tokens(jax.random.key(3), 1, config.n, config.vocab)[0]
    attention = jax.nn.softmax(scores(params, config, tokens), axis=-1)
    np.testing.assert_array_equal(np.asarray(attention), np.full((7, 7), 1.0 / 7))
    if rank is not None:  # factored zero init keeps W_Q random so learning is not stuck at a saddle
        assert np.abs(np.asarray(params.query_key[0])).max() > 0


def test_random_query_key_init_has_the_stated_score_scale():
    config = ModelConfig(n=8, d=64, qk_init="random", qk_init_scale=0.5)
    w = np.stack([np.asarray(query_key_matrix(init(jax.random.key(k), config))) for k in range(20)])
    # entries N(0, s^2/d): the sample variance of 20 * 64^2 entries is within 5% of s^2/d
    assert abs(w.var() / (0.5**2 / 64) - 1.0) < 0.05


def test_init_is_deterministic_for_a_key_and_differs_across_keys():
    config = ModelConfig(n=5, d=3, mlp=4, qk_init="random")
    a, b, c = init(jax.random.key(7), config), init(jax.random.key(7), config), init(jax.random.key(8), config)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.token_embedding), np.asarray(c.token_embedding))


def test_positional_encoding_receives_no_gradient():
    config = ModelConfig(n=5, d=3)
    params = init(jax.random.key(0), config)
    tokens = jnp.arange(5, dtype=jnp.int32) % config.vocab
    grads = jax.grad(lambda p: jnp.sum(features_at_scores(p, config, tokens, scores(p, config, tokens)) ** 2))(params)
    assert np.all(np.asarray(grads.positional) == 0.0)
    assert np.abs(np.asarray(grads.token_embedding)).max() > 0


def test_embedding_adds_token_and_position():
    config = ModelConfig(n=4, d=3, vocab=2)
    params = init(jax.random.key(0), config)
    tokens = jnp.array([0, 1, 2, 1], dtype=jnp.int32)  # 2 is MASK
    expected = np.asarray(params.token_embedding)[[0, 1, 2, 1]] + np.asarray(params.positional)
    np.testing.assert_array_equal(np.asarray(embed(params, tokens)), expected)


def test_embedding_scale_scales_the_token_embeddings_only():
    plain = init(jax.random.key(3), ModelConfig(n=5, d=3, mlp=4))
    scaled = init(jax.random.key(3), ModelConfig(n=5, d=3, mlp=4, embedding_scale=0.25))
    np.testing.assert_array_equal(np.asarray(scaled.token_embedding), 0.25 * np.asarray(plain.token_embedding))
    for field in ("positional", "value", "mlp", "classifier"):
        for a, b in zip(jax.tree.leaves(getattr(plain, field)), jax.tree.leaves(getattr(scaled, field))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_refuses_a_non_config():
    with pytest.raises(ValueError, match="config must be a ModelConfig"):
        init(jax.random.key(0), {"n": 4})
