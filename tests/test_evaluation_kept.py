"""Attributes kept: total variation, its per-attribute use on oracle records, the summary, and the
"kept" entry ``evaluate_edit_item`` writes with an attribute-reading judge, all against hand computations.

The end-to-end tests use a fake pipeline that renders the TinyWorld scene a prompt describes (unstated
attributes fixed by the seed) and an editor with known side effects, judged by the real oracle adapter.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

from timelab.evaluation import (
    OracleJudgeAdapter, evaluate, evaluate_edit_item, kept_score, summarize_edits, summarize_kept, write_report,
)
from timelab.evaluation.metrics import total_variation
from timelab.evaluation.tinyworld.attributes import (
    attributes_kept, edited_attributes, kept_attributes, left_alone, read_attribute,
)
from timelab.evaluation.tinyworld.items import edit_items
from timelab.schedulers import ddim
from timelab.tinyworld import spec
from timelab.tinyworld.captions import describe
from timelab.tinyworld.render import Scene, Thing, render


def test_total_variation_by_hand():
    # P: a 2/4, b 1/4, c 1/4; Q: a 1/4, b 3/4. |2/4 - 1/4| + |1/4 - 3/4| + |1/4 - 0| = 1/4 + 2/4 + 1/4 = 1; half: 1/2.
    assert total_variation(list("aabc"), list("abbb")) == pytest.approx(0.5)
    assert total_variation(list("aabc"), list("cbaa")) == 0.0, "a distribution, not a sequence"
    assert total_variation(["x", "x"], ["y"]) == 1.0
    # Sizes may differ: P = x 1; Q = x 1/2, y 1/2 -> (1/2 + 1/2) / 2.
    assert total_variation(["x"], ["x", "y"]) == pytest.approx(0.5)
    assert total_variation([1, 2, 2], [2, 1, 2]) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        total_variation([], ["x"])


def circle(colour="red", size="big", position="middle"):
    return {"kind": "circle", "colour": colour, "size": size, "position": position}


def square(colour="green", size="big", position="right"):
    return {"kind": "square", "colour": colour, "size": size, "position": position}


def test_read_attribute_names():
    record = {"background": "black", "objects": [circle(size="small", position="left"), square()]}
    assert read_attribute(record, "background") == "black"
    assert read_attribute(record, "objects") == 2
    assert read_attribute(record, "circle.size") == "small"
    assert read_attribute(record, "square.position") == "right"
    assert read_attribute(record, "circle.kind") == "circle"
    assert read_attribute(record, "cross.kind") == read_attribute(record, "cross.colour") == "none"
    with pytest.raises(ValueError, match="unknown attribute"):
        read_attribute(record, "size")


def test_attributes_kept_by_hand():
    before = [{"background": "white", "objects": [circle(size="big"), square()]},
              {"background": "white", "objects": [circle(size="big"), square()]},
              {"background": "black", "objects": [circle(size="small"), square()]},
              {"background": "black", "objects": [circle(size="small"), square()]}]
    after = [{"background": "white", "objects": [circle("blue", "big"), square()]},
             {"background": "white", "objects": [circle("blue", "small"), square("blue")]},
             {"background": "white", "objects": [circle("blue", "small")]},
             {"background": "black", "objects": [circle("blue", "small"), square()]}]
    kept = attributes_kept(before, after, ["circle.size", "square.kind", "square.colour", "background", "objects",
                                           "circle.colour"])
    # circle.size: big 2/4 small 2/4 -> big 1/4 small 3/4: TV 1/4.  square.kind: square 4/4 -> square 3/4, none
    # 1/4: TV 1/4.  square.colour: green 4/4 -> green 2/4, blue 1/4, none 1/4: TV 1/2.  background: white 2/4 ->
    # 3/4: TV 1/4.  objects: 2 4/4 -> 2 3/4, 1 1/4: TV 1/4.  circle.colour: red 4/4 -> blue 4/4: TV 1.
    assert kept == pytest.approx({"circle.size": 0.75, "square.kind": 0.75, "square.colour": 0.5, "background": 0.75,
                                  "objects": 0.75, "circle.colour": 0.0})
    assert list(kept) == ["circle.size", "square.kind", "square.colour", "background", "objects", "circle.colour"]
    assert attributes_kept(before, before, ["circle.size", "background"]) == {"circle.size": 1.0, "background": 1.0}
    with pytest.raises(ValueError, match="same, non-zero number"):
        attributes_kept(before, after[:3], ["background"])


def test_kept_score_is_the_mean_over_prompts_of_the_mean_over_attributes():
    rows = [{"circle.size": 1.0, "background": 0.5},
            {"circle.size": 0.5, "square.colour": 1.0, "background": 1.0, "objects": 0.75}]
    score = kept_score(rows)
    # Prompt means: (1 + 0.5) / 2 = 0.75 and (0.5 + 1 + 1 + 0.75) / 4 = 0.8125; their mean 0.78125 (the pooled
    # mean of all six numbers, 4.75 / 6 = 0.79, would weigh the two-object prompt more).
    assert score["mean"] == pytest.approx(0.78125)
    assert score["per_attribute"] == pytest.approx({"background": 0.75, "colour": 1.0, "objects": 0.75, "size": 0.75})
    assert json.loads(json.dumps(score)) == score
    assert kept_score(rows, full_names=True)["per_attribute"] == pytest.approx(
        {"background": 0.75, "circle.size": 0.75, "objects": 0.75, "square.colour": 1.0})
    with pytest.raises(ValueError):
        kept_score([])


def test_kept_attributes_leave_out_what_the_edit_changes():
    assert kept_attributes("a circle and a square", {("circle", "colour")}) == [
        "circle.kind", "circle.size", "circle.position", "square.kind", "square.size", "square.position",
        "square.colour", "background", "objects"]
    assert kept_attributes("a big square on a black background", {("square", "size")}) == [
        "square.kind", "square.position", "square.colour", "background", "objects"]
    assert kept_attributes("a triangle", {("circle", "colour")}) == [
        "triangle.kind", "triangle.size", "triangle.position", "triangle.colour", "background", "objects"]
    both = {("circle", "colour"), ("square", "size")}  # a joint edit changes a set of attributes
    assert kept_attributes("a circle and a square", both) == [
        "circle.kind", "circle.size", "circle.position", "square.kind", "square.position", "square.colour",
        "background", "objects"]


def test_edited_attributes_and_what_an_edit_leaves_alone():
    edited = edited_attributes(["a circle", "a square on the left"], ["a blue circle", "a small square on the left"])
    assert edited == {("circle", "colour"), ("square", "size")}
    with pytest.raises(ValueError, match="exactly one attribute added"):
        edited_attributes(["a circle"], ["a big blue circle"])
    with pytest.raises(ValueError, match="2 source prompts but 1"):
        edited_attributes(["a circle", "a square"], ["a blue circle"])
    assert left_alone("a red circle", edited) and left_alone("a triangle", edited)  # states the colour; no such kind
    assert not left_alone("a big circle", edited)  # the circle's colour is left to the model: the edit decides it
    assert not left_alone("a red circle and a square", edited)  # the square's size is not stated
    assert left_alone("a red circle and a big square", edited)


class ScenePipe:
    """Draws the scene a TinyWorld prompt describes: stated attributes as stated; unstated ones from the seed
    (colour: the kind's usual one; size: big on even seeds; background: black when the seed is a multiple of
    3; one object in the middle, two left and right). ``self.edit(things, background, seed)`` may change it."""

    def __init__(self) -> None:
        self.edit = None
        self.scheduler = ddim()  # named in results headers, as a real pipeline's

    def set_progress_bar_config(self, **_) -> None:
        pass

    def scene(self, prompt: str, seed: int) -> Scene:
        d = describe(prompt)
        slots = ["middle"] if len(d.objects) == 1 else ["left", "right"]
        things = [Thing(o["kind"], o.get("colour", spec.usual_colour(o["kind"])),
                        o.get("size", "big" if seed % 2 == 0 else "small"), o.get("position", slot))
                  for o, slot in zip(d.objects, slots)]
        background = d.background or ("black" if seed % 3 == 0 else "white")
        if self.edit:
            things, background = self.edit(things, background, seed)
        return Scene(tuple(things), background)

    def __call__(self, prompt, generator, output_type, **_):
        assert output_type == "np"
        return SimpleNamespace(images=np.stack([render(self.scene(p, g.initial_seed()))
                                                for p, g in zip(prompt, generator)]))


@contextmanager
def sloppy_edit(pipe: ScenePipe, source: str, destination: str, lamb: float):
    """Turns every circle blue (the edit), and on the side: seed 0's background flips, seed 1's square
    turns blue too."""
    def edit(things, background, seed):
        things = [Thing(t.kind, "blue", t.size, t.position) if t.kind == "circle"
                  or (t.kind == "square" and seed == 1) else t for t in things]
        if seed == 0:
            background = "white" if background == "black" else "black"
        return things, background

    pipe.edit = edit
    try:
        yield
    finally:
        pipe.edit = None


ITEM = next(i for i in edit_items() if i.key == "a circle -> a blue circle")
SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def record():
    return evaluate_edit_item(ScenePipe(), OracleJudgeAdapter(), ITEM, SEEDS, [0.1], editor=sloppy_edit)


def test_edit_rows_get_the_attributes_kept_by_hand(record):
    unedited, edited, oracle = record["rows"]
    assert "kept" not in unedited and "kept" not in oracle
    prompts = [ITEM.source] + [p for p, _ in ITEM.related] + [p for p, _ in ITEM.unrelated]
    assert len(edited["kept"]) == len(prompts) == 11
    # Every prompt: seed 0 of 4 flips its background. Unstated backgrounds: black, white, white, black ->
    # white, white, white, black (TV 1/4); stated ones: all black -> one white (TV 1/4). Kept: 3/4.
    assert all(k["background"] == 0.75 for k in edited["kept"])
    # The source: circle.colour is what the edit changes, so not measured; the rest did not move.
    assert edited["kept"][0] == {"circle.kind": 1.0, "circle.size": 1.0, "circle.position": 1.0,
                                 "background": 0.75, "objects": 1.0}
    # The related scene "a circle on the left and a square on the right": the square's colour is measured,
    # and on seed 1 of 4 it turned blue: green 4/4 -> green 3/4, blue 1/4, TV 1/4.
    scene = edited["kept"][prompts.index("a circle on the left and a square on the right")]
    assert scene == {"circle.kind": 1.0, "circle.size": 1.0, "circle.position": 1.0, "square.kind": 1.0,
                     "square.size": 1.0, "square.position": 1.0, "square.colour": 0.75, "background": 0.75,
                     "objects": 1.0}
    assert edited["kept"][prompts.index("a small triangle")]["triangle.colour"] == 1.0
    assert edited["kept"][prompts.index("a square")]["square.colour"] == 0.75
    # The paper's metrics from the same images: every circle blue; the square leaked on seed 1 only.
    assert edited["efficacy"] == [[1, 1, 1, 1]] and unedited["efficacy"] == [[0, 0, 0, 0]]
    assert edited["specificity"][0] == [1, 0, 1, 1] and edited["generality"] == [[1] * 4] * 5
    # "a triangle at the top and a circle at the bottom": the triangle is judged and stays yellow, though
    # the circle beside it turned blue.
    assert edited["specificity"][4] == [1, 1, 1, 1]
    summary = kept_score(edited["kept"])
    assert summary["per_attribute"]["background"] == 0.75 and summary["per_attribute"]["kind"] == 1.0
    assert summary["mean"] == pytest.approx(np.mean([np.mean(list(k.values())) for k in edited["kept"]]))


def test_kept_leaves_the_record_json_ready_and_the_summaries_working(record):
    assert json.loads(json.dumps(record)) == record
    summary = summarize_edits([record])
    assert set(summary) == {"unedited", "TIME (lambda=0.1)", "oracle"}
    assert summary["TIME (lambda=0.1)"]["efficacy"].mean == 1.0
    kept = summarize_kept([record, record])
    assert list(kept) == ["TIME (lambda=0.1)"] and kept["TIME (lambda=0.1)"] == kept_score(record["rows"][1]["kept"])


def test_the_report_shows_an_attributes_kept_column(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMELAB_FIGURES_DIR", str(tmp_path / "figures"))
    output = tmp_path / "run.jsonl"
    (record,) = evaluate(ScenePipe(), [ITEM], output, OracleJudgeAdapter(), seeds=SEEDS, lambdas=[0.1],
                         editor=sloppy_edit)
    lines = write_report(output).splitlines()
    assert lines[0] == "| model | efficacy | generality | specificity | attributes kept |"
    expected = 100 * kept_score(record["rows"][1]["kept"])["mean"]
    assert lines[3].startswith("| TIME (lambda=0.1) | 100.0 [") and lines[3].endswith(f" | {expected:.1f} |")
    assert lines[2].endswith(" | - |") and lines[4].endswith(" | - |"), "unedited and oracle rows have none"
    assert lines[-1].startswith("Attributes kept (percent)")
