"""P9 on scikit-learn's 8x8 digits read as 64-pixel sequences (4 grey levels, 10 classes).

Supervised from scratch vs SPT (masked reconstruction of the training images' pixel sequences)
then fine-tuning, same model and step budget. Run:
``python experiments/training_dynamics_digits.py [--small]``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from blindspot.config import ModelConfig  # noqa: E402
from blindspot.data import digits  # noqa: E402
from blindspot.training import Dataset, TrainSettings  # noqa: E402
from experiments import _dynamics  # noqa: E402
from experiments.common import compute_and_plot  # noqa: E402

NAME = Path(__file__).stem
LEVELS = 4


def settings(small: bool = False):
    """Model and optimisation settings (``small``: a smoke version at tiny sizes)."""
    config = ModelConfig(n=64, d=32, vocab=LEVELS, classes=10, residual=True, mlp=64, mask_rate=0.15)
    if small:
        return config, 128, TrainSettings(total_steps=20, spt_steps=10, eval_every=10, eval_size=64), 2
    return config, None, TrainSettings(total_steps=2000, spt_steps=1000, eval_every=100, eval_size=450), 3


def compute(small: bool = False, root=None) -> None:
    """Train both arms from both query-key initialisations and store the histories."""
    config, n_train, train_settings, seeds = settings(small)
    data = Dataset(*digits(levels=LEVELS))
    if n_train is not None:
        data = data._replace(train_tokens=data.train_tokens[:n_train], train_labels=data.train_labels[:n_train])
    _dynamics.compute(NAME, config, data, train_settings, seeds=seeds, key=jax.random.PRNGKey(3), root=root)


def plot(root=None):
    """Write the figure (PNG and PDF)."""
    return _dynamics.plot(NAME, "Digits, 64-pixel sequences (4 grey levels, 10 classes)", root)


def main(small: bool = False, root=None):
    """Compute (``small``: smoke-test sizes) and plot; return the figure paths."""
    return compute_and_plot(compute, plot, small, root)


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
