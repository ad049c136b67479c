"""``OracleJudge``: read every object (kind, colour, size, position) and the background back from pixels.

For an RGB image x in [0, 1] of ``spec.IMAGE_SIZE`` pixels a side:
  background  the palette background nearest to the median of the border pixels;
  foreground  pixels farther than ``threshold`` (RGB distance) from that background colour;
  objects     the 4-connected foreground regions of at least ``min_pixels`` pixels; for each,
  colour      the palette colour nearest to the region's median pixel,
  kind, size  the (kind, size) template with the highest intersection-over-union with the region,
              templates centred within one pixel of the centre of the region's bounding box,
  position    the slot (``spec.POSITIONS``) nearest to the best template's centre.
On rendered scenes it reads every attribute right (tested on every kind, colour, size, slot and offset).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from . import spec
from .captions import describe
from .render import shape_mask

Record = dict  # {"background": str, "objects": [{"kind", "colour", "size", "position"}, ...]}


def as_images(images) -> np.ndarray:
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
        raise ValueError(f"TinyWorld images are {spec.IMAGE_SIZE}x{spec.IMAGE_SIZE} pixels, got "
                         f"{array.shape[1]}x{array.shape[2]}; generate them with the TinyWorld pipeline")
    return array.astype(np.float32)


def regions(mask: np.ndarray) -> list[np.ndarray]:
    """The 4-connected regions of a boolean (H, W) mask, each as a boolean mask (flood fill)."""
    seen = np.zeros_like(mask)
    found = []
    height, width = mask.shape
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        region = np.zeros_like(mask)
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            region[y, x] = True
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        found.append(region)
    return found


class OracleJudge:
    """An exact reader of TinyWorld images (see the module docstring)."""

    def __init__(self, threshold: float = 0.35, min_pixels: int = 8) -> None:
        self.threshold = threshold
        self.min_pixels = min_pixels
        self._colours = np.asarray(list(spec.COLOURS.values()), dtype=np.float32)
        self._backgrounds = np.asarray(list(spec.BACKGROUNDS.values()), dtype=np.float32)
        self._slots = np.asarray(list(spec.POSITIONS.values()), dtype=np.float32)

    def _read_region(self, image: np.ndarray, region: np.ndarray) -> dict[str, str]:
        median = np.median(image[region], axis=0)
        colour = list(spec.COLOURS)[int(np.argmin(np.linalg.norm(self._colours - median, axis=1)))]
        ys, xs = np.nonzero(region)
        cx, cy = round((xs.min() + xs.max() + 1) / 2), round((ys.min() + ys.max() + 1) / 2)
        best, best_iou = None, -1.0
        for kind in spec.KINDS:
            for size in spec.SIZES:
                for dx in (-1, 0, 1):
                    for dy in (-1, 0, 1):
                        template = shape_mask(kind, size, (cx + dx, cy + dy))
                        iou = (region & template).sum() / (region | template).sum()
                        if iou > best_iou:
                            best, best_iou = (kind, size, (cx + dx, cy + dy)), iou
        kind, size, centre = best
        slot = int(np.argmin(np.linalg.norm(self._slots - np.asarray(centre, dtype=np.float32), axis=1)))
        return {"kind": kind, "colour": colour, "size": size, "position": list(spec.POSITIONS)[slot]}

    def locate(self, image: np.ndarray) -> tuple[str, list[tuple[dict[str, str], np.ndarray]]]:
        """The background of one (H, W, 3) image and each object's reading with its pixel mask, in
        slot order."""
        border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
        b = int(np.argmin(np.linalg.norm(self._backgrounds - np.median(border, axis=0), axis=1)))
        foreground = np.linalg.norm(image - self._backgrounds[b], axis=-1) > self.threshold
        found = [(self._read_region(image, r), r) for r in regions(foreground) if r.sum() >= self.min_pixels]
        order = list(spec.POSITIONS)
        found.sort(key=lambda pair: order.index(pair[0]["position"]))
        return list(spec.BACKGROUNDS)[b], found

    def read_one(self, image: np.ndarray) -> Record:
        """Attribute record of one (H, W, 3) image: its background and its objects, in slot order."""
        background, found = self.locate(image)
        return {"background": background, "objects": [reading for reading, _ in found]}

    def read(self, images) -> list[Record]:
        """Per-image records (background, and kind, colour, size, position of every object)."""
        return [self.read_one(im) for im in as_images(images)]

    def matches(self, images, prompt: str) -> list[bool]:
        """For each image, whether it shows exactly the prompt's objects with every stated attribute."""
        return [shows(r, prompt) for r in self.read(images)]


def find(record: Record, kind: str) -> dict[str, str] | None:
    """The object of ``kind`` in a record (the first in slot order if the judge saw several), or None."""
    found = [o for o in record["objects"] if o["kind"] == kind]
    return found[0] if found else None


def checks(record: Record, prompt: str) -> list[tuple[str, str | None, bool]]:
    """Every fact the prompt states, checked against one record, as ``(attribute, kind, holds)``:
    first ``("objects", None, ...)`` (as many objects as the prompt names), then ``("background", None,
    ...)`` if the prompt states one, then for each object it names each stated attribute, ``"kind"``
    first (is there an object of that kind at all; an absent object fails every one of its checks).
    :func:`shows`, the oracle's caption score and the model card's per-attribute shares all read these."""
    description = describe(prompt)
    found = [("objects", None, len(record["objects"]) == len(description.objects))]
    if description.background:
        found.append(("background", None, record["background"] == description.background))
    for wanted in description.objects:
        seen = find(record, wanted["kind"]) or {}
        found += [(attribute, wanted["kind"], seen.get(attribute) == value) for attribute, value in wanted.items()]
    return found


def shows(record: Record, prompt: str) -> bool:
    """Whether a record has exactly the prompt's objects, each with every attribute the prompt states."""
    return all(holds for _, _, holds in checks(record, prompt))


def attribute_of(record: Record, attribute: str, kind: str | None = None) -> str:
    """One attribute of a record: ``"background"``, or an object's attribute. With ``kind`` the object of
    that kind (``"none"`` when absent); without, the image's only object (``"none"`` if not exactly one)."""
    if attribute == "background":
        return record["background"]
    if kind is not None:
        thing = find(record, kind)
    else:
        thing = record["objects"][0] if len(record["objects"]) == 1 else None
    return thing[attribute] if thing is not None else "none"


def shares(records: Iterable[Record], attribute: str, kind: str | None = None) -> dict[str, float]:
    """Share of records with each value of ``attribute`` (see ``attribute_of``; values never seen are
    absent)."""
    values = [attribute_of(r, attribute, kind) for r in records]
    if not values:
        raise ValueError("no records to count")
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return {v: n / len(values) for v, n in sorted(counts.items())}
