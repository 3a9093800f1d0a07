r"""Benchmarks of the curvature tools, (a) and (b) of ``bench_analysis``, printed as JSON.

(a) The Hessian of the score-space classification loss restricted to the ``toeplitz`` family
    ($2n - 1$ directions) from batched JVPs, against the dense ``jax.hessian`` followed by the
    projection $Q^\top H Q$, at $n = 24$: target at least 20 times faster.
(b) One Hessian-vector product (forward over reverse) against one gradient of the score-space
    losses at $n = 256$: target at most 3 times the gradient.

The losses are the model's score-space objectives averaged over a small batch that shares one
score matrix $S$ (``blindspot.objectives.*_at_scores``), at uniform attention $S = 0$ (the
initialisation $W = 0$). Times are taken after a jit warm-up, as the best of several repeats,
each ending with ``block_until_ready``. ``--quick`` runs in well under a minute.

Both routes of (a) cost Hessian-vector products: $n^2$ for the dense Hessian, $2n - 1$ for the
restricted one, so the arithmetic ratio is ``hvp_count_ratio`` $= n^2 / (2n - 1) \approx 12.3$ at
$n = 24$; the measured speedup exceeds it by the memory traffic of the $n^4$ dense Hessian and its
projection, and therefore depends on the machine's caches and threads.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp

from blindspot import ModelConfig, directions, init
from blindspot.curvature import hvp, restricted_hessian
from blindspot.data import iid_tokens, sample_masks
from blindspot.objectives import shared_score_loss
from blindspot.runtime import require_sound_compiler
from blindspot.tolerances import close_tolerance

RESTRICTED_N = 24
HVP_N = 256
WIDTH = 16
MLP = 16
BATCH = 8


def score_losses(n: int, key: jax.Array) -> dict:
    """Mean score-space classification and reconstruction losses over a batch sharing one $S$."""
    config = ModelConfig(n=n, d=WIDTH, vocab=8, classes=2, mlp=MLP)
    keys = jax.random.split(key, 4)
    params = init(keys[0], config)
    tokens = iid_tokens(keys[1], BATCH, n, config.vocab)
    labels = jax.random.randint(keys[2], (BATCH,), 0, config.classes, jnp.int32)
    masks = sample_masks(keys[3], BATCH, n, config.mask_rate)

    return {
        "classification": shared_score_loss(params, config, "classification", tokens, labels),
        "reconstruction": shared_score_loss(params, config, "reconstruction", tokens, masks),
    }


def best_time(fn, *args, repeats: int) -> float:
    """Best wall time in seconds of ``fn(*args)`` over ``repeats`` runs after one warm-up (compile) run."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def restricted_vs_dense(n: int = RESTRICTED_N, *, repeats: int) -> dict:
    """Time (a): restricted Hessian on ``toeplitz`` vs dense ``jax.hessian`` then projection."""
    f = score_losses(n, jax.random.key(0))["classification"]
    s = jnp.zeros((n, n))
    basis = directions.toeplitz(n, dtype=s.dtype)
    restricted = jax.jit(lambda x, q: restricted_hessian(f, x, q))
    dense = jax.jit(lambda x, q: jnp.einsum("aij,ijkl,bkl->ab", q, jax.hessian(f)(x), q))
    fast = best_time(restricted, s, basis, repeats=repeats)
    slow = best_time(dense, s, basis, repeats=repeats)
    reference = dense(s, basis)
    difference = float(jnp.max(jnp.abs(restricted(s, basis) - reference)))
    scale = float(jnp.max(jnp.abs(reference)))
    extremes = jnp.linalg.eigvalsh(0.5 * (reference + reference.T))[jnp.array([0, -1])]
    return {
        "n": n,
        "directions": int(basis.shape[0]),
        "restricted_seconds": fast,
        "dense_then_project_seconds": slow,
        "speedup": slow / fast,
        "hvp_count_ratio": n * n / int(basis.shape[0]),
        "target_speedup_at_least": 20.0,
        "max_abs_difference": difference,
        "agreement_tolerance": close_tolerance(s.dtype, n * n) * max(1.0, scale),
        "extreme_eigenvalues": [float(e) for e in extremes],
    }


def hvp_vs_grad(n: int = HVP_N, *, repeats: int) -> dict:
    """Time (b): one Hessian-vector product against one gradient, both objectives (default $n = 256$)."""
    s = jnp.zeros((n, n))
    v = jax.random.normal(jax.random.key(1), (n, n), s.dtype)
    report = {"n": n, "batch": BATCH, "target_ratio_at_most": 3.0}
    for name, f in score_losses(n, jax.random.key(0)).items():
        gradient = best_time(jax.jit(jax.grad(f)), s, repeats=repeats)
        product = best_time(jax.jit(lambda x, u, f=f: hvp(f, x, u)), s, v, repeats=repeats)
        report[name] = {"grad_seconds": gradient, "hvp_seconds": product, "ratio": product / gradient}
    return report


def curvature_benchmarks(quick: bool, *, restricted_n: int = RESTRICTED_N, hvp_n: int = HVP_N, repeats=None) -> dict:
    """Run both benchmarks in one process and return their figures with the run's settings."""
    repeats = repeats or (5 if quick else 20)
    return {
        "dtype": str(jnp.zeros(()).dtype),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "device": str(jax.devices()[0].device_kind),
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "repeats": repeats,
        "restricted_vs_dense": restricted_vs_dense(restricted_n, repeats=repeats),
        "hvp_vs_grad": hvp_vs_grad(hvp_n, repeats=repeats),
    }


def main(argv=None) -> None:
    """Command line: ``python experiments/bench_curvature.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a sub-minute run")
    args = parser.parse_args(argv)
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")
    print(json.dumps(curvature_benchmarks(args.quick), indent=2))


if __name__ == "__main__":
    main()
