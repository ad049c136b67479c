"""The lab's callbacks, called directly: apply / undo / reset, bad input as messages, one run at a time;
typed test prompts, judged shares over seeds, and the edit's numbers against independent computations."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import timelab
from timelab.editing import cross_attention_layers
from timelab.generation import GenerationSettings
from timelab.lab import (
    BUSY, NO_JUDGE, LabControls, LabSession, attribute_shares, fit_residual, numbers_text, parse_prompts, prompt_kept,
    report_rows, weight_change,
)

PROMPTS = ["a pack of roses", "a red car"]
STEPS = 2


def projection_weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}.{part}": getattr(layer, part).weight.detach().clone()
            for name, layer in cross_attention_layers(pipe.unet).items() for part in ("to_k", "to_v")}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def weights_of_edit(pipe, **kwargs) -> dict[str, torch.Tensor]:
    """The projections after timelab.time_edit with ``kwargs`` (undone afterwards)."""
    with timelab.time_edit(pipe, **kwargs):
        return projection_weights(pipe)


def direct_drawing(pipe, prompt: str, seed: int):
    """One image and its token maps drawn without the lab (an independent path)."""
    with timelab.AttentionRecorder(pipe) as recorder:
        image = pipe(prompt=[prompt], generator=[torch.Generator("cpu").manual_seed(seed)], output_type="np",
                     num_inference_steps=STEPS).images[0]
    return np.asarray(image), recorder.token_maps(prompt)[1]


@pytest.fixture
def lab(sd1_pipe):
    return LabSession(sd1_pipe, PROMPTS, settings=GenerationSettings(steps=STEPS))


ROSES = LabControls("a pack of roses", "a pack of blue roses", lamb=0.1, seed=3)


def test_apply_edits_like_time_edit_and_shows_before_and_after(lab, sd1_pipe):
    original = projection_weights(sd1_pipe)
    expected = weights_of_edit(sd1_pipe, source=ROSES.source, destination=ROSES.destination, lamb=ROSES.lamb)
    view = lab.apply(ROSES)
    assert view.ok, view.message
    assert same_weights(projection_weights(sd1_pipe), expected)
    assert "'a pack of roses' -> 'a pack of blue roses'" in view.state
    assert [p.prompt for p in view.prompts] == PROMPTS
    roses = view.prompts[0]
    timelab.reset_edits(sd1_pipe)  # draw the original model by hand, then the edited one
    assert same_weights(projection_weights(sd1_pipe), original)
    image, maps = direct_drawing(sd1_pipe, ROSES.source, ROSES.seed)
    np.testing.assert_allclose(roses.image_before, image, atol=1e-5)
    torch.testing.assert_close(roses.maps_before, maps)
    with timelab.time_edit(sd1_pipe, ROSES.source, ROSES.destination, lamb=ROSES.lamb):
        image, maps = direct_drawing(sd1_pipe, ROSES.source, ROSES.seed)
    np.testing.assert_allclose(roses.image_after, image, atol=1e-5)
    torch.testing.assert_close(roses.maps_after, maps)
    assert [s.label for s in roses.spans][:4] == ["<start>", "a", "pack", "of"]
    assert not torch.equal(roses.maps_before, roses.maps_after), "the edit should move the attention maps"


def test_keys_values_and_layers_controls_reach_the_edit(lab, sd1_pipe):
    original = projection_weights(sd1_pipe)
    one_layer = lab.layer_names[-1]
    view = lab.apply(LabControls(ROSES.source, ROSES.destination, edit_keys=False, layers=(one_layer,)))
    assert view.ok, view.message
    changed = {n for n, w in projection_weights(sd1_pipe).items() if not torch.equal(w, original[n])}
    assert changed == {f"{one_layer}.to_v"}
    assert "values, 1 layer(s)" in view.state


def test_apply_replaces_undo_steps_back_reset_restores(lab, sd1_pipe):
    original = projection_weights(sd1_pipe)
    first = weights_of_edit(sd1_pipe, source=ROSES.source, destination=ROSES.destination)
    second = weights_of_edit(sd1_pipe, source="a red car", destination="a fast red car", lamb=1.0)
    assert lab.apply(ROSES).ok
    assert lab.apply(LabControls("a red car", "a fast red car", lamb=1.0)).ok
    assert same_weights(projection_weights(sd1_pipe), second), "an edit starts from the original model"
    view = lab.undo(seed=1)
    assert view.ok and "previous edit is back" in view.message
    assert same_weights(projection_weights(sd1_pipe), first)
    view = lab.undo()
    assert view.ok and view.state == "original model"
    assert same_weights(projection_weights(sd1_pipe), original)
    view = lab.undo()
    assert not view.ok and "Nothing to undo" in view.message and view.prompts == []
    assert lab.apply(ROSES).ok and lab.apply(LabControls("a red car", "a fast red car")).ok
    view = lab.reset(seed=2)
    assert view.ok and view.state == "original model" and lab.history == []
    assert same_weights(projection_weights(sd1_pipe), original)
    for p in view.prompts:  # nothing is edited, so before and after are the same drawing
        np.testing.assert_array_equal(p.image_before, p.image_after)


@pytest.mark.parametrize("controls, words", [
    (LabControls("", "a blue rose"), "source prompt is empty"),
    (LabControls("a rose", "   "), "destination prompt is empty"),
    (LabControls("a pack of roses", "a bunch of tulips"), "'pack'"),
    (LabControls("a rose", "a blue rose", lamb=0.0), "lamb must be > 0"),
    (LabControls("a rose", "a blue rose", edit_keys=False, edit_values=False), "Nothing to edit"),
    (LabControls("a rose", "a blue rose", layers=()), "No layer selected"),
    (LabControls("a rose", "a blue rose", layers=("no.such.layer",)), "Unknown layer"),
    (LabControls("a rose", "a blue rose", seed=-1), "seed must be 0 or more"),
    (LabControls("a rose", "a blue rose", prompts=" ,  , "), "No test prompt"),
    (LabControls("a rose", "a blue rose", prompts="\n  \n"), "No test prompt"),
])
def test_bad_input_is_a_message_and_changes_nothing(lab, sd1_pipe, controls, words):
    assert lab.apply(ROSES).ok
    before = projection_weights(sd1_pipe)
    view = lab.apply(controls)
    assert not view.ok and words in view.message and view.prompts == []
    assert same_weights(projection_weights(sd1_pipe), before), "a refused action must not touch the model"
    assert len(lab.history) == 1 and lab.prompts == PROMPTS


def test_a_session_needs_test_prompts(sd1_pipe):
    with pytest.raises(ValueError, match="at least one non-empty test prompt"):
        LabSession(sd1_pipe, ["", "  "])


def test_no_overlapping_runs(lab, sd1_pipe, monkeypatch):
    """While one action draws, every other action answers 'busy' at once and leaves the model alone."""
    started, release = threading.Event(), threading.Event()
    draw = lab._draw

    def slow_draw(seed):
        started.set()
        assert release.wait(30), "test timed out"
        return draw(seed)

    monkeypatch.setattr(lab, "_draw", slow_draw)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", lab.apply(ROSES)))
    worker.start()
    try:
        assert started.wait(30)
        during = projection_weights(sd1_pipe)
        answers = [lab.apply(LabControls("a red car", "a fast red car")), lab.undo(), lab.reset()]
        assert all(not a.ok and a.message == BUSY for a in answers)
        assert same_weights(projection_weights(sd1_pipe), during)
    finally:
        release.set()
        worker.join(60)
    assert results["first"].ok and len(lab.history) == 1
    assert lab.undo().ok, "the lock is released after a run"


def test_widget_buttons_call_the_session_and_show_its_answers(lab, sd1_pipe):
    import ipywidgets

    from timelab.widgets import lab_widget

    def parts(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from parts(child)

    box = lab_widget(lab, ROSES.source, ROSES.destination, background=False)
    found = list(parts(box))
    button = {w.description: w for w in found if isinstance(w, ipywidgets.Button)}
    message, state, report = [w for w in found if isinstance(w, ipywidgets.HTML)]
    source = next(w for w in found if isinstance(w, ipywidgets.Text) and w.description == "source")
    typed = next(w for w in found if isinstance(w, ipywidgets.Textarea))
    choice = next(w for w in found if isinstance(w, ipywidgets.Dropdown))
    assert typed.value.splitlines() == PROMPTS and "a red car" in report.value
    images, attention = [w for w in found if isinstance(w, ipywidgets.Image)]
    assert bytes(images.value).startswith(b"\x89PNG") and bytes(attention.value).startswith(b"\x89PNG"), \
        "before any action the lab shows the unedited model (no empty image frames)"
    assert "original model" in message.value and lab.history == []
    expected = weights_of_edit(sd1_pipe, source=ROSES.source, destination=ROSES.destination)
    button["apply"].click()
    assert "Applied" in message.value and "blue roses" in state.value
    assert same_weights(projection_weights(sd1_pipe), expected)
    assert bytes(images.value).startswith(b"\x89PNG"), "the before/after images should be shown"
    assert "Weights moved" in report.value and "fit residual" in report.value
    assert "Images only: this model has no judge" in message.value, "a model without a judge says so"
    typed.value = "a red car, a blue rose"
    shown, shown_attention = bytes(images.value), bytes(attention.value)
    button["apply"].click()
    assert lab.prompts == ["a red car", "a blue rose"] and list(choice.options) == lab.prompts
    assert choice.value == "a red car" and choice.index == 0, "the attention choice moves to the new prompts"
    assert bytes(attention.value) != shown_attention, "the attention maps are of the new prompts"
    assert "a blue rose" in report.value and bytes(images.value) != shown
    typed.value = " \n "
    button["apply"].click()
    assert "No test prompt" in message.value and lab.prompts == ["a red car", "a blue rose"]
    typed.value = "a red car"
    source.value = "  "
    button["apply"].click()
    assert "source prompt is empty" in message.value and len(lab.history) == 2
    button["undo"].click()
    button["undo"].click()
    assert "original model" in state.value and lab.history == []
    assert all(not b.disabled for b in button.values()), "buttons are enabled again after a run"


def test_view_draws_the_model_as_it_is(lab, sd1_pipe):
    original = projection_weights(sd1_pipe)
    view = lab.view(seed=3)
    assert view.ok and "original model" in view.message and len(view.prompts) == len(PROMPTS)
    image, maps = direct_drawing(sd1_pipe, PROMPTS[0], seed=3)
    np.testing.assert_allclose(view.prompts[0].image_after, image, atol=1e-5)  # batched vs single: float rounding
    torch.testing.assert_close(view.prompts[0].maps_after, maps)
    assert same_weights(projection_weights(sd1_pipe), original)


def test_words_the_tokenizer_spells_out_are_named_in_the_message(lab):
    view = lab.apply(LabControls("a xqzw", "a blue xqzw"))
    assert view.ok and "Warning" in view.message and "'xqzw'" in view.message
    assert "Warning" not in lab.apply(ROSES).message


def test_default_prompts_fit_the_model():
    """TinyWorld's defaults are in its grammar: the source first, a scene with the source's object beside
    another (the edit should reach one and not the other), an unrelated prompt; the pair aligns."""
    from transformers import CLIPTokenizer

    from timelab.lab import lab_defaults
    from timelab.models import SD14, TINYWORLD
    from timelab.tinyworld import MODEL_DIR
    from timelab.tinyworld.captions import describe

    tiny = lab_defaults(TINYWORLD)
    kind = describe(tiny.source).objects[0]["kind"]
    scenes = [[o["kind"] for o in describe(p).objects] for p in tiny.test_prompts]
    assert tiny.test_prompts[0] == tiny.source
    assert any(len(kinds) == 2 and kind in kinds for kinds in scenes), "a two-object scene with the source's object"
    assert any(kind not in kinds for kinds in scenes), "an unrelated prompt"
    timelab.align_tokens(CLIPTokenizer.from_pretrained(MODEL_DIR / "tokenizer"), tiny.source, tiny.destination)
    assert lab_defaults(SD14).source == "a pack of roses" and lab_defaults("some/model").test_prompts[0] == "a pack of roses"


# ----------------------------------------------------------------------------- typed test prompts
@pytest.mark.parametrize("text, prompts", [
    ("a circle, a square", ["a circle", "a square"]),
    ("a circle\na big   square\n\n", ["a circle", "a big square"]),
    ("a cat, on a mat\na dog", ["a cat, on a mat", "a dog"]),  # several lines: commas stay in a prompt
    ("  a circle ,, ", ["a circle"]),
])
def test_parse_prompts(text, prompts):
    assert parse_prompts(text) == prompts


@pytest.mark.parametrize("text", ["", "   ", " , ,", "\n \n"])
def test_parse_prompts_refuses_empty_text(text):
    with pytest.raises(ValueError, match="No test prompt"):
        parse_prompts(text)


def test_typed_test_prompts_are_drawn_and_unknown_words_named(lab):
    view = lab.apply(LabControls(ROSES.source, ROSES.destination, prompts="a red car\n a xqzw in a vase "))
    assert view.ok, view.message
    assert lab.prompts == ["a red car", "a xqzw in a vase"] == [p.prompt for p in view.prompts]
    assert "Warning (test prompts)" in view.message and "'xqzw'" in view.message
    assert "Warning" not in lab.apply(LabControls(ROSES.source, ROSES.destination, prompts="a red car")).message
    assert lab.undo().prompts[0].prompt == "a red car", "undo keeps the test prompts last applied"


# ------------------------------------------------------------------------------ numbers of an edit
def independent_keys(pipe, source: str, destination: str):
    """Keys C and aligned targets C* built by hand: the four augmented prompts written out, encoded with
    the text encoder directly, aligned with timelab.align_tokens."""
    base = source, destination
    pairs = [base] + [(prefix + s, prefix + d) for prefix in ("A photo of ", "An image of ", "A picture of ")
                      for s, d in [base]]
    keys, targets = [], []
    for s, d in pairs:
        ids = pipe.tokenizer([s, d], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            states = pipe.text_encoder(ids)[0].double()
        keys.append(states[0])
        targets.append(states[1][timelab.align_tokens(pipe.tokenizer, s, d)])
    return torch.cat(keys), torch.cat(targets)


def test_weight_change_and_fit_residual_against_independent_computations(lab, sd1_pipe):
    original = projection_weights(sd1_pipe)
    keys, targets = independent_keys(sd1_pipe, ROSES.source, ROSES.destination)
    measured = {}
    for lamb in (0.01, 1.0, 100.0):
        view = lab.apply(LabControls(ROSES.source, ROSES.destination, lamb=lamb))
        assert view.ok, view.message
        edited = projection_weights(sd1_pipe)
        moved = sum(float((edited[n].double() - original[n].double()).norm() ** 2) for n in original)
        size = sum(float(original[n].double().norm() ** 2) for n in original)
        miss = sum(float((edited[n].double() @ keys.T - original[n].double() @ targets.T).norm() ** 2) for n in original)
        goal = sum(float((original[n].double() @ targets.T).norm() ** 2) for n in original)
        assert weight_change(lab.active) == pytest.approx((moved / size) ** 0.5, rel=1e-6)
        assert fit_residual(lab.active) == pytest.approx((miss / goal) ** 0.5, rel=1e-4)
        assert view.numbers.weight_change == weight_change(lab.active)
        assert view.numbers.fit_residual == fit_residual(lab.active) and view.numbers.kept is None
        measured[lamb] = view.numbers
    changes = [measured[l].weight_change for l in sorted(measured)]
    residuals = [measured[l].fit_residual for l in sorted(measured)]
    assert changes == sorted(changes, reverse=True), "a larger lambda moves the weights less"
    assert residuals == sorted(residuals), "a larger lambda fits the targets less closely"
    assert "Weights moved" in numbers_text(measured[1.0]) and numbers_text(None) == ""


def test_weight_change_is_zero_for_an_edit_that_changes_nothing(lab, sd1_pipe):
    edit = timelab.time_edit(sd1_pipe, "a rose", "a rose", lamb=1.0)  # targets are the keys' own values
    assert weight_change(edit) < 1e-6 and fit_residual(edit) < 1e-5


# ------------------------------------------------------------------------- shares and kept (records)
def record(*objects, background="white"):
    return {"background": background,
            "objects": [dict(zip(("kind", "colour", "size", "position"), o)) for o in objects]}


def test_attribute_shares_counts_each_named_object():
    records = [record(("circle", "blue", "big", "left"), ("square", "green", "big", "right")),
               record(("circle", "red", "big", "left"), ("square", "blue", "big", "right")),
               record(("square", "blue", "small", "middle")),  # no circle: counts as not blue
               record(("circle", "blue", "small", "middle"))]
    shares = attribute_shares(records, "a circle on the left and a square on the right", "colour", "blue")
    assert shares == {"circle": 2 / 4, "square": 2 / 4}
    assert attribute_shares(records, "a square", "size", "small") == {"square": 1 / 4}
    with pytest.raises(ValueError, match="does not know"):
        attribute_shares(records, "a zebra", "colour", "blue")
    with pytest.raises(ValueError, match="no records"):
        attribute_shares([], "a circle", "colour", "blue")


def test_prompt_kept_is_one_minus_total_variation_of_the_untouched_attributes():
    before = [record(("circle", "red", "big", "left")) for _ in range(4)]
    after = [record(("circle", "blue", "big", "left")), record(("circle", "blue", "small", "left")),
             record(("circle", "blue", "big", "left"), background="black"), record()]
    kept = prompt_kept(before, after, "a circle", ("circle", "colour"))
    # by hand: kind (circle 4/4 -> 3/4): 0.75; size (big 4 -> big 2, small 1, none 1): 0.5; position
    # (left 4 -> left 3, none 1): 0.75; background (white 4 -> 3): 0.75; objects (1: 4 -> 3): 0.75
    assert kept == pytest.approx({"circle.kind": 0.75, "circle.size": 0.5, "circle.position": 0.75,
                                  "background": 0.75, "objects": 0.75})
    assert "circle.colour" not in kept, "the edited attribute is not expected to stay"


class ColourByBrightness:
    """A stand-in judge for the tiny random pipeline: every image holds one circle, blue when the
    image's mean is above ``cut``, else red (so the counts depend on the pixels drawn)."""

    def __init__(self, cut: float):
        self.cut = cut

    def read(self, images):
        return [record(("circle", "blue" if float(np.mean(im)) > self.cut else "red", "big", "middle"))
                for im in np.asarray(images)]


def test_judged_shares_over_seeds(sd1_pipe):
    probe = LabSession(sd1_pipe, ["a circle"], n_seeds=4, settings=GenerationSettings(steps=STEPS)).view(seed=5)
    cut = float(np.median([np.mean(im) for im in probe.prompts[0].images_after]))
    lab = LabSession(sd1_pipe, ["a circle", "a zebra"], judge=ColourByBrightness(cut), n_seeds=4,
                     settings=GenerationSettings(steps=STEPS))
    view = lab.apply(LabControls("a circle", "a blue circle", lamb=0.1, seed=5))
    assert view.ok and view.judged and view.seeds == [5, 6, 7, 8] and view.edited == ("circle", "colour", "blue")
    circle, zebra = view.prompts
    assert circle.images_before.shape[0] == circle.images_after.shape[0] == 4
    image, _ = direct_drawing(sd1_pipe, "a circle", seed=7)  # the third seed, drawn edited, independently
    np.testing.assert_allclose(circle.images_after[2], image, atol=1e-5)
    count = lambda images: float(np.mean([np.mean(im) > cut for im in images]))
    assert circle.shares == {"circle": (count(circle.images_before), count(circle.images_after))}
    assert circle.shares["circle"][0] == 0.5, "the cut is the median of the unedited images"
    judge = ColourByBrightness(cut)
    assert circle.kept == prompt_kept(judge.read(circle.images_before), judge.read(circle.images_after),
                                      "a circle", ("circle", "colour"))
    assert view.numbers.kept == pytest.approx(np.mean(list(circle.kept.values())))
    assert not zebra.shares and "not judged" in zebra.note and "zebra" in zebra.note
    assert f"Judged over 4 seeds: 'a circle': circle blue in {round(4 * count(circle.images_before))}/4" in view.message
    rows = report_rows(view)
    assert rows[0][0] == "a circle" and rows[0][1].startswith("circle blue: 2/4 -> ") and rows[1][2] == ""
    view = lab.apply(LabControls("a circle", "a circle that is blue"))
    assert view.ok and not view.judged and "Shares are not counted" in view.message


def test_without_a_judge_the_lab_says_images_only(lab):
    view = lab.apply(ROSES)
    assert view.ok and NO_JUDGE in view.message and not view.judged
    assert all(row[1] == "images only (no judge)" for row in report_rows(view))


def test_lab_judge_is_the_oracle_on_tinyworld_only():
    from timelab.lab import lab_judge
    from timelab.models import SD14, TINYWORLD
    from timelab.tinyworld import OracleJudge

    assert isinstance(lab_judge(TINYWORLD), OracleJudge) and lab_judge(SD14) is None


def test_images_figure_draws_a_row_per_prompt_and_model_over_seeds(sd1_pipe):
    from timelab.widgets import images_figure

    import matplotlib.pyplot as plt

    view = LabSession(sd1_pipe, PROMPTS, n_seeds=3, settings=GenerationSettings(steps=STEPS)).view(seed=1)
    fig = images_figure(view)
    try:
        assert len(fig.axes) == 2 * len(PROMPTS)
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["seed 1", "seed 2", "seed 3"]
        assert "a pack of roses" in fig.axes[0].get_ylabel() and fig.axes[1].get_ylabel().startswith("edited")
    finally:
        plt.close(fig)


def test_apply_on_tinyworld_draws_most_circles_blue(tinyworld):
    """One apply on TinyWorld (8 seeds x 4 test prompts at TinyWorld's default steps, the original already drawn), judged:
    the lab's end-to-end path on the trained model. How long it takes: benchmarks/lab_speed.py."""
    from timelab.lab import lab_defaults, lab_judge
    from timelab.models import TINYWORLD

    defaults = lab_defaults(TINYWORLD)
    session = LabSession(tinyworld, defaults.test_prompts, judge=lab_judge(TINYWORLD), n_seeds=8, settings=defaults.settings)
    assert session.view().ok
    view = session.apply(LabControls(defaults.source, defaults.destination, lamb=10.0))
    assert view.ok and view.judged, view.message
    assert view.prompts[0].shares["circle"][1] >= 0.5, "TinyWorld should draw most circles blue after the edit"
