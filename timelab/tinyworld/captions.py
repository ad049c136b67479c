"""The caption grammar of TinyWorld, the sampler of (scene, caption) training pairs, and the parser that
reads a prompt's stated attributes back.

Grammar::

    caption    := prefix "a " [size " "] [colour " "] kind [" on a " background " background"]
    prefix     := "" | "a photo of " | "an image of " | "a picture of "

Every stated attribute is true to the image; which ones are stated follows ``spec.MENTION``.
"""

from __future__ import annotations

import re

import numpy as np

from . import spec
from .render import Scene

_VOCABULARY = {"kind": spec.KINDS, "colour": tuple(spec.COLOURS), "size": tuple(spec.SIZES),
               "background": tuple(spec.BACKGROUNDS)}


def caption(scene: Scene, stated: set[str] | frozenset[str] = frozenset(), prefix: str = "") -> str:
    """Describe ``scene``, naming the kind and the attributes in ``stated``."""
    unknown = set(stated) - {"colour", "size", "background"}
    if unknown:
        raise ValueError(f"cannot state {sorted(unknown)}; choose from colour, size, background")
    if prefix not in spec.PREFIXES:
        raise ValueError(f"unknown prefix {prefix!r}; choose one of {list(spec.PREFIXES)}")
    words = ["a"]
    if "size" in stated:
        words.append(scene.size)
    if "colour" in stated:
        words.append(scene.colour)
    words.append(scene.kind)
    if "background" in stated:
        words += ["on", "a", scene.background, "background"]
    return prefix + " ".join(words)


def _choice(rng: np.random.Generator, shares: dict[str, float]) -> str:
    names = list(shares)
    return names[rng.choice(len(names), p=np.asarray([shares[n] for n in names]))]


def sample_example(rng: np.random.Generator) -> tuple[Scene, str]:
    """Draw one (scene, caption) pair from the world's distribution (see ``spec``)."""
    kind = spec.KINDS[rng.integers(len(spec.KINDS))]
    stated = {a for a in ("colour", "size", "background") if rng.random() < spec.MENTION[a]}
    if "colour" in stated:
        colour = tuple(spec.COLOURS)[rng.integers(len(spec.COLOURS))]
    else:
        colour = _choice(rng, dict(spec.COLOUR_PRIOR[kind]))
    size = tuple(spec.SIZES)[rng.integers(len(spec.SIZES))]
    background = tuple(spec.BACKGROUNDS)[rng.integers(len(spec.BACKGROUNDS))]
    scene = Scene(kind, colour, size, background)
    if rng.random() < spec.EMPTY_CAPTION_RATE:
        return scene, ""
    return scene, caption(scene, stated, _choice(rng, dict(spec.PREFIXES)))


def stated_attributes(prompt: str) -> dict[str, str]:
    """The attributes a prompt states, e.g. ``{"kind": "circle", "colour": "blue"}``.

    Raises ``ValueError`` if the prompt names two values of one attribute.
    """
    words = re.findall(r"[a-z]+", prompt.lower())
    found: dict[str, str] = {}
    for attribute, values in _VOCABULARY.items():
        named = [w for w in words if w in values]
        if len(set(named)) > 1:
            raise ValueError(f"prompt {prompt!r} names several {attribute}s: {sorted(set(named))}")
        if named:
            found[attribute] = named[0]
    return found


def all_words() -> list[str]:
    """Every word the grammar can write, in a fixed order."""
    words = ["a", "an", "of", "on", "photo", "image", "picture", "background"]
    for values in _VOCABULARY.values():
        words += list(values)
    return words
