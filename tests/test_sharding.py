import json
import os
import subprocess
import sys

import numpy as np

from blindspot.tolerances import close_tolerance

SHARD_SCRIPT = """
import json, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_default_matmul_precision", "highest")
from blindspot import data, fast_paths, jacobian, model, sharding
from blindspot.config import ModelConfig
config = ModelConfig(n=8, d=4, mlp=3)
params = model.init(jax.random.key(0), config)
tokens = data.iid_tokens(jax.random.key(1), 8, 8, config.vocab)
labels = jax.random.randint(jax.random.key(2), (8,), 0, 2, jnp.int32)
tokens, labels = sharding.shard_batch(tokens, labels)
w = fast_paths.classification_column_factors(params, config, tokens, labels)
g = jacobian.score_gradients(params, config, "classification", tokens, labels)
print(json.dumps({"devices": len(jax.devices()), "shards": len(tokens.sharding.device_set),
                  "w": w.tolist(), "g": g.tolist()}))
"""


def _run_sharded(count):
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SHARD_SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_four_host_devices_give_the_same_numbers_as_one():
    four, one = _run_sharded(4), _run_sharded(1)
    assert four["devices"] == 4 and four["shards"] == 4 and one["shards"] == 1
    tol = close_tolerance(np.float64, 64)
    np.testing.assert_allclose(four["w"], one["w"], atol=tol * np.abs(one["w"]).max())
    np.testing.assert_allclose(four["g"], one["g"], atol=tol * np.abs(one["g"]).max())
