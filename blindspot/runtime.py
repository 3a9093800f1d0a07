r"""The compiler the numbers come from (XLA:CPU without its faulty YNNPACK library fusions) and their precision.

jaxlib 0.10.2 lowers some fused reductions on CPU to YNNPACK kernels that return wrong values
under ``jit`` only: ``jax.jit(lambda y: y.sum(-1) @ jnp.ones((256, 63)))`` gives NaN or huge
numbers that change from run to run (apparently uninitialised memory), while the same function
unjitted is exact. A Gauss-Newton block $(JQ)^\top H_\ell (JQ)$ whose outer loss is linear ($H_\ell = 0$,
instantiated by JAX as a broadcast zero) is exactly that pattern, and came out NaN or inf
instead of 0. The flag ``--xla_cpu_experimental_ynn_fusion_type=`` (empty list) turns these
fusions off; XLA reads it once, when the first array is created, so the entry points (``verify``,
``probe``, the experiments and the test session) call :func:`require_sound_compiler` first.
Importing the package changes nothing. :func:`require_verification_precision` refuses to compute
without float64 and matmul precision "highest" (no TF32 on GPUs), the precision every report states.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
"""XLA flag that turns off every YNNPACK library fusion of XLA:CPU (an empty list of fusion types)."""


def _jaxlib_version() -> tuple[int, ...]:
    return tuple(int(part) for part in jax.lib.__version__.split(".")[:3] if part.isdigit())


def disable_faulty_fusions() -> None:
    """Add ``YNN_FUSION_FLAG`` to ``XLA_FLAGS`` (jaxlib >= 0.10.1, which knows the flag), unless it is set.

    Takes effect only before the first array is created in the process.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags and _jaxlib_version() >= (0, 10, 1):
        os.environ["XLA_FLAGS"] = f"{flags} {YNN_FUSION_FLAG}".strip()


@functools.cache
def check_compiler() -> None:
    r"""Refuse a compiler that miscompiles a reduction feeding a matrix product (the pattern above).

    Compares the jitted $(\sum_k Y_{abk}) \mathbf 1$ with the exact value in NumPy; integer-valued
    float32 data, so the comparison is exact. Cached: runs once per process.
    """
    y = (np.arange(63 * 256 * 32) % 7).astype(np.float32).reshape(63, 256, 32)
    expected = y.sum(-1) @ np.ones((256, 63), np.float32)
    got = np.asarray(jax.jit(lambda a: a.sum(-1) @ jnp.ones((256, 63), a.dtype))(jnp.asarray(y)))
    if not np.array_equal(got, expected):
        raise RuntimeError(
            f"XLA of jaxlib {jax.lib.__version__} miscompiles a jitted reduction feeding a matrix product on "
            f"{jax.devices()[0].platform}; set XLA_FLAGS={YNN_FUSION_FLAG} before Python starts"
        )


def require_sound_compiler() -> None:
    """Entry-point setup: turn the faulty fusions off (before any array exists), then check the compiler."""
    disable_faulty_fusions()
    check_compiler()


def require_verification_precision() -> None:
    """Refuse to compute in lower precision than every report states: float64 and matmul precision "highest".

    On GPUs the default matmul precision may use TF32 for float32 products; "highest" keeps full precision.
    """
    dtype = jnp.result_type(float)
    precision = jax.config.jax_default_matmul_precision
    if dtype != jnp.float64 or precision != "highest":
        raise RuntimeError(
            "blindspot computes in float64 with matmul precision 'highest' (jax.config.update('jax_enable_x64', True) "
            f"and jax.config.update('jax_default_matmul_precision', 'highest')), got {dtype} and {precision!r}"
        )


def use_compilation_cache(folder) -> None:
    """Keep every compiled program in ``folder`` (JAX's persistent cache), so the next process reuses it.

    Entry-point setup (``--compilation-cache``). JAX caches only programs that took over a second to
    compile unless told otherwise; the probe's are many and small, so every one is kept. Measured on an
    NVIDIA H200, a first-order probe at n = 16384 took 24.6 s in a fresh process and 7.1 s in the next one.
    """
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
