"""Measure TinyWorld with its exact judge: stated attributes obeyed, planted priors, attention that
localises, and TIME (with attributes kept and the CLIP judge's error). ``timelab tinyworld measure``
writes the figures to ``figures.json`` and the model card ``README.md`` (``model_card``).

Every figure is a share of judged images over seeds 0..n-1 (one image per seed and prompt), drawn with
the shipped scheduler (its sampler) at ``steps`` steps and classifier-free guidance ``guidance`` (the course's
7.5). Priors are also read unguided (1.0): guidance w samples from p(x|c)^w p(x)^(1-w), which sharpens a
conditional distribution towards its mode, so at 7.5 a planted 85% reads higher.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from ...editing.solver import PAPER_LAMBDA
from ...generation import GenerationSettings, generate
from ...schedulers import sampler_name
from ...tinyworld import MODEL_DIR, STEPS, spec
from ...tinyworld.captions import describe, without_background
from ...tinyworld.judge import OracleJudge, checks, find, shares, shows
from ..edits import evaluate_edit_item
from ..metrics import METRICS, item_score, kept_score
from .items import edit_items
from .localisation import localisation
from .model_card import Figures, write_model_card
from .oracle import OracleJudgeAdapter, tinyworld_clip_judge

GUIDANCE = 7.5
UNGUIDED = 1.0
BATCH_SIZE = 64
LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # the grid the validation split chooses lambda from


def stated_one_object() -> list[str]:
    """Fully stated one-object prompts: every kind x colour, sizes, positions and backgrounds cycled."""
    sizes, positions, backgrounds = list(spec.SIZES), list(spec.POSITIONS), list(spec.BACKGROUNDS)
    prompts = []
    for i, (k, c) in enumerate((k, c) for k in spec.KINDS for c in spec.COLOURS):
        prompts.append(f"a {sizes[i % 2]} {c} {k} {spec.WHERE[positions[i % 5]]} on a {backgrounds[(i // 2) % 2]} "
                       "background")
    return prompts


def stated_two_objects() -> list[str]:
    """Fully stated two-object prompts: every pair of kinds in both layouts, colours and sizes cycled.

    In each layout half the prompts name the left (top) object first and half the other: a text tower
    may prefer one order of naming whatever the image, and a fixed order would measure that habit."""
    colours, sizes, backgrounds = list(spec.COLOURS), list(spec.SIZES), list(spec.BACKGROUNDS)
    prompts = []
    for pair, (a, b) in enumerate(itertools.combinations(spec.KINDS, 2)):
        for layout, (first, second) in enumerate(spec.LAYOUTS):
            i = pair * len(spec.LAYOUTS) + layout
            objects = [f"a {sizes[i % 2]} {colours[i % 5]} {a} {spec.WHERE[first]}",
                       f"a {sizes[(i + 1) % 2]} {colours[(i + 2) % 5]} {b} {spec.WHERE[second]}"]
            if (pair + layout) % 2:
                objects.reverse()
            prompts.append(f"{objects[0]} and {objects[1]} on a {backgrounds[i % 2]} background")
    return prompts


def positions_stated(prompts: Sequence[str]) -> list[str]:
    """The prompts without their background: what attention localisation reads (objects and positions)."""
    return [without_background(p) for p in prompts]


def judged_records(pipe, judge: OracleJudge, prompts: Sequence[str], seeds: Sequence[int],
                   settings: GenerationSettings, progress: bool = True) -> list[list[dict]]:
    """The exact judge's record of every image drawn for ``prompts`` x ``seeds``."""
    return [[judge.read_one(im) for im in row] for row in generate(pipe, prompts, seeds, settings, progress)]


def agreement(prompts: Sequence[str], records: Sequence[Sequence[dict]]) -> dict:
    """Share of images showing the whole prompt, and per stated attribute the share of its objects
    (or images, for ``background`` and ``objects``: the number of objects) that have it
    (:func:`timelab.tinyworld.judge.checks`)."""
    whole, by_attribute = [], {}
    for prompt, images in zip(prompts, records):
        for record in images:
            whole.append(shows(record, prompt))
            for attribute, _, holds in checks(record, prompt):
                by_attribute.setdefault(attribute, []).append(holds)
    return {"all": float(np.mean(whole)), "images": len(whole),
            "by_attribute": {a: float(np.mean(v)) for a, v in by_attribute.items()}}


class RecordingJudge:
    """The oracle behind the judge protocol, also asking a second judge (CLIP) every question and
    keeping both answers: how often the paper's metric agrees with the exact judge."""

    def __init__(self, oracle: OracleJudgeAdapter, other) -> None:
        self.oracle, self.other = oracle, other
        self.answers: list[tuple[int, int]] = []

    def records(self, images):
        return self.oracle.records(images)

    def kept(self, prompt, source, destination, records_before, records_after) -> dict[str, float]:
        """The oracle's attributes kept: the model card's TIME rows need them (``edits.reads_attributes``)."""
        return self.oracle.kept(prompt, source, destination, records_before, records_after)

    def choose(self, images, candidates):
        exact, clip = self.oracle.choose(images, candidates), self.other.choose(images, candidates)
        self.answers += list(zip(exact.tolist(), clip.tolist()))
        return exact


def measure_time(pipe, clip_judge, seeds: list[int], validation_seeds: list[int],
                 settings: GenerationSettings, progress: bool = True) -> dict:
    """TIME on the edit items: lambda chosen on the validation split (every other item, from the first),
    as the one with the best mean of efficacy, generality, specificity and attributes kept; then every
    test item (the others) at the paper's 0.1 and at the chosen lambda."""
    items = edit_items()
    validation, test = items[::2], items[1::2]
    per_lambda: dict[float, list[float]] = {lamb: [] for lamb in LAMBDAS}
    for item in tqdm(validation, desc="TIME, choosing lambda", disable=not progress):
        record = evaluate_edit_item(pipe, OracleJudgeAdapter(), item, validation_seeds, LAMBDAS, settings)
        for row in record["rows"]:
            if row["model"] == "TIME":
                scores = [item_score(row[m]) for m in METRICS] + [kept_score(row["kept"])["mean"]]
                per_lambda[row["lamb"]].append(float(np.mean(scores)))
    scores = {lamb: float(np.mean(values)) for lamb, values in per_lambda.items()}
    chosen = max(scores, key=scores.get)
    clip = RecordingJudge(OracleJudgeAdapter(), clip_judge)
    rows = []
    for item in tqdm(test, desc="TIME, test items", disable=not progress):
        record = evaluate_edit_item(pipe, clip, item, seeds, sorted({PAPER_LAMBDA, chosen}), settings)
        for row in record["rows"]:
            entry = {"item": f"{item.source} -> {item.destination}", "model": row["model"], "lamb": row["lamb"]}
            entry.update({m: item_score(row[m]) for m in METRICS})
            for m in ("generality", "specificity"):  # per prompt, in the item's order
                entry[f"{m}_by_prompt"] = [float(np.mean(hits)) for hits in row[m]]
            if "kept" in row:
                entry["kept"] = kept_score(row["kept"])
            rows.append(entry)
    answers = np.asarray(clip.answers)
    return {"validation": {f"{k:g}": v for k, v in scores.items()}, "chosen_lamb": chosen,
            "validation_items": [f"{i.source} -> {i.destination}" for i in validation], "rows": rows,
            "clip_agreement": float((answers[:, 0] == answers[:, 1]).mean()), "clip_decisions": len(answers)}


def measure(pipe, clip_judge, n_seeds: int = 32, steps: int = STEPS, guidance: float = GUIDANCE,
            progress: bool = True) -> Figures:
    """All of the model card's figures (``clip_judge``: the model's own CLIP, ``tinyworld_clip_judge``)."""
    started = time.time()
    judge = OracleJudge()
    seeds = list(range(n_seeds))
    few = seeds[: max(8, n_seeds // 4)]
    figures = Figures(seeds=n_seeds, steps=steps, guidance=guidance, sampler=sampler_name(pipe.scheduler))
    settings = GenerationSettings(steps=steps, guidance_scale=guidance, batch_size=BATCH_SIZE)

    def read(prompts, chosen_seeds, at=settings):
        return judged_records(pipe, judge, prompts, chosen_seeds, at, progress)

    one, two = stated_one_object(), stated_two_objects()
    one_records = read(one, few)
    figures.one_object = agreement(one, one_records)
    figures.two_objects = agreement(two, read(two, few))
    for prompt, records in zip(one, one_records):
        thing = describe(prompt).objects[0]
        figures.named_colours[prompt] = float(np.mean([(find(r, thing["kind"]) or {}).get("colour") == thing["colour"]
                                                       for r in records]))
    bare = [f"a {k}" for k in spec.KINDS]
    for scale in (guidance, UNGUIDED):
        records = read(bare, seeds, replace(settings, guidance_scale=scale))
        figures.colour_priors[str(scale)] = {k: shares(rs, "colour", k) for k, rs in zip(spec.KINDS, records)}
        figures.size_priors[str(scale)] = {k: shares(rs, "size", k) for k, rs in zip(spec.KINDS, records)}
    figures.attention = localisation(pipe, positions_stated(two), few, settings, judge)
    figures.time = measure_time(pipe, clip_judge, seeds, few, settings, progress)
    figures.seconds = round(time.time() - started, 1)
    return figures


def _run(args: argparse.Namespace) -> int:
    model = Path(args.model)
    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    figures = measure(pipe, tinyworld_clip_judge(model), n_seeds=args.seeds, steps=args.steps, guidance=args.guidance)
    where = "" if model.resolve() == MODEL_DIR else f" --model {args.model}"
    command = (f"timelab tinyworld measure{where} --seeds {args.seeds} --steps {args.steps} "
               f"--guidance {args.guidance} --threads {args.threads}")
    write_model_card(model, figures, command)
    print((model / "README.md").read_text())
    return 0


def register(commands) -> argparse.ArgumentParser:
    """Add ``timelab tinyworld measure`` (called by ``training.register``)."""
    parser = commands.add_parser("measure", help="judge the model over seeds and write its model card")
    parser.add_argument("--model", default=str(MODEL_DIR), help="pipeline folder (default: the shipped one)")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--guidance", type=float, default=GUIDANCE)
    parser.set_defaults(run=_run)
    return parser
