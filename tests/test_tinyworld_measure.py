"""Measurement helpers of TinyWorld's model card; its TIME row is timelab.evaluation's measurement."""

import itertools
import json
from dataclasses import fields

import numpy as np
import pytest

from timelab.evaluation import OracleJudgeAdapter
from timelab.tinyworld import MODEL_DIR, OracleJudge, spec
from timelab.tinyworld.captions import stated_attributes
from timelab.tinyworld.measure import (
    EDIT_DESTINATION, EDIT_SOURCE, RELATED, UNRELATED, Figures, edit_item, model_card, prior_gap, with_colour,
)
from timelab.tinyworld.render import Scene, render


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


def test_the_oracle_judge_on_the_edit_item_reads_exactly_the_destination_colour():
    """Why the card's shares and evaluate_edit_item's hits are one definition: for every pair of the
    item, on every scene TinyWorld can draw, the second caption wins exactly when the object is blue."""
    item = edit_item()
    assert item.destination == EDIT_DESTINATION == with_colour(EDIT_SOURCE, "blue")
    assert [p for p, _ in item.related] == list(RELATED) and [p for p, _ in item.unrelated] == list(UNRELATED)
    scenes = [Scene(*a) for a in itertools.product(spec.KINDS, spec.COLOURS, spec.SIZES, spec.BACKGROUNDS)]
    images = np.stack([render(s) for s in scenes])
    blue = [int(s.colour == "blue") for s in scenes]
    for pair in [(item.source, item.destination), *item.related, *item.unrelated]:
        assert OracleJudgeAdapter().choose(images, [pair] * len(scenes)).tolist() == blue, pair


def test_the_shipped_model_card_is_what_the_card_code_writes_from_its_figures():
    data = json.loads((MODEL_DIR / "figures.json").read_text())
    command = data.pop("command")
    assert set(data) == {f.name for f in fields(Figures)}, "figures.json and Figures disagree"
    training = json.loads((MODEL_DIR / "training.json").read_text())
    assert model_card(Figures(**data), training, command) == (MODEL_DIR / "README.md").read_text()


def test_edit_rows_and_per_prompt_shares_are_colour_reads(tiny_world):
    """measure_edit against colours read directly, at a lambda and step count where they vary by prompt."""
    import timelab
    from timelab.generation import GenerationSettings, generate
    from timelab.tinyworld.measure import measure_edit

    settings = GenerationSettings(steps=3, guidance_scale=7.5, batch_size=64)
    seeds, lamb = [0, 1, 2], 0.01
    edit = measure_edit(tiny_world, seeds, lamb, settings)
    prompts = [EDIT_SOURCE, *RELATED, *UNRELATED]
    with timelab.time_edit(tiny_world, EDIT_SOURCE, EDIT_DESTINATION, lamb=lamb):
        images = generate(tiny_world, prompts, seeds, settings)
    judge = OracleJudge()
    blue = {p: float(np.mean([r["colour"] == "blue" for r in judge.read(im)])) for p, im in zip(prompts, images)}
    assert 0 < edit["rows"]["TIME"]["specificity"] < 1, "pick settings where the edit leaks a little"
    assert edit["per_prompt"]["TIME"] == pytest.approx(blue)
    for name, row in edit["rows"].items():
        shares = edit["per_prompt"][name]
        assert row["efficacy"] == shares[EDIT_SOURCE]
        assert row["generality"] == pytest.approx(np.mean([shares[p] for p in RELATED]))
        if name != "oracle":
            assert row["specificity"] == pytest.approx(np.mean([1 - shares[p] for p in UNRELATED]))
    assert set(edit["rows"]["oracle"]) == {"efficacy", "generality"} and edit["solve_ms"] > 0


@pytest.fixture(scope="module")
def tiny_world():
    import timelab

    return timelab.load_pipeline("tinyworld", device="cpu")


def test_prior_gap_is_the_largest_share_difference():
    exact = {k: dict(spec.COLOUR_PRIOR[k]) for k in spec.KINDS}
    assert max(prior_gap(exact).values()) == pytest.approx(0.0)
    off = {k: dict(v) for k, v in exact.items()}
    off["cross"]["purple"] -= 0.2
    off["cross"]["yellow"] += 0.2
    assert prior_gap(off)["cross"] == pytest.approx(0.2)
