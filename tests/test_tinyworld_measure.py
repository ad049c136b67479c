"""Measurement helpers of TinyWorld (no model needed)."""

import pytest

from timelab.tinyworld import spec
from timelab.tinyworld.measure import EDIT_SOURCE, RELATED, UNRELATED, prior_gap, with_colour
from timelab.tinyworld.captions import stated_attributes


def test_with_colour_names_the_colour_before_the_object():
    assert with_colour("a big circle", "blue") == "a big blue circle"
    assert with_colour("a photo of a circle on a black background", "red") == \
        "a photo of a red circle on a black background"
    with pytest.raises(ValueError, match="no colour"):
        with_colour("a red circle", "blue")


def test_evaluation_prompts_are_unseen_by_the_edit_and_split_by_object():
    from timelab.editing.alignment import augment_prompt

    seen = {p.lower() for p in augment_prompt(EDIT_SOURCE)}
    assert not seen & set(RELATED) and len(RELATED) >= 5 and len(UNRELATED) >= 5
    assert all(stated_attributes(p)["kind"] == "circle" for p in RELATED)
    assert all(stated_attributes(p)["kind"] != "circle" for p in UNRELATED)


def test_prior_gap_is_the_largest_share_difference():
    exact = {k: dict(spec.COLOUR_PRIOR[k]) for k in spec.KINDS}
    assert max(prior_gap(exact).values()) == pytest.approx(0.0)
    off = {k: dict(v) for k, v in exact.items()}
    off["cross"]["purple"] -= 0.2
    off["cross"]["yellow"] += 0.2
    assert prior_gap(off)["cross"] == pytest.approx(0.2)
