"""Does an object word's cross-attention fall on its own object? Measured with the exact judge's masks.

For an image the judge reads right, an object with pixel mask ``m`` (32x32) and one recorded layer of
maps at resolution r x r, let ``a`` be the map of the object's word (``P[j, word]`` averaged over heads
and steps, one value per latent cell ``j``) and ``f_j`` the share of cell ``j`` covered by the object
(``m`` average-pooled to r x r). Then

    on_object = sum_j a_j f_j / sum_j a_j        (the share of the word's attention mass on its object)
    area      = (1 / r^2) sum_j f_j              (what a word attending uniformly would get)

and ``on_object / area`` is how many times better than uniform the word finds its object.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...attention import AttentionRecorder, token_labels
from ...generation import GenerationSettings, generate
from ...tinyworld.captions import describe
from ...tinyworld.judge import OracleJudge, shows


def cover(mask: np.ndarray, resolution: int) -> np.ndarray:
    """Share of each of ``resolution`` x ``resolution`` cells covered by a boolean (H, W) mask."""
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(mask.astype(np.float32))[None, None], resolution)
    return pooled[0, 0].numpy()


def on_object(word_map: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``(on_object, area)`` for one word's (r, r) map and its object's boolean (H, W) mask."""
    f = cover(mask, word_map.shape[-1])
    return float((word_map * f).sum() / word_map.sum()), float(f.mean())


def word_position(tokenizer, prompt: str, word: str) -> int:
    """The token position of ``word`` in ``prompt`` (it must occur once, as one token)."""
    found = [s.positions for s in token_labels(tokenizer, prompt) if s.label == word]
    if len(found) != 1 or len(found[0]) != 1:
        raise ValueError(f"{word!r} must be one token occurring once in {prompt!r}")
    return found[0][0]


def localisation(pipe, prompts: Sequence[str], seeds: Sequence[int],
                 settings: GenerationSettings = GenerationSettings(), judge: OracleJudge | None = None) -> dict:
    """Per map resolution (and ``"all"``: every layer's maps resized to the finest), the mean over objects
    of ``on_object`` and ``area`` for the object words of ``prompts``, over images the judge reads as
    showing the prompt; with the number of objects counted and of images used."""
    judge = judge or OracleJudge()
    sums: dict[str, list[tuple[float, float]]] = {}
    used = 0
    for prompt in prompts:
        kinds = [o["kind"] for o in describe(prompt).objects]
        positions = {k: word_position(pipe.tokenizer, prompt, k) for k in kinds}
        with AttentionRecorder(pipe) as recorder:
            images = generate(pipe, [prompt], seeds, settings)[0]
        resolutions = sorted(set(recorder.shapes.values()), reverse=True)
        maps = {f"{h}x{w}": recorder.maps(resolution=(h, w)) for h, w in resolutions}
        maps["all"] = recorder.maps()
        for i, image in enumerate(images):
            background, found = judge.locate(image)
            record = {"background": background, "objects": [reading for reading, _ in found]}
            if not shows(record, prompt):
                continue
            used += 1
            masks = {reading["kind"]: mask for reading, mask in found}
            for name, stack in maps.items():
                for kind in kinds:
                    sums.setdefault(name, []).append(on_object(stack[i, positions[kind]].numpy(), masks[kind]))
    out = {name: {"on_object": float(np.mean([o for o, _ in pairs])), "area": float(np.mean([a for _, a in pairs])),
                  "objects": len(pairs)} for name, pairs in sums.items()}
    for row in out.values():
        row["ratio"] = row["on_object"] / row["area"]
    return {"by_resolution": out, "images_used": used, "images": len(prompts) * len(seeds)}
