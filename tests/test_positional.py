import jax
import numpy as np
import pytest

from blindspot.positional import positional_encoding
from blindspot.tolerances import close_tolerance


def test_sinusoidal_matches_the_textbook_formula():
    n, d = 7, 6
    p = np.asarray(positional_encoding(jax.random.key(0), n, d))
    i = np.arange(n)[:, None]
    omega = 10000.0 ** (-2.0 * (np.arange(d) // 2) / d)
    expected = np.where(np.arange(d) % 2 == 0, np.sin(i * omega), np.cos(i * omega))
    np.testing.assert_allclose(p, expected, rtol=close_tolerance(p.dtype), atol=close_tolerance(p.dtype))


def test_even_width_sinusoidal_gram_depends_only_on_the_lag():
    """$p_i^T p_j = \\sum_k \\cos((i - j)\\omega_k)$ for even d: a Toeplitz Gram matrix (P8)."""
    n = 9
    p = np.asarray(positional_encoding(jax.random.key(0), n, 8))
    gram = p @ p.T
    tol = close_tolerance(gram.dtype, 8)
    for lag in range(-n + 1, n):
        diagonal = np.diagonal(gram, offset=lag)
        np.testing.assert_allclose(diagonal, diagonal[0], atol=tol * np.abs(gram).max())


@pytest.mark.parametrize("kind", ["sinusoidal", "random"])
def test_centred_encodings_sum_to_zero(kind):
    p = np.asarray(positional_encoding(jax.random.key(3), 11, 5, kind, centred=True))
    assert np.abs(p.sum(axis=0)).max() <= close_tolerance(p.dtype, 11) * np.abs(p).max()
    raw = np.asarray(positional_encoding(jax.random.key(3), 11, 5, kind))
    assert np.abs(raw.sum(axis=0)).max() > 1e-3


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match=r"kind must be one of \{sinusoidal, random\}"):
        positional_encoding(jax.random.key(0), 4, 4, "rotary")
