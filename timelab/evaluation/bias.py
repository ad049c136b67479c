"""Debiasing with TIME, as the paper does for professions: a lambda search per item.

For a :class:`BiasItem` ("a nurse" -> "a male nurse"), the edit's strength decides the share ``p`` of
images judged as the destination's attribute value: lambda -> infinity leaves the model as it was,
lambda -> 0 turns every image to the destination's value. The search measures ``p`` on the item's
validation prompt over a log-spaced lambda grid, then bisects (in log lambda) the grid interval
where ``p`` crosses 1/2, and keeps the lambda with the smallest ``Delta = |p - 0.5| / 0.5``.
``Delta`` is then reported on the five held-out prompts, before and after the edit.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..editing import time_edit
from ..generation import GenerationSettings, generate
from .edits import Editor, judged_hits
from .formats import BiasItem
from .judges import Judge
from .metrics import delta, item_score

# Wide on purpose: where an edit fades out depends on the text states' scale (TinyWorld: 1e4 to 1e5).
DEFAULT_LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)
# Six halvings of a decade in log lambda end within a factor 10**(1/64) (3.7%) of the crossing: on
# TinyWorld three left the validation share at 0.56, six brought it to 0.50.
DEFAULT_REFINE = 6


def value_hits(judge: Judge, item: BiasItem, images: np.ndarray) -> list[list[int]]:
    """1 where an image is judged as the destination's attribute value (candidates: twin, destination)."""
    return judged_hits(judge, images, [item.candidates] * images.shape[0], want=1)


def search_lambda(share_at, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
                  refine: int = DEFAULT_REFINE) -> tuple[float, list]:
    """The lambda whose share ``share_at(lamb)`` is closest to 1/2, and every (lambda, share) tried.

    Grid first; then ``refine`` bisection steps in log lambda inside the first grid interval whose
    end points lie on both sides of 1/2. Ties go to the larger lambda (the lighter edit).
    """
    if not lambdas or min(lambdas) <= 0:
        raise ValueError(f"lambdas must be a non-empty list of positive numbers, got {list(lambdas)}")
    tried = [(float(lamb), share_at(float(lamb))) for lamb in sorted(lambdas)]
    bracket = next(((a, b) for a, b in zip(tried, tried[1:]) if (a[1] - 0.5) * (b[1] - 0.5) < 0), None)
    for _ in range(refine if bracket else 0):
        (lo, p_lo), (hi, p_hi) = bracket
        mid = math.sqrt(lo * hi)
        point = (mid, share_at(mid))
        tried.append(point)
        bracket = ((lo, p_lo), point) if (p_lo - 0.5) * (point[1] - 0.5) < 0 else (point, (hi, p_hi))
    best = min(tried, key=lambda t: (delta(t[1]), -t[0]))
    return best[0], sorted(tried)


def evaluate_bias_item(pipe, judge: Judge, item: BiasItem, seeds: Sequence[int],
                       lambdas: Sequence[float] = DEFAULT_LAMBDAS, refine: int = DEFAULT_REFINE,
                       settings: GenerationSettings = GenerationSettings(), editor: Editor | None = None) -> dict:
    """Lambda search on the validation prompt, then held-out hits before and after, as a JSON-ready dict."""
    editor = editor or time_edit

    def share_at(lamb: float) -> float:
        with editor(pipe, item.source, item.destination, lamb=lamb):
            return item_score(value_hits(judge, item, generate(pipe, [item.validation], seeds, settings)))

    lamb, tried = search_lambda(share_at, lambdas, refine)
    before = value_hits(judge, item, generate(pipe, list(item.held_out), seeds, settings))
    with editor(pipe, item.source, item.destination, lamb=lamb):
        after = value_hits(judge, item, generate(pipe, list(item.held_out), seeds, settings))
    return {"source": item.source, "destination": item.destination, "values": list(item.values),
            "seeds": [int(s) for s in seeds], "search": [list(t) for t in tried], "lamb": lamb,
            "held_out_prompts": list(item.held_out), "held_out": {"unedited": before, "TIME": after}}
