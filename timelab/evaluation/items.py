"""TinyWorld item sets in TIMED's formats, generated from the world spec and its caption grammar.

Edit set: for every kind and every colour that is rare for it (prior at most ``RARE``), the item
"a <kind>" -> "a <colour> <kind>". Its related prompts restate the kind with sizes and backgrounds
(edited form: the colour added); its unrelated prompts name other kinds for which that colour is
also rare (leaked form: the colour added), so an unedited model keeps them apart.

Bias set: for every kind whose colour prior is a two-way split (the cross: purple 75 / yellow 25),
the item "a <kind>" -> "a <minority colour> <kind>", tuned on "a photo of a <kind>" and measured on
five held-out sizes and backgrounds, as the paper tunes professions.
"""

from __future__ import annotations

from timelab.tinyworld import spec
from timelab.tinyworld.captions import caption
from timelab.tinyworld.render import Scene

from .formats import BiasItem, EditItem

RARE = 0.05  # a colour is "rare" for a kind when the kind shows it at most this often unprompted

# (size, background) stated by the five related prompts, and by the held-out prompts of the bias set.
CONTEXTS = (("big", None), ("small", None), (None, "white"), (None, "black"), ("big", "black"))
# The same for the five unrelated prompts (cycling through the eligible other kinds).
UNRELATED_CONTEXTS = ((None, None), ("small", None), (None, "black"), ("big", None), (None, "white"))


def prompt(kind: str, colour: str | None = None, size: str | None = None, background: str | None = None,
           prefix: str = "") -> str:
    """A caption in TinyWorld's grammar stating just the given attributes."""
    stated = {name for name, value in (("colour", colour), ("size", size), ("background", background)) if value}
    scene = Scene(kind, colour or spec.usual_colour(kind), size or "big", background or "white")
    return caption(scene, stated, prefix)


def rare_colours(kind: str) -> list[str]:
    return [c for c, share in spec.COLOUR_PRIOR[kind].items() if share <= RARE]


def edit_items() -> list[EditItem]:
    """The TinyWorld edit set (one item per kind and rare colour)."""
    items = []
    for kind in spec.KINDS:
        for colour in rare_colours(kind):
            others = [k for k in spec.KINDS if k != kind and colour in rare_colours(k)]
            if not others:
                continue
            related = tuple((prompt(kind, None, s, b), prompt(kind, colour, s, b)) for s, b in CONTEXTS)
            cycled = [(others[i % len(others)], s, b) for i, (s, b) in enumerate(UNRELATED_CONTEXTS)]
            unrelated = tuple((prompt(k, None, s, b), prompt(k, colour, s, b)) for k, s, b in cycled)
            items.append(EditItem(prompt(kind), prompt(kind, colour), related, unrelated))
    return items


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
    return [BiasItem(prompt(kind), prompt(kind, minority), prompt(kind, prefix="a photo of "),
                     tuple(prompt(kind, None, s, b) for s, b in CONTEXTS), (minority, majority))
            for kind, (minority, majority) in two_way_kinds().items()]
