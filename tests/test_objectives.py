import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from blindspot import numpy_model
from blindspot.config import ModelConfig
from blindspot.data import markov_tokens, sample_masks
from blindspot.model import init, scores
from blindspot.objectives import (
    accuracy,
    classification_loss,
    classification_loss_at_scores,
    reconstruction_accuracy,
    reconstruction_loss,
    reconstruction_loss_at_scores,
    reconstruction_scores,
)
from blindspot.tolerances import close_tolerance, eps

VARIANTS = [
    ModelConfig(n=6, d=4, vocab=3, classes=3, pooling=p, residual=r, mlp=h, reconstruction=rec, qk_init="random")
    for p, r, h, rec in itertools.product(("mean", "last"), (False, True), (0, 5), ("cross_entropy", "squared", "copy"))
]


def sample(config, seed, batch=4):
    keys = jax.random.split(jax.random.key(seed), 4)
    params = init(keys[0], config)
    tokens = markov_tokens(keys[1], batch, config.n, config.vocab, 0.6)
    labels = jax.random.randint(keys[2], (batch,), 0, config.classes, jnp.int32)
    masks = sample_masks(keys[3], batch, config.n, 0.4)
    return params, tokens, labels, masks


def score_gradients(config, seed):
    params, tokens, labels, masks = sample(config, seed)
    x, y, m = tokens[0], labels[0], masks[0]
    g_cls = jax.grad(classification_loss_at_scores, argnums=4)(params, config, x, y, scores(params, config, x))
    s_rec = reconstruction_scores(params, config, x, m)
    g_rec = jax.grad(reconstruction_loss_at_scores, argnums=4)(params, config, x, m, s_rec)
    return g_cls, g_rec


@pytest.mark.parametrize("config", VARIANTS, ids=str)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_score_gradient_has_zero_row_sums(config, seed):
    """P1 gauge: adding a constant to a row of S leaves softmax unchanged, so dL/dS 1 = 0."""
    for g in score_gradients(config, seed):
        tol = close_tolerance(g.dtype, config.n) * float(jnp.abs(g).max())
        assert float(jnp.abs(g.sum(axis=1)).max()) <= tol
        assert float(jnp.abs(g).max()) > 0  # not trivially zero


@pytest.mark.parametrize("config", VARIANTS[::3], ids=str)
def test_score_space_gradients_match_finite_differences(config):
    params, tokens, labels, masks = sample(config, 3)
    x, y, m = tokens[1], labels[1], masks[1]
    check_grads(lambda s: classification_loss_at_scores(params, config, x, y, s), (scores(params, config, x),), 2)
    s_rec = reconstruction_scores(params, config, x, m)
    check_grads(lambda s: reconstruction_loss_at_scores(params, config, x, m, s), (s_rec,), 2)


@pytest.mark.parametrize("config", VARIANTS[::5], ids=str)
def test_parameter_gradients_match_finite_differences(config):
    """Gradients of the trained parameters (the positional encoding is a fixed buffer)."""
    params, tokens, labels, masks = sample(config, 4)
    trained = {k: v for k, v in params._asdict().items() if k != "positional"}

    def with_(t):
        return params._replace(**t)

    check_grads(lambda t: classification_loss(with_(t), config, tokens, labels), (trained,), 1, modes=["rev"])
    check_grads(lambda t: reconstruction_loss(with_(t), config, tokens, masks), (trained,), 1, modes=["rev"])


def test_losses_match_hand_computed_values():
    """At uniform attention every o_i is the mean value, so the losses have elementary closed forms."""
    config = ModelConfig(n=4, d=3, vocab=3, classes=2)
    params = init(jax.random.key(0), config)
    tokens = jnp.array([[0, 1, 1, 2]], dtype=jnp.int32)
    h = np.asarray(params.token_embedding)[[0, 1, 1, 2]] + np.asarray(params.positional)
    z = h.mean(axis=0) @ np.asarray(params.value) @ np.asarray(params.classifier.weight)
    expected_cls = -(z[1] - np.log(np.exp(z).sum()))
    got = classification_loss(params, config, tokens, jnp.array([1], dtype=jnp.int32))
    assert abs(float(got) - expected_cls) <= close_tolerance(got.dtype, 12) * abs(expected_cls)

    mask = jnp.array([[False, True, False, True]])
    masked = np.asarray(params.token_embedding)[[0, 3, 1, 3]] + np.asarray(params.positional)
    zr = masked.mean(axis=0) @ np.asarray(params.value) @ np.asarray(params.reconstructor.weight)
    log_p = zr - np.log(np.exp(zr).sum())
    expected_rec = -(log_p[1] + log_p[2]) / 2
    got = reconstruction_loss(params, config, tokens, mask)
    assert abs(float(got) - expected_rec) <= close_tolerance(got.dtype, 12) * abs(expected_rec)


def test_copy_readout_is_minus_the_attention_mass_on_matching_keys():
    config = ModelConfig(n=5, d=2, vocab=3, reconstruction="copy")
    params = init(jax.random.key(0), config)
    tokens = jnp.array([[2, 2, 0, 2, 1]], dtype=jnp.int32)
    mask = jnp.array([[True, False, False, False, True]])
    # uniform attention: query 0 (token 2) sees 2 unmasked keys with token 2; query 4 (token 1) sees none
    expected = -(2 / 5 + 0 / 5) / 2
    got = reconstruction_loss(params, config, tokens, mask)
    assert abs(float(got) - expected) <= eps(got.dtype) * 4


def test_accuracy_counts_argmax_agreement():
    config = ModelConfig(n=4, d=3, vocab=3, classes=3)
    params, tokens, _, _ = sample(config, 0, batch=6)
    predictions = jnp.array(
        [
            int(
                np.argmin(
                    [
                        float(classification_loss_at_scores(params, config, x, c, scores(params, config, x)))
                        for c in range(3)
                    ]
                )
            )
            for x in tokens
        ],
        dtype=jnp.int32,
    )
    assert float(accuracy(params, config, tokens, predictions)) == 1.0
    assert float(accuracy(params, config, tokens, (predictions + 1) % 3)) == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda p, c, x, y, m: classification_loss(p, c, x.at[0, 0].set(4), y),
            r"tokens must have entries in \[0, 2\] \(data ids; 3 is MASK\)",
        ),
        (
            lambda p, c, x, y, m: classification_loss(p, c, x.at[0, 0].set(-1), y),
            r"tokens must have entries in \[0, 2\] \(data ids; 3 is MASK\)",
        ),
        (lambda p, c, x, y, m: classification_loss(p, c, x, y.at[0].set(2)), r"labels must have entries in \[0, 1\]"),
        (
            lambda p, c, x, y, m: classification_loss(p, c, x[:, :3], y),
            r"tokens must have shape \(4, 6\), got \(4, 3\)",
        ),
        (lambda p, c, x, y, m: classification_loss(p, c, x, y[:2]), r"labels must have shape \(4,\)"),
        (lambda p, c, x, y, m: classification_loss(p, c, x.astype(jnp.float64), y), r"tokens must be an integer array"),
        (lambda p, c, x, y, m: reconstruction_loss(p, c, x, m.at[0].set(False)), r"masks must mask at least one"),
        (lambda p, c, x, y, m: reconstruction_loss(p, c, x, m.astype(jnp.int32)), r"masks must be a boolean array"),
    ],
)
def test_bad_batches_are_refused_before_computing(call, message):
    config = ModelConfig(n=6, d=4, vocab=3)
    params, tokens, labels, masks = sample(config, 0)
    with pytest.raises(ValueError, match=message) as info:
        call(params, config, tokens, labels, masks)
    assert "\n" not in str(info.value)


def test_non_finite_scores_are_refused():
    config = ModelConfig(n=3, d=2)
    with pytest.raises(ValueError, match="scores must be finite"):
        config.check_batch(jnp.zeros((1, 3), jnp.int32), scores=jnp.full((1, 3, 3), jnp.nan))


def test_score_bias_is_added_to_every_sequence_s_scores():
    """Parameter view with a fixed bias B against the numpy model (an independent route) at S + B."""
    config = ModelConfig(n=6, d=4, vocab=3, classes=3, residual=True, mlp=5, qk_init="random")
    params, tokens, labels, masks = sample(config, 3)
    bias = np.asarray(jax.random.normal(jax.random.key(9), (6, 6)))
    want_cls = np.mean(
        [
            numpy_model.classification_loss(params, config, x, y, np.asarray(scores(params, config, x)) + bias)
            for x, y in zip(tokens, labels)
        ]
    )
    want_rec = np.mean(
        [
            numpy_model.reconstruction_loss(
                params, config, x, m, np.asarray(reconstruction_scores(params, config, x, m)) + bias
            )
            for x, m in zip(tokens, masks)
        ]
    )
    tol = close_tolerance(np.float64, 36)
    assert float(classification_loss(params, config, tokens, labels, score_bias=bias)) == pytest.approx(
        want_cls, rel=tol
    )
    assert float(reconstruction_loss(params, config, tokens, masks, score_bias=bias)) == pytest.approx(
        want_rec, rel=tol
    )
    assert float(classification_loss(params, config, tokens, labels)) != pytest.approx(want_cls, rel=1e-3)


def test_reconstruction_accuracy_counts_masked_hits():
    config = ModelConfig(n=6, d=4, vocab=3, classes=3, mlp=5, qk_init="random")
    params, tokens, _, masks = sample(config, 4, batch=8)
    hits = total = 0
    for x, m in zip(np.asarray(tokens), np.asarray(masks)):
        masked = np.where(m, config.mask_id, x)
        f = numpy_model.features(params, config, masked, np.asarray(scores(params, config, jnp.asarray(masked))))
        guess = np.argmax(f @ np.asarray(params.reconstructor.weight) + np.asarray(params.reconstructor.bias), axis=1)
        hits += int(np.sum((guess == x) & m))
        total += int(m.sum())
    got = jax.jit(reconstruction_accuracy, static_argnums=1)(params, config, tokens, masks)  # jitted: faster here
    assert float(got) == pytest.approx(hits / total, abs=1e-15)
