"""Text states as the UNet receives them, and the tokenizers that made them."""

from __future__ import annotations

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
