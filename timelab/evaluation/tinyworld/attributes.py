"""What a TinyWorld edit changes and what it must keep: the one place that says it.

An edit pair ``"a circle" -> "a blue circle"`` *adds* one attribute, ``(circle, colour) = blue``
(:func:`added_attribute`); several pairs (a joint edit) change the set of such ``(kind, attribute)``
(:func:`edited_attributes`). Every other attribute of a prompt's images should stay as it was
(:func:`kept_attributes`), and how well it did is ``1 - TV(before, after)`` per attribute
(:func:`attributes_kept`, with :func:`timelab.evaluation.metrics.total_variation`). The evaluation, the
lab, the benchmarks and notebook 08 all ask here.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence

from ...tinyworld.captions import describe
from ...tinyworld.judge import attribute_of
from ..metrics import total_variation

OBJECT_WATCHED = ("kind", "size", "position", "colour")  # per named object; "kind": is it there at all
SCENE_WATCHED = ("background", "objects")  # per image; "objects": how many the judge saw


def added_attribute(prompt_text: str, form: str) -> tuple[str, str, str]:
    """``(kind, attribute, value)``: the one attribute that ``form`` states and ``prompt_text`` does not.

    ``added_attribute("a circle on the left", "a blue circle on the left")`` is
    ``("circle", "colour", "blue")``. Raises ``ValueError`` unless the two name the same objects and the
    same background and differ in exactly that one added attribute.
    """
    a, b = describe(prompt_text), describe(form)
    kinds = [o["kind"] for o in a.objects]
    if kinds != [o["kind"] for o in b.objects] or a.background != b.background:
        raise ValueError(f"{prompt_text!r} and {form!r} must name the same objects and background")
    added = [(o["kind"], name, value) for before, o in zip(a.objects, b.objects)
             for name, value in o.items() if name not in before]
    changed = [o["kind"] for before, o in zip(a.objects, b.objects) if any(before[k] != o.get(k) for k in before)]
    if len(added) != 1 or changed:
        raise ValueError(f"{form!r} must be {prompt_text!r} with exactly one attribute added")
    return added[0]


def edited_attributes(sources: Sequence[str], destinations: Sequence[str]) -> set[tuple[str, str]]:
    """``(kind, attribute)`` of every assumption the pairs change, each pair adding one (:func:`added_attribute`)."""
    if len(sources) != len(destinations):
        raise ValueError(f"got {len(sources)} source prompts but {len(destinations)} destinations")
    return {added_attribute(source, destination)[:2] for source, destination in zip(sources, destinations)}


def kept_attributes(prompt: str, edited: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The attributes of a TinyWorld prompt's images that an edit should not move: for each object the
    prompt names, ``"<kind>.kind"`` (there or not), ``.size``, ``.position`` and ``.colour``, then
    ``"background"`` and ``"objects"`` (how many), leaving out every ``(kind, attribute)`` in ``edited``.
    ``kept_attributes("a circle and a square", {("circle", "colour")})`` is
    ``["circle.kind", "circle.size", "circle.position", "square.kind", "square.size", "square.position",
    "square.colour", "background", "objects"]``."""
    skip = {f"{kind}.{attribute}" for kind, attribute in edited}
    names = [f"{o['kind']}.{a}" for o in describe(prompt).objects for a in OBJECT_WATCHED]
    return [n for n in names if n not in skip] + list(SCENE_WATCHED)


def left_alone(prompt: str, edited: Iterable[tuple[str, str]]) -> bool:
    """Whether an edit of ``edited`` should leave ``prompt`` as it is: for every kind the prompt names, it
    states every edited attribute of that kind (so the prompt already says what the edit would assume)."""
    edited = list(edited)
    return all(attribute in thing for thing in describe(prompt).objects for kind, attribute in edited
               if kind == thing["kind"])


def read_attribute(record: Mapping, name: str) -> Hashable:
    """One attribute of an oracle record, by name: ``"background"``; ``"objects"`` (how many objects the
    judge saw); or ``"<kind>.<attribute>"`` for the object of that kind (``"circle.size"``; the value is
    ``"none"`` when there is no such object, so ``"circle.kind"`` is ``"circle"`` or ``"none"``)."""
    if name == "objects":
        return len(record["objects"])
    if name == "background":
        return record["background"]
    kind, _, attribute = name.partition(".")
    if not attribute:
        raise ValueError(f"unknown attribute {name!r}: use 'background', 'objects' or '<kind>.<attribute>'")
    return attribute_of(record, attribute, kind)


def attributes_kept(records_before: Sequence[Mapping], records_after: Sequence[Mapping],
                    attributes: Iterable[str]) -> dict[str, float]:
    """For each attribute name (see :func:`read_attribute`): ``1 - TV(before, after)``, the total
    variation distance between the attribute's values over the images before the edit and over the
    images after it (of the same prompt and seeds, so the two lists pair up and must be equally long).

    TV compares distributions, not seeds: it is at most the share of seeds whose value changed (a
    colour swapped between two seeds moves nothing), so 1 - TV is an upper bound on what was kept
    image by image.
    """
    if len(records_before) != len(records_after) or not records_before:
        raise ValueError(f"need the same, non-zero number of images before and after the edit, got "
                         f"{len(records_before)} and {len(records_after)}")
    return {name: 1.0 - total_variation([read_attribute(r, name) for r in records_before],
                                        [read_attribute(r, name) for r in records_after])
            for name in attributes}

