"""Matplotlib figures for timelab: image grids, attention heatmaps and overlays, before/after panels.

Every figure the notebooks, the demo or the benchmarks write goes through
:func:`timelab.figures.save_figure` (importable from here too): into the folder the caller names, else
``$TIMELAB_FIGURES_DIR``, else ``./figures`` of the working directory. The tests point the variable at
a temporary folder; ``make figures`` points it at the project's ``figures/`` to regenerate the
committed figures.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from .figures import save_figure  # noqa: F401  (the notebooks' one import for figures)

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


def image_strips(rows: Sequence[np.ndarray], row_labels: Sequence[str], col_labels: Sequence[str],
                 gap: int = 2) -> matplotlib.figure.Figure:
    """:func:`image_grid`'s fast form for many small images: each row ``(n, H, W, 3)`` drawn as one strip
    in one axes (64 images in 8 axes, not 64: the lab redraws it after every action), labelled on the
    left, the first row's columns on top."""
    height, width = rows[0].shape[1:3]
    pitch = width + gap
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.55 * len(col_labels) + 2.2, 0.62 * len(rows) + 0.4),
                             squeeze=False)
    for r, (images, label) in enumerate(zip(rows, row_labels)):
        strip = np.ones((height, pitch * len(images) - gap, 3), dtype=np.float32)
        for i, image in enumerate(images):
            strip[:, i * pitch:i * pitch + width] = np.clip(image, 0, 1)
        ax = axes[r][0]
        ax.imshow(strip, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        ax.set_xticks([i * pitch + width / 2 for i in range(len(images))] if r == 0 else [])
        if r == 0:
            ax.set_xticklabels(list(col_labels), fontsize=7)
            ax.xaxis.tick_top()
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.subplots_adjust(left=0.3, right=0.99, top=0.93, bottom=0.01, hspace=0.12)
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


def per_token_limits(*map_sets, stretch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each token's colour limits ``(low, high)``, both ``(tokens,)``, taken over ALL given map sets.

    ``high`` is the token's largest value; ``low`` is 0, or with ``stretch`` the token's smallest value
    (more contrast for flat maps, but the zero is lost). Shared by the sets, the limits normalise each
    token to [0, 1] on ONE colour scale, so a before/after pair is compared on equal terms token by token.
    """
    arrays = [_maps_array(m) for m in map_sets]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"map sets differ in shape {[a.shape for a in arrays]}; record both with the "
                         "same image size and layers")
    stacked = np.stack(arrays)
    high = stacked.max(axis=(0, 2, 3))
    low = stacked.min(axis=(0, 2, 3)) if stretch else np.zeros_like(high)
    return low, high


def _normalised(array: np.ndarray, limits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    low, high = (np.asarray(x, dtype=np.float32)[:, None, None] for x in limits)
    span = np.where(high > low, high - low, 1.0)
    return (array - low) / span


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_map(ax, token_map: np.ndarray, image: np.ndarray | None, alpha: float, cmap: str):
    """A token map already scaled to [0, 1], alone or stretched over ``image`` (bilinear)."""
    if image is None:
        return ax.imshow(token_map, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    height, width = image.shape[:2]
    ax.imshow(image, interpolation="nearest")
    return ax.imshow(token_map, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha, interpolation="bilinear",
                     extent=(-0.5, width - 0.5, height - 0.5, -0.5))  # imshow's own image extent


def _colour_bar(fig, shown, axes, stretch: bool, **kwargs) -> None:
    label = "token's min to max" if stretch else "attention / token's max"
    fig.colorbar(shown, ax=list(axes), label=label, **kwargs)


def attention_heatmap_row(maps, labels, limits: tuple[np.ndarray, np.ndarray] | None = None,
                          stretch: bool = False, image=None, alpha: float = 0.6, title: str | None = None,
                          cmap: str = "magma", cell_size: float = 1.3) -> matplotlib.figure.Figure:
    """One row of per-token attention maps ``(tokens, h, w)``, each normalised to [0, 1].

    ``limits`` (from :func:`per_token_limits`) default to each token's own 0..max (min..max with
    ``stretch``). With ``image`` the row starts with the image and every map is drawn over it.
    """
    array = _maps_array(maps)
    texts = _label_texts(labels, len(array))
    shown_maps = _normalised(array, per_token_limits(array, stretch=stretch) if limits is None else limits)
    picture = None if image is None else to_numpy_image(image)
    offset = 0 if picture is None else 1
    n_cols = len(array) + offset
    fig, axes = plt.subplots(1, n_cols, figsize=(cell_size * n_cols + 0.8, cell_size + 0.5), squeeze=False)
    axes = axes[0]
    if picture is not None:
        axes[0].imshow(picture, interpolation="nearest")
        axes[0].set_title("image", fontsize=8)
    for ax, token_map, text in zip(axes[offset:], shown_maps, texts):
        shown = _draw_map(ax, token_map, picture, alpha, cmap)
        ax.set_title(text, fontsize=8)
    for ax in axes:
        _bare(ax)
    _colour_bar(fig, shown, axes, stretch, fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def attention_before_after(images: Sequence, maps: Sequence, labels, overlay: bool = False,
                           stretch: bool = False,
                           column_titles: Sequence[str] = ("source model", "edited model"),
                           alpha: float = 0.6, title: str | None = None, cmap: str = "magma",
                           cell_size: float = 1.3) -> matplotlib.figure.Figure:
    """Before/after figure for an edit: the two images, then each token's two maps side by side.

    ``images`` and ``maps`` are (source, edited) pairs; each token is normalised with limits taken over
    BOTH models (:func:`per_token_limits`), so one colour scale serves the pair.
    """
    if len(images) != 2 or len(maps) != 2:
        raise ValueError("attention_before_after takes (source, edited) pairs of images and of maps")
    arrays = [_maps_array(m) for m in maps]
    texts = _label_texts(labels, len(arrays[0]))
    limits = per_token_limits(*arrays, stretch=stretch)
    shown_maps = [_normalised(a, limits) for a in arrays]
    pictures = [to_numpy_image(im) for im in images]
    n_rows = len(texts) + 1
    fig, axes = plt.subplots(n_rows, 2, figsize=(2 * cell_size + 1.8, cell_size * n_rows + 0.4),
                             squeeze=False)
    for col in range(2):
        axes[0][col].imshow(pictures[col], interpolation="nearest")
        axes[0][col].set_title(column_titles[col], fontsize=8)
        for row, text in enumerate(texts, start=1):
            shown = _draw_map(axes[row][col], shown_maps[col][row - 1], pictures[col] if overlay else None,
                              alpha, cmap)
            if col == 0:
                axes[row][col].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8)
    axes[0][0].set_ylabel("image", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        _bare(ax)
    _colour_bar(fig, shown, axes[1:].flat, stretch, fraction=0.04, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def attention_columns(columns: Sequence[dict], labels, alpha: float = 0.55, cmap: str = "magma",
                      signed_cmap: str = "RdBu_r", cell_size: float = 1.1,
                      title: str | None = None) -> matplotlib.figure.Figure:
    """Compare per-token maps side by side: one column per case, one row per token (or token group).

    Each column is a dict with ``"title"``, ``"maps"`` ``(tokens, h, w)``, an optional ``"image"``
    (shown in the first row and, translucent under the maps with ``alpha``, in every row) and an
    optional ``"signed": True`` for a difference of maps. Unsigned columns share one colour scale per
    token, 0 to the token's largest value over all of them (as :func:`per_token_limits`), so the
    columns compare on equal terms; signed columns are drawn on a diverging scale symmetric about 0,
    +-(the token's largest absolute difference), red for gain and blue for loss.
    """
    if not columns:
        raise ValueError("attention_columns needs at least one column")
    arrays = [_maps_array(c["maps"]) for c in columns]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"columns' maps differ in shape {[a.shape for a in arrays]}")
    texts = _label_texts(labels, len(arrays[0]))
    unsigned = [a for a, c in zip(arrays, columns) if not c.get("signed")]
    signed = [a for a, c in zip(arrays, columns) if c.get("signed")]
    limits = per_token_limits(*unsigned) if unsigned else None
    reach = np.abs(np.stack(signed)).max(axis=(0, 2, 3)) if signed else None
    reach = None if reach is None else np.where(reach > 0, reach, 1.0)
    n_rows, n_cols = len(texts) + 1, len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols + 1.6, cell_size * n_rows + 0.4),
                             squeeze=False)
    shown_unsigned = shown_signed = None
    for col, (column, array) in enumerate(zip(columns, arrays)):
        picture = None if column.get("image") is None else to_numpy_image(column["image"])
        top = axes[0][col]
        if picture is not None:
            top.imshow(picture, interpolation="nearest")
        top.set_title(column.get("title", ""), fontsize=8)
        for row in range(1, n_rows):
            ax = axes[row][col]
            if column.get("signed"):
                shown_signed = _draw_signed(ax, array[row - 1] / reach[row - 1], picture, signed_cmap)
            else:
                normalised = _normalised(array[row - 1:row], (limits[0][row - 1:row], limits[1][row - 1:row]))[0]
                shown_unsigned = _draw_map(ax, normalised, picture, alpha if picture is not None else 1.0, cmap)
            if col == 0:
                ax.set_ylabel(texts[row - 1], rotation=0, ha="right", va="center", fontsize=8)
    axes[0][0].set_ylabel("image", rotation=0, ha="right", va="center", fontsize=8)
    for ax in axes.flat:
        _bare(ax)
    if shown_unsigned is not None:
        fig.colorbar(shown_unsigned, ax=list(axes[1:].flat), label="attention / token's max", fraction=0.03,
                     pad=0.01)
    if shown_signed is not None:
        fig.colorbar(shown_signed, ax=list(axes[1:].flat), label="difference / token's largest |difference|",
                     location="bottom", fraction=0.02, pad=0.02, aspect=40)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _draw_signed(ax, token_map: np.ndarray, image: np.ndarray | None, cmap: str):
    """A difference map already scaled to [-1, 1], over a faded ``image`` when given."""
    if image is None:
        return ax.imshow(token_map, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    height, width = image.shape[:2]
    ax.imshow(0.35 + 0.3 * image.mean(axis=-1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    return ax.imshow(token_map, cmap=cmap, vmin=-1.0, vmax=1.0, alpha=0.75, interpolation="bilinear",
                     extent=(-0.5, width - 0.5, height - 0.5, -0.5))
