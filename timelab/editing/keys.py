"""TIME's keys and targets from a pipeline: augmented prompt pairs, token alignment, text states.

For each (augmented) source/destination pair with alignment ``pi``, the keys are all ``max_length``
source text states ``c_i`` (start, words, end, padding) and the target states are the aligned
destination states ``c*_pi(i)``; the target of projection ``W`` is ``W c*_pi(i)`` under the weights the
edit starts from (:func:`timelab.editing.solver.solve_for_states`).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import Tensor

from .alignment import AUGMENTATION_PREFIXES, align_tokens, augment_prompt
from .prompts import encode_prompts, tokenizers, unknown_words


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


def _alignments(pipe, pairs: list[tuple[str, str]]) -> list[list[int]]:
    found = []
    for source, destination in pairs:
        maps = [align_tokens(tok, source, destination) for tok in tokenizers(pipe)]
        if any(m != maps[0] for m in maps[1:]):
            raise ValueError(f"the pipeline's tokenizers align {source!r} -> {destination!r} differently")
        found.append(maps[0])
    return found


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
    """Every text state of the prompts to preserve, ``(len(prompts) * max_length, d)``.

    A prompt that is also one of the edit's sources is refused: it cannot both move and stay put.
    """
    clash = sorted(set(prompts) & set(sources))
    if clash:
        raise ValueError(f"{', '.join(map(repr, clash))} is both edited and preserved: leave it out of preserve")
    states = encode_prompts(pipe, list(prompts))
    return states.reshape(-1, states.shape[-1])


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
