"""Input validation: one-line ``ValueError`` naming the argument and the allowed values.

Where validation lives. Every public function refuses bad input before it computes:

- types, shapes and dtypes are checked always: they are static, known even inside ``jit``,
  ``grad`` and ``vmap``;
- values (id ranges, finiteness, non-empty masks) are checked whenever they are concrete. JAX
  clamps out-of-range indices silently and a NaN turns a rank into 0, so these checks run in
  NumPy on concrete arrays (also when a trace closes over them);
- public functions that run jitted work are not jitted themselves: they validate, then call a
  private jitted kernel, so no check disappears into a trace;
- functions meant to be traced (the per-sequence score-space losses and model maps that the
  analyses call inside ``grad`` and ``vmap``) check shapes and dtypes at trace time and values
  only when concrete; the public batched entry point that started the trace has checked the
  values. Whoever wraps a public function in ``jax.jit`` takes the value checks on itself.

Errors are ``ValueError`` with a one-line message ``"<argument> must ..., got ..."``.
"""

import math
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

MAX_ALLOCATION_BYTES = 2**32
"""Largest single array (4 GiB) a size argument may ask a constructor to allocate."""


def is_concrete(x) -> bool:
    """Return whether ``x`` holds values (not an abstract tracer)."""
    return not isinstance(x, jax.core.Tracer)


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[low, high]`` (``high=None``: unbounded)."""
    allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return int(value)


def check_float(name: str, value, low: float, high: float, *, open_low=True, open_high=True) -> float:
    """Check that ``value`` is a finite real in the interval from ``low`` to ``high``."""
    bracket = ("(" if open_low else "[") + f"{low}, {high}" + (")" if open_high else "]")
    if isinstance(value, bool) or not is_concrete(value) or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a real number in {bracket}, got {_short(value)}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number in {bracket}, got {value!r}") from None
    below = x <= low if open_low else x < low
    above = x >= high if open_high else x > high
    if not np.isfinite(x) or below or above:
        raise ValueError(f"{name} must be a real number in {bracket}, got {value!r}")
    return x


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """Check that ``value`` is one of the option names ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {{{', '.join(map(str, allowed))}}}, got {_short(value)}")
    return value


def check_bool(name: str, value) -> bool:
    """Check that ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {_short(value)}")
    return bool(value)


def check_callable(name: str, value) -> None:
    """Check that ``value`` can be called."""
    if not callable(value):
        raise ValueError(f"{name} must be a callable, got {_short(value)}")


def check_floating_dtype(name: str, dtype):
    """Return ``dtype`` (``None``: JAX's default float) after checking it is a real floating type."""
    if dtype is None:
        return jnp.result_type(float)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{name} must be a real floating dtype (float32, float64, ...), got {dtype!r}") from None
    if not jnp.issubdtype(resolved, jnp.floating):
        raise ValueError(f"{name} must be a real floating dtype (float32, float64, ...), got {resolved}")
    return resolved


def check_key(name: str, key, *, stacked: bool = False) -> None:
    """Check a PRNG key: a typed key (``jax.random.key``) or a raw ``uint32`` key of shape (2,).

    ``stacked=True`` expects one key per row: typed keys of shape (s,) or raw keys of shape (s, 2), s >= 1.
    """
    want = "stacked PRNG keys of shape (s,) (jax.random.key) or (s, 2) (uint32)" if stacked else "a PRNG key"
    dtype = getattr(key, "dtype", None)
    shape = tuple(np.shape(key)) if dtype is not None else None
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok = shape == () if not stacked else len(shape) == 1 and shape[0] >= 1
    else:
        raw_shape = (2,) if not stacked else (shape[0] if shape else 0, 2)
        ok = dtype == np.uint32 and shape == raw_shape and raw_shape[0] >= 1
    if not ok:
        got = f"dtype {dtype}, shape {shape}" if dtype is not None else _short(key)
        raise ValueError(f"{name} must be {want}, got {got}")


def check_allocation(name: str, shape: tuple[int, ...], dtype) -> None:
    """Refuse an array of ``shape`` above ``MAX_ALLOCATION_BYTES``, naming the size argument ``name``."""
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size > MAX_ALLOCATION_BYTES:
        raise ValueError(
            f"{name} must keep one array within {MAX_ALLOCATION_BYTES / 2**30:.0f} GiB, "
            f"got an array of shape {tuple(shape)} ({size / 2**30:.3g} GiB)"
        )


def check_array(name: str, array, shape: tuple | None = None, *, kind: str = "floating") -> None:
    """Check an array argument: array-like, dtype ``kind`` ("floating", "integer" or "bool"), shape, finite.

    ``shape`` entries ``None`` match any size. Finiteness is checked for floating arrays with
    concrete values.
    """
    dtype = _dtype_of(array)
    allowed = {"floating": jnp.floating, "integer": jnp.integer, "bool": jnp.bool_}[kind]
    if not _has_kind(dtype, allowed):
        got = f"dtype {dtype}" if dtype is not None else _short(array)
        article = "an" if kind == "integer" else "a"
        raise ValueError(f"{name} must be {article} {kind} array, got {got}")
    if shape is not None:
        check_shape(name, array, shape)
    if kind == "floating":
        check_finite(name, array)


def check_finite(name: str, array) -> None:
    """Refuse NaN or infinite entries in a concrete floating array."""
    if not is_concrete(array) or not _has_kind(_dtype_of(array), jnp.inexact):
        return
    if not _all_finite(array):
        raise ValueError(f"{name} must be finite, got NaN or inf entries")


def _all_finite(array) -> bool:
    """Large JAX arrays are reduced on their device; the rest, and arrays a trace closes over, in NumPy."""
    if isinstance(array, jax.Array) and array.size > 2**16:
        try:
            return bool(jnp.all(jnp.isfinite(array)))
        except jax.errors.ConcretizationTypeError:  # inside a trace, jnp would stage the reduction
            pass
    return bool(np.all(np.isfinite(np.asarray(array))))


def check_finite_tree(name: str, tree) -> None:
    """Check that every leaf of a pytree is a finite floating array."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        check_array(name + jax.tree_util.keystr(path), leaf)


def check_shape(name: str, array, shape: tuple) -> None:
    """Check ``array.shape`` against ``shape`` (``None`` entries match any size)."""
    got = tuple(np.shape(array))
    if len(got) != len(shape) or any(s is not None and g != s for g, s in zip(got, shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")


def check_leading_axis(name: str, arrays) -> None:
    """Check one or more arrays sharing a leading (batch) axis of size >= 1."""
    sizes = {np.shape(a)[0] if np.ndim(a) else 0 for a in arrays}
    if not arrays or len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"{name} must share one leading batch axis of size >= 1, got sizes {sorted(sizes)}")


def check_ids(name: str, array, low: int, high: int, *, note: str = "") -> None:
    """Check an integer array with entries in ``[low, high]`` (values when concrete); ``note`` explains the range."""
    dtype = _dtype_of(array)
    if not _has_kind(dtype, jnp.integer):
        raise ValueError(f"{name} must be an integer array with entries in [{low}, {high}]{note}, got dtype {dtype}")
    if not is_concrete(array):
        return
    a = np.asarray(array)
    if a.size and (a.min() < low or a.max() > high):
        raise ValueError(f"{name} must have entries in [{low}, {high}]{note}, got values in [{a.min()}, {a.max()}]")


def check_mask(name: str, mask, n: int) -> None:
    """Check a boolean mask of shape ``(..., n)`` with at least one masked position per row (when concrete)."""
    check_shape(name, mask, (*np.shape(mask)[:-1], n))
    dtype = _dtype_of(mask)
    if dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array, got dtype {dtype}")
    if not is_concrete(mask):
        return
    if not np.all(np.asarray(mask).any(axis=-1)):
        raise ValueError(f"{name} must mask at least one position in every sequence")


def _dtype_of(array):
    """Return the dtype of an array or array-like, ``None`` when it is neither."""
    dtype = getattr(array, "dtype", None)
    if dtype is not None:
        return dtype
    try:
        return np.asarray(array).dtype
    except (TypeError, ValueError):
        return None


def _has_kind(dtype, kind) -> bool:
    """Return whether ``dtype`` is a plain (not extended, e.g. PRNG key) dtype of the ``kind`` (bfloat16 included)."""
    return dtype is not None and not jax.dtypes.issubdtype(dtype, jax.dtypes.extended) and jnp.issubdtype(dtype, kind)


def _short(value) -> str:
    """``repr`` of a value, cut to one short line for an error message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
