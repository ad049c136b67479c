"""Loading text-to-image pipelines: the shipped TinyWorld model, or any diffusers model id or folder."""

from __future__ import annotations

import os

import torch

TINYWORLD = "tinyworld"


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pipeline(name_or_path: str | os.PathLike = TINYWORLD, device: str | None = None,
                  dtype: torch.dtype | None = None):
    """Load a text-to-image pipeline ready to edit.

    ``"tinyworld"`` loads the model shipped with timelab (offline). Anything else goes to diffusers'
    ``AutoPipelineForText2Image.from_pretrained`` (a hub id such as ``"CompVis/stable-diffusion-v1-4"``,
    which needs the network the first time, or a local folder). ``dtype`` defaults to float16 on a GPU
    and float32 on a CPU. The safety checker is left out, as in the paper's experiments.

    TinyWorld on a CPU sets torch to one thread: its operations are so small that more threads only
    wait on one another (measured here: 5x faster on one thread on a busy 2-core machine).
    """
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    device = device or default_device()
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    if str(name_or_path) == TINYWORLD:
        from .tinyworld import MODEL_DIR

        if device == "cpu":
            torch.set_num_threads(1)
        pipe = StableDiffusionPipeline.from_pretrained(MODEL_DIR, torch_dtype=dtype, local_files_only=True)
    else:
        extra = {"safety_checker": None, "requires_safety_checker": False}
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(str(name_or_path), torch_dtype=dtype, **extra)
        except TypeError:  # pipelines without a safety checker reject those arguments
            pipe = AutoPipelineForText2Image.from_pretrained(str(name_or_path), torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
