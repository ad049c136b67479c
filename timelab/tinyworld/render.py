"""Draw TinyWorld scenes: one flat-coloured object, centred, on a plain background (no anti-aliasing,
so every pixel is exactly an object colour or the background colour)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import spec


@dataclass(frozen=True)
class Scene:
    """The four attributes of an image."""

    kind: str
    colour: str
    size: str
    background: str

    def __post_init__(self) -> None:
        for name, allowed in (("kind", spec.KINDS), ("colour", spec.COLOURS),
                              ("size", spec.SIZES), ("background", spec.BACKGROUNDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {list(allowed)}")


@lru_cache(maxsize=None)
def shape_mask(kind: str, size: str) -> np.ndarray:
    """Boolean (H, W) mask of an object of this kind and size, centred in the image.

    With pixel centres (x, y) measured from the image centre and half-extent r:
    circle x^2 + y^2 <= r^2; square max(|x|, |y|) <= 0.75 r; triangle (apex up) -r <= y <= r and
    |x| <= (y + r) / 2; cross max(|x|, |y|) <= r and min(|x|, |y|) <= r / 3.
    """
    if kind not in spec.KINDS or size not in spec.SIZES:
        raise ValueError(f"unknown kind/size {kind!r}/{size!r}; kinds {spec.KINDS}, sizes {list(spec.SIZES)}")
    r = spec.SIZES[size]
    centres = np.arange(spec.IMAGE_SIZE) + 0.5 - spec.IMAGE_SIZE / 2
    y, x = np.meshgrid(centres, centres, indexing="ij")
    ax, ay = np.abs(x), np.abs(y)
    if kind == "circle":
        mask = x**2 + y**2 <= r**2
    elif kind == "square":
        mask = np.maximum(ax, ay) <= 0.75 * r
    elif kind == "triangle":
        mask = (y >= -r) & (y <= r) & (ax <= (y + r) / 2)
    else:  # cross
        mask = (np.maximum(ax, ay) <= r) & (np.minimum(ax, ay) <= r / 3)
    mask.setflags(write=False)
    return mask


def render(scene: Scene) -> np.ndarray:
    """The scene as a float32 (H, W, 3) RGB array in [0, 1]."""
    image = np.empty((spec.IMAGE_SIZE, spec.IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = spec.BACKGROUNDS[scene.background]
    image[shape_mask(scene.kind, scene.size)] = spec.COLOURS[scene.colour]
    return image


def all_scenes() -> list[Scene]:
    """Every distinct scene of the world, in a fixed order."""
    return [Scene(k, c, s, b) for k in spec.KINDS for c in spec.COLOURS for s in spec.SIZES
            for b in spec.BACKGROUNDS]
