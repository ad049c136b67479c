"""Text states as the UNet receives them, and the tokenizers that made them."""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import Tensor


def tokenizers(pipe) -> list:
    """The pipeline's tokenizers (SDXL has two; their token ids agree on CLIP's vocabulary)."""
    found = [getattr(pipe, name, None) for name in ("tokenizer", "tokenizer_2")]
    found = [t for t in found if t is not None]
    if not found:
        raise ValueError("the pipeline has no tokenizer; timelab edits text-to-image pipelines")
    return found


@torch.no_grad()
def encode_prompts(pipe, prompts: Sequence[str]) -> Tensor:
    """``(batch, max_length, d)`` text states for ``prompts``, exactly as the UNet receives them.

    Uses the pipeline's own ``encode_prompt`` (so SDXL's concatenated penultimate states, clip skip
    and the like come out as in generation), without classifier-free guidance.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    device = getattr(pipe, "_execution_device", None) or pipe.device
    encoded = pipe.encode_prompt(
        prompt=list(prompts), device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    return encoded[0]


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Words of ``prompt`` that ``tokenizer`` spells out: split into pieces, at least half of them single letters.

    CLIP-style byte-pair tokenizers write a word they have no merges for letter by letter; a model
    trained with such a tokenizer has never seen the word. (Split but meaningful words, such as CLIP's
    "dragon" + "fruit", are not flagged.)
    """
    found = []
    for word in re.findall(r"\w+", prompt):
        pieces = [p.replace("</w>", "").replace("\u2581", "").removeprefix("##") for p in tokenizer.tokenize(word)]
        if len(pieces) > 1 and sum(len(p) <= 1 for p in pieces) >= len(pieces) / 2:
            found.append(word)
    return found
