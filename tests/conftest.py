"""Test session: float64 and strict dtype promotion for every test (lineax's convention).

The faulty XLA:CPU fusions are turned off before any array exists (``blindspot.runtime``). Compilation
dominates the suite's time (thousands of small programs), so the tests ask XLA for its cheapest
backend optimisation (``TEST_XLA_FLAG``, also passed to the commands the tests start): programs compile
about a fifth faster and run slower, with the same float64 arithmetic up to rounding, which every
tolerance here allows for. The package's entry points (``verify``, the probe, the experiments) keep
XLA's defaults; the benchmarks time those.
"""

import os

import jax

TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if TEST_XLA_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()

from blindspot.runtime import require_sound_compiler  # noqa: E402

require_sound_compiler()
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_default_matmul_precision", "highest")
