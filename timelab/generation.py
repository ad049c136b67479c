"""Images for (prompt, seed) pairs, reproducibly and in batches.

Each image is seeded by its own CPU generator, so an image depends only on its prompt, its seed and
the model: not on order, device split or which process of a sharded run made it, and on batch size only
through float rounding (batched matrix products sum in another order: TinyWorld's pixels differ by
about 1e-5 between a batch of 1 and one of 12 on a CPU; exact equality holds for equal batches).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .schedulers import SAMPLERS


@dataclass(frozen=True)
class GenerationSettings:
    """Sampler settings; ``None`` keeps the pipeline's own default (``sampler``: its own scheduler).

    Refused at once, naming what is allowed: ``steps`` or ``batch_size`` below 1, an unknown sampler.
    """

    steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    batch_size: int = 8
    sampler: str | None = None

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1 (or None for the pipeline's default), got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.sampler is not None and self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(map(repr, SAMPLERS))} "
                             "(or None for the pipeline's own scheduler)")

    def call_kwargs(self) -> dict:
        names = {"steps": "num_inference_steps", "guidance_scale": "guidance_scale", "height": "height",
                 "width": "width"}
        return {names[k]: v for k, v in asdict(self).items() if k in names and v is not None}


@contextmanager
def sampler(pipe, name: str | None) -> Iterator[None]:
    """Inside the block the pipeline samples with ``name`` (see :data:`timelab.schedulers.SAMPLERS`) on its
    own noise schedule; its scheduler is put back afterwards, also on errors. ``None`` changes nothing."""
    if name is None:
        yield
        return
    own = pipe.scheduler
    pipe.scheduler = SAMPLERS[name](own.config)
    try:
        yield
    finally:
        pipe.scheduler = own


def _draw(pipe, n_prompts: int, seeds: Sequence[int], settings: GenerationSettings, progress: bool,
          inputs: Callable[[list[int]], dict]) -> np.ndarray:
    """Every (prompt index, seed) pair in batches; ``inputs(indices)`` gives the pipeline's text inputs."""
    if not n_prompts or not seeds:
        raise ValueError("generate needs at least one prompt and one seed")
    pipe.set_progress_bar_config(disable=True)
    pairs = [(p, s) for p in range(n_prompts) for s in seeds]
    chunks = []
    starts = range(0, len(pairs), settings.batch_size)
    with sampler(pipe, settings.sampler):
        for start in tqdm(starts, desc="generating", disable=not progress, mininterval=2):
            batch = pairs[start:start + settings.batch_size]
            generators = [torch.Generator("cpu").manual_seed(int(s)) for _, s in batch]
            out = pipe(**inputs([p for p, _ in batch]), generator=generators, output_type="np",
                       **settings.call_kwargs())
            chunks.append(np.asarray(out.images, dtype=np.float32))
    images = np.concatenate(chunks)
    return images.reshape(n_prompts, len(seeds), *images.shape[1:])


def generate(pipe, prompts: Sequence[str], seeds: Sequence[int],
             settings: GenerationSettings = GenerationSettings(), progress: bool = False) -> np.ndarray:
    """Images for every (prompt, seed), prompt-major: shape ``(len(prompts), len(seeds), H, W, 3)`` in [0, 1]."""
    return _draw(pipe, len(prompts), seeds, settings, progress, lambda idx: {"prompt": [prompts[i] for i in idx]})


def generate_from_states(pipe, states: torch.Tensor, seeds: Sequence[int],
                         settings: GenerationSettings = GenerationSettings(), progress: bool = False) -> np.ndarray:
    """Like :func:`generate`, but from text-encoder states given directly instead of prompts.

    ``states`` is ``(prompts, tokens, width)``, what the pipeline's text encoder would hand the UNet
    (e.g. from :func:`timelab.editing.encode_prompts`, possibly mixed between prompts); it goes in as
    the pipeline's ``prompt_embeds``, and the unconditional half of classifier-free guidance is the
    empty prompt, as for :func:`generate`. So ``generate_from_states(pipe, encode_prompts(pipe, P), S)``
    equals ``generate(pipe, P, S)``. Returns ``(prompts, seeds, H, W, 3)`` in [0, 1].
    """
    if states.ndim != 3:
        raise ValueError(f"need states of shape (prompts, tokens, width), got {tuple(states.shape)}")
    unet = pipe.unet
    return _draw(pipe, len(states), seeds, settings, progress,
                 lambda idx: {"prompt_embeds": states[idx].to(unet.device, unet.dtype)})
