"""One TIMED item, measured: images for its prompts with and without the edit, judged.

Rows: the *unedited* model, the edited model (one row per lambda) and the *oracle*, which simply
writes the destination forms (the destination for the source prompt, each related prompt's edited
form) and leaves unrelated prompts alone: what a perfect edit would draw.
"""

from __future__ import annotations

from typing import Callable, ContextManager, Sequence

import numpy as np

from .formats import EditItem
from ..generation import GenerationSettings, generate
from .judges import Judge

# editor(pipe, source, destination, lamb=...) applies an edit and undoes it when the `with` block ends.
Editor = Callable[..., ContextManager]


def default_editor() -> Editor:
    from timelab import time_edit

    return time_edit


def judged_hits(judge: Judge, images: np.ndarray, pairs: Sequence[tuple[str, str]], want: int) -> list[list[int]]:
    """Hits ``(n_prompts, n_seeds)``: 1 where the judge picks side ``want`` of the prompt's pair."""
    n_prompts, n_seeds = images.shape[:2]
    if len(pairs) != n_prompts:
        raise ValueError(f"{len(pairs)} candidate pairs for {n_prompts} prompts")
    choices = judge.choose(images.reshape(n_prompts * n_seeds, *images.shape[2:]),
                           [pair for pair in pairs for _ in range(n_seeds)])
    return (np.asarray(choices).reshape(n_prompts, n_seeds) == want).astype(int).tolist()


def _row(judge: Judge, item: EditItem, model: str, lamb: float | None, images: np.ndarray) -> dict:
    """Judge the images of [source, *related, *unrelated] prompts (in that order) as one result row."""
    n_related = len(item.related)
    return {
        "model": model,
        "lamb": lamb,
        "efficacy": judged_hits(judge, images[:1], [(item.source, item.destination)], want=1),
        "generality": judged_hits(judge, images[1:1 + n_related], list(item.related), want=1),
        "specificity": judged_hits(judge, images[1 + n_related:], list(item.unrelated), want=0),
    }


def evaluate_edit_item(pipe, judge: Judge, item: EditItem, seeds: Sequence[int], lambdas: Sequence[float],
                       settings: GenerationSettings = GenerationSettings(), editor: Editor | None = None) -> dict:
    """Rows ``unedited``, ``TIME`` (one per lambda) and ``oracle`` for one item, as a JSON-ready dict.

    Images are judged as soon as they are drawn and then dropped (a TIMED item on SD at 24 seeds is
    264 images of 512 x 512). The oracle's unrelated images are the unedited ones, so it reuses their hits.
    """
    editor = editor or default_editor()
    prompts = [item.source] + [p for p, _ in item.related] + [p for p, _ in item.unrelated]
    unedited = _row(judge, item, "unedited", None, generate(pipe, prompts, seeds, settings))
    rows = [unedited]
    for lamb in lambdas:
        with editor(pipe, item.source, item.destination, lamb=lamb):
            edited = generate(pipe, prompts, seeds, settings)
        rows.append(_row(judge, item, "TIME", float(lamb), edited))
    ideal = generate(pipe, [item.destination] + [form for _, form in item.related], seeds, settings)
    rows.append({
        "model": "oracle",
        "lamb": None,
        "efficacy": judged_hits(judge, ideal[:1], [(item.source, item.destination)], want=1),
        "generality": judged_hits(judge, ideal[1:], list(item.related), want=1),
        "specificity": unedited["specificity"],
    })
    return {"source": item.source, "destination": item.destination, "seeds": [int(s) for s in seeds], "rows": rows}
