r"""Tolerances derived from the floating-point type, kept in one place.

Every check in the package takes its tolerance from here: a multiple of the unit roundoff
$\epsilon$ of the dtype, scaled by the size of the computation, never a magic number.
"""

import numpy as np

from blindspot.checks import check_float


def eps(dtype) -> float:
    """Return the unit roundoff (machine epsilon) of a floating dtype."""
    return float(np.finfo(np.dtype(dtype)).eps)


def rank_tolerance(largest_singular_value: float, shape: tuple[int, ...], dtype) -> float:
    r"""Singular values below this count as zero: $\epsilon \cdot \max(\text{shape}) \cdot \sigma_1$.

    This is the threshold of ``numpy.linalg.matrix_rank``, stated explicitly so reports can print it.
    A NaN or infinite $\sigma_1$ is refused: it would make every singular value count as zero.
    """
    check_float("largest_singular_value", largest_singular_value, -float("inf"), float("inf"))
    return eps(dtype) * max(shape) * float(largest_singular_value)


def close_tolerance(dtype, size: int = 1, *, safety: float = 100.0) -> float:
    r"""Relative tolerance for comparing two computations of one quantity of ``size`` terms.

    Rounding errors of a sum of ``size`` terms grow at most like $\sqrt{size}\,\epsilon$ on average
    and $size\,\epsilon$ in the worst case; ``safety`` covers the constant factors of the
    different evaluation orders: ``safety * eps * sqrt(size)``.
    """
    return safety * eps(dtype) * float(np.sqrt(max(size, 1)))
