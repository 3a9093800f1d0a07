"""Test session: float64 and strict dtype promotion for every test (lineax's convention).

The faulty XLA:CPU fusions are turned off before any array exists (``blindspot.runtime``).
"""

import jax

from blindspot.runtime import require_sound_compiler

require_sound_compiler()
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_default_matmul_precision", "highest")
