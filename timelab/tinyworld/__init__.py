"""TinyWorld: a synthetic world of one or two objects with planted implicit assumptions, its exact judge,
and a miniature Stable Diffusion trained on it the way Stable Diffusion was (shipped in ``MODEL_DIR``)."""

import json
from pathlib import Path

from . import spec
from .judge import OracleJudge, shares
from .render import Scene, Thing, render

MODEL_DIR = Path(__file__).resolve().parent / "model"
CLIP_FOLDER = "clip"  # the whole tiny CLIP (both towers) inside a TinyWorld folder: its CLIP judge
# DDIM steps TinyWorld is drawn with by default: 20 draw the same world as 25 (every judged share inside the
# 25-step share's 95% interval); 15 draw 'a cross' purple 3 points more often, just outside it; 10 lose 13
# points of TIME's generality; DPM-Solver++ at 8-15 misses one-object prompts
# (benchmarks/results/tinyworld_speed_judged.md).
STEPS = 20

BATCH_SIZE = 32  # images per pipeline call: the fastest on a 2-core CPU (benchmarks/results/tinyworld_speed.md)


def validated_lambda(model_dir: Path = MODEL_DIR) -> float:
    """TinyWorld's lambda for TIME, chosen on a validation split of its edit items as the best mean of
    efficacy, generality, specificity and attributes kept (its model card; ``timelab tinyworld measure``
    writes it into the folder's ``figures.json``)."""
    return float(json.loads((model_dir / "figures.json").read_text())["time"]["chosen_lamb"])


__all__ = ["BATCH_SIZE", "CLIP_FOLDER", "MODEL_DIR", "STEPS", "OracleJudge", "Scene", "Thing", "render", "shares", "spec",
           "validated_lambda"]
