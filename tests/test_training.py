import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot.config import ModelConfig
from blindspot.data import paired_task
from blindspot.objectives import accuracy
from blindspot.proximity import proximity_index
from blindspot.tolerances import close_tolerance
from blindspot.training import Dataset, TrainSettings, attention_maps, budget, train

CONFIG = ModelConfig(n=8, d=8, vocab=4, classes=2, residual=True, mlp=8)
SETTINGS = TrainSettings(
    total_steps=6, spt_steps=4, batch=8, learning_rate=1e-2, weight_decay=0.1, eval_every=2, eval_size=16
)


def dataset(key):
    k1, k2 = jax.random.split(key)
    x, y = paired_task(k1, 32, CONFIG.n, CONFIG.vocab)
    xt, yt = paired_task(k2, 16, CONFIG.n, CONFIG.vocab)
    return Dataset(x, y, xt, yt)


def test_budget_is_the_same_for_both_arms():
    sup, spt = budget(SETTINGS, "supervised"), budget(SETTINGS, "spt")
    assert sup == {"reconstruction_steps": 0, "label_steps": 6, "total_steps": 6}
    assert spt == {"reconstruction_steps": 4, "label_steps": 2, "total_steps": 6}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spt_arm_trajectory(seed):
    key = jax.random.PRNGKey(seed)
    config = dataclasses.replace(CONFIG, qk_init="random")
    data = dataset(key)
    keys = jax.random.split(key, 2)
    h = train(config, data, keys, arm="spt", settings=SETTINGS, log=None, keep_params=True)
    np.testing.assert_array_equal(h.steps, [0, 2, 4, 6])
    np.testing.assert_array_equal(h.phase, [0, 0, 0, 1])
    assert h.test_accuracy.shape == h.proximity.shape == (2, 4)
    # step-0 metrics recomputed independently from the initial parameters of each seed
    for s in range(2):
        p0 = jax.tree_util.tree_map(lambda leaf, i=s: leaf[i], h.params[0])
        acc = accuracy(p0, config, data.test_tokens, data.test_labels)
        prox = proximity_index(attention_maps(p0, config, data.test_tokens))
        assert h.test_accuracy[s, 0] == pytest.approx(float(acc))
        assert h.proximity[s, 0] == pytest.approx(float(prox), abs=close_tolerance(jnp.float64, 64))
    first, after_spt, last = h.params[0], h.params[2], h.params[-1]
    # the fixed positional buffer never moves
    for p in h.params:
        np.testing.assert_array_equal(p.positional, first.positional)
    # during reconstruction the classifier gets zero gradients: AdamW only decays it, (1 - lr wd)^steps
    factor = (1 - SETTINGS.learning_rate * SETTINGS.weight_decay) ** SETTINGS.spt_steps
    np.testing.assert_allclose(after_spt.classifier.weight, factor * first.classifier.weight, rtol=1e-12)
    # and the query-key matrix and reconstruction head did train
    assert not np.allclose(after_spt.query_key, first.query_key)
    assert not np.allclose(after_spt.reconstructor.weight, first.reconstructor.weight)
    assert not np.allclose(last.classifier.weight, after_spt.classifier.weight)


def test_zero_init_starts_uniform_and_same_keys_same_result():
    data = dataset(jax.random.PRNGKey(5))
    keys = jax.random.split(jax.random.PRNGKey(6), 2)
    lines = []
    a = train(CONFIG, data, keys, arm="supervised", settings=SETTINGS, log=lines.append)
    b = train(CONFIG, data, keys, arm="supervised", settings=SETTINGS, log=None)
    # no training loss exists at initialisation: the log says so, and none is recorded (no NaN placeholder)
    # one line per evaluation and seed (the seeds run one after another)
    assert len(lines) == 2 * len(a.steps) and "loss not evaluated" in lines[0] and "seed 1" in lines[-1]
    assert not any("nan" in line for line in lines)
    assert a.train_loss.shape == (2, len(a.steps) - 1) and np.all(np.isfinite(a.train_loss))
    assert np.all(np.abs(a.proximity[:, 0]) <= close_tolerance(jnp.float64, CONFIG.n**2))
    np.testing.assert_array_equal(a.test_accuracy, b.test_accuracy)
    np.testing.assert_array_equal(a.attention, b.attention)
    np.testing.assert_allclose(a.attention.sum(-1), 1.0, rtol=close_tolerance(jnp.float64, CONFIG.n))


def test_learns_a_token_count_task():
    # label = whether token 1 is the majority among {0, 1}: learnable without attention patterns
    key = jax.random.PRNGKey(3)
    config = ModelConfig(n=8, d=8, vocab=2, classes=2, mlp=8)
    x = jax.random.randint(key, (512, 8), 0, 2, jnp.int32)
    y = (jnp.sum(x, axis=1) > 4).astype(jnp.int32)
    data = Dataset(x[:384], y[:384], x[384:], y[384:])
    settings = TrainSettings(
        total_steps=300, spt_steps=100, batch=32, learning_rate=1e-2, eval_every=100, eval_size=128
    )
    h = train(config, data, jax.random.split(key, 1), arm="supervised", settings=settings, log=None)
    assert h.test_accuracy[0, -1] > 0.9


def test_bad_settings():
    data = dataset(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    with pytest.raises(ValueError, match="eval_every"):
        train(CONFIG, data, keys, arm="spt", settings=SETTINGS._replace(eval_every=4), log=None)
    with pytest.raises(ValueError, match="arm"):
        train(CONFIG, data, keys, arm="both", settings=SETTINGS, log=None)
    with pytest.raises(ValueError, match="spt_steps"):
        train(CONFIG, data, keys, arm="spt", settings=SETTINGS._replace(spt_steps=6), log=None)
    with pytest.raises(ValueError, match="keys"):
        train(CONFIG, data, jnp.zeros(2, jnp.uint32), arm="spt", settings=SETTINGS, log=None)
