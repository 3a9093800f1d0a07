import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blindspot.proximity import proximity_index
from blindspot.tolerances import close_tolerance


def reference(a, radius, include_self):
    """Plain loops over the definition: near mass of interior queries minus its uniform value."""
    a = np.asarray(a)
    n = a.shape[-1]
    values = []
    for row in a.reshape(-1, n, n):
        for i in range(radius, n - radius):
            near = [j for j in range(n) if abs(i - j) <= radius and (include_self or j != i)]
            values.append(row[i, near].sum() - len(near) / n)
    return np.mean(values)


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("n", [3, 8, 17])
def test_uniform_attention_is_zero(n, include_self):
    a = jnp.full((n, n), 1.0 / n)
    assert abs(float(proximity_index(a, include_self=include_self))) <= close_tolerance(a.dtype, n)


@pytest.mark.parametrize("n", [5, 12])
def test_pure_band_reaches_the_maximum(n):
    # half the mass on each neighbour for interior rows: index 1 - 2/n (hand computation)
    a = 0.5 * (jnp.eye(n, k=1) + jnp.eye(n, k=-1))
    a = a.at[0].set(jnp.eye(n)[1]).at[n - 1].set(jnp.eye(n)[n - 2])
    assert float(proximity_index(a)) == pytest.approx(1 - 2 / n, rel=close_tolerance(a.dtype, n))


@pytest.mark.parametrize("radius", [1, 2])
def test_identity_attention(radius):
    n = 9
    a = jnp.eye(n)
    tol = close_tolerance(a.dtype, n)
    assert float(proximity_index(a, radius=radius)) == pytest.approx(-2 * radius / n, rel=tol)
    assert float(proximity_index(a, radius=radius, include_self=True)) == pytest.approx(
        1 - (2 * radius + 1) / n, rel=tol
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batch_against_loops(seed):
    key = jax.random.PRNGKey(seed)
    a = jax.nn.softmax(3.0 * jax.random.normal(key, (4, 3, 11, 11)), axis=-1)
    for radius in (1, 3):
        for include_self in (False, True):
            got = float(proximity_index(a, radius=radius, include_self=include_self))
            assert got == pytest.approx(reference(a, radius, include_self), abs=close_tolerance(a.dtype, a.size))


def test_bad_input():
    with pytest.raises(ValueError, match="radius"):
        proximity_index(jnp.eye(4), radius=2)
    with pytest.raises(ValueError, match="radius"):
        proximity_index(jnp.eye(5), radius=0)
    with pytest.raises(ValueError, match="attention"):
        proximity_index(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="attention"):
        proximity_index(jnp.full((5, 5), jnp.nan))


def reference_2d(a, width):
    """Loops over the definition: 4-neighbour mass of pixels off the border minus 4/n."""
    a = np.asarray(a)
    n = a.shape[-1]
    height, values = n // width, []
    for row in a.reshape(-1, n, n):
        for r in range(1, height - 1):
            for c in range(1, width - 1):
                i = r * width + c
                values.append(row[i, [i - 1, i + 1, i - width, i + width]].sum() - 4 / n)
    return np.mean(values)


def test_image_index_against_loops_and_by_hand():
    n, width = 16, 4  # a 4 x 4 image: four interior pixels
    rng = np.random.default_rng(0)
    a = rng.exponential(size=(3, n, n))
    a /= a.sum(axis=-1, keepdims=True)
    tol = close_tolerance(np.float64, a.size)
    assert float(proximity_index(jnp.asarray(a), width=width)) == pytest.approx(reference_2d(a, width), abs=tol)
    # a quarter of the mass on each of the four neighbours: the largest index, 1 - 4/n
    i = np.arange(n)
    pure = np.zeros((n, n))
    for step in (1, -1, width, -width):
        pure[i, (i + step) % n] = 0.25
    assert float(proximity_index(jnp.asarray(pure), width=width)) == pytest.approx(1 - 4 / n, rel=tol)
    # read as a sequence, only the two lag-1 neighbours count: 1/2 - 2/n
    assert float(proximity_index(jnp.asarray(pure))) == pytest.approx(0.5 - 2 / n, rel=tol)
    assert abs(float(proximity_index(jnp.full((n, n), 1.0 / n), width=width))) <= tol
