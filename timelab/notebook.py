"""Small helpers shared by the course notebooks: which model to run on, and exercise checks.

Every notebook's parameters cell reads ``MODEL = os.environ.get("TIMELAB_MODEL", default_model())``:
Stable Diffusion 1.4 when a GPU is present, TinyWorld otherwise (and, while the TinyWorld weights are
not shipped, the tiny random-weight SD 1.x pipeline of :mod:`timelab.testing`, which runs everything
but draws noise).
"""

from __future__ import annotations

import os
from typing import Callable

import torch

MODEL_ENV = "TIMELAB_MODEL"
SD14 = "CompVis/stable-diffusion-v1-4"
TINYWORLD = "tinyworld"
TINY_RANDOM = "tiny-random"  # random weights: for plumbing only, its images are noise
SD14_RANDOM = "sd14-random"  # Stable Diffusion 1.4's exact architecture, random weights (tests the SD path)


def tinyworld_available() -> bool:
    """Whether the trained TinyWorld model is shipped with this copy of timelab."""
    from .tinyworld import MODEL_DIR

    return (MODEL_DIR / "model_index.json").is_file()


def default_model() -> str:
    """SD 1.4 on a GPU; TinyWorld on a CPU (the tiny random pipeline if TinyWorld is not shipped)."""
    if torch.cuda.is_available():
        return SD14
    return TINYWORLD if tinyworld_available() else TINY_RANDOM


def pick_model() -> str:
    """``$TIMELAB_MODEL`` when set, else :func:`default_model`."""
    return os.environ.get(MODEL_ENV) or default_model()


def load_model(name: str):
    """The pipeline called ``name``: ``"tiny-random"``, ``"sd14-random"``, ``"tinyworld"`` or any diffusers id/folder.

    The two tiny models run on one CPU thread (``load_pipeline`` does so for TinyWorld): their
    operations are so small that more threads only wait on one another.
    """
    if name == TINY_RANDOM and not torch.cuda.is_available():
        torch.set_num_threads(1)
    if name in (TINY_RANDOM, SD14_RANDOM):
        from .testing import sd14_shaped_pipeline, tiny_pipeline

        pipe = tiny_pipeline("sd1") if name == TINY_RANDOM else sd14_shaped_pipeline()
        pipe.set_progress_bar_config(disable=True)
        return pipe
    from .models import load_pipeline

    return load_pipeline(name)


def check_exercise(name: str, check: Callable[[], None]) -> bool:
    """Run an exercise's ``check``: True when it passes, False (with a note) while the stub is unsolved.

    A stub signals "not done yet" by raising NotImplementedError; a wrong answer raises from ``check``
    (an AssertionError naming what is off) and is not caught.
    """
    try:
        check()
    except NotImplementedError:
        print(f"{name}: not done yet (the stub raises NotImplementedError)")
        return False
    print(f"{name}: correct")
    return True
