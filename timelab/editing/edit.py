"""The lifecycle of an edit applied in place: apply, undo, stack, and the pipeline's stack of active edits.

An :class:`Edit` holds, for every edited projection (``"<layer>.to_k"``), the weights from before it
(``original``) and after it (``edited``). Edits applied to one pipeline form a stack (latest last, kept
on the UNet, or the transformer, that holds the edit sites): a new edit starts from the original weights unless it is stacked on purpose, and stacked
edits are undone latest first. ``undo`` refuses when something else (a fused LoRA, a manual write)
changed the weights since the edit was applied, naming the layers; ``undo(force=True)`` restores anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from .edit_format import save_edit
from .keys import edit_pairs, keys_and_aligned_states
from .settings import EditSettings
from .sites import denoiser

STACK_ATTRIBUTE = "_timelab_active_edits"


def active_edits(pipe) -> list["Edit"]:
    """The pipeline's active timelab edits, oldest first (a list kept on its UNet or transformer)."""
    model = denoiser(pipe)
    if not hasattr(model, STACK_ATTRIBUTE):
        object.__setattr__(model, STACK_ATTRIBUTE, [])
    return getattr(model, STACK_ATTRIBUTE)


def reset_edits(pipe, force: bool = False) -> int:
    """Undo every active timelab edit of ``pipe`` (latest first); returns how many were undone."""
    active = active_edits(pipe)
    count = len(active)
    while active:
        active[-1].undo(force=force)
    return count


def weights_without_edits(pipe, names) -> dict[str, Tensor]:
    """What each named projection would hold once every active edit is undone (nothing is changed)."""
    model = denoiser(pipe)
    modules = {name: model.get_submodule(name) for name in names}
    base = {name: module.weight for name, module in modules.items()}
    for edit in reversed(active_edits(pipe)):  # the oldest edit's snapshot is the unedited weight
        base.update({name: weight for name, weight in edit.original.items() if name in base})
    return base


def _listed(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(eq=False)
class Edit:
    """An edit of a pipeline's edit sites (cross-attention projections, see :mod:`.sites`), applied in place.

    ``undo()`` restores ``original`` bit for bit; ``with edit:`` undoes on exit, also on exceptions.
    """

    pipe: object
    source: list[str]
    destination: list[str]
    settings: EditSettings
    original: dict[str, Tensor]
    edited: dict[str, Tensor]
    timings: dict[str, float] = field(default_factory=dict)
    stacked: bool = False
    active: bool = False
    system: tuple[Tensor, Tensor] | None = field(default=None, repr=False)  # (keys C, aligned states C*_pi)

    @property
    def lamb(self) -> float:
        return self.settings.lamb

    @property
    def layer_names(self) -> list[str]:
        return list(self.edited)

    def key_system(self) -> tuple[Tensor, Tensor]:
        """The keys ``C`` and aligned destination states ``C*_pi`` this edit was solved for (what
        :func:`timelab.editing.keys.keys_and_aligned_states` gives for its augmented prompt pairs): kept
        from the solve by ``time_edit``, encoded once from the prompts for an edit loaded from a file."""
        if self.system is None:
            pairs = edit_pairs(self.source, self.destination, self.settings.augment, self.settings.prefixes)
            self.system = keys_and_aligned_states(self.pipe, pairs)
        return self.system

    def _modules(self) -> dict[str, nn.Linear]:
        model = denoiser(self.pipe)
        return {name: model.get_submodule(name) for name in self.edited}

    def _write(self, weights: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for name, module in self._modules().items():
                module.weight.copy_(weights[name])

    def _differing(self, expected: dict[str, Tensor]) -> list[str]:
        return [name for name, module in self._modules().items() if not torch.equal(module.weight, expected[name])]

    def apply(self) -> "Edit":
        """(Re-)apply the edit; the model must hold the weights the edit was made from."""
        if self.active:
            return self
        changed = self._differing(self.original)
        if changed:
            raise RuntimeError(
                f"cannot apply: {_listed(changed)} no longer hold the weights this edit was made from "
                "(another edit is active?); undo it first, e.g. timelab.reset_edits(pipe)"
            )
        return self.activate()

    def activate(self) -> "Edit":
        """Write the edited weights and push the edit on the pipeline's stack (no checks: the caller made them)."""
        self._write(self.edited)
        active_edits(self.pipe).append(self)
        self.active = True
        return self

    def undo(self, force: bool = False) -> "Edit":
        """Restore the weights from before this edit, bit for bit.

        Refuses, naming the layers, when they no longer hold this edit's weights (changed by something
        else since it was applied); ``force=True`` restores the original weights anyway.
        """
        if not self.active:
            return self
        active = active_edits(self.pipe)
        if active[-1] is not self:
            raise RuntimeError("this edit has later edits stacked on it: undo those first (latest first)")
        changed = [] if force else self._differing(self.edited)
        if changed:
            raise RuntimeError(
                f"cannot undo: {_listed(changed)} changed since this edit was applied (a fused LoRA or a "
                "manual write?), so undoing would throw that change away; call undo(force=True) to "
                "restore the weights from before the edit anyway"
            )
        self._write(self.original)
        active.pop()
        self.active = False
        return self

    def __enter__(self) -> "Edit":
        return self.apply()

    def __exit__(self, *exc) -> None:
        self.undo()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the edited matrices and metadata as a safetensors edit file (see :mod:`.edit_format`)."""
        return save_edit(self, path)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{s!r} -> {d!r}" for s, d in zip(self.source, self.destination))
        state = "active" if self.active else "undone"
        return f"Edit({pairs}, lamb={self.lamb}, {len(self.edited)} matrices, {state})"
