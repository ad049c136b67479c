"""Matplotlib figures for timelab, and the one helper that saves them.

Every figure the notebooks, the demo or the benchmarks write goes through :func:`save_figure`, into
``figures/`` at the project root, or into ``$TIMELAB_FIGURES_DIR`` when set (CI points it somewhere
git ignores).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

if "MPLBACKEND" not in os.environ and not os.environ.get("DISPLAY"):
    matplotlib.use("Agg")  # headless machines (CI, servers); notebooks set their own inline backend
import matplotlib.pyplot as plt
import numpy as np

FIGURES_ENV = "TIMELAB_FIGURES_DIR"


def figures_dir() -> Path:
    """Where figures are written: ``$TIMELAB_FIGURES_DIR`` or ``<project>/figures``."""
    env = os.environ.get(FIGURES_ENV)
    folder = Path(env) if env else Path(__file__).resolve().parents[1] / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig: matplotlib.figure.Figure, name: str, dpi: int = 120) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>`` (``.png`` added when no suffix), atomically."""
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file name like 'demo.png', got {name!r}")
    path = figures_dir() / (name if Path(name).suffix else name + ".png")
    tmp = path.with_name("." + path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    os.replace(tmp, path)
    return path


def to_numpy_image(image) -> np.ndarray:
    """A PIL image, HxWx3 array in [0, 1] or [0, 255], or 3xHxW tensor as an HxWx3 float array."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.transpose(1, 2, 0)
    array = np.asarray(image, dtype=np.float32)
    if array.max(initial=0.0) > 1.0:
        array = array / 255.0
    return np.clip(array, 0.0, 1.0)


def image_grid(
    rows: Sequence[Sequence],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_size: float = 1.2,
) -> matplotlib.figure.Figure:
    """A grid of images, one list per row, with optional row and column labels."""
    n_rows = len(rows)
    n_cols = max(len(r) for r in rows) if rows else 0
    if n_rows == 0 or n_cols == 0:
        raise ValueError("image_grid needs at least one image")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols + 1.5, cell_size * n_rows + 0.3),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                ax.imshow(to_numpy_image(row[c]), interpolation="nearest")
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels is not None and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
