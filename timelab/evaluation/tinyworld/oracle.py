"""TinyWorld's judges behind the evaluation's :class:`~timelab.evaluation.judges.Judge` protocol: its exact
pixel judge (:class:`OracleJudgeAdapter`, which also reads attributes, so an evaluation measures the
attributes an edit kept) and its own tiny CLIP (:func:`tinyworld_clip_judge`, the paper's metric)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...tinyworld import CLIP_FOLDER, MODEL_DIR, OracleJudge
from ...tinyworld.judge import Record, checks
from ..judges import ClipJudge, check_candidates
from .attributes import attributes_kept, edited_attributes, kept_attributes


def tinyworld_clip_judge(model_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
                         batch_size: int = 256) -> ClipJudge:
    """TinyWorld's own CLIP (both towers, trained contrastively on the world, saved with its tokenizer in
    the ``clip`` folder of the model) as a :class:`ClipJudge`: the paper's metric, on TinyWorld.
    ``model_dir``: a TinyWorld pipeline folder (default: the shipped model, ``timelab.tinyworld.MODEL_DIR``)."""
    folder = Path(model_dir if model_dir is not None else MODEL_DIR) / CLIP_FOLDER
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no TinyWorld CLIP at {folder} (a TinyWorld model folder holds it in "
                                f"{CLIP_FOLDER}/; train one with `timelab tinyworld train`)")
    return ClipJudge.from_pretrained(str(folder), device=device, batch_size=batch_size)


class OracleJudgeAdapter:
    """TinyWorld's exact judge behind the :class:`~timelab.evaluation.judges.Judge` protocol.

    The oracle reads each image's record (background; kind, colour, size, position of every object) from
    its pixels. A caption is scored against the record (:func:`timelab.tinyworld.judge.checks`): for
    each object the caption names, +1 for each attribute it states (colour, size, position) that the
    image's object of that kind has and -1 for each it contradicts, or -(1 + the number of stated
    attributes) when the image has no object of that kind (worse than any object that is there); the
    background, when stated, +1 or -1. The image goes to the second caption only when that caption
    scores strictly higher: a tie stays with the first.

    So for ("a circle", "a blue circle") a blue circle picks the second, any other circle (or no circle)
    the first; for ("a circle on the left and a square on the right", "a blue circle on the left and a
    square on the right") only the circle's colour decides, as both captions say the same about the rest.
    """

    def __init__(self, oracle: OracleJudge | None = None):
        self.oracle = oracle or OracleJudge()

    @staticmethod
    def score(record: Record, prompt: str) -> int:
        """The caption's score against one record (see the class docstring)."""
        total = 0
        for attribute, _, holds in checks(record, prompt):
            if attribute == "kind":
                total -= not holds  # an object that is there scores its attributes; one that is not, -1 more
            elif attribute != "objects":
                total += 1 if holds else -1
        return total

    def records(self, images: np.ndarray) -> list[Record]:
        """Each image's record: ``{"background": str, "objects": [{"kind", "colour", "size", "position"}]}``."""
        return self.oracle.read(images)

    def decide(self, records: Sequence[Record], candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        """:meth:`choose` on records already read."""
        if len(candidates) != len(records):
            raise ValueError(f"need one candidate pair per image: {len(records)} images, {len(candidates)} pairs")
        return np.asarray([int(self.score(r, b) > self.score(r, a)) for r, (a, b) in zip(records, candidates)],
                          dtype=np.int64)

    def choose(self, images: np.ndarray, candidates: Sequence[tuple[str, str]]) -> np.ndarray:
        check_candidates(images, candidates)
        return self.decide(self.records(images), candidates)

    @staticmethod
    def kept(prompt: str, source: str, destination: str, records_before: Sequence[Record],
             records_after: Sequence[Record]) -> dict[str, float]:
        """The attributes of ``prompt``'s images that the edit ``source -> destination`` should leave alone,
        each as ``1 - TV(before, after)`` (:mod:`timelab.evaluation.tinyworld.attributes`)."""
        edited = edited_attributes([source], [destination])
        return attributes_kept(records_before, records_after, kept_attributes(prompt, edited))
