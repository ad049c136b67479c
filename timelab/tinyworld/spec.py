"""The one readable specification of TinyWorld: what exists, how it looks, and what captions leave out.

A scene is one or two flat-coloured objects on a plain background, 32x32 pixels. Every object has four
attributes, and the scene one more:

    kind        circle | square | triangle | cross
    colour      red | green | blue | yellow | purple
    size        small | big
    position    left | right | top | bottom | middle   (the slot its centre sits near)
    background  white | black                          (of the scene)

One-object scenes put the object in any of the five slots; two-object scenes hold two different kinds,
either left and right or top and bottom (``LAYOUTS``), never overlapping. Each object's centre is
jittered around its slot (``JITTER``), so no two scenes of one caption are pixel-identical.

Planted implicit assumptions (what an object looks like when its caption does not say):

- ``COLOUR_PRIOR``: a circle is usually red, a square green, a triangle yellow; a cross is purple 75% and
  yellow 25% (the two-way split that plays the part of the paper's gender experiment). Blue is nobody's
  usual colour, which makes it a clean edit destination.
- ``SIZE_PRIOR``: a square is usually big (85%); every other kind is small or big alike.

A caption states each attribute with probability ``MENTION`` (the kind always); a stated attribute is
drawn uniformly, an unstated one from its prior, so the usual value is mostly left out, as alt-text leaves
out a banana's yellow (for a red circle 0.6*0.85 / (0.6*0.85 + 0.4*0.2) = 86% of its captions omit red).
The grammar (``captions``) writes exactly these phrasings::

    caption  := prefix object [" and " object] [" on a " background " background"]
    object   := "a " [size " "] [colour " "] kind [" " where]
    where    := "on the left" | "on the right" | "at the top" | "at the bottom" | "in the middle"
    prefix   := "" | "a photo of " | "an image of " | "a picture of "

In a two-object caption the positions are stated for both objects or for neither, and the objects are
named in either order.
"""

from __future__ import annotations

from types import MappingProxyType

IMAGE_SIZE = 32  # pixels per side

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "cross")

# RGB in [0, 1]; far apart from one another and from both backgrounds.
COLOURS = MappingProxyType({
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.80),
})

# Half-extent of an object in pixels.
SIZES = MappingProxyType({"small": 3.5, "big": 6.0})

BACKGROUNDS = MappingProxyType({"white": (0.95, 0.95, 0.95), "black": (0.05, 0.05, 0.05)})

# Slot centres (x, y) in pixels from the top-left corner, and the words a caption uses for each.
POSITIONS = MappingProxyType({
    "left": (8, 16), "right": (24, 16), "top": (16, 8), "bottom": (16, 24), "middle": (16, 16),
})
WHERE = MappingProxyType({
    "left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
    "middle": "in the middle",
})

# Two-object scenes: the two slots.
LAYOUTS: tuple[tuple[str, str], ...] = (("left", "right"), ("top", "bottom"))

# Centre offsets in whole pixels, drawn uniformly from -J..J: (along, across) the axis that separates a
# two-object layout, so two big objects keep a gap of at least 2 pixels. One-object scenes use the same
# (the middle slot as left and right: x along, y across).
JITTER = (1, 2)


def jitter(position: str) -> tuple[int, int]:
    """The largest |dx| and |dy| a centre may move from slot ``position``."""
    along, across = JITTER
    return (across, along) if position in ("top", "bottom") else (along, across)

OBJECT_ATTRIBUTES: tuple[str, ...] = ("kind", "colour", "size", "position")
ATTRIBUTES: tuple[str, ...] = OBJECT_ATTRIBUTES + ("background",)


def _prior(values, usual: dict[str, float]) -> MappingProxyType:
    """A distribution over ``values``: the given shares, the rest spread evenly over the other values."""
    rest = [v for v in values if v not in usual]
    left = 1.0 - sum(usual.values())
    return MappingProxyType({v: usual.get(v, left / len(rest) if rest else 0.0) for v in values})


# P(colour | kind, the caption does not name the colour).
COLOUR_PRIOR = MappingProxyType({
    "circle": _prior(COLOURS, {"red": 0.85}),
    "square": _prior(COLOURS, {"green": 0.85}),
    "triangle": _prior(COLOURS, {"yellow": 0.85}),
    "cross": _prior(COLOURS, {"purple": 0.75, "yellow": 0.25, "red": 0.0, "green": 0.0, "blue": 0.0}),
})

# P(size | kind, the caption does not name the size).
SIZE_PRIOR = MappingProxyType({
    "circle": _prior(SIZES, {}),
    "square": _prior(SIZES, {"big": 0.85}),
    "triangle": _prior(SIZES, {}),
    "cross": _prior(SIZES, {}),
})

# Probability that a caption states each attribute (the kind is always stated).
MENTION = MappingProxyType({"colour": 0.4, "size": 0.5, "position": 0.6, "background": 0.5})

# Share of scenes with two objects.
TWO_OBJECTS = 0.5

# Phrasings of a caption: the bare description, or one of TIME's augmentation prefixes.
PREFIXES = MappingProxyType({"": 0.4, "a photo of ": 0.2, "an image of ": 0.2, "a picture of ": 0.2})

# Share of training captions replaced by the empty caption (for classifier-free guidance).
EMPTY_CAPTION_RATE = 0.1


def usual_colour(kind: str) -> str:
    """The colour an object most often has when its caption does not say."""
    prior = COLOUR_PRIOR[kind]
    return max(prior, key=prior.get)


def usual_size(kind: str) -> str | None:
    """The size an object most often has when its caption does not say, or None if no size is usual."""
    prior = SIZE_PRIOR[kind]
    best = max(prior, key=prior.get)
    return best if prior[best] > 1.0 / len(prior) else None
