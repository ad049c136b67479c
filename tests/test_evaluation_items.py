"""TinyWorld item sets: generated from the spec, in TIMED's layout, well-formed for the edit and the judge."""

from __future__ import annotations

import pytest

from timelab.evaluation import load_dataset, read_items, write_items
from timelab.evaluation.tinyworld.attributes import added_attribute
from timelab.evaluation.tinyworld.items import RARE, bias_items, edit_items, prompt
from timelab.tinyworld import spec
from timelab.tinyworld.captions import describe, stated_attributes, unknown_words


def every_prompt(item) -> list[str]:
    return [item.source, item.destination] + [p for pair in (*item.related, *item.unrelated) for p in pair]


def inserted_word(prompt_text: str, form: str) -> str:
    """The one word ``form`` has that ``prompt_text`` lacks, checked at word level (prefixes included)."""
    a, b = prompt_text.split(), form.split()
    found = [j for j in range(len(b)) if b[:j] + b[j + 1:] == a]
    assert found, f"{form!r} is not {prompt_text!r} with one word inserted"
    return b[found[0]]


def test_edit_set_covers_every_kind_and_rare_colour_then_the_size_edit():
    items = edit_items()
    rare = {(k, c) for k in spec.KINDS for c, share in spec.COLOUR_PRIOR[k].items() if share <= RARE}
    # A (kind, colour) needs another kind for which the colour is rare too, to have unrelated prompts.
    expected = {(k, c) for k, c in rare if any((o, c) in rare for o in spec.KINDS if o != k)}
    got = [added_attribute(i.source, i.destination) for i in items]
    assert {(k, v) for k, a, v in got if a == "colour"} == expected
    assert len(items) == len(expected) + 1 == 16
    assert got[-1] == ("square", "size", "small") and spec.SIZE_PRIOR["square"]["small"] < 0.5
    assert len({i.key for i in items}) == len(items)


@pytest.mark.parametrize("item", edit_items(), ids=lambda i: i.key)
def test_edit_item_pairs_differ_exactly_by_the_edited_attribute(item):
    kind, attribute, value = added_attribute(item.source, item.destination)
    assert stated_attributes(item.source) == {"kind": kind}
    assert inserted_word(item.source, item.destination) == value
    assert len(item.related) == len(item.unrelated) == 5
    for p, form in item.related:
        assert added_attribute(p, form) == (kind, attribute, value), f"{p!r}: the edited object gains the value"
        assert inserted_word(p, form) == value
    for p, leaked in item.unrelated:
        judged, got_attribute, got_value = added_attribute(p, leaked)
        assert judged != kind and (got_attribute, got_value) == (attribute, value), f"{p!r}: another kind is judged"
        assert inserted_word(p, leaked) == value
        if attribute == "colour":  # an unedited model keeps prompt and leaked form apart
            assert spec.COLOUR_PRIOR[judged][value] <= RARE
    assert len({p for p, _ in item.related} | {p for p, _ in item.unrelated}) == 10


@pytest.mark.parametrize("item", edit_items() + bias_items(), ids=lambda i: i.key)
def test_every_prompt_is_in_the_grammar(item):
    prompts = every_prompt(item) if hasattr(item, "related") else [item.source, item.destination, item.validation,
                                                                    *item.held_out, *item.candidates]
    for p in prompts:
        assert unknown_words(p) == [], p
        description = describe(p)  # parses
        assert 1 <= len(description.objects) <= 2
        positions = {"position" in o for o in description.objects}
        assert len(positions) == 1, f"{p!r}: positions for every object or none (the grammar's rule)"
        if len(description.objects) == 2:
            kinds = [o["kind"] for o in description.objects]
            assert len(set(kinds)) == 2
            if positions == {True}:
                where = tuple(sorted(o["position"] for o in description.objects))
                assert where in {tuple(sorted(layout)) for layout in spec.LAYOUTS}, p


@pytest.mark.parametrize("item", edit_items(), ids=lambda i: i.key)
def test_related_prompts_cover_size_position_background_rephrasing_and_a_scene(item):
    kind, attribute, _ = added_attribute(item.source, item.destination)
    described = [describe(p) for p, _ in item.related]
    objects = [d.objects for d in described]
    assert all(o[0]["kind"] == kind for o in objects), "the edited kind is named (first)"
    single = [o[0] for o in objects if len(o) == 1]
    other = "colour" if attribute == "size" else "size"
    assert any(set(o) == {"kind", other} for o in single), f"a prompt stating just a {other}"
    assert any(set(o) == {"kind", "position"} for o in single), "a prompt stating just a position"
    assert any(d.background and len(d.objects) == 1 and set(d.objects[0]) == {"kind"} for d in described)
    prefixed = [p for p, _ in item.related if any(p.startswith(x) for x in spec.PREFIXES if x)]
    assert len(prefixed) == 1 and len(stated_attributes(prefixed[0])) >= 3, \
        "the rephrasing combines a prefix with words TIME's augmentation never pairs it with"
    scenes = [(p, o) for (p, _), o in zip(item.related, objects) if len(o) == 2]
    assert len(scenes) == 1 and scenes[0][1][1]["kind"] != kind
    assert attribute not in scenes[0][1][1], "the neighbour is left plain"


@pytest.mark.parametrize("item", edit_items(), ids=lambda i: i.key)
def test_one_unrelated_scene_judges_the_neighbour_of_the_edited_kind(item):
    kind = added_attribute(item.source, item.destination)[0]
    scenes = [(p, leaked) for p, leaked in item.unrelated if len(describe(p).objects) == 2]
    assert len(scenes) == 1
    p, leaked = scenes[0]
    first, second = describe(p).objects
    assert second["kind"] == kind and first["kind"] != kind
    assert added_attribute(p, leaked)[0] == first["kind"], "the judge reads the other object, not the edited one"


def test_the_circle_to_blue_item_in_full():
    (item,) = [i for i in edit_items() if i.key == "a circle -> a blue circle"]
    assert item.related == (
        ("a big circle", "a big blue circle"),
        ("a circle on the left", "a blue circle on the left"),
        ("a circle on a black background", "a blue circle on a black background"),
        ("a photo of a small circle at the top", "a photo of a small blue circle at the top"),
        ("a circle on the left and a square on the right", "a blue circle on the left and a square on the right"),
    )
    assert item.unrelated == (
        ("a square", "a blue square"),
        ("a small triangle", "a small blue triangle"),
        ("a cross at the bottom", "a blue cross at the bottom"),
        ("a square on a white background", "a blue square on a white background"),
        ("a triangle at the top and a circle at the bottom", "a blue triangle at the top and a circle at the bottom"),
    )


def test_prompt_and_added_attribute():
    assert prompt("circle") == "a circle"
    assert prompt("circle", "blue", "small", "left", "black", "a photo of ") == \
        "a photo of a small blue circle on the left on a black background"
    assert prompt("circle", position="top", other="square", other_position="bottom", first=False) == \
        "a square at the bottom and a circle at the top"
    assert prompt("circle", other="square") == "a circle and a square"
    with pytest.raises(ValueError, match="both objects"):
        prompt("circle", position="left", other="square")
    assert added_attribute("a circle and a square", "a circle and a big square") == ("square", "size", "big")
    with pytest.raises(ValueError, match="exactly one"):
        added_attribute("a circle", "a big blue circle")
    with pytest.raises(ValueError, match="exactly one"):
        added_attribute("a red circle", "a blue circle")
    with pytest.raises(ValueError, match="same objects"):
        added_attribute("a circle", "a blue square")


def tinyworld_pairs():
    """(source, destination) of every item, and (prompt, edited or leaked form) of every related/unrelated pair."""
    pairs = []
    for item in edit_items():
        pairs += [(item.source, item.destination), *item.related, *item.unrelated]
    pairs += [(item.source, item.destination) for item in bias_items()]
    return pairs


@pytest.fixture(scope="module")
def tinyworld_tokenizer():
    """The tokenizer TinyWorld's pipeline (and so the edit) uses: its own, not CLIP's."""
    from timelab.tinyworld.tokenizer import build_tokenizer

    return build_tokenizer()


def test_sources_align_with_destinations_in_tinyworld_tokenizer(tinyworld_tokenizer):
    """Every form is its prompt with the value word inserted, and TIME's alignment finds it.

    Checked from the token ids alone: the form's ids with one token removed are the prompt's ids, that
    token is the added value; the alignment sends every prompt token (start and end included) to an
    equal form token, in order, and skips exactly that token.
    """
    from timelab import align_tokens

    tok = tinyworld_tokenizer
    for source, destination in tinyworld_pairs():
        src, dst = tok(source).input_ids, tok(destination).input_ids
        assert src[0] == dst[0] == tok.bos_token_id and src[-1] == dst[-1] == tok.eos_token_id
        inserted = [j for j in range(len(dst)) if dst[:j] + dst[j + 1:] == src]
        assert inserted, f"{destination!r} is not {source!r} with one token inserted"
        j = inserted[0]
        assert dst[j] == tok(added_attribute(source, destination)[2], add_special_tokens=False).input_ids[0]

        mapping = align_tokens(tok, source, destination)
        assert len(mapping) == tok.model_max_length
        n = len(src)
        assert [dst[p] for p in mapping[:n]] == src, f"{source!r}: a source token aligned to another token"
        assert all(a < b for a, b in zip(mapping[:n], mapping[1:n])), "aligned in order"
        assert sorted(set(range(len(dst))) - set(mapping[:n])) == [j], "only the added word is left out"


def test_bias_set_is_the_two_way_kind_towards_its_minority():
    (item,) = bias_items()
    prior = spec.COLOUR_PRIOR["cross"]
    assert item.values == ("yellow", "purple") and prior["yellow"] < prior["purple"]
    assert item.candidates == ("a purple cross", "a yellow cross")
    assert stated_attributes(item.destination) == {"kind": "cross", "colour": "yellow"}
    assert item.validation == "a photo of a cross"
    assert item.validation not in item.held_out and len(set(item.held_out)) == 5
    held = [describe(p) for p in item.held_out]
    assert all(d.objects[0]["kind"] == "cross" and "colour" not in d.objects[0] for d in held)
    assert sum("position" in d.objects[0] for d in held) >= 2, "held-out prompts state positions"
    (scene,) = [d for d in held if len(d.objects) == 2]
    neighbour = scene.objects[1]
    assert "colour" not in neighbour and spec.usual_colour(neighbour["kind"]) not in item.values, \
        "the neighbour's usual colour is neither value, so it is not mistaken for the cross"


def test_tinyworld_sets_round_trip_through_the_timed_layout(tmp_path):
    edits, bias = load_dataset("tinyworld"), load_dataset("tinyworld-bias")
    assert read_items(write_items(tmp_path / "edits.csv", edits)) == edits
    assert read_items(write_items(tmp_path / "bias.csv", bias), values=("purple", "yellow")) == bias
