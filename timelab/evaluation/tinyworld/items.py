"""TinyWorld item sets in TIMED's formats, generated from the world spec and its caption grammar.

Every prompt is written by the grammar's own ``caption`` (so ``describe`` reads it back) and every pair
differs in exactly one stated attribute of one object (:func:`~timelab.evaluation.tinyworld.attributes.added_attribute` finds it): that is what
the judge reads for the pair. Each item's prompts differ from one another, and each differs from the
prompts TIME tunes on: the source alone and with its augmentation prefixes ("a photo of ", "an image of ",
"a picture of ", which are all the grammar's prefixes), so a prefix appears only combined with other words.

**Edit set** (:func:`edit_items`): colour items, then the size item.

Colour items: for every kind K and every colour C rare for it (prior at most ``RARE``) that is also rare
for some other kind, "a K" -> "a C K": 15 items. Related prompts (edited form: C added to K), one per
kind of context the edit should reach:

  1. a size             "a big K"
  2. a position         "a K on the left"
  3. a background       "a K on a black background"
  4. a rephrasing       "a photo of a small K at the top" (TIME saw the prefix, never with these words)
  5. a two-object scene "a K on the left and a O on the right": K named first, the judge reads K; O is
                        the first other kind for which C is rare too (no C-coloured neighbour to fool CLIP)

Unrelated prompts (leaked form: C added to the judged object), cycling through the other kinds O for
which C is rare too, so an unedited model keeps prompt and leaked form apart: "a O", "a small O",
"a O at the bottom", "a O on a white background", and the scene "a O at the top and a K at the bottom",
where the judge reads O, the *other* object, while K beside it should turn C. That last one is the
paper's specificity measured inside one image: does the colour spill over to the neighbour? (A CLIP
judge is also tempted there by the C-coloured K: its error, which the exact judge shows.)

Size item: "a square" -> "a small square" (the square is the one kind with a size prior: big 85%).
Related: "a blue square", "a square on the left", "a square on a black background",
"a photo of a red square at the top", "a square on the left and a circle on the right" (edited form:
"small" added to the square). Unrelated (leaked form: "small" added to the judged object): "a circle",
"a triangle at the bottom", "a cross on a white background", "a circle on the right", and "a triangle at
the top and a square at the bottom", the triangle judged. The other kinds are small or big alike, so an
*unedited* model's specificity on this item is only about 50%: read it against the unedited row (and
the attributes kept), not against 100%.

Efficacy, generality and specificity read one attribute per pair; whatever else an edit moves (sizes,
positions, backgrounds, the neighbour's colour) is measured by the attributes kept
(:mod:`timelab.evaluation.tinyworld.attributes`), which every prompt above also feeds.

**Bias set** (:func:`bias_items`): for every kind whose colour prior is a two-way split (the cross:
purple 75 / yellow 25), "a K" -> "a <minority colour> K", tuned on "a photo of a K" (as the paper tunes
professions) and measured on five held-out prompts: a size, a size with a position, a position, a
background, and a two-object scene ("a K on the left and a circle on the right": the first kind whose
usual colour is neither of the two, so the neighbour is not mistaken for the judged object).
"""

from __future__ import annotations

from ...tinyworld import spec
from ...tinyworld.captions import caption
from ...tinyworld.render import Scene, Thing
from ..formats import BiasItem, EditItem

RARE = 0.05  # a colour is "rare" for a kind when the kind shows it at most this often unprompted

# The size edit: the kind with a size prior, and the size that is rare for it.
SIZE_EDIT = ("square", "small")
# The neighbour in the size item's two-object related prompt, and the colours its related prompts state.
SIZE_NEIGHBOUR = "circle"
SIZE_COLOURS = ("blue", "red")


def prompt(kind: str, colour: str | None = None, size: str | None = None, position: str | None = None,
           background: str | None = None, prefix: str = "", *, other: str | None = None,
           other_position: str | None = None, first: bool = True) -> str:
    """A caption in TinyWorld's grammar stating just the given attributes.

    With ``other`` (a kind) the scene holds a second, plain object at ``other_position``; ``first``
    says whether ``kind`` is named before it. ``prompt("circle", "blue", position="left", other="square",
    other_position="right")`` is "a blue circle on the left and a square on the right".
    """
    stated = {name for name, value in (("colour", colour), ("size", size), ("position", position))
              if value is not None}
    thing = Thing(kind, colour or spec.usual_colour(kind), size or "big", position or "middle")
    if other is None:
        things, per_object = (thing,), [stated]
    else:
        if (position is None) != (other_position is None):
            raise ValueError("give the positions of both objects or of neither")
        # Unstated positions: lay the two out left and right; the caption does not say where they are.
        things = (Thing(kind, thing.colour, thing.size, position or "left"),
                  Thing(other, spec.usual_colour(other), "big", other_position or "right"))
        per_object = [stated, {"position"} if other_position else set()]
    if background is not None:
        per_object = [s | {"background"} for s in per_object]
    return caption(Scene(things, background or "white"), per_object, prefix, order=None if first else [1, 0])


def rare_colours(kind: str) -> list[str]:
    return [c for c, share in spec.COLOUR_PRIOR[kind].items() if share <= RARE]


def colour_item(kind: str, colour: str, others: list[str]) -> EditItem:
    """"a <kind>" -> "a <colour> <kind>", unrelated prompts cycling through ``others`` (see the module)."""
    def related(c):
        return (prompt(kind, c, size="big"), prompt(kind, c, position="left"), prompt(kind, c, background="black"),
                prompt(kind, c, size="small", position="top", prefix="a photo of "),
                prompt(kind, c, position="left", other=others[0], other_position="right"))

    def unrelated(i, c):
        o = others[i % len(others)]
        return (prompt(o, c), prompt(o, c, size="small"), prompt(o, c, position="bottom"),
                prompt(o, c, background="white"),
                prompt(o, c, position="top", other=kind, other_position="bottom"))[i]

    return EditItem(prompt(kind), prompt(kind, colour), tuple(zip(related(None), related(colour))),
                    tuple((unrelated(i, None), unrelated(i, colour)) for i in range(5)))


def colour_items() -> list[EditItem]:
    """One item per kind and rare colour that is also rare for another kind."""
    items = []
    for kind in spec.KINDS:
        for colour in rare_colours(kind):
            others = [k for k in spec.KINDS if k != kind and colour in rare_colours(k)]
            if others:
                items.append(colour_item(kind, colour, others))
    return items


def size_items() -> list[EditItem]:
    """"a square" -> "a small square" (see the module docstring)."""
    kind, size = SIZE_EDIT
    if spec.SIZE_PRIOR[kind][size] > 0.5:
        raise ValueError(f"{size} is not the rare size of a {kind}")
    blue, red = SIZE_COLOURS
    others = [k for k in spec.KINDS if k != kind]

    def related(s):
        return (prompt(kind, blue, size=s), prompt(kind, size=s, position="left"),
                prompt(kind, size=s, background="black"),
                prompt(kind, red, size=s, position="top", prefix="a photo of "),
                prompt(kind, size=s, position="left", other=SIZE_NEIGHBOUR, other_position="right"))

    def unrelated(s):
        return (prompt(others[0], size=s), prompt(others[1], size=s, position="bottom"),
                prompt(others[2], size=s, background="white"), prompt(others[0], size=s, position="right"),
                prompt(others[1], size=s, position="top", other=kind, other_position="bottom"))

    return [EditItem(prompt(kind), prompt(kind, size=size), tuple(zip(related(None), related(size))),
                     tuple(zip(unrelated(None), unrelated(size))))]


def edit_items() -> list[EditItem]:
    """The TinyWorld edit set: the colour items, then the size item."""
    return colour_items() + size_items()


def two_way_kinds() -> dict[str, tuple[str, str]]:
    """Kinds whose colour prior has exactly two values: kind -> (minority colour, majority colour)."""
    out = {}
    for kind, prior in spec.COLOUR_PRIOR.items():
        seen = sorted((c for c, share in prior.items() if share > 0), key=prior.get)
        if len(seen) == 2:
            out[kind] = (seen[0], seen[1])
    return out


def bias_items() -> list[BiasItem]:
    """The TinyWorld bias set: edit each two-way kind towards its minority colour."""
    items = []
    for kind, (minority, majority) in two_way_kinds().items():
        neighbour = next(k for k in spec.KINDS if k != kind and spec.usual_colour(k) not in (minority, majority))
        held_out = (prompt(kind, size="big"), prompt(kind, size="small", position="right"),
                    prompt(kind, position="top"), prompt(kind, background="black"),
                    prompt(kind, position="left", other=neighbour, other_position="right"))
        items.append(BiasItem(prompt(kind), prompt(kind, minority), prompt(kind, prefix="a photo of "),
                              held_out, (minority, majority)))
    return items
