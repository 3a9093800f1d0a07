"""Training the reference Transformer with ``blindspot.training`` (through ``blindspot.architectures``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import objectives, transformer
from blindspot.architectures import architecture
from blindspot.config import ModelConfig
from blindspot.tolerances import close_tolerance
from blindspot.training import Dataset, Phase, TrainSettings, advance, budget, start, train, with_params

N, D, V, B = 6, 4, 3, 8
THEORY = ModelConfig(n=N, d=D, vocab=V, residual=True, qk_init="random", qk_init_scale=1.0)
EQUAL = transformer.TransformerConfig(n=N, d=D, vocab=V, layers=1, heads=1, mlp=0, layer_norm=False)
ONE_STEP = TrainSettings(
    total_steps=1, spt_steps=0, batch=B, learning_rate=1e-2, weight_decay=0.1, eval_every=1, eval_size=B
)


def _from_theory(p):
    """Transformer parameters equal to the theory model's: W_Q = W, W_K = I, W_O = I, no norms, a zero PAD row."""
    eye = jnp.eye(D)[None]
    attention = transformer.Attention(p.query_key[None], eye, p.value[None], eye)
    return transformer.TransformerParams(
        jnp.concatenate([p.token_embedding, jnp.zeros((1, D))]),
        p.positional,
        (transformer.Block(None, attention, None, None),),
        None,
        p.classifier,
        p.reconstructor,
    )


def _seed0(params):
    return jax.tree.map(lambda leaf: leaf[0], params)


def _max_gradient_norm(loss, params, config, data: Dataset) -> float:
    """Largest global norm of a single training sequence's label gradient (bounds every mini-batch mean's)."""

    def norm(x, y):
        grads = jax.grad(loss)(params, config, x[None], y[None])
        return jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))

    return float(jnp.max(jax.vmap(norm)(data.train_tokens, data.train_labels)))


@pytest.mark.parametrize("seed", [0, 1])
def test_one_adam_step_of_the_equal_transformer_equals_the_theory_models(seed):
    rng = np.random.default_rng(seed)
    x, y = jnp.asarray(rng.integers(0, V, (16, N))), jnp.asarray(rng.integers(0, 2, 16))
    data, keys = Dataset(x, y, x, y), jax.random.split(jax.random.key(seed), 1)
    theory = start(THEORY, data, keys, settings=ONE_STEP, log=None)
    shrunk = jax.tree.map(lambda leaf: 0.3 * leaf, _seed0(theory.params))  # small gradients: see below
    theory = with_params(theory, jax.tree.map(lambda leaf: leaf[None], shrunk))
    mapped = _from_theory(shrunk)
    # global-norm clipping at 1 would scale the two models' steps differently (the Transformer also has
    # gradients for W_K and W_O); no sequence's gradient reaching norm 1 rules it out for every mini-batch
    assert _max_gradient_norm(objectives.classification_loss, shrunk, THEORY, data) < 1
    assert _max_gradient_norm(jax.jit(transformer.classification_loss, static_argnums=1), mapped, EQUAL, data) < 1
    equal = with_params(start(EQUAL, data, keys, settings=ONE_STEP, log=None), jax.tree.map(lambda a: a[None], mapped))
    want = _seed0(advance(theory, Phase("classification", 1)).params)
    got = _seed0(advance(equal, Phase("classification", 1)).params)
    assert not np.array_equal(got.classifier.weight, mapped.classifier.weight)  # the step moved the parameters
    attention = got.blocks[0].attention
    pairs = {
        "query_key = W_Q": (want.query_key, attention.query[0]),
        "value = W_V": (want.value, attention.value[0]),
        "token_embedding (PAD row aside)": (want.token_embedding, got.token_embedding[: V + 1]),
        "positional": (want.positional, got.positional),
    }
    pairs |= {
        f"{h}.{f}": (getattr(want, h)[i], getattr(got, h)[i])
        for h in ("classifier", "reconstructor")
        for i, f in enumerate(("weight", "bias"))
    }
    for name, (a, b) in pairs.items():
        scale = max(float(jnp.max(jnp.abs(a))), 1.0)
        np.testing.assert_allclose(b, a, rtol=0, atol=close_tolerance(np.float64, N * N * D) * scale, err_msg=name)
    np.testing.assert_array_equal(got.token_embedding[V + 1], 0.0)  # PAD: no gradient, decay of zero


def _count_task(key):
    """Label: whether token 1 is the majority of 8 binary tokens (learnable without any attention pattern)."""
    x = jax.random.randint(key, (512, 8), 0, 2, jnp.int32)
    y = (jnp.sum(x, axis=1) > 4).astype(jnp.int32)
    return Dataset(x[:384], y[:384], x[384:], y[384:])


def test_a_two_layer_transformer_learns_a_tiny_task_within_the_budget():
    data = _count_task(jax.random.key(3))
    config = transformer.TransformerConfig(n=8, d=8, vocab=2, layers=2, heads=2, mlp=8)
    settings = TrainSettings(
        total_steps=300, spt_steps=100, batch=32, learning_rate=1e-2, eval_every=100, eval_size=128
    )
    h = train(config, data, jax.random.split(jax.random.key(4), 1), arm="spt", settings=settings, log=None)
    # bookkeeping: the arm's budget, one evaluation every eval_every steps, reconstruction first
    b = budget(settings, "spt")
    np.testing.assert_array_equal(h.steps, [0, 100, 200, 300])
    np.testing.assert_array_equal(h.phase, [0, 0, 1, 1])
    assert h.steps[-1] == b["total_steps"] and 100 * np.sum(h.phase[1:] == 0) == b["reconstruction_steps"]
    assert h.attention.shape == (1, 8, 8)  # the first layer's map, mean over its two heads
    np.testing.assert_allclose(h.attention.sum(-1), 1.0, rtol=close_tolerance(np.float64, 8))
    assert h.test_label_loss[0, -1] < h.test_label_loss[0, 0]
    # above the majority class by four binomial standard deviations of a guesser at that rate
    m = len(data.test_labels)
    majority = max(float(np.mean(data.test_labels)), 1 - float(np.mean(data.test_labels)))
    assert h.test_accuracy[0, -1] > majority + 4 * np.sqrt(majority * (1 - majority) / m)


def test_architecture_is_chosen_by_the_configuration_type():
    assert architecture(THEORY).params_type.__name__ == "Params"
    assert architecture(EQUAL).params_type is transformer.TransformerParams
    with pytest.raises(ValueError, match="config must be a ModelConfig or a TransformerConfig, got dict"):
        architecture({"n": 6})
