"""The compiler check: it passes in the test session and refuses the compiler that got the numbers wrong."""

import os
import subprocess
import sys

import jax
import pytest

from blindspot import runtime

# A Gauss-Newton block with a linear outer loss (exactly 0) at the size where jaxlib 0.10.2's XLA:CPU
# YNNPACK fusions returned garbage; run with the fusions at their default (no XLA_FLAGS).
GAUSS_NEWTON_WITH_DEFAULT_FUSIONS = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from blindspot import ModelConfig, curvature, directions, init, runtime
from blindspot.data import iid_tokens, sample_masks
from blindspot.objectives import reconstruction_loss_at_scores
n, b = 16, 256
config = ModelConfig(n=n, d=4, vocab=4, scores="position", centred=True, reconstruction="copy", mask_rate=0.25)
keys = jax.random.split(jax.random.key(0), 3)
data = (init(keys[0], config), iid_tokens(keys[1], b, n, 4), sample_masks(keys[2], b, n, 0.25))

def split(data, s, basis):
    params, tokens, masks = data
    losses = lambda y: jax.vmap(lambda x, m: reconstruction_loss_at_scores(params, config, x, m, y))(tokens, masks)
    return curvature.gauss_newton_split(losses, jnp.mean, s, basis).gauss_newton

gn = jax.jit(split)(data, jnp.zeros((n, n)), directions.toeplitz(n))
try:
    runtime.check_compiler()
    refused = False
except RuntimeError:
    refused = True
print(bool(np.any(np.asarray(gn) != 0)), refused)
"""


def test_the_session_compiler_is_sound():
    runtime.check_compiler()  # raises if conftest had not turned the faulty fusions off in time


def test_the_check_refuses_the_default_fusions_whenever_they_get_the_numbers_wrong():
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    out = subprocess.run(
        [sys.executable, "-c", GAUSS_NEWTON_WITH_DEFAULT_FUSIONS], env=env, capture_output=True, text=True, check=True
    )
    wrong, refused = (word == "True" for word in out.stdout.split())
    # The miscompiled block reads uninitialised memory, so it may come out 0 by chance: never wrong unnoticed.
    assert refused or not wrong, out.stdout
    if jax.lib.__version__ == "0.10.2":  # the release whose YNNPACK fusions miscompile this pattern
        assert refused, out.stdout


def test_verification_precision_is_required():
    runtime.require_verification_precision()  # the test session sets float64 and "highest" (conftest)
    jax.config.update("jax_default_matmul_precision", "default")
    try:
        with pytest.raises(RuntimeError, match="matmul precision 'highest'.*got float64 and 'default'"):
            runtime.require_verification_precision()
    finally:
        jax.config.update("jax_default_matmul_precision", "highest")
