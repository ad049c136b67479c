"""One TIMED item, measured: images for its prompts with and without the edit, judged.

Rows: the *unedited* model, the edited model (one row per lambda) and the *oracle*, which simply
writes the destination forms (the destination for the source prompt, each related prompt's edited
form) and leaves unrelated prompts alone: what a perfect edit would draw.

With a judge that reads attributes (one with ``records(images)`` and ``kept(...)``, such as TinyWorld's
:class:`~timelab.evaluation.tinyworld.oracle.OracleJudgeAdapter`), each edited row also gets ``"kept"``:
for every judged prompt (source, related, unrelated, in that order) a dict attribute ->
``1 - TV(before, after)`` over the prompt's images without and with the edit, same seeds, for every
attribute the edit should not touch (:mod:`timelab.evaluation.tinyworld.attributes`).
"""

from __future__ import annotations

from typing import Callable, ContextManager, Sequence

import numpy as np

from ..editing import time_edit
from ..generation import GenerationSettings, generate
from .formats import EditItem
from .judges import Judge

# editor(pipe, source, destination, lamb=...) applies an edit and undoes it when the `with` block ends.
Editor = Callable[..., ContextManager]


def reads_attributes(judge) -> bool:
    """Whether ``judge`` can also read attribute records from images and say which attributes an edit
    kept (duck typing: ``records(images)`` and ``kept(prompt, source, destination, before, after)``)."""
    return callable(getattr(judge, "records", None)) and callable(getattr(judge, "kept", None))


def judged_hits(judge: Judge, images: np.ndarray, pairs: Sequence[tuple[str, str]], want: int,
                records: Sequence | None = None) -> list[list[int]]:
    """Hits ``(n_prompts, n_seeds)``: 1 where the judge picks side ``want`` of the prompt's pair.

    ``records``: the images' records (prompt-major, flat) when already read, for a judge with ``decide``
    (the oracle adapter), which then need not read the pixels again.
    """
    n_prompts, n_seeds = images.shape[:2]
    if len(pairs) != n_prompts:
        raise ValueError(f"{len(pairs)} candidate pairs for {n_prompts} prompts")
    candidates = [pair for pair in pairs for _ in range(n_seeds)]
    if records is not None and callable(getattr(judge, "decide", None)):
        choices = judge.decide(records, candidates)
    else:
        choices = judge.choose(images.reshape(n_prompts * n_seeds, *images.shape[2:]), candidates)
    return (np.asarray(choices).reshape(n_prompts, n_seeds) == want).astype(int).tolist()


def _prompts(item: EditItem) -> list[str]:
    return [item.source] + [p for p, _ in item.related] + [p for p, _ in item.unrelated]


def _read(judge, images: np.ndarray) -> list | None:
    """Records of ``(n_prompts, n_seeds, H, W, 3)`` images, flat and prompt-major; None if the judge can't."""
    return judge.records(images.reshape(-1, *images.shape[2:])) if reads_attributes(judge) else None


def _row(judge: Judge, item: EditItem, model: str, lamb: float | None, images: np.ndarray,
         records: list | None = None) -> dict:
    """Judge the images of [source, *related, *unrelated] prompts (in that order) as one result row."""
    n_related, n_seeds = len(item.related), images.shape[1]

    def part(start: int, stop: int):
        return records[start * n_seeds:stop * n_seeds] if records is not None else None

    n = images.shape[0]
    return {
        "model": model,
        "lamb": lamb,
        "efficacy": judged_hits(judge, images[:1], [(item.source, item.destination)], 1, part(0, 1)),
        "generality": judged_hits(judge, images[1:1 + n_related], list(item.related), 1, part(1, 1 + n_related)),
        "specificity": judged_hits(judge, images[1 + n_related:], list(item.unrelated), 0, part(1 + n_related, n)),
    }


def kept_rows(judge, item: EditItem, before: Sequence, after: Sequence, n_seeds: int) -> list[dict[str, float]]:
    """Per judged prompt of the item (source, related, unrelated), the attributes kept between the
    records ``before`` and ``after`` the edit (flat, prompt-major, ``n_seeds`` per prompt), as the judge
    reads them (``judge.kept``)."""
    return [judge.kept(prompt, item.source, item.destination, before[i * n_seeds:(i + 1) * n_seeds],
                       after[i * n_seeds:(i + 1) * n_seeds])
            for i, prompt in enumerate(_prompts(item))]


def evaluate_edit_item(pipe, judge: Judge, item: EditItem, seeds: Sequence[int], lambdas: Sequence[float],
                       settings: GenerationSettings = GenerationSettings(), editor: Editor | None = None) -> dict:
    """Rows ``unedited``, ``TIME`` (one per lambda) and ``oracle`` for one item, as a JSON-ready dict.

    Images are judged as soon as they are drawn and then dropped (a TIMED item on SD at 24 seeds is
    264 images of 512 x 512). The oracle's unrelated images are the unedited ones, so it reuses their hits.
    A judge that reads attributes adds ``"kept"`` to every TIME row (see the module docstring); only
    the unedited images' records are kept in memory for it.
    """
    editor = editor or time_edit
    prompts = _prompts(item)
    seeds = [int(s) for s in seeds]
    images = generate(pipe, prompts, seeds, settings)
    before = _read(judge, images)
    unedited = _row(judge, item, "unedited", None, images, before)
    rows = [unedited]
    for lamb in lambdas:
        with editor(pipe, item.source, item.destination, lamb=lamb):
            edited = generate(pipe, prompts, seeds, settings)
        after = _read(judge, edited)
        row = _row(judge, item, "TIME", float(lamb), edited, after)
        if before is not None:
            row["kept"] = kept_rows(judge, item, before, after, len(seeds))
        rows.append(row)
    ideal = generate(pipe, [item.destination] + [form for _, form in item.related], seeds, settings)
    ideal_records = _read(judge, ideal)
    rows.append({
        "model": "oracle",
        "lamb": None,
        "efficacy": judged_hits(judge, ideal[:1], [(item.source, item.destination)], 1,
                                ideal_records[:len(seeds)] if ideal_records is not None else None),
        "generality": judged_hits(judge, ideal[1:], list(item.related), 1,
                                  ideal_records[len(seeds):] if ideal_records is not None else None),
        "specificity": unedited["specificity"],
    })
    return {"source": item.source, "destination": item.destination, "seeds": seeds, "rows": rows}
