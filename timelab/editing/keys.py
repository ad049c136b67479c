"""TIME's keys and targets from a pipeline: augmented prompt pairs, token alignment, text states.

For each (augmented) source/destination pair with alignment ``pi``, the keys are the source states
``c_i`` that the edit sites read (on Stable Diffusion all ``max_length`` text states: start, words, end,
padding; on models that mask padding, the unmasked ones; see :mod:`.sites`) and the target states are
the aligned destination states ``c*_pi(i)``; the target of projection ``W`` is ``W c*_pi(i)`` under the
weights the edit starts from (:func:`timelab.editing.solver.solve_for_states`).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import Tensor

from .alignment import AUGMENTATION_PREFIXES, augment_prompt
from .prompts import tokenizers, unknown_words
from .sites import site_alignments, site_inputs


class UnknownWordsWarning(UserWarning):
    """A prompt has words the model's tokenizer does not know: it spells them letter by letter."""


def edit_pairs(sources: Sequence[str], destinations: Sequence[str], augment: bool = True,
               prefixes: Sequence[str] = AUGMENTATION_PREFIXES) -> list[tuple[str, str]]:
    """The (source, destination) prompt pairs one edit solves for, with the paper's prefixes if ``augment``."""
    return [
        pair
        for src, dst in zip(sources, destinations)
        for pair in (zip(augment_prompt(src, prefixes), augment_prompt(dst, prefixes)) if augment else [(src, dst)])
    ]


def prompts_unknown_words(pipe, prompts: Sequence[str]) -> list[str]:
    """The prompts' words the pipeline's tokenizer spells out letter by letter, each once, in order."""
    tokenizer = tokenizers(pipe)[0]
    return list(dict.fromkeys(w for prompt in prompts for w in unknown_words(tokenizer, prompt)))


def unknown_words_note(words: Sequence[str]) -> str:
    """What to tell a user about ``words`` the tokenizer does not know."""
    return (f"the model's tokenizer does not know {', '.join(map(repr, words))}: it spells them letter by "
            "letter, so the model reads no meaning into them and the edit may do nothing useful. See the "
            "words it knows with pipe.tokenizer.get_vocab() (TinyWorld: timelab.tinyworld.captions.all_words())")


def warn_unknown_words(pipe, prompts: Sequence[str]) -> list[str]:
    """Warn (:class:`UnknownWordsWarning`) naming the prompts' words the tokenizer spells out; returns them."""
    words = prompts_unknown_words(pipe, prompts)
    if words:
        warnings.warn(UnknownWordsWarning(unknown_words_note(words)), stacklevel=3)
    return words


@torch.no_grad()
def preserved_keys(pipe, prompts: Sequence[str], sources: Sequence[str]) -> Tensor:
    """Every state of the prompts to preserve that the edit sites read, ``(len(prompts) * max_length, d)``
    (on models that mask padding, the unmasked states only).

    A prompt that is also one of the edit's sources is refused: it cannot both move and stay put.
    """
    clash = sorted(set(prompts) & set(sources))
    if clash:
        raise ValueError(f"{', '.join(map(repr, clash))} is both edited and preserved: leave it out of preserve")
    states, mask = site_inputs(pipe, list(prompts))
    return states.reshape(-1, states.shape[-1]) if mask is None else states[mask]


@torch.no_grad()
def keys_and_aligned_states(pipe, pairs: list[tuple[str, str]]) -> tuple[Tensor, Tensor]:
    """TIME's keys ``C`` (every source state the edit sites read) and the aligned destination states ``C*_pi``.

    Both ``(n, d)``, ``n = len(pairs) * max_length`` on Stable Diffusion (fewer where padding is masked):
    row ``i`` of ``C*_pi`` is the destination state that key ``i`` is aligned to. Alignment errors are
    raised before anything is encoded.
    """
    positions = site_alignments(pipe, pairs)
    states, _ = site_inputs(pipe, [s for s, _ in pairs] + [d for _, d in pairs])
    source_states, destination_states = states[: len(pairs)], states[len(pairs):]
    keys = torch.cat([source_states[p, kept.to(states.device)] for p, (kept, _) in enumerate(positions)])
    aligned = torch.cat([destination_states[p, target.to(states.device)] for p, (_, target) in enumerate(positions)])
    return keys, aligned
