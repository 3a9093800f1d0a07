"""The streamed route against dense autodiff gradients: statistics, Gram matrix, mean, W-gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import data, jacobian, model, streamed
from blindspot.config import ModelConfig
from blindspot.tolerances import close_tolerance

N, B = 7, 5
BOTH = ("classification", "reconstruction")
CASES = [  # (config options, objectives, chunk): chunks 2 and 3 do not divide n = 7
    (dict(residual=True, mlp=5), BOTH, 3),
    (dict(pooling="first", scores="position", reconstruction="squared", mlp=3, qk_rank=2), BOTH, 2),
    (dict(reconstruction="copy"), ("reconstruction",), 7),
]
COMBINATIONS = [(options, objective, chunk) for options, objectives, chunk in CASES for objective in objectives]
IDS = [f"{objective}-{','.join(options)}-chunk{chunk}" for options, objective, chunk in COMBINATIONS]


def _setup(options, seed=0):
    """A random-initialised model (score scale 2: far from uniform attention) and one batch."""
    config = ModelConfig(n=N, d=4, qk_init="random", qk_init_scale=2.0, **options)
    keys = jax.random.split(jax.random.key(seed), 4)
    params = model.init(keys[0], config)
    tokens = data.iid_tokens(keys[1], B, N, config.vocab)
    labels = jax.random.randint(keys[2], (B,), 0, config.classes, jnp.int32)
    masks = data.sample_masks(keys[3], B, N, 0.3)
    return params, config, tokens, {"classification": labels, "reconstruction": masks}


def _dense_reference(grads):
    """Row, column and diagonal sums, Gram matrix and squared mean norm of dense gradients, entry by entry."""
    i, j = np.indices((N, N))
    diagonals = np.stack([[g[j - i == k].sum() for k in range(-(N - 1), N)] for g in grads])
    flat = grads.reshape(B, -1)
    return (grads.sum(2), grads.sum(1), diagonals), flat @ flat.T, np.sum(grads.mean(0) ** 2)


def _query_key_reference(params, config, objective, tokens, target, grads):
    """The chain rule c K^T G K in numpy, K the embedded (masked) input or the positional encoding."""
    positional = np.asarray(params.positional)
    if config.scores == "position":
        return np.einsum("nd,bnm,me->bde", positional, grads, positional)
    inputs = np.where(np.asarray(target), config.vocab, np.asarray(tokens)) if objective == "reconstruction" else tokens
    keys = np.asarray(params.token_embedding)[np.asarray(inputs)] + positional
    return np.einsum("bnd,bnm,bme->bde", keys, grads, keys) / np.sqrt(config.d)


@pytest.mark.parametrize(("options", "objective", "chunk"), COMBINATIONS, ids=IDS)
def test_streamed_equals_dense_autodiff_at_random_init(options, objective, chunk):
    params, config, tokens, targets = _setup(options)
    target = targets[objective]
    grads = np.asarray(jacobian.score_gradients(params, config, objective, tokens, target))
    statistics, gram, mean_squared = _dense_reference(grads)
    runs = [streamed.streamed_gradients(params, config, objective, tokens, target, chunk=chunk) for _ in range(2)]
    for first, second in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])):
        assert np.array_equal(np.asarray(first), np.asarray(second))  # deterministic: bit-identical runs
    got = runs[0]
    scale = np.abs(grads).sum() / B
    assert np.abs(grads - grads[:, :, :1]).max() > 1e-3 * scale  # the rows differ: not uniform attention
    tol = close_tolerance(grads.dtype, N * N) * scale
    for name, want, have in zip(("rows", "columns", "diagonals"), statistics, got.statistics):
        np.testing.assert_allclose(have, want, atol=tol, err_msg=name)
    np.testing.assert_allclose(got.gram, gram, atol=tol * scale, err_msg="gram")
    np.testing.assert_allclose(got.mean_squared_norm, mean_squared, atol=tol * scale, err_msg="mean")
    w_grads = _query_key_reference(params, config, objective, tokens, target, grads)
    w_tol = close_tolerance(grads.dtype, N * N) * float(np.abs(w_grads).max())
    np.testing.assert_allclose(got.query_key_gradients, w_grads, atol=w_tol, err_msg="W-gradients")


def test_masks_of_different_sizes_and_blocks_read_in_part():
    """Rows read by some samples only, a whole block read by one sample: placed rows against dense autodiff."""
    params, config, tokens, _ = _setup(CASES[0][0])
    masks = np.zeros((B, N), bool)
    masks[0, :4], masks[1, 5], masks[2, [1, 3, 6]], masks[3, 6], masks[4, [0, 4]] = True, True, True, True, True
    masks = jnp.asarray(masks)
    local = streamed.read_positions(config, "reconstruction", masks, 4)
    assert local.shape == (2, B, 4) and list(local[0, 0]) == [0, 1, 2, 3] and list(local[1, 1]) == [1, 4, 4, 4]
    grads = np.asarray(jacobian.score_gradients(params, config, "reconstruction", tokens, masks))
    statistics, gram, _ = _dense_reference(grads)
    got = streamed.streamed_gradients(params, config, "reconstruction", tokens, masks, chunk=4)
    tol = close_tolerance(grads.dtype, N * N) * np.abs(grads).sum() / B
    for name, want, have in zip(("rows", "columns", "diagonals"), statistics, got.statistics):
        np.testing.assert_allclose(have, want, atol=tol, err_msg=name)
    np.testing.assert_allclose(got.gram, gram, atol=tol * np.abs(grads).sum() / B, err_msg="gram")


@pytest.mark.parametrize("chunk", [0, N + 1, 2.5, True])
def test_a_bad_chunk_is_refused_before_computing(chunk):
    params, config, tokens, targets = _setup(CASES[0][0])
    with pytest.raises(ValueError, match=rf"^chunk must be an integer in \[1, {N}\], got"):
        streamed.streamed_gradients(params, config, "classification", tokens, targets["classification"], chunk=chunk)


def test_default_chunk_keeps_a_block_near_its_size():
    assert streamed.default_chunk(64, 4096) * 64 * 4096 == streamed.BLOCK_NUMBERS
    assert streamed.default_chunk(1, 16) == 16  # a whole small matrix is one block
    assert streamed.default_chunk(2**20, 2**20) == 1
