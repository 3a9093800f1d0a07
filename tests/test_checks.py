import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot.checks import check_choice, check_finite, check_float, check_ids, check_int, check_mask


def test_checks_accept_valid_values():
    assert check_int("k", 3, 1, 5) == 3
    assert check_float("r", "0.5", 0.0, 1.0) == 0.5
    assert check_choice("c", "a", ("a", "b")) == "a"
    check_ids("t", np.array([0, 2]), 0, 2)
    check_finite("x", np.ones(3))
    check_mask("m", np.array([[True, False]]), 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("k", True, 0), "k must be an integer >= 0, got True"),
        (lambda: check_int("k", 6, 1, 5), r"k must be an integer in \[1, 5\], got 6"),
        (lambda: check_float("r", "x", 0.0, 1.0), r"r must be a real number in \(0.0, 1.0\), got 'x'"),
        (
            lambda: check_float("r", 1.5, 0.0, 1.0, open_low=False, open_high=False),
            r"r must be a real number in \[0.0, 1.0\]",
        ),
        (lambda: check_choice("c", "z", ("a", "b")), r"c must be one of \{a, b\}, got 'z'"),
        (lambda: check_ids("t", np.array([0, 3]), 0, 2), r"t must have entries in \[0, 2\], got values in \[0, 3\]"),
        (lambda: check_finite("x", np.array([1.0, np.inf])), "x must be finite"),
        (lambda: check_mask("m", np.array([[False, False]]), 2), "m must mask at least one"),
    ],
)
def test_checks_raise_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_value_checks_are_skipped_inside_a_trace():
    """Under jit the values are abstract; the public entry point has validated them already."""

    @jax.jit
    def f(t, x):
        check_ids("t", t, 0, 2)
        check_finite("x", x)
        return x.sum()

    assert float(f(jnp.array([5]), jnp.array([1.0]))) == 1.0
