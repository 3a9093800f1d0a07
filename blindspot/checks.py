"""Input validation: one-line ``ValueError`` naming the argument and the allowed values.

JAX clamps out-of-range indices silently, so token ids, labels and masks are checked in
Python, on concrete values, before any computation. Inside a trace (``jit``, ``grad``,
``vmap``) the values are abstract and the checks are skipped: the public entry point that
started the trace has already run them.
"""

from collections.abc import Iterable

import jax
import numpy as np


def is_concrete(x) -> bool:
    """Return whether ``x`` holds values (not an abstract tracer)."""
    return not isinstance(x, jax.core.Tracer)


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[low, high]`` (``high=None``: unbounded)."""
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return int(value)


def check_float(name: str, value, low: float, high: float, *, open_low=True, open_high=True) -> float:
    """Check that ``value`` is a finite real in the interval from ``low`` to ``high``."""
    bracket = ("(" if open_low else "[") + f"{low}, {high}" + (")" if open_high else "]")
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
    if value not in allowed:
        raise ValueError(f"{name} must be one of {{{', '.join(map(str, allowed))}}}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Check that ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_finite(name: str, array) -> None:
    """Refuse NaN or infinite entries in a concrete floating array."""
    if not is_concrete(array):
        return
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got NaN or inf entries")


def check_shape(name: str, array, shape: tuple) -> None:
    """Check ``array.shape`` against ``shape`` (``None`` entries match any size)."""
    got = tuple(np.shape(array))
    if len(got) != len(shape) or any(s is not None and g != s for g, s in zip(got, shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")


def check_ids(name: str, array, low: int, high: int) -> None:
    """Check that a concrete integer array has every entry in ``[low, high]``."""
    if not is_concrete(array):
        return
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be an integer array with entries in [{low}, {high}], got dtype {a.dtype}")
    if a.size and (a.min() < low or a.max() > high):
        raise ValueError(f"{name} must have entries in [{low}, {high}], got values in [{a.min()}, {a.max()}]")


def check_mask(name: str, mask, n: int) -> None:
    """Check a boolean mask of shape ``(..., n)`` with at least one masked position per row."""
    check_shape(name, mask, (*np.shape(mask)[:-1], n))
    if not is_concrete(mask):
        return
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array, got dtype {m.dtype}")
    if not np.all(m.any(axis=-1)):
        raise ValueError(f"{name} must mask at least one position in every sequence")
