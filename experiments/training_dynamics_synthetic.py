"""P9 on the synthetic paired task: supervised from scratch vs SPT then fine-tuning.

Labels of ``blindspot.data.paired_task`` depend on adjacency only (paired neighbours vs a
random permutation of the same multiset), so a classifier must compare neighbours. Run:
``python experiments/training_dynamics_synthetic.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import paired_task  # noqa: E402
from blindspot.training import Dataset, TrainSettings  # noqa: E402
from experiments import _dynamics  # noqa: E402
from experiments.common import compute_and_plot  # noqa: E402

NAME = Path(__file__).stem


def settings(small: bool = False):
    """Model, data and optimisation settings (``small``: a smoke version at tiny sizes)."""
    config = ModelConfig(n=16, d=32, vocab=8, classes=2, residual=True, mlp=64, mask_rate=0.15)
    if small:
        return config, 256, 128, TrainSettings(total_steps=40, spt_steps=20, eval_every=20, eval_size=128), 2
    return config, 4000, 1000, TrainSettings(total_steps=2000, spt_steps=1000, eval_every=100, eval_size=1000), 3


def inputs(small: bool = False) -> dict:
    """Return the arguments of ``_dynamics.compute``: model, data, optimisation settings, seeds, key."""
    config, n_train, n_test, train_settings, seeds = settings(small)
    x, y = paired_task(jax.random.PRNGKey(0), n_train, config.n, config.vocab)
    xt, yt = paired_task(jax.random.PRNGKey(1), n_test, config.n, config.vocab)
    data = Dataset(x, y, xt, yt)
    return {"config": config, "data": data, "settings": train_settings, "seeds": seeds, "key": jax.random.PRNGKey(2)}


def compute(small: bool = False, root=None) -> None:
    """Train both arms from both query-key initialisations and store the histories."""
    _dynamics.compute(NAME, **inputs(small), root=root)


def plot(root=None):
    """Write the figure (PNG and PDF)."""
    return _dynamics.plot(NAME, "Synthetic paired task (n = 16, label = adjacency)", root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
