"""The lab's callbacks, called directly: apply / undo / reset, bad input as messages, one run at a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import timelab
from timelab.editing import cross_attention_layers
from timelab.lab import BUSY, LabControls, LabSession

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
    return LabSession(sd1_pipe, PROMPTS, num_inference_steps=STEPS)


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
])
def test_bad_input_is_a_message_and_changes_nothing(lab, sd1_pipe, controls, words):
    assert lab.apply(ROSES).ok
    before = projection_weights(sd1_pipe)
    view = lab.apply(controls)
    assert not view.ok and words in view.message and view.prompts == []
    assert same_weights(projection_weights(sd1_pipe), before), "a refused action must not touch the model"
    assert len(lab.history) == 1


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
    message, state = [w for w in found if isinstance(w, ipywidgets.HTML)]
    source = next(w for w in found if isinstance(w, ipywidgets.Text) and w.description == "source")
    images, attention = [w for w in found if isinstance(w, ipywidgets.Image)]
    assert bytes(images.value).startswith(b"\x89PNG") and bytes(attention.value).startswith(b"\x89PNG"), \
        "before any action the lab shows the unedited model (no empty image frames)"
    assert "original model" in message.value and lab.history == []
    expected = weights_of_edit(sd1_pipe, source=ROSES.source, destination=ROSES.destination)
    button["apply"].click()
    assert "Applied" in message.value and "blue roses" in state.value
    assert same_weights(projection_weights(sd1_pipe), expected)
    assert bytes(images.value).startswith(b"\x89PNG"), "the before/after images should be shown"
    source.value = "  "
    button["apply"].click()
    assert "source prompt is empty" in message.value and len(lab.history) == 1
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
