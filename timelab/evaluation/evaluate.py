"""Evaluate an editing method on an item set, end to end: the Python face of ``timelab eval``.

``evaluate(pipe, items, output, ...)`` runs the resumable (and, under ``accelerate launch``, sharded)
loop over the items, then writes a Markdown summary beside ``output`` and a figure through
:func:`timelab.viz.save_figure`. ``run_eval(model, dataset, ...)`` also loads the model, the items
and the judge by name.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt

from . import items as tinyworld_items
from .bias import DEFAULT_LAMBDAS, DEFAULT_REFINE, evaluate_bias_item
from .edits import Editor, evaluate_edit_item
from .formats import GENDER_VALUES, BiasItem, EditItem, read_items
from ..generation import GenerationSettings
from .judges import DEFAULT_CLIP, ClipJudge, Judge, OracleJudgeAdapter
from .metrics import summarize_bias, summarize_edits
from .report import bias_figure, bias_table, edits_figure, edits_table, reproduce
from .runner import process_state, run_items
from .timed import TIMED_SETS, load_timed

DATASETS = ["tinyworld", "tinyworld-bias"] + [f"timed-{name}" for name in TIMED_SETS]


def load_dataset(name: str, timed_dir: str | os.PathLike | None = None, download: bool = True,
                 values: Sequence[str] = GENDER_VALUES) -> list[EditItem] | list[BiasItem]:
    """Items by name (``tinyworld``, ``tinyworld-bias``, ``timed-test``, ``timed-test-sd14``,
    ``timed-validation``, ``timed-gender``) or from a CSV file in either TIMED layout (a bias CSV's
    destinations name one of the two attribute ``values``)."""
    if name == "tinyworld":
        return tinyworld_items.edit_items()
    if name == "tinyworld-bias":
        return tinyworld_items.bias_items()
    if name.startswith("timed-") and name[len("timed-"):] in TIMED_SETS:
        return load_timed(name[len("timed-"):], timed_dir, download)
    if Path(name).suffix == ".csv":
        return read_items(name, values)
    raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS} or give a .csv file path")


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """``n`` means seeds 0..n-1."""
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out:
        raise ValueError("need at least one seed")
    return out


def sampling(settings: GenerationSettings) -> dict:
    """The settings that decide the images (batch size only decides speed, so a resumed run may change it)."""
    return {k: v for k, v in asdict(settings).items() if k != "batch_size"}


def summary_path(output: str | os.PathLike) -> Path:
    return Path(output).with_suffix(".md")


def evaluate(pipe, items: Sequence[EditItem] | Sequence[BiasItem], output: str | os.PathLike, judge: Judge,
             seeds: int | Sequence[int] = 24, lambdas: Sequence[float] | None = None,
             settings: GenerationSettings = GenerationSettings(), editor: Editor | None = None,
             refine: int = DEFAULT_REFINE, tags: dict | None = None, figure: str | None = None) -> dict:
    """Evaluate (or resume evaluating) ``items``; return the summary.

    Edit items: one TIME row per lambda in ``lambdas`` (default 0.1) beside the unedited and oracle
    rows. Bias items: ``lambdas`` is the search grid (default :data:`DEFAULT_LAMBDAS`), refined by
    ``refine`` bisection steps. ``tags`` (e.g. model and dataset names) are stored in the results
    header; resuming with other settings or tags is refused. ``figure`` names the saved figure.
    """
    if not items:
        raise ValueError("no items to evaluate")
    seeds = seed_list(seeds)
    bias = isinstance(items[0], BiasItem)
    lambdas = [float(x) for x in (lambdas or (DEFAULT_LAMBDAS if bias else (0.1,)))]
    config = {"kind": "bias" if bias else "edits", "seeds": seeds, "lambdas": lambdas,
              "settings": sampling(settings), **(tags or {})}
    if bias:
        config["refine"] = refine
        step = partial(evaluate_bias_item, pipe, judge, seeds=seeds, lambdas=lambdas, refine=refine,
                       settings=settings, editor=editor)
    else:
        step = partial(evaluate_edit_item, pipe, judge, seeds=seeds, lambdas=lambdas, settings=settings,
                       editor=editor)
    records = run_items(items, step, output, config, description="bias items" if bias else "items")
    summary = summarize_bias(records) if bias else summarize_edits(records)
    if process_state().is_main_process:
        from timelab.viz import save_figure

        title = f"{Path(output).name}: {len(records)} items x {len(seeds)} seeds"
        fig = bias_figure(records, title) if bias else edits_figure(summary, title)
        figure_path = save_figure(fig, figure or f"eval_{Path(output).stem}.png")
        plt.close(fig)
        table = bias_table(records) if bias else edits_table(summary)
        text = (f"# {Path(output).name}\n\n{table}\n\n{reproduce(config, output)}"
                f"Figure: `{figure_path.name}` (figures folder). Settings: `{config}`\n")
        tmp = summary_path(output).with_name("." + summary_path(output).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, summary_path(output))
        print(table)
    return summary


def model_fingerprint(model: str) -> str | None:
    """A digest of the shipped TinyWorld weights, so that results of another TinyWorld are never mixed in."""
    if model != "tinyworld":
        return None
    import hashlib

    from timelab.tinyworld import MODEL_DIR

    digest = hashlib.sha256()
    for path in sorted(MODEL_DIR.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def make_judge(name: str, clip_model: str = DEFAULT_CLIP, device: str | None = None) -> Judge:
    """``"oracle"`` (TinyWorld's exact judge) or ``"clip"`` (CLIP zero-shot, loaded by id or folder)."""
    if name == "oracle":
        return OracleJudgeAdapter()
    if name == "clip":
        return ClipJudge.from_pretrained(clip_model, device=device)
    raise ValueError(f"unknown judge {name!r}; choose 'oracle' or 'clip'")


def run_eval(model: str, dataset: str, output: str | os.PathLike, seeds: int | Sequence[int] = 24,
             lambdas: Sequence[float] | None = None, judge: str | None = None, clip_model: str = DEFAULT_CLIP,
             settings: GenerationSettings = GenerationSettings(), refine: int = DEFAULT_REFINE,
             timed_dir: str | os.PathLike | None = None, download: bool = True, device: str | None = None,
             values: Sequence[str] = GENDER_VALUES) -> dict:
    """Load model, items and judge by name and :func:`evaluate`. On TinyWorld the judge defaults to
    the oracle and sampling to TinyWorld's own step count; elsewhere to CLIP and the pipeline's defaults."""
    from timelab import load_pipeline

    items = load_dataset(dataset, timed_dir, download, values)
    judge = judge or ("oracle" if model == "tinyworld" else "clip")
    if model == "tinyworld" and settings.steps is None:
        from timelab.tinyworld.measure import STEPS

        settings = replace(settings, steps=STEPS)  # the sampler settings TinyWorld was measured with
    device = device or str(process_state().device)
    pipe = load_pipeline(model, device=device)
    tags = {"model": model, "dataset": dataset, "judge": judge if judge == "oracle" else f"clip:{clip_model}"}
    fingerprint = model_fingerprint(model)
    if fingerprint:
        tags["weights"] = fingerprint
    return evaluate(pipe, items, output, make_judge(judge, clip_model, device), seeds, lambdas, settings,
                    refine=refine, tags=tags)
