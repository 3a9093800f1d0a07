"""Shared plumbing of the figure scripts: output folders, atomic writes, figure saving.

Every script ``experiments/<name>.py`` writes its data under ``<root>/<name>/`` and its figure
as ``<root>/<name>.png`` and ``<root>/<name>.pdf``; ``root`` defaults to ``paper_figs/``.
"""

import json
import sys
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blindspot.io import json_text, write_atomic, write_json_atomic  # noqa: E402
from blindspot.runtime import require_sound_compiler  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / "paper_figs"

plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 150})


def setup() -> None:
    """Entry-point configuration: a sound compiler, float64 and highest matmul precision (never at import)."""
    require_sound_compiler()
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_default_matmul_precision", "highest")


def compute_and_plot(compute, plot, small: bool, root=None) -> list[Path]:
    """Body of every figure script's ``main``: configure JAX, compute the data, plot it."""
    setup()
    compute(small, root)
    return plot(root)


def data_dir(name: str, root=None) -> Path:
    """Folder ``<root>/<name>/`` for the data of the figure ``name`` (created)."""
    path = Path(root or DEFAULT_ROOT) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON with sorted keys, atomically."""
    write_json_atomic(path, obj, sort_keys=True)


def read_json(path):
    """Read a JSON file."""
    with open(path) as f:
        return json.load(f)


def stored_settings_match(path, settings: dict) -> bool:
    """Whether the JSON file ``path`` exists and holds exactly ``settings`` (compared as JSON values)."""
    return Path(path).is_file() and read_json(path) == json.loads(json_text(settings))


def write_npz(path, **arrays) -> None:
    """Write arrays to a compressed ``.npz``, atomically."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})

    write_atomic(path, write)


def read_npz(path) -> dict:
    """Read an ``.npz`` into a dictionary of numpy arrays."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def save_figure(fig, name: str, root=None) -> list[Path]:
    """Save ``fig`` as ``<root>/<name>.png`` and ``.pdf`` (atomically, no timestamps) and close it."""
    root = Path(root or DEFAULT_ROOT)
    paths = []
    for ext in ("png", "pdf"):
        path = root / f"{name}.{ext}"
        metadata = {"CreationDate": None} if ext == "pdf" else {"Software": None}
        write_atomic(
            path, lambda tmp, ext=ext, m=metadata: fig.savefig(tmp, format=ext, bbox_inches="tight", metadata=m)
        )
        paths.append(path)
    plt.close(fig)
    return paths


def band(ax, x, values, label, **kwargs) -> None:
    """Plot the mean over seeds (axis 0) with a shaded one-standard-deviation band."""
    mean, std = np.mean(values, axis=0), np.std(values, axis=0)
    (line,) = ax.plot(x, mean, label=label, **kwargs)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


class Progress:
    """A text progress bar on stderr: ``done/total`` units, elapsed and estimated remaining time, a status.

    On a terminal the bar is redrawn in place; otherwise one line is written per finished unit.
    """

    def __init__(self, name: str, total: int, unit: str = "cells"):
        self.name, self.total, self.unit, self.done = name, total, unit, 0
        self.started = time.perf_counter()
        self.tty = sys.stderr.isatty()

    def status(self, text: str) -> None:
        """Show ``text`` after the bar (terminal only)."""
        if self.tty:
            sys.stderr.write("\r" + self._line(text)[:160].ljust(160))
            sys.stderr.flush()

    def advance(self, text: str = "") -> None:
        """Count one finished unit."""
        self.done += 1
        sys.stderr.write(("\r" if self.tty else "") + self._line(text) + ("" if self.tty else "\n"))
        if self.tty and self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def _line(self, text: str) -> str:
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        bar = "#" * round(20 * self.done / max(self.total, 1))
        eta = "?" if np.isnan(left) else f"{left:.0f}s"
        return f"{self.name} [{bar:20s}] {self.done}/{self.total} {self.unit}, {elapsed:.0f}s, ~{eta} left {text}"
