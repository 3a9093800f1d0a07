"""The streamed route against dense autodiff gradients: statistics, Gram matrix, mean, W-gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import data, jacobian, model, streamed
from blindspot.config import ModelConfig
from blindspot.tolerances import close_tolerance

N, B = 7, 5
CASES = [  # (config options, chunk): chunks 2, 3 and 4 do not divide n = 7
    (dict(residual=True, mlp=5), 3),
    (dict(pooling="first", scores="position", mlp=3), 2),
    (dict(reconstruction="copy"), 7),
    (dict(reconstruction="squared", residual=True, mlp=3, qk_rank=2), 4),
]


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


@pytest.mark.parametrize(("options", "chunk"), CASES, ids=[",".join(o) for o, _ in CASES])
@pytest.mark.parametrize("objective", ["classification", "reconstruction"])
def test_streamed_equals_dense_autodiff_at_random_init(options, chunk, objective):
    params, config, tokens, targets = _setup(options)
    target = targets[objective]
    grads = np.asarray(jacobian.score_gradients(params, config, objective, tokens, target))
    statistics, gram, mean_squared = _dense_reference(grads)
    got = streamed.streamed_gradients(params, config, objective, tokens, target, chunk=chunk)
    scale = np.abs(grads).sum() / B
    assert np.abs(grads - grads[:, :, :1]).max() > 1e-3 * scale  # the rows differ: not uniform attention
    tol = close_tolerance(grads.dtype, N * N) * scale
    for name, want, have in zip(("rows", "columns", "diagonals"), statistics, got.statistics):
        np.testing.assert_allclose(have, want, atol=tol, err_msg=name)
    np.testing.assert_allclose(got.gram, gram, atol=tol * scale, err_msg="gram")
    np.testing.assert_allclose(got.mean_squared_norm, mean_squared, atol=tol * scale, err_msg="mean")
    w_grads = jacobian.query_key_gradients(params, config, objective, tokens, target)  # autodiff through S(W)
    w_scale = float(jnp.abs(w_grads).max())
    np.testing.assert_allclose(got.query_key_gradients, w_grads, atol=close_tolerance(grads.dtype, N * N) * w_scale)


def test_two_runs_are_bit_identical_and_the_chunk_changes_only_rounding():
    params, config, tokens, targets = _setup(CASES[0][0], seed=1)
    runs = [streamed.streamed_gradients(params, config, "reconstruction", tokens, targets["reconstruction"], chunk=3)]
    runs.append(streamed.streamed_gradients(params, config, "reconstruction", tokens, targets["reconstruction"], chunk=3))
    for first, second in zip(jax.tree.leaves(runs[0]), jax.tree.leaves(runs[1])):
        assert np.array_equal(np.asarray(first), np.asarray(second))
    whole = streamed.streamed_gradients(params, config, "reconstruction", tokens, targets["reconstruction"], chunk=N)
    scale = float(jnp.abs(whole.gram).max())
    np.testing.assert_allclose(runs[0].gram, whole.gram, atol=close_tolerance(np.float64, N * N) * scale)


@pytest.mark.parametrize("chunk", [0, N + 1, 2.5, True])
def test_a_bad_chunk_is_refused_before_computing(chunk):
    params, config, tokens, targets = _setup(CASES[0][0])
    with pytest.raises(ValueError, match=rf"^chunk must be an integer in \[1, {N}\], got"):
        streamed.streamed_gradients(params, config, "classification", tokens, targets["classification"], chunk=chunk)


def test_default_chunk_keeps_a_block_near_its_size():
    assert streamed.default_chunk(64, 4096) * 64 * 4096 == streamed.BLOCK_NUMBERS
    assert streamed.default_chunk(1, 16) == 16  # a whole small matrix is one block
    assert streamed.default_chunk(2**20, 2**20) == 1
