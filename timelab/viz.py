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


# --------------------------------------------------------------------------- cross-attention maps
def _maps_array(maps) -> np.ndarray:
    """Per-token maps ``(tokens, h, w)`` as a float array (a tensor is detached and moved to the CPU)."""
    if hasattr(maps, "detach"):
        maps = maps.detach().float().cpu().numpy()
    array = np.asarray(maps, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"expected maps of shape (tokens, h, w), got {array.shape}; pick one image "
                         "with maps[i] or use AttentionRecorder.token_maps")
    return array


def _label_texts(labels, count: int) -> list[str]:
    texts = [getattr(label, "label", label) for label in labels]  # TokenSpan or str
    if len(texts) != count:
        raise ValueError(f"{len(texts)} labels for {count} maps; give one label per token map")
    return [str(t) for t in texts]


def per_token_scale(*map_sets) -> np.ndarray:
    """Each token's largest value over all given map sets: ``(tokens,)``.

    Dividing every set by this scale normalises each token to [0, 1] with ONE colour scale shared by
    the sets, so a before/after pair is compared on equal terms token by token.
    """
    arrays = [_maps_array(m) for m in map_sets]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"map sets differ in shape {[a.shape for a in arrays]}; record both with the "
                         "same image size and layers")
    scale = np.max(np.stack(arrays), axis=(0, 2, 3))
    return np.where(scale > 0, scale, 1.0)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_map(ax, token_map: np.ndarray, image: np.ndarray | None, alpha: float, cmap: str):
    """A token map scaled to [0, 1], alone or stretched over ``image`` (bilinear)."""
    if image is None:
        return ax.imshow(token_map, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    height, width = image.shape[:2]
    ax.imshow(image, interpolation="nearest")
    return ax.imshow(token_map, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha, interpolation="bilinear",
                     extent=(-0.5, width - 0.5, height - 0.5, -0.5))  # imshow's own image extent


def attention_heatmap_row(maps, labels, scale: np.ndarray | None = None, image=None, alpha: float = 0.6,
                          title: str | None = None, cmap: str = "magma",
                          cell_size: float = 1.3) -> matplotlib.figure.Figure:
    """One row of per-token attention maps ``(tokens, h, w)``, each divided by its token's ``scale``.

    ``scale`` defaults to each token's own maximum (:func:`per_token_scale`). With ``image`` the row
    starts with the image and every map is drawn over it.
    """
    array = _maps_array(maps)
    texts = _label_texts(labels, len(array))
    scale = per_token_scale(array) if scale is None else np.asarray(scale, dtype=np.float32)
    picture = None if image is None else to_numpy_image(image)
    offset = 0 if picture is None else 1
    n_cols = len(array) + offset
    fig, axes = plt.subplots(1, n_cols, figsize=(cell_size * n_cols + 0.8, cell_size + 0.5), squeeze=False)
    axes = axes[0]
    if picture is not None:
        axes[0].imshow(picture, interpolation="nearest")
        axes[0].set_title("image", fontsize=8)
    for ax, token_map, text, s in zip(axes[offset:], array, texts, scale):
        shown = _draw_map(ax, token_map / s, picture, alpha, cmap)
        ax.set_title(text, fontsize=8)
    for ax in axes:
        _bare(ax)
    fig.colorbar(shown, ax=list(axes), fraction=0.02, pad=0.01, label="attention / token max")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def attention_overlay(image, maps, labels, scale: np.ndarray | None = None, alpha: float = 0.6,
                      title: str | None = None, cmap: str = "magma") -> matplotlib.figure.Figure:
    """The generated image, then each token's map drawn over it (see :func:`attention_heatmap_row`)."""
    return attention_heatmap_row(maps, labels, scale=scale, image=image, alpha=alpha, title=title, cmap=cmap)


def attention_before_after(images: Sequence, maps: Sequence, labels, overlay: bool = False,
                           column_titles: Sequence[str] = ("source model", "edited model"),
                           alpha: float = 0.6, title: str | None = None, cmap: str = "magma",
                           cell_size: float = 1.3) -> matplotlib.figure.Figure:
    """Before/after figure for an edit: the two images, then each token's two maps side by side.

    ``images`` and ``maps`` are (source, edited) pairs; each token's maps are divided by that token's
    largest value over BOTH models (:func:`per_token_scale`), so one colour scale serves the pair.
    """
    if len(images) != 2 or len(maps) != 2:
        raise ValueError("attention_before_after takes (source, edited) pairs of images and of maps")
    arrays = [_maps_array(m) for m in maps]
    texts = _label_texts(labels, len(arrays[0]))
    scale = per_token_scale(*arrays)
    pictures = [to_numpy_image(im) for im in images]
    n_rows = len(texts) + 1
    fig, axes = plt.subplots(n_rows, 2, figsize=(2 * cell_size + 1.8, cell_size * n_rows + 0.4),
                             squeeze=False)
    for col in range(2):
        axes[0][col].imshow(pictures[col], interpolation="nearest")
        axes[0][col].set_title(column_titles[col], fontsize=8)
        for row, text in enumerate(texts, start=1):
            shown = _draw_map(axes[row][col], arrays[col][row - 1] / scale[row - 1],
                              pictures[col] if overlay else None, alpha, cmap)
            if col == 0:
                axes[row][col].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8)
    axes[0][0].set_ylabel("image", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        _bare(ax)
    fig.colorbar(shown, ax=list(axes[1:].flat), fraction=0.04, pad=0.02, label="attention / token max")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
