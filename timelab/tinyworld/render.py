"""Draw TinyWorld scenes: one or two flat-coloured objects on a plain background (no anti-aliasing, so
every pixel is exactly an object colour or the background colour)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import spec


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {list(allowed)}")


@dataclass(frozen=True)
class Thing:
    """One object: its four attributes and its centre's offset (dx, dy) in pixels from its slot."""

    kind: str
    colour: str
    size: str
    position: str = "middle"
    offset: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        _check("kind", self.kind, spec.KINDS)
        _check("colour", self.colour, spec.COLOURS)
        _check("size", self.size, spec.SIZES)
        _check("position", self.position, spec.POSITIONS)
        jx, jy = spec.jitter(self.position)
        if abs(self.offset[0]) > jx or abs(self.offset[1]) > jy:
            raise ValueError(f"offset {self.offset} at {self.position!r} is more than the allowed "
                             f"(+-{jx}, +-{jy}) pixels (spec.JITTER)")

    @property
    def centre(self) -> tuple[int, int]:
        x, y = spec.POSITIONS[self.position]
        return x + self.offset[0], y + self.offset[1]


@dataclass(frozen=True)
class Scene:
    """A background and one or two objects (two: different kinds in one of ``spec.LAYOUTS``)."""

    objects: tuple[Thing, ...]
    background: str = "white"

    def __post_init__(self) -> None:
        _check("background", self.background, spec.BACKGROUNDS)
        if len(self.objects) not in (1, 2):
            raise ValueError(f"a scene holds one or two objects, got {len(self.objects)}")
        if len(self.objects) == 2:
            a, b = self.objects
            if a.kind == b.kind:
                raise ValueError(f"the two objects of a scene are different kinds, got two {a.kind}s")
            if tuple(sorted((a.position, b.position))) not in {tuple(sorted(p)) for p in spec.LAYOUTS}:
                raise ValueError(f"two objects sit at one of {spec.LAYOUTS}, got {(a.position, b.position)}")

    @classmethod
    def single(cls, kind: str, colour: str, size: str = "big", position: str = "middle",
               background: str = "white") -> "Scene":
        return cls((Thing(kind, colour, size, position),), background)


@lru_cache(maxsize=None)
def shape_mask(kind: str, size: str, centre: tuple[int, int] = (16, 16)) -> np.ndarray:
    """Boolean (H, W) mask of an object of this kind and size centred at pixel corner ``centre`` (x, y).

    With pixel centres (x, y) measured from the object's centre and half-extent r:
    circle x^2 + y^2 <= r^2; square max(|x|, |y|) <= 0.8 r; triangle (apex up) -r <= y <= r and
    |x| <= (y + r) / 2; cross max(|x|, |y|) <= r and min(|x|, |y|) <= r / 3.
    """
    _check("kind", kind, spec.KINDS)
    _check("size", size, spec.SIZES)
    r = spec.SIZES[size]
    pixels = np.arange(spec.IMAGE_SIZE) + 0.5
    y, x = np.meshgrid(pixels - centre[1], pixels - centre[0], indexing="ij")
    ax, ay = np.abs(x), np.abs(y)
    if kind == "circle":
        mask = x**2 + y**2 <= r**2
    elif kind == "square":
        mask = np.maximum(ax, ay) <= 0.8 * r
    elif kind == "triangle":
        mask = (y >= -r) & (y <= r) & (ax <= (y + r) / 2)
    else:  # cross
        mask = (np.maximum(ax, ay) <= r) & (np.minimum(ax, ay) <= r / 3)
    mask.setflags(write=False)
    return mask


def object_masks(scene: Scene) -> list[np.ndarray]:
    """Each object's boolean (H, W) mask, in the scene's order."""
    return [shape_mask(t.kind, t.size, t.centre) for t in scene.objects]


def render(scene: Scene) -> np.ndarray:
    """The scene as a float32 (H, W, 3) RGB array in [0, 1]."""
    image = np.empty((spec.IMAGE_SIZE, spec.IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = spec.BACKGROUNDS[scene.background]
    for thing, mask in zip(scene.objects, object_masks(scene)):
        image[mask] = spec.COLOURS[thing.colour]
    return image
