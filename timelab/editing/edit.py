"""TIME edits of a pipeline: build keys and targets, solve, apply in place, undo, stack, save and load.

For each (augmented) source/destination pair with alignment ``pi``, the keys are all ``max_length``
source text states ``c_i`` (start, words, end, padding) and the target of projection ``W`` is
``W c*_pi(i)`` under the *original* weights. Because the targets are ``W`` applied to states, the
residuals of the solver are ``R = (C*_pi - C) W^T`` and one shared factor ``M = C A^{-1}`` finishes
every matrix: ``W' = W + R^T M`` (see :mod:`timelab.editing.solver`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .alignment import AUGMENTATION_PREFIXES, align_tokens, augment_prompt
from .layers import projections, select_layers
from .prompts import encode_prompts, tokenizers
from .solver import apply_update, compute_dtype, ridge_factor

FORMAT = "timelab-edit/1"
STACK_ATTRIBUTE = "_timelab_active_edits"


def _version() -> str:
    from .. import __version__

    return __version__


def _active_edits(pipe) -> list["Edit"]:
    unet = pipe.unet
    if not hasattr(unet, STACK_ATTRIBUTE):
        object.__setattr__(unet, STACK_ATTRIBUTE, [])
    return getattr(unet, STACK_ATTRIBUTE)


def reset_edits(pipe) -> int:
    """Undo every active timelab edit of ``pipe`` (latest first); returns how many were undone."""
    active = _active_edits(pipe)
    count = len(active)
    while active:
        active[-1].undo()
    return count


def _fingerprint(weight: Tensor) -> float:
    return float(weight.detach().to(torch.float64).norm())


def _model_name(pipe) -> str:
    return str(getattr(pipe, "name_or_path", None) or type(pipe).__name__)


@dataclass(eq=False)
class Edit:
    """An edit of a pipeline's cross-attention projections, applied in place.

    ``original`` and ``edited`` map projection names (``"<layer>.to_k"``) to weights. ``undo()``
    restores ``original`` bit for bit; ``with edit:`` undoes on exit, also on exceptions.
    """

    pipe: object
    source: list[str]
    destination: list[str]
    lamb: float
    original: dict[str, Tensor]
    edited: dict[str, Tensor]
    settings: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stacked: bool = False
    active: bool = False

    @property
    def layer_names(self) -> list[str]:
        return list(self.edited)

    def _modules(self) -> dict[str, nn.Linear]:
        return {name: self.pipe.unet.get_submodule(name) for name in self.edited}

    def _write(self, weights: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name, module in self._modules().items():
                module.weight.copy_(weights[name])

    def apply(self) -> "Edit":
        """(Re-)apply the edit; the model must hold the weights the edit was made from."""
        if self.active:
            return self
        for name, module in self._modules().items():
            if not torch.equal(module.weight, self.original[name]):
                raise RuntimeError(
                    f"cannot apply: {name} no longer holds the weights this edit was made from (another "
                    "edit is active?); undo it first, e.g. timelab.reset_edits(pipe)"
                )
        return self._activate()

    def _activate(self) -> "Edit":
        self._write(self.edited)
        _active_edits(self.pipe).append(self)
        self.active = True
        return self

    def undo(self) -> "Edit":
        """Restore the weights from before this edit, bit for bit."""
        if not self.active:
            return self
        active = _active_edits(self.pipe)
        if active[-1] is not self:
            raise RuntimeError("this edit has later edits stacked on it: undo those first (latest first)")
        self._write(self.original)
        active.pop()
        self.active = False
        return self

    def __enter__(self) -> "Edit":
        return self.apply()

    def __exit__(self, *exc) -> None:
        self.undo()

    def metadata(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "timelab_version": _version(),
            "model": _model_name(self.pipe),
            "pipeline": type(self.pipe).__name__,
            "source": json.dumps(self.source),
            "destination": json.dumps(self.destination),
            "lamb": repr(self.lamb),
            "settings": json.dumps(self.settings),
            "stacked": json.dumps(self.stacked),
            "shapes": json.dumps({n: list(w.shape) for n, w in self.edited.items()}),
            "fingerprints": json.dumps({n: _fingerprint(w) for n, w in self.original.items()}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the edited matrices and metadata as safetensors (atomically: no half-written file)."""
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"edit files are safetensors: name it like 'edit.safetensors', got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {name: weight.detach().contiguous().cpu() for name, weight in self.edited.items()}
        tmp = path.with_name("." + path.name + ".tmp")
        try:
            save_file(tensors, str(tmp), metadata=self.metadata())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def __repr__(self) -> str:
        pairs = ", ".join(f"{s!r} -> {d!r}" for s, d in zip(self.source, self.destination))
        state = "active" if self.active else "undone"
        return f"Edit({pairs}, lamb={self.lamb}, {len(self.edited)} matrices, {state})"


def _as_list(prompts: str | Sequence[str], name: str) -> list[str]:
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise ValueError(f"{name} is empty: give at least one prompt")
    return items


def _alignments(pipe, pairs: list[tuple[str, str]]) -> list[list[int]]:
    found = []
    for source, destination in pairs:
        maps = [align_tokens(tok, source, destination) for tok in tokenizers(pipe)]
        if any(m != maps[0] for m in maps[1:]):
            raise ValueError(f"the pipeline's tokenizers align {source!r} -> {destination!r} differently")
        found.append(maps[0])
    return found


def edit_pairs(sources: Sequence[str], destinations: Sequence[str], augment: bool = True,
               prefixes: Sequence[str] = AUGMENTATION_PREFIXES) -> list[tuple[str, str]]:
    """The (source, destination) prompt pairs one edit solves for, with the paper's prefixes if ``augment``."""
    return [
        pair
        for src, dst in zip(sources, destinations)
        for pair in (zip(augment_prompt(src, prefixes), augment_prompt(dst, prefixes)) if augment else [(src, dst)])
    ]


@torch.no_grad()
def keys_and_aligned_states(pipe, pairs: list[tuple[str, str]]) -> tuple[Tensor, Tensor]:
    """TIME's keys ``C`` (every source text state) and the aligned destination states ``C*_pi``.

    Both ``(len(pairs) * max_length, d)``: row ``i`` of ``C*_pi`` is the destination state that
    source position ``i`` is aligned to. Alignment errors are raised before anything is encoded.
    """
    positions = torch.tensor(_alignments(pipe, pairs))
    states = encode_prompts(pipe, [s for s, _ in pairs] + [d for _, d in pairs])
    source_states, destination_states = states[: len(pairs)], states[len(pairs):]
    aligned = torch.stack([destination_states[p, positions[p].to(states.device)] for p in range(len(pairs))])
    width = states.shape[-1]
    return source_states.reshape(-1, width), aligned.reshape(-1, width)


@torch.no_grad()
def time_edit(
    pipe,
    source: str | Sequence[str],
    destination: str | Sequence[str],
    lamb: float = 0.1,
    edit_keys: bool = True,
    edit_values: bool = True,
    layers: Iterable[str] | None = None,
    augment: bool = True,
    stack: bool = False,
    prefixes: Sequence[str] = AUGMENTATION_PREFIXES,
) -> Edit:
    """Edit ``pipe`` in place so that ``source`` is read as ``destination`` (TIME, closed form).

    ``source``/``destination`` are one prompt each or equal-length lists of pairs solved together.
    With ``augment`` each pair is also used with the paper's prefixes ("A photo of ", ...), all with
    equal weight. ``layers`` restricts the edit to cross-attention layers by name or name prefix.
    Unless ``stack`` is set, any active edit is undone first, so the edit starts from the original
    weights. Returns the applied :class:`Edit`; ``with time_edit(...):`` undoes it on exit.
    """
    sources, destinations = _as_list(source, "source"), _as_list(destination, "destination")
    if len(sources) != len(destinations):
        raise ValueError(f"got {len(sources)} source prompts but {len(destinations)} destinations")
    if not lamb > 0:
        raise ValueError(f"lamb must be > 0 (the ridge term makes the system solvable), got {lamb}")
    targets = projections(select_layers(pipe.unet, layers), edit_keys, edit_values)
    started = time.perf_counter()
    keys, aligned = keys_and_aligned_states(pipe, edit_pairs(sources, destinations, augment, prefixes))
    encoded = time.perf_counter()
    if not stack:
        reset_edits(pipe)  # only now: a bad prompt pair above leaves the active edit in place
    factor = ridge_factor(keys, lamb)
    work = compute_dtype(keys.dtype)
    state_shift = aligned.to(work) - keys.to(work)  # C*_pi - C
    # Keys whose target is already met (a prompt prefix shared by source and destination: the text
    # encoder is causal) have zero residual rows and add nothing to W + R^T M: skip them.
    moving = state_shift.abs().amax(dim=1) > 0
    state_shift, factor = state_shift[moving], factor[moving].to(work)  # cast once, not per matrix

    edited = {}
    for name, linear in targets.items():
        weight = linear.weight
        residuals = state_shift.to(weight.device) @ weight.to(work).T  # (C*_pi - C) W^T
        edited[name] = apply_update(weight, residuals, factor)
    solved = time.perf_counter()
    original = {name: linear.weight.detach().clone() for name, linear in targets.items()}  # for undo

    edit = Edit(
        pipe=pipe, source=sources, destination=destinations, lamb=float(lamb), original=original,
        edited=edited, stacked=stack and bool(_active_edits(pipe)),
        settings={"edit_keys": edit_keys, "edit_values": edit_values, "augment": augment,
                  "prefixes": list(prefixes) if augment else [], "layers": None if layers is None else list(layers)},
        timings={"encode_s": encoded - started, "solve_s": solved - encoded},
    )
    edit._activate()  # made from the current weights just now: nothing to check
    edit.timings["apply_s"] = time.perf_counter() - solved  # undo snapshot and weight writes
    return edit


def load_edit(pipe, path: str | os.PathLike, stack: bool = False) -> Edit:
    """Apply an edit saved by :meth:`Edit.save` to ``pipe``; refuses files made for another model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no edit file at {path}")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is not a timelab edit file (format {metadata.get('format')!r})")
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    available = projections(select_layers(pipe.unet))
    shapes = json.loads(metadata["shapes"])
    problems = [
        f"{name}: file {shape}, model "
        + (str(list(available[name].weight.shape)) if name in available else "has no such layer")
        for name, shape in shapes.items()
        if name not in available or list(available[name].weight.shape) != shape
    ]
    if problems:
        raise ValueError(
            f"{path} was made for another model ({metadata['model']}, {metadata['pipeline']}): "
            + "; ".join(problems[:3]) + ". Load it into the model it was made for."
        )
    if not stack:
        reset_edits(pipe)
    fingerprints = json.loads(metadata["fingerprints"])
    for name, expected in fingerprints.items():
        actual = _fingerprint(available[name].weight)
        if abs(actual - expected) > 1e-3 * abs(expected):
            hint = (" It was made on top of another edit (stacked): apply that one first with stack=True."
                    if json.loads(metadata["stacked"]) else "")
            raise ValueError(
                f"{path} was made for a model whose weights differ from this one's ({name}: norm "
                f"{expected:.6g} in the file's model, {actual:.6g} here; file's model: "
                f"{metadata['model']}).{hint} Load it into the model it was made for."
            )
    original = {name: available[name].weight.detach().clone() for name in tensors}
    edited = {
        name: tensor.to(device=original[name].device, dtype=original[name].dtype)
        for name, tensor in tensors.items()
    }
    edit = Edit(
        pipe=pipe, source=json.loads(metadata["source"]), destination=json.loads(metadata["destination"]),
        lamb=float(metadata["lamb"]), original=original, edited=edited,
        settings=json.loads(metadata["settings"]), stacked=stack and bool(_active_edits(pipe)),
    )
    return edit._activate()  # the fingerprints were just checked against these very weights
