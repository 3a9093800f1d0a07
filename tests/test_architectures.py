"""Training the reference Transformer with ``blindspot.training`` (through ``blindspot.architectures``).

That a two-layer Transformer learns a tiny task is tested beside the smoke run of the depth arm
(``tests/test_experiments.py``), whose model and settings it shares, and with them the compilations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot import transformer
from blindspot.architectures import architecture
from blindspot.config import ModelConfig
from blindspot.tolerances import close_tolerance
from blindspot.training import Dataset, Phase, TrainSettings, advance, start, with_params

N, D, V, B = 6, 4, 3, 8
THEORY = ModelConfig(n=N, d=D, vocab=V, residual=True, qk_init="random", qk_init_scale=1.0)
EQUAL = transformer.TransformerConfig(n=N, d=D, vocab=V, layers=1, heads=1, mlp=0, layer_norm=False)
ONE_STEP = TrainSettings(
    total_steps=1, spt_steps=0, batch=B, learning_rate=1e-2, weight_decay=0.1, eval_every=1, eval_size=B
)


def _seed0(params):
    return jax.tree.map(lambda leaf: leaf[0], params)


@pytest.mark.parametrize("seed", [0, 1])
def test_one_adam_step_of_the_equal_transformer_equals_the_theory_models(seed):
    rng = np.random.default_rng(seed)
    x, y = jnp.asarray(rng.integers(0, V, (16, N))), jnp.asarray(rng.integers(0, 2, 16))
    data, keys = Dataset(x, y, x, y), jax.random.split(jax.random.key(seed), 1)
    bias = jnp.asarray(0.5 * rng.normal(size=(N, N)))  # a fixed score bias: S + B in both models
    theory = start(THEORY, data, keys, settings=ONE_STEP, score_bias=bias, log=None)
    # shrunk parameters keep the mini-batch gradients below the clipping norm 1, which would scale the two
    # models' steps differently (the Transformer also has gradients for W_K and W_O): the test would fail
    shrunk = jax.tree.map(lambda leaf: 0.3 * leaf, _seed0(theory.params))
    theory = with_params(theory, jax.tree.map(lambda leaf: leaf[None], shrunk))
    mapped = transformer.from_theory(shrunk)
    equal = start(EQUAL, data, keys, settings=ONE_STEP, score_bias=bias, log=None)
    equal = with_params(equal, jax.tree.map(lambda a: a[None], mapped))
    tol = close_tolerance(np.float64, N * N * D)
    for key in ("test_label_loss", "train_label_loss", "test_accuracy", "attention", "proximity"):  # the evaluations
        a, b = theory.rows[-1][key], equal.rows[-1][key]
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=key)
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
        np.testing.assert_allclose(b, a, rtol=0, atol=tol * scale, err_msg=name)
    np.testing.assert_array_equal(got.token_embedding[V + 1], 0.0)  # PAD: no gradient, decay of zero


def test_architecture_is_chosen_by_the_configuration_type():
    assert architecture(THEORY).params_type.__name__ == "Params"
    assert architecture(EQUAL).params_type is transformer.TransformerParams
    with pytest.raises(ValueError, match="config must be a ModelConfig or a TransformerConfig, got dict"):
        architecture({"n": 6})
