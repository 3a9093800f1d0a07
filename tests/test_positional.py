import jax
import numpy as np
import pytest

from blindspot.positional import interior, neighbours, positional_encoding
from blindspot.tolerances import close_tolerance


def test_sinusoidal_matches_the_textbook_formula():
    n, d = 7, 6
    p = np.asarray(positional_encoding(jax.random.key(0), n, d))
    i = np.arange(n)[:, None]
    omega = 10000.0 ** (-2.0 * (np.arange(d) // 2) / d)
    expected = np.where(np.arange(d) % 2 == 0, np.sin(i * omega), np.cos(i * omega))
    np.testing.assert_allclose(p, expected, rtol=close_tolerance(p.dtype), atol=close_tolerance(p.dtype))


def test_even_width_sinusoidal_gram_depends_only_on_the_lag():
    r"""$p_i^T p_j = \sum_k \cos((i - j)\omega_k)$ for even d: a Toeplitz Gram matrix (P8)."""
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


def test_neighbours_of_a_3x3_image_by_hand():
    # pixels 0 1 2 / 3 4 5 / 6 7 8: the centre touches 1, 3, 5, 7; a corner two; 2 and 3 are not neighbours
    near = neighbours(9, width=3)
    assert set(np.flatnonzero(near[4])) == {1, 3, 5, 7}
    assert set(np.flatnonzero(near[0])) == {1, 3}
    assert not near[2, 3] and not near[3, 2]
    assert np.array_equal(near, near.T) and not near.diagonal().any()
    np.testing.assert_array_equal(interior(9, width=3), np.eye(9, dtype=bool)[4])


def test_sequence_neighbours_are_the_lag_band():
    n = 7
    lag = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    np.testing.assert_array_equal(neighbours(n, radius=2), (lag >= 1) & (lag <= 2))
    np.testing.assert_array_equal(neighbours(n, radius=2, include_self=True), lag <= 2)
    np.testing.assert_array_equal(interior(n, radius=2), [False, False, True, True, True, False, False])


@pytest.mark.parametrize(("width", "message"), [(3, "width must divide n = 8"), (1, "width must be an integer")])
def test_bad_width_is_refused(width, message):
    with pytest.raises(ValueError, match=message):
        neighbours(8, width=width)
