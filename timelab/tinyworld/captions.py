"""The caption grammar of TinyWorld (written out in ``spec``), the sampler of (scene, caption) training
pairs, and the parser that reads a prompt's stated attributes back.

Every stated attribute is true to the image; which ones are stated follows ``spec.MENTION``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Sequence

import numpy as np

from . import spec
from .render import Scene, Thing

VOCABULARY = {
    "kind": spec.KINDS, "colour": tuple(spec.COLOURS), "size": tuple(spec.SIZES),
    "position": tuple(spec.POSITIONS), "background": tuple(spec.BACKGROUNDS),
}
# Words that carry no attribute: articles, prepositions, the augmentation prefixes' nouns.
FILLER = ("a", "an", "of", "on", "the", "at", "in", "and", "photo", "image", "picture", "background")


def _object_phrase(thing: Thing, stated: Iterable[str]) -> str:
    stated = set(stated)
    words = ["a"]
    if "size" in stated:
        words.append(thing.size)
    if "colour" in stated:
        words.append(thing.colour)
    words.append(thing.kind)
    if "position" in stated:
        words.append(spec.WHERE[thing.position])
    return " ".join(words)


def caption(scene: Scene, stated: Iterable[str] | Sequence[Iterable[str]] = frozenset(), prefix: str = "",
            order: Sequence[int] | None = None) -> str:
    """Describe ``scene``, naming every object's kind and the attributes in ``stated``.

    ``stated`` is one set of attribute names for every object, or one set per object; ``"background"``
    in any of them states the scene's background. ``order`` lists the objects in the order named.
    """
    sets = [set(s) for s in stated] if stated and not isinstance(next(iter(stated)), str) else None
    per_object = sets if sets is not None else [set(stated)] * len(scene.objects)
    if len(per_object) != len(scene.objects):
        raise ValueError(f"{len(per_object)} sets of stated attributes for {len(scene.objects)} objects")
    unknown = set().union(*per_object) - {"colour", "size", "position", "background"}
    if unknown:
        raise ValueError(f"cannot state {sorted(unknown)}; choose from colour, size, position, background")
    if len({"position" in s for s in per_object}) > 1:
        raise ValueError("state the position of every object or of none")
    if prefix not in spec.PREFIXES:
        raise ValueError(f"unknown prefix {prefix!r}; choose one of {list(spec.PREFIXES)}")
    order = list(order) if order is not None else list(range(len(scene.objects)))
    if sorted(order) != list(range(len(scene.objects))):
        raise ValueError(f"order must list each of the {len(scene.objects)} objects once, got {order}")
    text = " and ".join(_object_phrase(scene.objects[i], per_object[i]) for i in order)
    if any("background" in s for s in per_object):
        text += f" on a {scene.background} background"
    return prefix + text


def _choice(rng: np.random.Generator, shares) -> str:
    names = list(shares)
    return names[rng.choice(len(names), p=np.asarray([shares[n] for n in names]))]


def _offset(rng: np.random.Generator, position: str) -> tuple[int, int]:
    jx, jy = spec.jitter(position)
    return int(rng.integers(-jx, jx + 1)), int(rng.integers(-jy, jy + 1))


def sample_example(rng: np.random.Generator) -> tuple[Scene, str]:
    """Draw one (scene, caption) pair from the world's distribution (see ``spec``)."""
    n = 2 if rng.random() < spec.TWO_OBJECTS else 1
    kinds = [spec.KINDS[i] for i in rng.choice(len(spec.KINDS), size=n, replace=False)]
    if n == 1:
        positions = [tuple(spec.POSITIONS)[rng.integers(len(spec.POSITIONS))]]
    else:
        positions = list(spec.LAYOUTS[rng.integers(len(spec.LAYOUTS))])
        rng.shuffle(positions)
    things, stated = [], []
    for kind, position in zip(kinds, positions):
        says = {a for a in ("colour", "size") if rng.random() < spec.MENTION[a]}
        colour = (tuple(spec.COLOURS)[rng.integers(len(spec.COLOURS))] if "colour" in says
                  else _choice(rng, spec.COLOUR_PRIOR[kind]))
        size = (tuple(spec.SIZES)[rng.integers(len(spec.SIZES))] if "size" in says
                else _choice(rng, spec.SIZE_PRIOR[kind]))
        things.append(Thing(kind, colour, size, position, _offset(rng, position)))
        stated.append(says)
    scene_says = {a for a in ("position", "background") if rng.random() < spec.MENTION[a]}
    background = tuple(spec.BACKGROUNDS)[rng.integers(len(spec.BACKGROUNDS))]
    scene = Scene(tuple(things), background)
    if rng.random() < spec.EMPTY_CAPTION_RATE:
        return scene, ""
    order = rng.permutation(n).tolist()
    return scene, caption(scene, [s | scene_says for s in stated], _choice(rng, spec.PREFIXES), order)


BINDABLE = ("colour", "size", "position")  # attributes a two-object caption binds to one of its objects


def binding_twin(scene: Scene, text: str, rng: np.random.Generator) -> tuple[Scene, str] | None:
    """A hard negative for a contrastive text tower: ``scene`` (two objects, captioned ``text``) with the
    values of one attribute exchanged between its objects, captioned with the same words and order.

    ``"a red circle on the left and a square on the right"`` gives the scene of ``"a red circle on the
    right and a square on the left"``: the two captions hold the same bag of words, so only a text tower
    that binds attributes to objects tells them apart. The attribute is drawn among those the caption
    states for both objects and the objects do not share; ``None`` when there is none (or one object)."""
    if len(scene.objects) != 2 or not text:
        return None
    description = describe(text)
    kinds = [thing.kind for thing in scene.objects]
    stated = [set(description.objects[[o["kind"] for o in description.objects].index(k)]) - {"kind"} for k in kinds]
    if description.background:
        stated = [s | {"background"} for s in stated]
    prefix = next((p for p in spec.PREFIXES if p and text.startswith(p)), "")
    order = [kinds.index(o["kind"]) for o in description.objects]
    if caption(scene, stated, prefix, order) != text:
        raise ValueError(f"{text!r} is not a caption the grammar writes for {scene}")
    a, b = scene.objects
    choices = [attribute for attribute in BINDABLE
               if getattr(a, attribute) != getattr(b, attribute) and all(attribute in s for s in stated)]
    if not choices:
        return None
    attribute = choices[rng.integers(len(choices))]
    twin = Scene((replace(a, **{attribute: getattr(b, attribute)}), replace(b, **{attribute: getattr(a, attribute)})),
                 scene.background)
    return twin, caption(twin, stated, prefix, order)


@dataclass
class Description:
    """What a prompt states: per named object its attributes (kind always), and the background if said."""

    objects: list[dict[str, str]] = field(default_factory=list)
    background: str | None = None


BACKGROUND_PHRASE = re.compile(r"\bon an? (\w+) background\b")  # how the grammar states a background


def without_background(prompt: str) -> str:
    """The prompt with its background phrase (if any) left out: ``"a circle on a black background"`` ->
    ``"a circle"``."""
    return re.sub(r"\s+", " ", BACKGROUND_PHRASE.sub("", prompt)).strip()


def unknown_words(prompt: str) -> list[str]:
    """Words of ``prompt`` that TinyWorld's grammar never writes, in order of appearance."""
    known = set(FILLER).union(*VOCABULARY.values())
    return [w for w in re.findall(r"[a-z]+|[^a-z\s]", prompt.lower()) if w not in known]


def describe(prompt: str) -> Description:
    """Read the stated attributes back: ``describe("a red circle on the left and a square")`` gives
    objects ``[{"kind": "circle", "colour": "red", "position": "left"}, {"kind": "square"}]``.

    Raises ``ValueError`` naming the problem for words outside the grammar, an object part without a
    kind, or one object given two values of an attribute.
    """
    unknown = unknown_words(prompt)
    if unknown:
        raise ValueError(f"TinyWorld does not know the word(s) {unknown} in {prompt!r}; its words are "
                         f"{sorted(set(all_words()))}")
    text = prompt.lower()
    description = Description()
    match = BACKGROUND_PHRASE.search(text)
    if match:
        if match.group(1) not in spec.BACKGROUNDS:
            raise ValueError(f"{prompt!r}: {match.group(1)!r} is not a background; say 'on a white background' "
                             "or 'on a black background'")
        description.background = match.group(1)
        text = text[:match.start()] + text[match.end():]
    for part in re.split(r"\band\b", text):
        words = re.findall(r"[a-z]+", part)
        found: dict[str, str] = {}
        for attribute in spec.OBJECT_ATTRIBUTES:
            named = [w for w in words if w in VOCABULARY[attribute]]
            if len(set(named)) > 1:
                raise ValueError(f"{prompt!r} gives one object several {attribute}s: {sorted(set(named))}")
            if named:
                found[attribute] = named[0]
        if "kind" not in found:
            if any(w in set().union(*VOCABULARY.values()) for w in words):
                raise ValueError(f"{prompt!r}: the part {part.strip()!r} names no object kind")
            continue
        description.objects.append(found)
    if any(w in spec.BACKGROUNDS for w in re.findall(r"[a-z]+", text)):
        raise ValueError(f"{prompt!r}: say a background as 'on a white background' or 'on a black background'")
    return description


def stated_attributes(prompt: str) -> dict[str, str]:
    """The attributes a one-object prompt states, e.g. ``{"kind": "circle", "colour": "blue"}``
    (with ``"background"`` when said). Raises ``ValueError`` for a prompt naming more than one object."""
    description = describe(prompt)
    if len(description.objects) > 1:
        raise ValueError(f"{prompt!r} names {len(description.objects)} objects; use describe() for scenes")
    found = dict(description.objects[0]) if description.objects else {}
    if description.background:
        found["background"] = description.background
    return found


def all_words() -> list[str]:
    """Every word the grammar can write, in a fixed order."""
    words = list(FILLER)
    for values in VOCABULARY.values():
        words += list(values)
    return words


def world_prompts(max_objects: int = 2) -> list[str]:
    """Every prompt the grammar writes (without a prefix) for scenes of up to ``max_objects`` objects:
    each object's colour and size stated or not, positions stated for every object or for none,
    the background stated or not, two objects named in either order. 1,296 prompts of one object and
    58,320 of two: ``4 x 6 x 3 x 6 x 3`` and ``(4 x 3) x 5 x 6^2 x 3^2 x 3``."""
    if max_objects not in (1, 2):
        raise ValueError(f"TinyWorld scenes hold one or two objects, got max_objects={max_objects}")
    colours, sizes = (None, *spec.COLOURS), (None, *spec.SIZES)
    backgrounds = (None, *spec.BACKGROUNDS)
    placements = [(None,)] + [(p,) for p in spec.POSITIONS]
    if max_objects == 2:
        placements += [(None, None)] + [pair for a, b in spec.LAYOUTS for pair in ((a, b), (b, a))]
    prompts = []
    for places in placements:
        n = len(places)
        for kinds in itertools.permutations(spec.KINDS, n):
            for looks in itertools.product(itertools.product(colours, sizes), repeat=n):
                for background in backgrounds:
                    things = tuple(Thing(kind, colour or spec.usual_colour(kind), size or "big",
                                         place or (spec.LAYOUTS[0][i] if n == 2 else "middle"))
                                   for i, (kind, (colour, size), place) in enumerate(zip(kinds, looks, places)))
                    stated = [{a for a, v in (("colour", colour), ("size", size), ("position", place),
                                              ("background", background)) if v is not None}
                              for (colour, size), place in zip(looks, places)]
                    prompts.append(caption(Scene(things, background or "white"), stated))
    return prompts
