"""Where figures go: one helper for every notebook, the demo, the reports and the benchmarks.

Nothing here imports ``matplotlib.pyplot`` (which picks a backend when imported), so code that only
saves figures (``timelab.evaluation``) leaves the caller's matplotlib as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.figure

from .files import atomic_path

FIGURES_ENV = "TIMELAB_FIGURES_DIR"


def figures_dir(folder: str | os.PathLike | None = None) -> Path:
    """``folder`` if given, else ``$TIMELAB_FIGURES_DIR``, else ``./figures`` (created if missing)."""
    chosen = Path(folder) if folder is not None else Path(os.environ.get(FIGURES_ENV) or "figures")
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen.resolve()


def save_figure(fig: matplotlib.figure.Figure, name: str, folder: str | os.PathLike | None = None,
                dpi: int = 120) -> Path:
    """Save ``fig`` as ``<figures_dir(folder)>/<name>`` (``.png`` added when no suffix), atomically."""
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file name like 'demo.png', got {name!r}")
    path = figures_dir(folder) / (name if Path(name).suffix else name + ".png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path
