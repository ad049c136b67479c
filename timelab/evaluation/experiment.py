"""Evaluate an editing method on an item set, end to end: the Python face of ``timelab eval``.

``evaluate(pipe, items, output, ...)`` runs the resumable (and, under ``accelerate launch``, sharded)
loop over the items and returns their records; :func:`timelab.evaluation.report.write_report` renders
them. ``run_eval(model, dataset, ...)`` also loads the model, the items and the judge by name, with the
model's defaults from :data:`MODEL_DEFAULTS`, and writes the report.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Sequence

from ..editing.solver import PAPER_LAMBDA
from ..generation import GenerationSettings
from ..models import TINYWORLD, load_pipeline
from ..schedulers import sampler_name
from ..tinyworld import BATCH_SIZE, CLIP_FOLDER, MODEL_DIR, STEPS
from .bias import DEFAULT_LAMBDAS, DEFAULT_REFINE, evaluate_bias_item
from .edits import Editor, evaluate_edit_item
from .formats import GENDER_VALUES, BiasItem, EditItem, read_items
from .judges import DEFAULT_CLIP, ClipJudge, Judge
from .report import write_report
from .runner import process_state, run_items
from .timed import TIMED_SETS, load_timed
from .tinyworld import items as tinyworld_items
from .tinyworld.oracle import OracleJudgeAdapter

DATASETS = ["tinyworld", "tinyworld-bias"] + [f"timed-{name}" for name in TIMED_SETS]


@dataclass(frozen=True)
class ModelDefaults:
    """What ``timelab eval`` uses for a model where the caller gives nothing (``None``: the pipeline's own)."""

    judge: str
    seeds: int = 24  # per prompt, as the paper
    batch_size: int = 8  # images per pipeline call
    steps: int | None = None
    guidance_scale: float | None = None
    weights: Path | None = None  # a folder whose *.safetensors are fingerprinted into the results header
    clip_model: str = DEFAULT_CLIP  # the CLIP judge's model id or folder

    def settings(self, given: GenerationSettings) -> GenerationSettings:
        """``given`` with this model's steps and guidance where it has ``None``."""
        unset = [k for k in ("steps", "guidance_scale") if getattr(given, k) is None]
        return replace(given, **{k: getattr(self, k) for k in unset})


# TinyWorld draws fast enough to judge every item's efficacy (one prompt x seeds) within +-10 points at 95%:
# Wilson's interval at 48 of 96 is 50% +- 9.8 points, the widest any share of 96 images gets.
TINYWORLD_SEEDS = 96

# Per model name; any other model gets the "*" entry. TinyWorld: its exact judge, the sampler steps it
# was measured with, and its own tiny CLIP as the CLIP judge; the fingerprint keeps results of another
# TinyWorld from being mixed in.
MODEL_DEFAULTS = {
    TINYWORLD: ModelDefaults(judge="oracle", seeds=TINYWORLD_SEEDS, batch_size=BATCH_SIZE, steps=STEPS,
                             weights=MODEL_DIR, clip_model=str(MODEL_DIR / CLIP_FOLDER)),
    "*": ModelDefaults(judge="clip"),
}


def model_defaults(model: str) -> ModelDefaults:
    """The :data:`MODEL_DEFAULTS` entry of a model name, id or folder."""
    return MODEL_DEFAULTS.get(model, MODEL_DEFAULTS["*"])


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


def sampling(pipe, settings: GenerationSettings) -> dict:
    """The settings that decide the images, with the sampler named even when it is the pipeline's own
    (batch size only decides speed, so a resumed run may change it)."""
    chosen = {k: v for k, v in asdict(settings).items() if k != "batch_size"}
    return {**chosen, "sampler": settings.sampler or sampler_name(pipe.scheduler)}


def evaluate(pipe, items: Sequence[EditItem] | Sequence[BiasItem], output: str | os.PathLike, judge: Judge,
             seeds: int | Sequence[int] = 24, lambdas: Sequence[float] | None = None,
             settings: GenerationSettings = GenerationSettings(), editor: Editor | None = None,
             refine: int = DEFAULT_REFINE, tags: dict | None = None) -> list[dict]:
    """Evaluate (or resume evaluating) ``items``; return every item's record, in item order.

    Edit items: one TIME row per lambda in ``lambdas`` (default 0.1) beside the unedited and oracle
    rows. Bias items: ``lambdas`` is the search grid (default :data:`DEFAULT_LAMBDAS`), refined by
    ``refine`` bisection steps. ``tags`` (e.g. model and dataset names) are stored in the results
    header; resuming with other settings or tags is refused.
    """
    if not items:
        raise ValueError("no items to evaluate")
    seeds = seed_list(seeds)
    bias = isinstance(items[0], BiasItem)
    lambdas = [float(x) for x in (lambdas or (DEFAULT_LAMBDAS if bias else (PAPER_LAMBDA,)))]
    config = {"kind": "bias" if bias else "edits", "seeds": seeds, "lambdas": lambdas,
              "settings": sampling(pipe, settings), **(tags or {})}
    if bias:
        config["refine"] = refine
        step = partial(evaluate_bias_item, pipe, judge, seeds=seeds, lambdas=lambdas, refine=refine,
                       settings=settings, editor=editor)
    else:
        step = partial(evaluate_edit_item, pipe, judge, seeds=seeds, lambdas=lambdas, settings=settings,
                       editor=editor)
    return run_items(items, step, output, config, description="bias items" if bias else "items")


def fingerprint(folder: Path) -> str:
    """A digest of a model folder's weights (its ``*.safetensors`` files)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def make_judge(name: str, clip_model: str = DEFAULT_CLIP, device: str | None = None) -> Judge:
    """``"oracle"`` (TinyWorld's exact judge) or ``"clip"`` (CLIP zero-shot, loaded by id or folder)."""
    if name == "oracle":
        return OracleJudgeAdapter()
    if name == "clip":
        return ClipJudge.from_pretrained(clip_model, device=device)
    raise ValueError(f"unknown judge {name!r}; choose 'oracle' or 'clip'")


def run_eval(model: str, dataset: str, output: str | os.PathLike, seeds: int | Sequence[int] | None = None,
             lambdas: Sequence[float] | None = None, judge: str | None = None, clip_model: str | None = None,
             settings: GenerationSettings = GenerationSettings(), refine: int = DEFAULT_REFINE,
             timed_dir: str | os.PathLike | None = None, download: bool = True, device: str | None = None,
             values: Sequence[str] = GENDER_VALUES) -> list[dict]:
    """Load model, items and judge by name, :func:`evaluate`, then write and print the report. The seeds,
    judge and sampler settings left ``None`` come from the model's :data:`MODEL_DEFAULTS` entry."""
    items = load_dataset(dataset, timed_dir, download, values)
    defaults = model_defaults(model)
    seeds = defaults.seeds if seeds is None else seeds
    judge = judge or defaults.judge
    clip_model = clip_model or defaults.clip_model
    device = device or str(process_state().device)
    pipe = load_pipeline(model, device=device)
    tags = {"model": model, "dataset": dataset, "judge": judge if judge == "oracle" else f"clip:{clip_model}"}
    if defaults.weights is not None:
        tags["weights"] = fingerprint(defaults.weights)
    records = evaluate(pipe, items, output, make_judge(judge, clip_model, device), seeds, lambdas,
                       defaults.settings(settings), refine=refine, tags=tags)
    if process_state().is_main_process:
        print(write_report(output))
    return records
