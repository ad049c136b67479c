"""TinyWorld: a synthetic world of one or two objects with planted implicit assumptions, its exact judge,
and a miniature Stable Diffusion trained on it the way Stable Diffusion was (shipped in ``MODEL_DIR``)."""

from pathlib import Path

from . import spec
from .judge import OracleJudge, shares
from .render import Scene, Thing, render

MODEL_DIR = Path(__file__).resolve().parent / "model"
CLIP_FOLDER = "clip"  # the whole tiny CLIP (both towers) inside a TinyWorld folder: its CLIP judge
# DDIM steps TinyWorld is drawn with by default: 10 draw the same world as 25 (every judged share within
# its 95% interval) where 8 do not, nor DPM-Solver++ at 15 (benchmarks/results/tinyworld_speed_judged.md).
STEPS = 10

BATCH_SIZE = 32  # images per pipeline call: the fastest on a 2-core CPU (benchmarks/results/tinyworld_speed.md)

__all__ = ["BATCH_SIZE", "CLIP_FOLDER", "MODEL_DIR", "STEPS", "OracleJudge", "Scene", "Thing", "render", "shares", "spec"]
