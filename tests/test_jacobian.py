import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import data, fast_paths, jacobian, model
from blindspot.config import ModelConfig
from blindspot.objectives import classification_loss_at_scores
from blindspot.tolerances import close_tolerance


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scores", ["content_position", "position"])
def test_score_and_query_key_gradients(seed, scores):
    config = ModelConfig(n=6, d=3, scores=scores, qk_init="random", mlp=4, residual=True)
    keys = jax.random.split(jax.random.key(seed), 3)
    params = model.init(keys[0], config)
    tokens = data.iid_tokens(keys[1], 4, config.n, config.vocab)
    labels = jax.random.randint(keys[2], (4,), 0, 2, jnp.int32)
    grads = jacobian.score_gradients(params, config, "classification", tokens, labels)
    ref = jax.vmap(
        lambda x, y: jax.jacfwd(classification_loss_at_scores, argnums=4)(
            params, config, x, y, model.scores(params, config, x)
        )
    )(tokens, labels)
    np.testing.assert_allclose(grads, ref, atol=close_tolerance(ref.dtype, 36) * float(jnp.abs(ref).max()))
    # chain rule through S = c H W H^T agrees with autodiff through W
    w_auto = jacobian.query_key_gradients(params, config, "classification", tokens, labels)
    scale = 1.0 if scores == "position" else 1.0 / np.sqrt(config.d)
    h = (
        jax.vmap(lambda x: model.embed(params, x))(tokens)
        if scores != "position"
        else jnp.broadcast_to(params.positional, (4, 6, 3))
    )
    np.testing.assert_allclose(
        w_auto,
        scale * jnp.einsum("bnd,bnm,bme->bde", h, ref, h),
        atol=close_tolerance(ref.dtype, 36) * float(jnp.abs(w_auto).max()),
    )
    per_sample = jacobian.parameter_gradients(
        lambda p, x, y: classification_loss_at_scores(p, config, x, y, model.scores(p, config, x)),
        params,
        tokens,
        labels,
    )
    np.testing.assert_allclose(
        per_sample.query_key, w_auto, atol=close_tolerance(ref.dtype, 36) * float(jnp.abs(w_auto).max())
    )
    assert jacobian.flatten_samples(per_sample).shape[0] == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factored_query_key_gradients_match_autodiff(seed):
    config = ModelConfig(n=6, d=3, mlp=4)
    keys = jax.random.split(jax.random.key(seed), 3)
    params = model.init(keys[0], config)
    tokens = data.iid_tokens(keys[1], 4, config.n, config.vocab)
    masks = data.sample_masks(keys[2], 4, config.n, 0.3)
    factors = fast_paths.uniform_score_factors(params, config, "reconstruction", tokens, masks)
    auto = jacobian.query_key_gradients(params, config, "reconstruction", tokens, masks)
    fast = jacobian.query_key_gradients(params, config, "reconstruction", tokens, masks, factors=factors)
    np.testing.assert_allclose(fast, auto, atol=close_tolerance(auto.dtype, 36) * float(jnp.abs(auto).max()))
