"""The ablation arms' building blocks (no training: the arms run in the smoke figure of test_experiments.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import ablation
from blindspot.config import ModelConfig
from blindspot.model import init, positions, query_key_matrix
from blindspot.positional import interior, neighbours
from blindspot.tolerances import close_tolerance
from blindspot.training import Dataset, Phase, Run, TrainSettings, advance, trainable

CONFIG = ModelConfig(n=16, d=32, vocab=8, classes=2, residual=True, mlp=8)


def softmax_rows(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(("n", "width", "k"), [(16, None, 2), (64, 8, 4)])
def test_bias_amplitude_gives_half_the_largest_index(n, width, k):
    # scores c N alone: an interior row puts k e^c / (k e^c + n - k) on its k neighbours; e^c = (n + k) / k
    # makes that (1 + k/n) / 2, half-way from uniform (k/n) to all of it
    a = softmax_rows(ablation.prior_scores(n, width))
    mass = (a * neighbours(n, width=width)).sum(axis=1)[interior(n, width=width)]
    np.testing.assert_allclose(mass, (1 + k / n) / 2, rtol=close_tolerance(np.float64, n))
    assert ablation.neighbour_count(n, width) == k


@pytest.mark.parametrize("rank", [None, 4])
def test_prior_query_key_is_the_truncated_pushforward_at_the_first_sufficient_gain(rank):
    config = ModelConfig(n=16, d=32, vocab=8, classes=2, qk_rank=rank)
    params = init(jax.random.key(0), config)
    out, prior = ablation.prior_query_key(params, config)
    # independent route: the truncated pseudo-inverse from numpy's SVD, a = 1/sqrt(d)
    p = np.asarray(positions(params))
    u, s, vt = np.linalg.svd(p, full_matrices=False)
    keep = s > ablation.PUSHFORWARD_RTOL * s[0]
    pinv = (vt[keep].T / s[keep]) @ u[:, keep].T
    w1 = pinv @ neighbours(16).astype(float) @ pinv.T * np.sqrt(32)
    near, inside = neighbours(16), interior(16)
    index = [
        (softmax_rows(g * p @ w1 @ p.T / np.sqrt(32)) * near).sum(1)[inside].mean() - 2 / 16 for g in ablation.GAINS
    ]
    target = 0.5 * (1 - 2 / 16)
    first = next((i for i, x in enumerate(index) if x >= target), int(np.argmax(index)))
    assert prior.gain == ablation.GAINS[first]
    assert prior.positional_index == pytest.approx(index[first], abs=1e-9)
    want = ablation.GAINS[first] * w1
    if rank is not None:  # the best rank-r approximation (Eckart-Young)
        uw, sw, vtw = np.linalg.svd(want)
        want = (uw[:, :rank] * sw[:rank]) @ vtw[:rank]
    got = np.asarray(query_key_matrix(out))
    np.testing.assert_allclose(got, want, atol=close_tolerance(np.float64, 32**2) * np.abs(want).max())
    for field in ("token_embedding", "value", "classifier"):
        assert getattr(out, field) is getattr(params, field)


def test_transplant_and_complement_split_the_parameters():
    fresh, source = init(jax.random.key(1), CONFIG), init(jax.random.key(2), CONFIG)
    moved, kept = ablation.transplant(fresh, source), ablation.complement(fresh, source)
    assert moved.query_key is source.query_key and kept.query_key is fresh.query_key
    for field in ("token_embedding", "value", "mlp", "classifier", "reconstructor"):
        assert getattr(moved, field) is getattr(fresh, field) and getattr(kept, field) is getattr(source, field)


def test_every_arm_has_the_same_budget():
    settings = TrainSettings(total_steps=6, spt_steps=4, eval_every=2)
    for arm in ablation.ARMS:
        b = ablation.budget(settings, arm)
        pretrained = arm in ("spt", "transplant", "complement", "frozen_qk")  # depth: label steps only
        assert b == {
            "reconstruction_steps": 4 if pretrained else 0,
            "label_steps": 2 if pretrained else 6,
            "total_steps": 6,
        }


def test_depth_config_mirrors_the_model_with_two_layers():
    got = ablation.depth_config(CONFIG)
    want = dict(n=16, d=32, vocab=8, classes=2, layers=2, heads=1, mlp=8, positions="sinusoidal", pooling="mean")
    assert {k: getattr(got, k) for k in want} == want and not got.layer_norm and got.mask_rate == CONFIG.mask_rate
    # one layer of it, with W_K = W_O = I and no MLP, is the theory model with a residual (test_transformer.py)
    assert ablation.budget(TrainSettings(total_steps=6, spt_steps=4, eval_every=2), "depth")["label_steps"] == 6


def test_depth_config_keeps_the_embedding_scale_and_accepts_a_factored_query_key():
    got = ablation.depth_config(dataclasses.replace(CONFIG, embedding_scale=0.25, qk_rank=8))
    assert got.embedding_scale == 0.25 and got.d == CONFIG.d  # rank d per block: the factored rank is not mirrored


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pooling": "last"}, "config.pooling must be one of {mean, first} for the depth arm"),
        ({"residual": False}, "config.residual must be one of {True} for the depth arm"),
    ],
)
def test_depth_config_refuses_what_the_transformer_cannot_mirror(change, message):
    with pytest.raises(ValueError) as error:
        ablation.depth_config(dataclasses.replace(CONFIG, **change))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_trainable_zeroes_the_frozen_fields_only():
    params = init(jax.random.key(0), CONFIG)
    factors = trainable(params, ("query_key",))
    assert float(factors.query_key) == 0.0
    others = [leaf for f in params._fields if f != "query_key" for leaf in jax.tree.leaves(getattr(factors, f))]
    assert others and all(float(x) == 1.0 for x in others)


def _tiny_data():
    x = jnp.zeros((4, CONFIG.n), jnp.int32)
    y = jnp.zeros(4, jnp.int32)
    return Dataset(x, y, x, y)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": ("deep",)}, "arms must be one of"),
        ({"arms": []}, "arms must be a non-empty tuple"),
        ({"arms": ("spt",), "settings": TrainSettings(total_steps=4, spt_steps=0, eval_every=2)}, "spt_steps"),
    ],
)
def test_bad_arms_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ablation.train_arms(CONFIG, _tiny_data(), jax.random.split(jax.random.key(0), 1), log=None, **kwargs)


def test_a_phase_past_the_budget_is_refused():
    settings = TrainSettings(total_steps=6, spt_steps=4, eval_every=2)
    run = Run(CONFIG, _tiny_data(), settings, None, None, 4, (), 0.0, None)
    with pytest.raises(ValueError, match=r"phase.steps must be an integer in \[0, 2\]"):
        advance(run, Phase("classification", 4))
    with pytest.raises(ValueError, match="phase.frozen must be one of"):
        advance(run, Phase("classification", 2, ("attention",)))
