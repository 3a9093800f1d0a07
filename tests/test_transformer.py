import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import ModelConfig, hook, init, jacobian, objectives, transformer
from blindspot.tolerances import close_tolerance

N, D, B = 6, 4, 8
KEY = jax.random.key(0)
TOL = close_tolerance(np.float64, N * N)


@functools.cache
def _theory_params():
    """One draw serves every pooling (the parameters do not depend on it)."""
    config = ModelConfig(n=N, d=D, vocab=3, residual=True, qk_init="random", qk_init_scale=1.0)
    rng = np.random.default_rng(0)  # every parameter N(0, 1/4): a generic state, drawn without compiling anything
    return jax.tree.map(
        lambda leaf: jnp.asarray(0.5 * rng.normal(size=leaf.shape)), jax.eval_shape(lambda: init(KEY, config))
    )


def _config(pooling):
    return transformer.TransformerConfig(n=N, d=D, vocab=3, layers=1, heads=1, mlp=0, pooling=pooling, layer_norm=False)


@pytest.mark.parametrize(
    "pooling, objective", [("mean", "classification"), ("mean", "reconstruction"), ("first", "classification")]
)
def test_one_layer_one_head_equals_the_theory_model(pooling, objective):
    theory = ModelConfig(n=N, d=D, vocab=3, pooling=pooling, residual=True, qk_init="random", qk_init_scale=1.0)
    config, p = _config(pooling), _theory_params()
    rng = np.random.default_rng(1)
    tokens = jnp.asarray(rng.integers(0, 3, (B, N)))
    if objective == "classification":
        target = jnp.asarray(rng.integers(0, 2, B))
        pairs = [(transformer.classification_loss, objectives.classification_loss)]
        pairs += [(transformer.accuracy, objectives.accuracy)] if pooling == "mean" else []
    else:
        target = jnp.asarray(rng.random((B, N)).argsort(axis=1) < 2)  # two masked positions each
        pairs = [(transformer.reconstruction_loss, objectives.reconstruction_loss)]
    loss, shapes = transformer.hooked_loss(config, objective), transformer.perturbation_shapes(config)
    got = hook.score_gradients(loss, transformer.from_theory(p), (tokens, target), shapes, layer=0, chunk=3)
    want = jacobian.score_gradients(p, theory, objective, tokens, target)
    np.testing.assert_allclose(got[:, 0], want, rtol=0, atol=TOL * float(jnp.max(jnp.abs(want))))
    for mine, theirs in pairs:  # the batch functions (the signatures of blindspot.objectives)
        a = float(mine(transformer.from_theory(p), config, tokens, target))
        b = float(jax.jit(theirs, static_argnums=1)(p, theory, tokens, target))
        assert abs(a - b) <= TOL * abs(b), mine.__name__


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: transformer.TransformerConfig(d=6, heads=4), "d must be a multiple of heads = 4"),
        (lambda: transformer.TransformerConfig(positions="rotary"), "positions must be one of {sinusoidal, learned}"),
        (lambda: transformer.init(jax.random.key(0), ModelConfig()), "config must be a TransformerConfig"),
    ],
)
def test_bad_configurations_are_refused(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value) and "\n" not in str(error.value)


PAD = _config("mean").pad_id


@pytest.mark.parametrize(
    "tokens, target, message",
    [
        ([0, 3, 1, 2, 0, 1], 0, "tokens must not contain MASK = 3"),
        ([PAD, 1, 1, 2, 0, 1], 0, "tokens must leave every query a non-PAD key"),  # first pooling reads position 0
        ([0, 1, 1, 2, 9, 1], 0, "tokens must have entries in [0, 4]"),
        ([0, 1, 1, 2, 0, 1], 2, "labels must have entries in [0, 1]"),
        ([0, 1, 1, 2, 0], 0, "tokens must have shape (6,)"),
    ],
)
def test_bad_samples_are_refused(tokens, target, message):
    config = _config("first")
    params = transformer.from_theory(_theory_params())
    zeros = hook.zero_perturbations(transformer.perturbation_shapes(config))
    loss = transformer.hooked_loss(config, "classification")
    with pytest.raises(ValueError) as error:
        loss(params, (jnp.asarray(tokens), jnp.asarray(target)), zeros)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_bad_parameters_and_perturbations_are_refused():
    config = _config("mean")
    params, sample = transformer.from_theory(_theory_params()), (jnp.zeros(N, int), jnp.asarray(0))
    loss = transformer.hooked_loss(config, "classification")
    with pytest.raises(ValueError, match="perturbations must be a tuple of 1 arrays"):
        loss(params, sample, ())
    with pytest.raises(ValueError, match=r"perturbations\[0\] must have shape \(1, 6, 6\)"):
        loss(params, sample, (jnp.zeros((2, N, N)),))
    with pytest.raises(ValueError, match="params must have the structure and shapes"):
        transformer.check_params(params._replace(final_norm=transformer.Norm(jnp.ones(D), jnp.zeros(D))), config)
    with pytest.raises(ValueError, match="masks must mask at least one position per sequence, and no PAD position"):
        transformer.reconstruction_loss(params, config, jnp.array([[0, 1, 2, 1, PAD, PAD]]), jnp.arange(N)[None] == 5)


def test_embedding_scale_scales_the_token_embeddings_only():
    config = transformer.TransformerConfig(n=5, d=4, layers=1, heads=2, mlp=3, positions="learned")
    plain = transformer.init(jax.random.key(3), config)
    scaled = transformer.init(jax.random.key(3), dataclasses.replace(config, embedding_scale=0.25))
    np.testing.assert_array_equal(np.asarray(scaled.token_embedding), 0.25 * np.asarray(plain.token_embedding))
    for a, b in zip(
        jax.tree.leaves(plain._replace(token_embedding=None)), jax.tree.leaves(scaled._replace(token_embedding=None))
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
