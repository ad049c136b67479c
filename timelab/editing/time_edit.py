"""``time_edit``: TIME in one call, from two prompts to edited weights (keys -> solver -> Edit)."""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import torch

from .alignment import AUGMENTATION_PREFIXES
from .edit import Edit, active_edits, reset_edits
from .keys import edit_pairs, keys_and_aligned_states, preserved_keys, warn_unknown_words
from .settings import EditSettings
from .sites import site_projections
from .solver import PAPER_LAMBDA, solve_for_states


def _as_list(prompts: str | Sequence[str], name: str) -> list[str]:
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise ValueError(f"{name} is empty: give at least one prompt")
    return items


@torch.no_grad()
def time_edit(
    pipe,
    source: str | Sequence[str],
    destination: str | Sequence[str],
    lamb: float = PAPER_LAMBDA,
    edit_keys: bool = True,
    edit_values: bool = True,
    layers: Iterable[str] | None = None,
    augment: bool = True,
    stack: bool = False,
    prefixes: Sequence[str] = AUGMENTATION_PREFIXES,
    preserve: Sequence[str] | None = None,
    preserve_weight: float = 1.0,
) -> Edit:
    """Edit ``pipe`` in place so that ``source`` is read as ``destination`` (TIME, closed form).

    ``source``/``destination`` are one prompt each or equal-length lists of pairs solved together.
    With ``augment`` each pair is also used with the paper's prefixes ("A photo of ", ...), all with
    equal weight. ``layers`` restricts the edit to cross-attention layers by name or name prefix.
    Where the edit sites are and what they read depends on the architecture (:func:`~.sites.edit_sites`).
    Unless ``stack`` is set, any active edit is undone first, so the edit starts from the original
    weights. ``preserve`` lists prompts whose keys and values should stay as they are: their text states
    join the key system with their current projections as targets, weighted by ``preserve_weight``
    (the generalised objective ``+ s sum_j ||W' p_j - W p_j||^2``; one solve, as before).
    Words the tokenizer does not know raise an :class:`~timelab.editing.keys.UnknownWordsWarning`.
    Every check runs before the model is touched. Returns the applied :class:`Edit`;
    ``with time_edit(...):`` undoes it on exit.
    """
    sources, destinations = _as_list(source, "source"), _as_list(destination, "destination")
    if len(sources) != len(destinations):
        raise ValueError(f"got {len(sources)} source prompts but {len(destinations)} destinations")
    if preserve is not None and not list(preserve):
        raise ValueError("preserve is empty: give at least one prompt to preserve, or leave preserve out")
    settings = EditSettings(lamb, edit_keys, edit_values, augment, prefixes, layers, preserve or (), preserve_weight)
    targets = site_projections(pipe, settings.layers, edit_keys, edit_values)
    started = time.perf_counter()
    pairs = edit_pairs(sources, destinations, augment, settings.prefixes)
    keys, aligned = keys_and_aligned_states(pipe, pairs)
    kept = preserved_keys(pipe, settings.preserve, [s for s, _ in pairs]) if settings.preserve else None
    warn_unknown_words(pipe, sources + destinations + list(settings.preserve))
    encoded = time.perf_counter()
    if not stack:
        reset_edits(pipe)  # only now: a bad prompt pair above leaves the active edit in place
    solved_weights = solve_for_states([linear.weight for linear in targets.values()], keys, aligned, settings.lamb,
                                      kept, settings.preserve_weight)
    solved = time.perf_counter()
    edit = Edit(
        pipe=pipe, source=sources, destination=destinations, settings=settings,
        original={name: linear.weight.detach().clone() for name, linear in targets.items()},  # for undo
        edited=dict(zip(targets, solved_weights)), stacked=stack and bool(active_edits(pipe)),
        timings={"encode_s": encoded - started, "solve_s": solved - encoded}, system=(keys, aligned),
    )
    edit.activate()  # made from the current weights just now: nothing to check
    edit.timings["apply_s"] = time.perf_counter() - solved  # undo snapshot and weight writes
    return edit
