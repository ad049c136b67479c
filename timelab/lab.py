"""The editing lab's logic: one pipeline, its edit history, and what to show after each action.

:class:`LabSession` holds the pipeline, the edits applied through it and a lock, and answers the
lab's actions with a :class:`LabView`: a message, and on success every test prompt's images over
``n_seeds`` seeds (``seed, seed + 1, ...``) and the first seed's per-token cross-attention maps, before
and after the edit:

- ``view(seed)``: draw the model as it is (the lab shows this before the first action);
- ``apply(controls)``: edit the *original* model with TIME (replacing the edit shown before), with the
  test prompts the controls give (typed text, see :func:`parse_prompts`);
- ``undo(seed)``: go back to the previous edit in the history, or to the original model;
- ``reset(seed)``: back to the original model, history cleared.

With a judge (TinyWorld's exact :class:`~timelab.tinyworld.OracleJudge`, see :func:`lab_judge`) and an
edit that adds one attribute in TinyWorld's grammar ("a circle" -> "a blue circle"), each test prompt
also gets its judged shares before and after: for every object it names, the share of its images in
which that object has the edited value (:func:`attribute_shares`: the edited kind should move, the
others should not), and the attributes the edit should leave alone, kept (:func:`prompt_kept`, i.e.
``timelab.evaluation.metrics.attributes_kept``). Without a judge (Stable Diffusion) the lab shows
images only and says so. The numbers of the edit itself come from plain functions too:
:func:`weight_change` (``||W' - W|| / ||W||`` over the edited matrices) and :func:`fit_residual` (how far
``W' c_i`` lands from the targets ``W c*_pi(i)``, relative).

:func:`lab_defaults` gives a model's starting edit and test prompts: on TinyWorld the source prompt, a
scene with the source's object beside another one (the edit should reach the first and leave the second
alone) and an unrelated prompt; on any other model the paper's roses.

Bad input (empty prompts or test prompts, a pair TIME cannot align, lambda <= 0, nothing selected to
edit) comes back as a message, never as an exception; words the model's tokenizer does not know
(:func:`timelab.editing.keys.warn_unknown_words`) are named in it. Only one action runs at a time: an
action asked for while another is drawing returns a "busy" view at once and changes nothing.
``timelab.widgets`` wires these methods to buttons; they are plain functions, tested directly.
"""

from __future__ import annotations

import math
import re
import threading
import warnings
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch

from .attention import AttentionRecorder, TokenSpan
from .editing import Edit, UnknownWordsWarning, cross_attention_layers, reset_edits, time_edit
from .editing.keys import prompts_unknown_words, unknown_words_note
from .editing.solver import PAPER_LAMBDA, check_lambda
from .evaluation.metrics import kept_score
from .evaluation.tinyworld.attributes import added_attribute, attributes_kept, kept_attributes
from .generation import GenerationSettings, generate
from .models import TINYWORLD
from .tinyworld import STEPS, OracleJudge, shares
from .tinyworld.captions import describe

BUSY = "Busy: a generation is still running. Wait for it to finish, then try again."
MAX_HISTORY = 8  # edits kept for undo (each holds a copy of the edited matrices)
NO_JUDGE = "Images only: this model has no judge to count them (TinyWorld's exact judge reads every image)."


@dataclass(frozen=True)
class LabDefaults:
    """A model's starting edit, the test prompts the lab draws after every action, and how it draws them."""

    source: str
    destination: str
    test_prompts: tuple[str, ...]
    settings: GenerationSettings = GenerationSettings(steps=25)  # fewer than SD's 50, to answer sooner


# Test prompts: the source; related ones the edit should reach (another size and background; a scene
# whose other object, the square, should keep its colour); an unrelated one.
TINYWORLD_DEFAULTS = LabDefaults("a circle", "a blue circle", (
    "a circle", "a big circle on a black background", "a circle on the left and a square on the right", "a square"),
    GenerationSettings(steps=STEPS))
DEFAULTS = LabDefaults("a pack of roses", "a pack of blue roses",
                       ("a pack of roses", "a rose in a vase", "a bunch of tulips"))


def lab_defaults(model: str) -> LabDefaults:
    """The starting edit and test prompts for ``model`` (a name for :func:`timelab.load_pipeline`)."""
    return TINYWORLD_DEFAULTS if model == TINYWORLD else DEFAULTS


def lab_judge(model: str):
    """The judge the lab counts shares with: TinyWorld's exact :class:`~timelab.tinyworld.OracleJudge`
    for TinyWorld, None (images only) for any other model."""
    return OracleJudge() if model == TINYWORLD else None


def parse_prompts(text: str) -> list[str]:
    """Test prompts from typed text: one a line when the text has several lines, else separated by
    commas; blanks around each are dropped. Raises ``ValueError`` (a message for the learner) when no
    prompt is left."""
    parts = text.splitlines() if "\n" in text.strip() else text.split(",")
    prompts = [re.sub(r"\s+", " ", p).strip() for p in parts]
    prompts = [p for p in prompts if p]
    if not prompts:
        raise ValueError("No test prompt: type at least one, separated by commas or one a line, "
                         "e.g. 'a circle, a square'.")
    return prompts


@dataclass(frozen=True)
class LabControls:
    """What the lab's controls say: the edit to apply, the seed to draw with and, optionally, the test
    prompts as typed (see :func:`parse_prompts`; None keeps the session's)."""

    source: str
    destination: str
    lamb: float = PAPER_LAMBDA
    edit_keys: bool = True
    edit_values: bool = True
    layers: tuple[str, ...] | None = None  # None: every cross-attention layer
    seed: int = 0
    prompts: str | None = None


# ------------------------------------------------------------------------------- numbers of an edit
def weight_change(edit: Edit) -> float:
    """``sqrt(sum_m ||W'_m - W_m||_F^2) / sqrt(sum_m ||W_m||_F^2)`` over the edit's matrices ``m``: how far
    the edit moved the weights, relative to their size (in float64)."""
    moved = sum(float((edit.edited[n].double() - edit.original[n].double()).square().sum()) for n in edit.original)
    size = sum(float(edit.original[n].double().square().sum()) for n in edit.original)
    return math.sqrt(moved / size)


@torch.no_grad()
def fit_residual(edit: Edit) -> float:
    """How far the edited matrices miss TIME's targets, relative: with keys ``C`` (every source text
    state of the edit's prompt pairs, augmented as the edit was) and aligned destination states ``C*``,
    ``sqrt(sum_m ||W'_m C^T - W_m C*^T||_F^2) / sqrt(sum_m ||W_m C*^T||_F^2)``. The ridge term keeps it
    above 0 (it grows with lambda; at lambda -> 0 what remains is the least-squares misfit of more keys
    than dimensions). The keys are the ones the edit was solved for (:meth:`Edit.key_system`)."""
    keys, aligned = (states.double().cpu() for states in edit.key_system())
    miss = target = 0.0
    for name, original in edit.original.items():
        goal = original.double().cpu() @ aligned.T
        miss += float((edit.edited[name].double().cpu() @ keys.T - goal).square().sum())
        target += float(goal.square().sum())
    return math.sqrt(miss / target)


# ------------------------------------------------------------------------- judged shares (TinyWorld)
def attribute_shares(records: Sequence[Mapping], prompt: str, attribute: str, value: str) -> dict[str, float]:
    """For each object kind ``prompt`` names (TinyWorld's grammar), the share of ``records`` (one per
    image) in which the object of that kind has ``attribute == value``; an image without that object
    counts as not. ``ValueError`` for a prompt outside the grammar or no records."""
    kinds = list(dict.fromkeys(o["kind"] for o in describe(prompt).objects))
    return {kind: shares(records, attribute, kind).get(value, 0.0) for kind in kinds}


def prompt_kept(records_before: Sequence[Mapping], records_after: Sequence[Mapping], prompt: str,
                edited: tuple[str, str]) -> dict[str, float]:
    """The attributes of ``prompt``'s images that an edit of ``edited = (kind, attribute)`` should leave
    alone, each as ``1 - TV(before, after)`` (:mod:`timelab.evaluation.tinyworld.attributes`)."""
    return attributes_kept(records_before, records_after, kept_attributes(prompt, {edited}))


# ------------------------------------------------------------------------------------------ views
@dataclass
class PromptView:
    """One test prompt: its images over the seeds ``(seeds, H, W, 3)`` before and after, the first seed's
    image and labelled per-token maps ``(tokens, h, w)``, and, where judged, per object kind the share
    ``(before, after)`` of images showing the edited value and the attributes kept (1 - TV each)."""

    prompt: str
    spans: list[TokenSpan]
    image_before: np.ndarray
    image_after: np.ndarray
    maps_before: torch.Tensor
    maps_after: torch.Tensor
    images_before: np.ndarray | None = None
    images_after: np.ndarray | None = None
    shares: dict[str, tuple[float, float]] = field(default_factory=dict)
    kept: dict[str, float] = field(default_factory=dict)
    note: str = ""  # why this prompt is not judged, if it is not


@dataclass(frozen=True)
class EditNumbers:
    """The active edit in numbers: weights moved, fit residual, and the attributes kept on the judged
    test prompts (mean over prompts of each prompt's mean; None without a judge)."""

    weight_change: float
    fit_residual: float
    kept: float | None = None


@dataclass
class LabView:
    """The answer to an action: ``ok`` and a message; on success the state, every prompt's view, the
    seeds drawn, the active edit's numbers and whether a judge counted the images."""

    ok: bool
    message: str
    state: str = ""
    prompts: list[PromptView] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    numbers: EditNumbers | None = None
    edited: tuple[str, str, str] | None = None  # (kind, attribute, value) the judged shares count
    judged: bool = False


def share_text(share: float, n: int) -> str:
    """``0.375`` of 8 images as ``"3/8"``."""
    return f"{round(share * n)}/{n}"


def report_rows(view: LabView) -> list[tuple[str, str, str]]:
    """One row per test prompt for the lab's table: ``(prompt, judged shares before -> after, kept)``;
    where nothing is judged the middle column says why and the last is empty."""
    rows = []
    n = len(view.seeds)
    for p in view.prompts:
        if p.shares and view.edited:
            _, _, value = view.edited
            shares = "; ".join(f"{kind} {value}: {share_text(b, n)} -> {share_text(a, n)}"
                               for kind, (b, a) in p.shares.items())
            kept = f"{np.mean(list(p.kept.values())):.2f}" if p.kept else ""
            rows.append((p.prompt, shares, kept))
        else:
            rows.append((p.prompt, p.note, ""))
    return rows


def numbers_text(numbers: EditNumbers | None) -> str:
    """The edit's numbers in one line ('' when the model is the original)."""
    if numbers is None:
        return ""
    kept = "" if numbers.kept is None else f"; attributes kept on the test prompts {numbers.kept:.2f}"
    return (f"Weights moved {100 * numbers.weight_change:.2f}% (||W'-W||/||W||); fit residual "
            f"{100 * numbers.fit_residual:.1f}% (||W'C - WC*||/||WC*||){kept}.")


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
    ``prompts`` are the test prompts drawn after every action, each over ``n_seeds`` seeds in one
    pipeline call (so one attention recording covers them); ``judge`` (e.g. :func:`lab_judge`) reads the
    images' attributes (``judge.read(images) -> records``), None for images only. ``settings``: the
    sampler's steps, guidance and size (its batch size is ignored: the lab draws in one batch).
    """

    def __init__(self, pipe, prompts: Sequence[str], judge=None, n_seeds: int = 1,
                 settings: GenerationSettings = GenerationSettings()):
        prompts = [p for p in prompts if p.strip()]
        if not prompts:
            raise ValueError("the lab needs at least one non-empty test prompt, e.g. ['a circle', 'a square']")
        if n_seeds < 1:
            raise ValueError(f"n_seeds must be at least 1, got {n_seeds}")
        self.pipe = pipe
        self.prompts = prompts
        self.judge = judge
        self.n_seeds = n_seeds
        self.settings = settings
        self._named_words: set[str] = set()  # unknown words the current action's message already names
        self.layer_names = list(cross_attention_layers(pipe.unet))
        self.history: list[Edit] = []  # applied edits, latest last; only the latest is active
        self._original_cache: dict[tuple, tuple[np.ndarray, list, list | None]] = {}
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
        """Edit the original model as the controls say (with their test prompts, if given) and draw."""
        problem = _problem(controls, self.layer_names)
        try:
            prompts = None if controls.prompts is None else parse_prompts(controls.prompts)
        except ValueError as error:
            problem = problem or str(error)
        if problem:
            return LabView(False, problem, self.state())
        return self._exclusive(lambda: self._apply(controls, prompts), controls.seed)

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
        self._named_words = set()
        try:
            try:
                message = change()
            except ValueError as error:  # e.g. a pair TIME cannot align, a prompt that is too long
                return LabView(False, f"Not applied: {error}", self.state())
            return self._render(message, seed)
        finally:
            self._lock.release()

    def _apply(self, controls: LabControls, prompts: list[str] | None) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnknownWordsWarning)  # named in the message below instead
            edit = time_edit(self.pipe, controls.source, controls.destination, lamb=controls.lamb,
                             edit_keys=controls.edit_keys, edit_values=controls.edit_values,
                             layers=None if controls.layers is None else list(controls.layers))
        if prompts is not None:
            self.prompts = prompts
        self.history = (self.history + [edit])[-MAX_HISTORY:]
        words = prompts_unknown_words(self.pipe, [controls.source, controls.destination])
        self._named_words = set(words)
        notes = f" Warning: {unknown_words_note(words)}." if words else ""
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

    def seeds(self, seed: int) -> list[int]:
        """The seeds an action at ``seed`` draws every test prompt with."""
        return list(range(seed, seed + self.n_seeds))

    def _draw(self, seed: int) -> tuple[np.ndarray, list]:
        """Images ``(prompts, seeds, H, W, 3)`` of the model as it is now, in one pipeline call
        (:func:`timelab.generation.generate`, one batch), and per prompt the first seed's (spans, maps)."""
        seeds = self.seeds(seed)
        one_batch = replace(self.settings, batch_size=len(self.prompts) * len(seeds))
        with AttentionRecorder(self.pipe) as recorder:
            images = generate(self.pipe, self.prompts, seeds, one_batch)
        maps = [recorder.token_maps(p, image=i * len(seeds)) for i, p in enumerate(self.prompts)]
        return images, maps

    def _read(self, images: np.ndarray) -> list | None:
        """Per prompt, the judge's records of its images (None without a judge)."""
        if self.judge is None:
            return None
        flat = self.judge.read(images.reshape(-1, *images.shape[2:]))
        n = images.shape[1]
        return [flat[i * n:(i + 1) * n] for i in range(images.shape[0])]

    def _draw_original(self, seed: int) -> tuple[np.ndarray, list, list | None]:
        """The original model's drawing and records (cached per seed and prompts; the active edit is
        lifted for it)."""
        key = (seed, tuple(self.prompts), self.n_seeds)
        if key not in self._original_cache:
            edit = self.active
            if edit is not None:
                edit.undo()
            try:
                images, maps = self._draw(seed)
            finally:
                if edit is not None:
                    edit.apply()
            self._original_cache[key] = (images, maps, self._read(images))
        return self._original_cache[key]

    def _render(self, message: str, seed: int) -> LabView:
        """Draw before and after, judge, and put the view together (``message`` first)."""
        images_before, maps_before, records_before = self._draw_original(seed)
        if self.active:
            images_after, maps_after = self._draw(seed)
            records_after = self._read(images_after)
        else:
            images_after, maps_after, records_after = images_before, maps_before, records_before
        views = [PromptView(prompt, spans, images_before[i, 0], images_after[i, 0], before, maps_after[i][1],
                            images_before[i], images_after[i])
                 for i, (prompt, (spans, before)) in enumerate(zip(self.prompts, maps_before))]
        view = LabView(True, message, self.state(), views, self.seeds(seed))
        notes = self._judge(view, records_before, records_after)
        words = [w for w in prompts_unknown_words(self.pipe, self.prompts) if w not in self._named_words]
        if words:
            notes.append(f"Warning (test prompts): {unknown_words_note(words)}.")
        view.message = " ".join([message] + notes)
        return view

    def _judge(self, view: LabView, records_before: list | None, records_after: list | None) -> list[str]:
        """Fill in the view's shares, kept attributes and numbers; return notes for the message."""
        edit = self.active
        if edit is not None:
            view.numbers = EditNumbers(weight_change(edit), fit_residual(edit))
        if self.judge is None:
            for p in view.prompts:
                p.note = "images only (no judge)"
            return [NO_JUDGE]
        if edit is None:
            for p in view.prompts:
                p.note = "nothing edited yet"
            return []
        try:
            view.edited = kind, attribute, value = added_attribute(edit.source[0], edit.destination[0])
        except ValueError as error:
            for p in view.prompts:
                p.note = "not judged"
            return [f"Shares are not counted: the judge counts edits that add one attribute, e.g. "
                    f"'a circle' -> 'a blue circle' ({error})."]
        view.judged = True
        kept = []
        for p, before, after in zip(view.prompts, records_before, records_after):
            try:
                shares_before = attribute_shares(before, p.prompt, attribute, value)
                shares_after = attribute_shares(after, p.prompt, attribute, value)
                p.kept = prompt_kept(before, after, p.prompt, (kind, attribute))
            except ValueError as error:
                p.note = f"not judged: {str(error).split(';')[0]}"
                continue
            p.shares = {k: (shares_before[k], shares_after[k]) for k in shares_before}
            kept.append(p.kept)
        if kept:
            view.numbers = EditNumbers(view.numbers.weight_change, view.numbers.fit_residual, kept_score(kept)["mean"])
        n = len(view.seeds)
        headline = [f"{p.prompt!r}: {kind} {value} in {share_text(p.shares[kind][0], n)} -> "
                    f"{share_text(p.shares[kind][1], n)} images" for p in view.prompts if kind in p.shares]
        return [f"Judged over {n} seeds: " + "; ".join(headline[:2]) + "."] if headline else []
