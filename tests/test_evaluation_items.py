"""TinyWorld item sets: generated from the spec, in TIMED's layout, well-formed for the edit and the judge."""

from __future__ import annotations

import pytest

from timelab.evaluation import load_dataset, read_items, write_items
from timelab.evaluation.items import RARE, bias_items, edit_items
from timelab.tinyworld import spec
from timelab.tinyworld.captions import stated_attributes


def test_edit_set_covers_every_kind_and_rare_colour():
    items = edit_items()
    expected = {(k, c) for k in spec.KINDS for c, share in spec.COLOUR_PRIOR[k].items() if share <= RARE}
    got = {(stated_attributes(i.destination)["kind"], stated_attributes(i.destination)["colour"]) for i in items}
    assert got == expected and len(items) == len(expected)


@pytest.mark.parametrize("item", edit_items(), ids=lambda i: i.key)
def test_edit_item_prompts_say_what_they_should(item):
    source, destination = stated_attributes(item.source), stated_attributes(item.destination)
    colour = destination["colour"]
    assert source == {"kind": destination["kind"]}
    assert len(item.related) == len(item.unrelated) == 5
    for prompt, form in item.related:
        stated = stated_attributes(prompt)
        assert stated["kind"] == source["kind"] and "colour" not in stated
        assert stated_attributes(form) == {**stated, "colour": colour}
    for prompt, leaked in item.unrelated:
        stated = stated_attributes(prompt)
        assert stated["kind"] != source["kind"] and "colour" not in stated
        assert spec.COLOUR_PRIOR[stated["kind"]][colour] <= RARE, "an unedited model must keep them apart"
        assert stated_attributes(leaked) == {**stated, "colour": colour}
    assert len({p for p, _ in item.related} | {p for p, _ in item.unrelated}) == 10


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
    """Every destination is its source with the colour word inserted, and TIME's alignment finds it.

    Checked from the token ids alone: the destination's ids with one colour token removed are the
    source's ids; the alignment sends every source token (start and end included) to an equal
    destination token, in order, and skips exactly that colour token.
    """
    from timelab import align_tokens

    tok = tinyworld_tokenizer
    colour_ids = {tok(c, add_special_tokens=False).input_ids[0]: c for c in spec.COLOURS}
    assert all(len(tok(c, add_special_tokens=False).input_ids) == 1 for c in spec.COLOURS)
    for source, destination in tinyworld_pairs():
        src, dst = tok(source).input_ids, tok(destination).input_ids
        assert src[0] == dst[0] == tok.bos_token_id and src[-1] == dst[-1] == tok.eos_token_id
        inserted = [j for j in range(len(dst)) if dst[:j] + dst[j + 1:] == src]
        assert inserted, f"{destination!r} is not {source!r} with one token inserted"
        j = inserted[0]
        assert dst[j] in colour_ids and colour_ids[dst[j]] == stated_attributes(destination)["colour"]

        mapping = align_tokens(tok, source, destination)
        assert len(mapping) == tok.model_max_length
        n = len(src)
        assert [dst[p] for p in mapping[:n]] == src, f"{source!r}: a source token aligned to another token"
        assert all(a < b for a, b in zip(mapping[:n], mapping[1:n])), "aligned in order"
        assert sorted(set(range(len(dst))) - set(mapping[:n])) == [j], "only the colour word is left out"


def test_bias_set_is_the_two_way_kind_towards_its_minority():
    (item,) = bias_items()
    prior = spec.COLOUR_PRIOR["cross"]
    assert item.values == ("yellow", "purple") and prior["yellow"] < prior["purple"]
    assert item.candidates == ("a purple cross", "a yellow cross")
    assert stated_attributes(item.destination) == {"kind": "cross", "colour": "yellow"}
    assert item.validation not in item.held_out and len(set(item.held_out)) == 5
    assert all(stated_attributes(p)["kind"] == "cross" and "colour" not in stated_attributes(p)
               for p in (item.validation, *item.held_out))


def test_tinyworld_sets_round_trip_through_the_timed_layout(tmp_path):
    edits, bias = load_dataset("tinyworld"), load_dataset("tinyworld-bias")
    assert read_items(write_items(tmp_path / "edits.csv", edits)) == edits
    assert read_items(write_items(tmp_path / "bias.csv", bias), values=("purple", "yellow")) == bias
