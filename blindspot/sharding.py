"""Data parallelism: arrays with a leading batch axis placed across ``jax.devices()`` (``jax.sharding``)."""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array

from blindspot.checks import check_leading_axis


def shard_batch(*arrays: Array) -> tuple[Array, ...]:
    """Place arrays with a leading batch axis sharded over ``jax.devices()`` (``jax.sharding``).

    Uses the largest number of devices that divides the batch size; jitted per-sample work on the
    results then runs in parallel across devices with the same numbers as on one device.
    """
    check_leading_axis("arrays", arrays)
    devices = jax.devices()
    count = math.gcd(int(arrays[0].shape[0]), len(devices))
    mesh = Mesh(np.array(devices[:count]), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return tuple(jax.device_put(a, sharding) for a in arrays)
