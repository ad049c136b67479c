"""Evaluate three TinyWorld edit items on a tiny random SD pipeline with the real TIME edit.

Run alone or under ``torchrun --nproc_per_node 2`` by test_evaluation_runner; each process logs
which items it judged to ``<log_dir>/rank<r>.txt``. Usage: ``worker.py OUTPUT LOG_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


class PixelJudge:
    """A deterministic stand-in for CLIP: the parity of the image's mean in thousandths, per caption length."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def choose(self, images, candidates):
        with open(self.log, "a") as f:
            f.writelines(f"{a}\t{b}\n" for a, b in candidates)
        return np.asarray([(int(im.mean() * 1000) + len(b) - len(a)) % 2 for im, (a, b) in zip(images, candidates)])


def main(output: str, log_dir: str) -> None:
    from timelab.evaluation import evaluate
    from timelab.generation import GenerationSettings
    from timelab.evaluation.tinyworld.items import edit_items
    from timelab.evaluation.runner import process_state
    from timelab.testing import tiny_pipeline

    rank = process_state().process_index
    pipe = tiny_pipeline("sd1")
    items = edit_items()[:3]
    judge = PixelJudge(Path(log_dir) / f"rank{rank}.txt")
    settings = GenerationSettings(steps=2, height=8, width=8, batch_size=6)
    evaluate(pipe, items, output, judge, seeds=2, lambdas=[0.1], settings=settings)


if __name__ == "__main__":
    main(*sys.argv[1:3])
