"""CLIP's image normalisation: pixels in [0, 1] shifted and scaled by the OpenAI CLIP training statistics.

Both CLIP image towers timelab uses take this: the CLIP judge (:mod:`timelab.evaluation.judges`) and
TinyWorld's tiny CLIP while it trains (:mod:`timelab.tinyworld.training`).
"""

from __future__ import annotations

import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``(n, 3, H, W)`` pixels in [0, 1]."""
    mean = torch.tensor(CLIP_MEAN, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std
