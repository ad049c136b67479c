"""TinyWorld: a synthetic world with planted implicit assumptions, its exact judge, and a small trained
latent diffusion model built from Stable Diffusion's component classes (shipped in ``MODEL_DIR``)."""

from pathlib import Path

from . import spec
from .judge import OracleJudge, shares
from .render import Scene, render

MODEL_DIR = Path(__file__).resolve().parent / "model"
STEPS = 25  # DDIM steps the shipped model is measured with (its model card) and evaluated at by default

__all__ = ["MODEL_DIR", "STEPS", "OracleJudge", "Scene", "render", "shares", "spec"]
