"""``OracleJudge``: read kind, colour, size and background back from TinyWorld pixels.

For an RGB image x in [0, 1]:
  background  the palette background nearest to the median of the border pixels;
  foreground  pixels farther than ``threshold`` (RGB distance) from that background colour;
  colour      the palette colour nearest to the median foreground pixel;
  kind, size  the (kind, size) template with the highest intersection-over-union with the foreground.
An image with fewer than ``min_pixels`` foreground pixels reads as kind ``"none"``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from . import spec
from .captions import stated_attributes
from .render import shape_mask

Record = dict[str, str]


def _as_images(images) -> np.ndarray:
    """Accept PIL images, (N, H, W, 3) / (H, W, 3) arrays in [0, 1], or a list of arrays."""
    if isinstance(images, np.ndarray):
        array = images
    else:
        array = np.stack([np.asarray(im, dtype=np.float32) / (255.0 if hasattr(im, "mode") else 1.0)
                          for im in images])
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected RGB images shaped (N, H, W, 3) in [0, 1], got shape {array.shape}")
    if array.shape[1:3] != (spec.IMAGE_SIZE, spec.IMAGE_SIZE):
        raise ValueError(f"TinyWorld images are {spec.IMAGE_SIZE}x{spec.IMAGE_SIZE}, got {array.shape[1:3]}")
    return array.astype(np.float32)


class OracleJudge:
    """An exact reader of TinyWorld images (100% on rendered scenes; see the module docstring)."""

    def __init__(self, threshold: float = 0.35, min_pixels: int = 6) -> None:
        self.threshold = threshold
        self.min_pixels = min_pixels
        self._templates = [(k, s, shape_mask(k, s)) for k in spec.KINDS for s in spec.SIZES]
        self._colours = np.asarray(list(spec.COLOURS.values()), dtype=np.float32)
        self._backgrounds = np.asarray(list(spec.BACKGROUNDS.values()), dtype=np.float32)

    def read_one(self, image: np.ndarray) -> Record:
        """Attribute record of one (H, W, 3) image."""
        border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
        b = int(np.argmin(np.linalg.norm(self._backgrounds - np.median(border, axis=0), axis=1)))
        foreground = np.linalg.norm(image - self._backgrounds[b], axis=-1) > self.threshold
        record = {"background": list(spec.BACKGROUNDS)[b]}
        if foreground.sum() < self.min_pixels:
            return {**record, "kind": "none", "colour": "none", "size": "none"}
        median = np.median(image[foreground], axis=0)
        record["colour"] = list(spec.COLOURS)[int(np.argmin(np.linalg.norm(self._colours - median, axis=1)))]
        ious = [(foreground & m).sum() / (foreground | m).sum() for _, _, m in self._templates]
        kind, size, _ = self._templates[int(np.argmax(ious))]
        return {**record, "kind": kind, "size": size}

    def read(self, images) -> list[Record]:
        """Per-image attribute records (kind, colour, size, background) of a batch of images."""
        return [self.read_one(im) for im in _as_images(images)]

    def matches(self, images, prompt: str) -> list[bool]:
        """For each image, whether it shows every attribute the prompt states."""
        wanted = stated_attributes(prompt)
        return [all(r[a] == v for a, v in wanted.items()) for r in self.read(images)]


def shares(records: Iterable[Record], attribute: str) -> dict[str, float]:
    """Share of records with each value of ``attribute`` (values never seen are absent)."""
    records = list(records)
    if not records:
        raise ValueError("no records to count")
    counts: dict[str, int] = {}
    for r in records:
        counts[r[attribute]] = counts.get(r[attribute], 0) + 1
    return {v: n / len(records) for v, n in sorted(counts.items())}
