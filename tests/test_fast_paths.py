import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import data, fast_paths, model
from blindspot.config import ModelConfig
from blindspot.objectives import (
    classification_loss_at_scores,
    reconstruction_loss_at_scores,
    reconstruction_scores,
)
from blindspot.tolerances import close_tolerance

CONFIGS = [
    dict(),
    dict(mlp=5),
    dict(residual=True),
    dict(residual=True, mlp=5),
    dict(pooling="last", mlp=3),
    dict(scores="position", centred=True),
    dict(reconstruction="copy"),
    dict(reconstruction="squared", residual=True, mlp=3),
    dict(qk_rank=2),
]


def _batch(config, seed, b=5):
    keys = jax.random.split(jax.random.key(seed), 4)
    params = model.init(keys[0], config)
    tokens = data.iid_tokens(keys[1], b, config.n, config.vocab)
    labels = jax.random.randint(keys[2], (b,), 0, config.classes, jnp.int32)
    masks = data.sample_masks(keys[3], b, config.n, 0.3)
    return params, tokens, labels, masks


def _dense_reference(params, config, tokens, labels, masks):
    """Per-sample score gradients by forward-mode dense Jacobians (independent of the closed form)."""

    def cls(x, y):
        return jax.jacfwd(classification_loss_at_scores, argnums=4)(
            params, config, x, y, model.scores(params, config, x)
        )

    def rec(x, m):
        s = reconstruction_scores(params, config, x, m)
        return jax.jacfwd(reconstruction_loss_at_scores, argnums=4)(params, config, x, m, s)

    return jax.vmap(cls)(tokens, labels), jax.vmap(rec)(tokens, masks)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
def test_uniform_factors_match_autodiff(seed, kw):
    config = ModelConfig(n=7, d=4, **kw)
    params, tokens, labels, masks = _batch(config, seed)
    ref_c, ref_r = _dense_reference(params, config, tokens, labels, masks)
    got_c = fast_paths.dense_gradients(
        fast_paths.uniform_score_factors(params, config, "classification", tokens, labels)
    )
    got_r = fast_paths.dense_gradients(
        fast_paths.uniform_score_factors(params, config, "reconstruction", tokens, masks)
    )
    tol = close_tolerance(ref_c.dtype, config.n * config.d)
    assert float(jnp.abs(ref_c).max()) > 0 and float(jnp.abs(ref_r).max()) > 0
    np.testing.assert_allclose(got_c, ref_c, atol=tol * float(jnp.abs(ref_c).max()), err_msg="classification")
    np.testing.assert_allclose(got_r, ref_r, atol=tol * float(jnp.abs(ref_r).max()), err_msg="reconstruction")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kw", [dict(), dict(mlp=5), dict(residual=True), dict(scores="position")])
def test_rank_one_classification_columns(seed, kw):
    config = ModelConfig(n=9, d=4, **kw)
    params, tokens, labels, _ = _batch(config, seed)
    ref, _ = _dense_reference(params, config, tokens, labels, _batch(config, seed)[3])
    w = fast_paths.classification_column_factors(params, config, tokens, labels)
    tol = close_tolerance(ref.dtype, config.n * config.d) * float(jnp.abs(ref).max())
    np.testing.assert_allclose(jnp.broadcast_to(w[:, None, :], ref.shape), ref, atol=tol)
    np.testing.assert_allclose(w.sum(axis=1), 0.0, atol=tol * config.n)


def test_refuses_non_uniform_attention():
    config = ModelConfig(n=6, d=4, qk_init="random")
    params, tokens, labels, masks = _batch(config, 0)
    with pytest.raises(ValueError, match="W = 0"):
        fast_paths.uniform_score_factors(params, config, "reconstruction", tokens, masks)
    with pytest.raises(ValueError, match="W = 0"):
        fast_paths.classification_column_factors(params, config, tokens, labels)


@pytest.mark.parametrize("kw,match", [(dict(residual=True, mlp=3), "residual"), (dict(pooling="first"), "pooling")])
def test_rank_one_form_refuses_configurations_where_rows_differ(kw, match):
    config = ModelConfig(n=6, d=4, **kw)
    params, tokens, labels, _ = _batch(config, 0)
    with pytest.raises(ValueError, match=match):
        fast_paths.classification_column_factors(params, config, tokens, labels)
    # the control: rows of the true gradient do differ here
    ref, _ = _dense_reference(params, config, tokens, labels, _batch(config, 0)[3])
    assert float(jnp.abs(ref - ref[:, :1, :]).max()) > 100 * close_tolerance(ref.dtype) * float(jnp.abs(ref).max())


def test_refuses_bad_objective_and_batch():
    config = ModelConfig(n=6, d=4)
    params, tokens, labels, _ = _batch(config, 0)
    with pytest.raises(ValueError, match="objective"):
        fast_paths.uniform_score_factors(params, config, "labels", tokens, labels)
    with pytest.raises(ValueError, match="labels"):
        fast_paths.uniform_score_factors(params, config, "classification", tokens, labels + 5)
