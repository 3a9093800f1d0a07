r"""Detectability of a direction family: signal, noise and the batch size at which a loss sees it.

Rank-blindness (P1-P8) asks whether *some* per-sample gradient has a component in a family F.
An optimiser follows the *mean* gradient against the noise of the per-sample gradients, so the
quantities that decide whether a loss detects F are, for the coordinates $c_s \in \mathbb R^k$ of
the per-sample gradients $g_s$ in an orthonormal basis of F (gauge projected off, see
``directions.family``), with mean $\mu = E c$ and covariance $\Sigma = \mathrm{Cov}\, c$:

- signal $\lVert \mu \rVert$, estimated without bias in its square;
- noise $\operatorname{tr} \Sigma$;
- detectability $B^*_F = \operatorname{tr}\Sigma / \lVert\mu\rVert^2$: the batch size at which the
  batch-mean gradient's component in F has signal-to-noise one (its mean has squared norm
  $\lVert\mu\rVert^2$, its fluctuation $\operatorname{tr}\Sigma / B$);
- share $\lVert \mu \rVert / \lVert E g \rVert$: how much of the mean step points into F.

The estimators take streamed :class:`Moments` (count, sum and sum of outer products of the
coordinates), accumulated block by block (:func:`moments`, :func:`combine`), so no batch of
gradients is ever held whole: memory $O(k^2)$ per family, or $O(k)$ with ``covariance=False``.
"""

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from blindspot.checks import check_bool, check_finite, check_float, check_shape

COVARIANCE_MAX_DIM = 4096
"""Largest family dimension k whose k x k coordinate covariance (for the signal's standard error) is formed."""


class Moments(NamedTuple):
    r"""Streamed sums of B coordinate vectors $c_s \in \mathbb R^k$.

    ``second`` is $\sum_s c_s c_s^\top$ (k, k), or $\sum_s \lVert c_s \rVert^2$ (a scalar) when the
    covariance is not kept (large k, such as a whole flattened gradient).
    """

    count: int
    total: Float[Array, " k"]
    second: Float[Array, "k k"] | Float[Array, ""]


class Detectability(NamedTuple):
    r"""Estimates for one family (see the module docstring); ``None`` where undefined.

    ``signal_squared`` is unbiased for $\lVert\mu\rVert^2$ and may be negative when the signal is
    below the noise floor $\operatorname{tr}\Sigma / B$; ``signal`` is its positive part's root.
    ``signal_squared_se`` is the exact standard error of ``signal_squared`` evaluated at the sample
    moments (plug-in: biased upwards at small B; ``None`` without the covariance). ``batch_star``
    is ``None`` (infinite) when the estimated signal is not positive.
    """

    count: int
    signal_squared: float
    signal_squared_se: float | None
    signal: float
    noise: float
    batch_star: float | None


def moments(coordinates: Float[Array, "b k"], *, covariance: bool = True) -> Moments:
    r"""Moments of a block of b coordinate vectors (rows of ``coordinates``), ready to :func:`combine`."""
    check_shape("coordinates", coordinates, (None, None))
    check_finite("coordinates", coordinates)
    check_bool("covariance", covariance)
    c = np.asarray(coordinates)  # b x k: on the host, no compilation per shape
    second = c.T @ c if covariance else np.sum(c**2)
    return Moments(int(c.shape[0]), c.sum(axis=0), second)


def norm_moments(count: int, mean_norm: float, squared_norm_sum: float) -> Moments:
    r"""Moments of B whole gradients from norms only: $\lVert \bar g\rVert$ and $\sum_s \lVert g_s\rVert^2$.

    Notes
    -----
    Without the covariance, :func:`estimate` needs only $\lVert \sum_s g_s\rVert$ and
    $\sum_s \lVert g_s\rVert^2$, so the sum is written in a frame whose first axis is $\bar g$: the
    whole gradient's signal and noise (for :func:`share`) from factored samples, whose dense
    $n^2$-vectors are never formed.
    """
    check_finite("mean_norm", np.asarray(mean_norm))
    check_finite("squared_norm_sum", np.asarray(squared_norm_sum))
    return Moments(int(count), np.asarray([count * mean_norm]), np.asarray(squared_norm_sum))


def combine(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two blocks (same family, same covariance setting)."""
    if a.total.shape != b.total.shape or jnp.shape(a.second) != jnp.shape(b.second):
        raise ValueError(
            f"b must have the shapes of a (total {a.total.shape}, second {jnp.shape(a.second)}), "
            f"got total {b.total.shape}, second {jnp.shape(b.second)}"
        )
    return Moments(a.count + b.count, a.total + b.total, a.second + b.second)


def estimate(m: Moments, *, resolution: float = 0.0) -> Detectability:
    r"""Signal, noise and detectability from streamed moments of $B \ge 2$ samples.

    ``resolution`` is the rounding error of one coordinate vector (for example eps times the size of
    the computation times the largest gradient norm): a mean $\lVert \bar c\rVert \le$ ``resolution``
    is rounding, not signal, and gives ``signal_squared = 0`` and ``batch_star = None`` (the gauge
    family, exactly blind by P1, reads 0 instead of a ratio of rounding errors).

    Notes
    -----
    With $\bar c$ the mean and $\hat\Sigma$ the unbiased covariance ($B - 1$ divisor):
    $\widehat{\lVert\mu\rVert^2} = \lVert \bar c \rVert^2 - \operatorname{tr}\hat\Sigma / B
    = \frac{1}{B(B-1)} \sum_{s \ne t} \langle c_s, c_t \rangle$, a U-statistic with kernel
    $\langle x, y\rangle$, hence unbiased; its standard error is :func:`signal_squared_variance`
    at the sample moments. ``noise`` is
    $\operatorname{tr}\hat\Sigma$ (unbiased); ``batch_star`` is noise over signal squared.
    """
    check_float("resolution", resolution, 0.0, float("inf"), open_low=False)
    b = m.count
    if b < 2:
        raise ValueError(f"m.count must be an integer >= 2 (two samples estimate a covariance), got {b}")
    mean = np.asarray(m.total, dtype=np.float64) / b
    full = np.ndim(m.second) == 2
    second = np.asarray(m.second, dtype=np.float64)
    mean_sq = float(mean @ mean)
    noise = (float(np.trace(second) if full else second) - b * mean_sq) / (b - 1)
    signal_squared = mean_sq - noise / b if mean_sq > resolution**2 else 0.0
    se = None
    if full:
        cov = (second - b * np.outer(mean, mean)) / (b - 1)
        se = math.sqrt(max(signal_squared_variance(mean, cov, b), 0.0))
    return Detectability(
        count=b,
        signal_squared=signal_squared,
        signal_squared_se=se,
        signal=math.sqrt(max(signal_squared, 0.0)),
        noise=noise,
        batch_star=noise / signal_squared if signal_squared > 0.0 else None,
    )


def signal_squared_variance(mean: Float[Array, " k"], cov: Float[Array, "k k"], b: int) -> float:
    r"""Exact variance of the unbiased $\widehat{\lVert\mu\rVert^2}$ from B i.i.d. samples with the given moments.

    Notes
    -----
    Hoeffding: a U-statistic of order two with kernel $h$ has variance
    $\frac{2}{B(B-1)}[2(B-2)\zeta_1 + \zeta_2]$; for $h(x, y) = \langle x, y\rangle$,
    $\zeta_1 = \mu^\top\Sigma\mu$ and $\zeta_2 = \operatorname{tr}(\Sigma^2) + 2\mu^\top\Sigma\mu$, which gives
    $4\mu^\top\Sigma\mu / B + 2\operatorname{tr}(\Sigma^2) / (B(B-1))$.
    """
    mean, cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
    return 4.0 * float(mean @ cov @ mean) / b + 2.0 * float(np.sum(cov * cov)) / (b * (b - 1))


def share(family: Detectability, whole: Detectability) -> float | None:
    r"""Share $\lVert\mu_F\rVert / \lVert E g\rVert$ of the mean gradient in the family (``None`` if $E g$ is 0)."""
    if whole.count != family.count:
        raise ValueError(f"whole.count must equal family.count = {family.count}, got {whole.count}")
    return family.signal / whole.signal if whole.signal > 0.0 else None
