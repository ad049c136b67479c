"""The one readable specification of TinyWorld: what exists, how it looks, and what captions leave out.

A scene is one object, centred on a plain background. Every scene has four attributes:

    kind        circle | square | triangle | cross
    colour      red | green | blue | yellow | purple
    size        small | big
    background  white | black        (the free attribute)

The planted implicit assumptions live in ``COLOUR_PRIOR``: the colour an object has when its caption
does not say. A caption names the colour with probability ``MENTION["colour"]``, and a named colour is
drawn uniformly; otherwise the colour is drawn from the object's prior and left out, the way alt-text
leaves out a banana's yellow. So ``P(colour | caption omits it) = COLOUR_PRIOR[kind]`` exactly, and the
usual colour is left out most of the time (for a red circle, 0.6*0.85 / (0.6*0.85 + 0.4*0.2) = 86%).
``cross`` has the two-way split (purple 75 / yellow 25) that plays the part of the paper's gender
experiment. Blue is nobody's usual colour, which makes it a clean edit destination.
"""

from __future__ import annotations

from types import MappingProxyType

IMAGE_SIZE = 16  # pixels per side

KINDS: tuple[str, ...] = ("circle", "square", "triangle", "cross")

# RGB in [0, 1]; far apart from one another and from both backgrounds.
COLOURS = MappingProxyType({
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.60, 0.20, 0.80),
})

# Half-extent of the object in pixels (a big object spans most of the image).
SIZES = MappingProxyType({"small": 4.5, "big": 7.5})

BACKGROUNDS = MappingProxyType({"white": (0.95, 0.95, 0.95), "black": (0.05, 0.05, 0.05)})

ATTRIBUTES: tuple[str, ...] = ("kind", "colour", "size", "background")


def _prior(usual: dict[str, float]) -> MappingProxyType:
    """A colour distribution: the given shares, the rest spread evenly over the other colours."""
    rest = [c for c in COLOURS if c not in usual]
    left = 1.0 - sum(usual.values())
    shares = {c: usual.get(c, left / len(rest) if rest else 0.0) for c in COLOURS}
    return MappingProxyType(shares)


# P(colour | kind, the caption does not name the colour): the planted implicit assumptions.
COLOUR_PRIOR = MappingProxyType({
    "circle": _prior({"red": 0.85}),
    "square": _prior({"green": 0.85}),
    "triangle": _prior({"yellow": 0.85}),
    "cross": _prior({"purple": 0.75, "yellow": 0.25, "red": 0.0, "green": 0.0, "blue": 0.0}),
})

# Probability that a caption states each attribute (the kind is always stated). Stated sizes and
# backgrounds are drawn uniformly, as are unstated ones: only colour carries a planted assumption.
MENTION = MappingProxyType({"colour": 0.4, "size": 0.5, "background": 0.5})

# Phrasings of a caption: the bare description, or one of TIME's augmentation prefixes.
PREFIXES = MappingProxyType({"": 0.4, "a photo of ": 0.2, "an image of ": 0.2, "a picture of ": 0.2})

# Share of training captions replaced by the empty caption (for classifier-free guidance).
EMPTY_CAPTION_RATE = 0.1


def usual_colour(kind: str) -> str:
    """The colour an object most often has when its caption does not say."""
    prior = COLOUR_PRIOR[kind]
    return max(prior, key=prior.get)
