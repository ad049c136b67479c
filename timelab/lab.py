"""The editing lab's logic: one pipeline, its edit history, and what to show after each action.

:class:`LabSession` holds the pipeline, the edits applied through it and a lock, and answers the
lab's three actions with a :class:`LabView` (a message, and on success the test prompts' images and
per-token cross-attention maps before and after the edit):

- ``view(seed)``: draw the model as it is (the lab shows this before the first action);
- ``apply(controls)``: edit the *original* model with TIME (replacing the edit shown before);
- ``undo(seed)``: go back to the previous edit in the history, or to the original model;
- ``reset(seed)``: back to the original model, history cleared.

:func:`lab_defaults` gives a model's starting edit and test prompts: on TinyWorld the source prompt, a
scene with the source's object beside another one (the edit should reach the first and leave the second
alone) and an unrelated prompt; on any other model the paper's roses.

Bad input (an empty prompt, a pair TIME cannot align, lambda <= 0, nothing selected to edit) comes
back as a message, never as an exception; words the model's tokenizer does not know are named in it. Only one action runs at a time: an action asked for while
another is drawing returns a "busy" view at once and changes nothing. ``timelab.widgets`` wires these
methods to buttons; they are plain functions, tested directly.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .attention import AttentionRecorder, TokenSpan
from .editing import Edit, UnknownWordsWarning, cross_attention_layers, reset_edits, time_edit
from .editing.solver import check_lambda

BUSY = "Busy: a generation is still running. Wait for it to finish, then try again."
MAX_HISTORY = 8  # edits kept for undo (each holds a copy of the edited matrices)


@dataclass(frozen=True)
class LabDefaults:
    """A model's starting edit and the test prompts the lab draws after every action."""

    source: str
    destination: str
    test_prompts: tuple[str, ...]


# Test prompts: the source; related ones the edit should reach (another size and background; a scene
# whose other object, the square, should keep its colour); an unrelated one.
TINYWORLD_DEFAULTS = LabDefaults("a circle", "a blue circle", (
    "a circle", "a big circle on a black background", "a circle on the left and a square on the right", "a square"))
DEFAULTS = LabDefaults("a pack of roses", "a pack of blue roses",
                       ("a pack of roses", "a rose in a vase", "a bunch of tulips"))


def lab_defaults(model: str) -> LabDefaults:
    """The starting edit and test prompts for ``model`` (a name for :func:`timelab.load_pipeline`)."""
    from .models import TINYWORLD

    return TINYWORLD_DEFAULTS if model == TINYWORLD else DEFAULTS


@dataclass(frozen=True)
class LabControls:
    """What the lab's controls say: the edit to apply and the seed to draw with."""

    source: str
    destination: str
    lamb: float = 0.1
    edit_keys: bool = True
    edit_values: bool = True
    layers: tuple[str, ...] | None = None  # None: every cross-attention layer
    seed: int = 0


@dataclass
class PromptView:
    """One test prompt: its image and labelled per-token maps ``(tokens, h, w)``, before and after."""

    prompt: str
    spans: list[TokenSpan]
    image_before: np.ndarray
    image_after: np.ndarray
    maps_before: torch.Tensor
    maps_after: torch.Tensor


@dataclass
class LabView:
    """The answer to an action: ``ok`` and a message; on success the state and every prompt's view."""

    ok: bool
    message: str
    state: str = ""
    prompts: list[PromptView] = field(default_factory=list)


def _problem(controls: LabControls, known_layers: Sequence[str]) -> str | None:
    """What is wrong with the controls, in words a learner can act on (None when nothing is)."""
    for name in ("source", "destination"):
        if not getattr(controls, name).strip():
            return f"The {name} prompt is empty: type a prompt, e.g. 'a circle' -> 'a blue circle'."
    try:
        check_lambda(controls.lamb)
    except ValueError as error:
        return f"{error}."
    if not (controls.edit_keys or controls.edit_values):
        return "Nothing to edit: switch on keys (to_k), values (to_v) or both."
    if controls.layers is not None:
        if not controls.layers:
            return "No layer selected: select at least one cross-attention layer."
        unknown = [n for n in controls.layers if n not in known_layers]
        if unknown:
            return f"Unknown layer(s) {unknown}: choose among the model's cross-attention layers."
    return None


class LabSession:
    """A pipeline, the edits applied through the lab, and a lock so that only one action draws at a time.

    The session owns the pipeline's edits: it starts by undoing any active timelab edit.
    ``prompts`` are the test prompts drawn after every action; ``call_kwargs`` go to the pipeline
    (e.g. ``num_inference_steps``, ``guidance_scale``).
    """

    def __init__(self, pipe, prompts: Sequence[str], **call_kwargs):
        prompts = [p for p in prompts if p.strip()]
        if not prompts:
            raise ValueError("the lab needs at least one non-empty test prompt, e.g. ['a circle', 'a square']")
        self.pipe = pipe
        self.prompts = prompts
        self.call_kwargs = call_kwargs
        self.layer_names = list(cross_attention_layers(pipe.unet))
        self.history: list[Edit] = []  # applied edits, latest last; only the latest is active
        self._original_cache: dict[int, tuple[np.ndarray, list]] = {}
        self._lock = threading.Lock()
        reset_edits(pipe)

    # ------------------------------------------------------------------------------------- state
    @property
    def active(self) -> Edit | None:
        return self.history[-1] if self.history else None

    def state(self) -> str:
        """The model's state in one line."""
        edit = self.active
        if edit is None:
            return "original model"
        settings = edit.settings
        parts = [p for p, on in (("keys", settings.edit_keys), ("values", settings.edit_values)) if on]
        layers = "all layers" if settings.layers is None else f"{len(settings.layers)} layer(s)"
        return (f"edited: {edit.source[0]!r} -> {edit.destination[0]!r}, lambda {edit.lamb:g}, "
                f"{' + '.join(parts)}, {layers}")

    # ----------------------------------------------------------------------------------- actions
    def view(self, seed: int = 0) -> LabView:
        """Draw the model as it is now, changing nothing."""
        return self._exclusive(lambda: f"Showing the {self.state()}.", seed)

    def apply(self, controls: LabControls) -> LabView:
        """Edit the original model as the controls say and draw the test prompts."""
        problem = _problem(controls, self.layer_names)
        if problem:
            return LabView(False, problem, self.state())
        return self._exclusive(lambda: self._apply(controls), controls.seed)

    def undo(self, seed: int = 0) -> LabView:
        """Undo the latest edit (the one before it, if any, comes back) and draw."""
        if not self.history:
            return LabView(False, "Nothing to undo: the model is the original one.", self.state())
        return self._exclusive(self._undo, seed)

    def reset(self, seed: int = 0) -> LabView:
        """Back to the original model, history cleared, and draw."""
        return self._exclusive(self._reset, seed)

    # ---------------------------------------------------------------------------------- internals
    def _exclusive(self, change, seed: int) -> LabView:
        """Run ``change`` (returns a message, or raises ValueError with one) and draw, unless busy."""
        if seed < 0:
            return LabView(False, f"The seed must be 0 or more, got {seed}.", self.state())
        if not self._lock.acquire(blocking=False):
            return LabView(False, BUSY, self.state())
        try:
            try:
                message = change()
            except ValueError as error:  # e.g. a pair TIME cannot align, a prompt that is too long
                return LabView(False, f"Not applied: {error}", self.state())
            return LabView(True, message, self.state(), self._draw_all(seed))
        finally:
            self._lock.release()

    def _apply(self, controls: LabControls) -> str:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownWordsWarning)
            edit = time_edit(self.pipe, controls.source, controls.destination, lamb=controls.lamb,
                             edit_keys=controls.edit_keys, edit_values=controls.edit_values,
                             layers=None if controls.layers is None else list(controls.layers))
        self.history = (self.history + [edit])[-MAX_HISTORY:]
        notes = "".join(f" Warning: {w.message}." for w in caught if issubclass(w.category, UnknownWordsWarning))
        return (f"Applied {controls.source!r} -> {controls.destination!r} ({len(edit.layer_names)} matrices, "
                f"solved in {1000 * edit.timings['solve_s']:.0f} ms).{notes}")

    def _undo(self) -> str:
        undone = self.history.pop()
        undone.undo()
        if self.history:
            self.history[-1].apply()  # made from the original weights, which the model holds again
            return f"Undid {undone.source[0]!r} -> {undone.destination[0]!r}; the previous edit is back."
        return f"Undid {undone.source[0]!r} -> {undone.destination[0]!r}; the model is the original one."

    def _reset(self) -> str:
        count = reset_edits(self.pipe)
        self.history.clear()
        return f"Back to the original model ({count} active edit(s) undone)."

    def _draw(self, seed: int) -> tuple[np.ndarray, list]:
        """Images ``(prompts, H, W, 3)`` and per-prompt (spans, maps) of the model as it is now."""
        generators = [torch.Generator("cpu").manual_seed(seed) for _ in self.prompts]
        with AttentionRecorder(self.pipe) as recorder:
            images = self.pipe(prompt=self.prompts, generator=generators, output_type="np", **self.call_kwargs).images
        return np.asarray(images), [recorder.token_maps(p, image=i) for i, p in enumerate(self.prompts)]

    def _draw_original(self, seed: int) -> tuple[np.ndarray, list]:
        """The original model's drawing (cached per seed; the active edit is lifted for it)."""
        if seed not in self._original_cache:
            edit = self.active
            if edit is not None:
                edit.undo()
            try:
                self._original_cache[seed] = self._draw(seed)
            finally:
                if edit is not None:
                    edit.apply()
        return self._original_cache[seed]

    def _draw_all(self, seed: int) -> list[PromptView]:
        images_before, maps_before = self._draw_original(seed)
        images_after, maps_after = self._draw(seed) if self.active else (images_before, maps_before)
        return [PromptView(prompt, spans, images_before[i], images_after[i], before, maps_after[i][1])
                for i, (prompt, (spans, before)) in enumerate(zip(self.prompts, maps_before))]
