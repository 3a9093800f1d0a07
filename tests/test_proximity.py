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
