"""Images for (prompt, seed) pairs, reproducibly and in batches.

Each image is seeded by its own CPU generator, so an image depends only on its prompt, its seed and
the model: not on batch size, order, device split or which process of a sharded run made it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings; ``None`` keeps the pipeline's own default."""

    steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    batch_size: int = 8

    def call_kwargs(self) -> dict:
        names = {"steps": "num_inference_steps", "guidance_scale": "guidance_scale", "height": "height",
                 "width": "width"}
        return {names[k]: v for k, v in asdict(self).items() if k in names and v is not None}


def generate(pipe, prompts: Sequence[str], seeds: Sequence[int],
             settings: GenerationSettings = GenerationSettings(), progress: bool = False) -> np.ndarray:
    """Images for every (prompt, seed), prompt-major: shape ``(len(prompts), len(seeds), H, W, 3)`` in [0, 1]."""
    if not prompts or not seeds:
        raise ValueError("generate needs at least one prompt and one seed")
    if settings.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {settings.batch_size}")
    pipe.set_progress_bar_config(disable=True)
    pairs = [(p, s) for p in prompts for s in seeds]
    chunks = []
    starts = range(0, len(pairs), settings.batch_size)
    for start in tqdm(starts, desc="generating", disable=not progress, mininterval=2):
        batch = pairs[start:start + settings.batch_size]
        generators = [torch.Generator("cpu").manual_seed(int(s)) for _, s in batch]
        out = pipe(prompt=[p for p, _ in batch], generator=generators, output_type="np", **settings.call_kwargs())
        chunks.append(np.asarray(out.images, dtype=np.float32))
    images = np.concatenate(chunks)
    return images.reshape(len(prompts), len(seeds), *images.shape[1:])
