"""The ablation arms on the synthetic paired task: which part of SPT carries its gain.

Same model, data and budget as ``training_dynamics_synthetic`` (query-key init W = 0), every arm
of ``blindspot.ablation``, more seeds. Run: ``python experiments/ablations_synthetic.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from experiments import _ablations  # noqa: E402
from experiments import training_dynamics_synthetic as synthetic  # noqa: E402
from experiments.common import compute_and_plot  # noqa: E402

NAME = Path(__file__).stem
SEEDS = 10


def inputs(small: bool = False) -> dict:
    """Arguments of ``_ablations.compute``: the P9 synthetic experiment's model, data and settings, more seeds."""
    args = synthetic.inputs(small)
    return {**args, "seeds": args["seeds"] if small else SEEDS, "key": jax.random.PRNGKey(4)}


def compute(small: bool = False, root=None) -> None:
    """Train every arm for every seed and store the cells."""
    _ablations.compute(NAME, **inputs(small), root=root)


def plot(root=None):
    """Write the figure (PNG and PDF)."""
    return _ablations.plot(NAME, "Ablations, synthetic paired task (n = 16)", root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
