"""TinyWorld's model card (``README.md`` in the model folder), written from measured figures and the
training summary only: no number in it is typed by hand."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...files import write_text_atomic
from ...tinyworld import spec
from ...tinyworld.captions import describe


@dataclass
class Figures:
    """What ``timelab tinyworld measure`` found: every number the model card shows."""

    seeds: int
    steps: int
    guidance: float
    sampler: str = "ddim"  # timelab.schedulers.sampler_name of the scheduler that drew the images
    one_object: dict = field(default_factory=dict)      # agreement() of fully stated one-object prompts
    two_objects: dict = field(default_factory=dict)     # the same for two-object prompts
    named_colours: dict[str, float] = field(default_factory=dict)  # "a ... red square ..." -> share red
    colour_priors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # guidance -> kind -> shares
    size_priors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    attention: dict = field(default_factory=dict)
    time: dict = field(default_factory=dict)
    seconds: float = 0.0


SAMPLER_TITLES = {"ddim": "DDIM", "dpm-solver++": "DPM-Solver++"}


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _shares(row: dict[str, float], values) -> str:
    return " | ".join(_pct(row.get(v, 0.0)) for v in values)


def _training(training: dict) -> list[str]:
    config = training["config"]
    sizes = config["sizes"]
    stages = ", ".join(f"{name} {config[name]['steps']} steps of batch {config[name]['batch_size']}"
                       for name in ("clip", "vae", "unet"))
    return [
        "## Training", "",
        f"- command: `{training.get('command', 'timelab tinyworld train --seed 0')}`",
        f"- seed {config['seed']}: {stages}; {training['train_seconds'] / 60:.1f} minutes on {training['device']} "
        f"with {training['torch_threads']} torch thread(s) ("
        + ", ".join(f"{k} {v / 60:.1f}" for k, v in training.get("stage_seconds", {}).items()) + ")",
        f"- tiny CLIP: text tower width {sizes['text_width']}, {sizes['text_layers']} layers; image tower (ViT, 4x4 "
        f"patches) width {sizes['image_width']}, {sizes['image_layers']} layers; final contrastive loss "
        f"{training['final_clip_loss']:.3f} (batch {config['clip']['batch_size']}: chance is "
        f"ln {config['clip']['batch_size']})"
        + (f"; {_pct(config['clip_twins'])} of two-object pairs joined in their batch by their binding twin "
           "(hard negatives: the same words, one attribute exchanged between the objects)"
           if config.get("clip_twins") else ""),
        f"- autoencoder: channels {tuple(sizes['vae_channels'])}, reconstruction MSE "
        f"{training['autoencoder_reconstruction_mse']:.5f} (pixels in [0, 1])",
        f"- UNet: channels {tuple(sizes['unet_channels'])}, on the frozen text tower; final noise-prediction loss "
        f"{training['final_diffusion_loss']:.4f}; saved as the exponential moving average of its weights",
        "- no loss looks at the text states for TIME's sake: the text tower only ever saw CLIP's contrastive loss",
    ]


def _agreement(name: str, found: dict) -> str:
    parts = ", ".join(f"{a} {100 * v:.1f}%" for a, v in found["by_attribute"].items())
    return f"- {name}: {_pct(found['all'])} of {found['images']} images show the whole prompt ({parts})"


def _label(row: dict) -> str:
    return row["model"] if row["lamb"] is None else f"TIME, lambda {row['lamb']:g}"


def _mean(rows: list[dict], key, index: int | None = None) -> float:
    return float(np.mean([r[key] if index is None else r[key][index] for r in rows]))


def _time_section(time_: dict) -> list[str]:
    grid = ", ".join(f"{k}: {v:.2f}" for k, v in time_["validation"].items())
    groups: dict[str, list[dict]] = {}
    for row in time_["rows"]:
        groups.setdefault(_label(row), []).append(row)
    n_items = len({row["item"] for row in time_["rows"]})
    lines = [
        f"**TIME** on the TinyWorld edit items (`timelab.evaluation.tinyworld.items`): lambda chosen on a validation split "
        f"({len(time_['validation_items'])} items: {', '.join(time_['validation_items'])}) as the best mean of "
        f"efficacy, generality, specificity and attributes kept ({grid}): **{time_['chosen_lamb']:g}**. Measured on "
        f"the other {n_items} items, averaged over items. Attributes kept: per judged prompt and per attribute the "
        "edit should not touch (kind, size, position, background, the other object's colour, the number of "
        "objects), 1 - the total variation distance between its distribution before and after the edit over the "
        "same seeds.", "",
        "| model | efficacy | generality | specificity | attributes kept |", "|---|---|---|---|---|",
    ]
    for label, rows in groups.items():
        kept = f"{_mean([r['kept'] for r in rows], 'mean'):.2f}" if "kept" in rows[0] else "-"
        lines.append(f"| {label} | {_pct(_mean(rows, 'efficacy'))} | {_pct(_mean(rows, 'generality'))} | "
                     f"{_pct(_mean(rows, 'specificity'))} | {kept} |")
    colour_rows = {label: [r for r in rows if " small " not in f" {r['item']} "] for label, rows in groups.items()}
    lines += [
        "", "Generality per related prompt and specificity per unrelated prompt (colour items; related: a size, a "
        "position, a background, a rephrasing, the object inside a two-object scene; unrelated: four other "
        "objects, then the neighbour in a two-object scene):", "",
        "| model | size | position | background | rephrased | two objects | other objects | neighbour |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, rows in colour_rows.items():
        if not rows:
            continue
        related = [_pct(_mean(rows, "generality_by_prompt", i)) for i in range(5)]
        others = float(np.mean([np.mean(r["specificity_by_prompt"][:4]) for r in rows]))
        lines.append(f"| {label} | " + " | ".join(related) +
                     f" | {_pct(others)} | {_pct(_mean(rows, 'specificity_by_prompt', 4))} |")
    kept_rows = {label: rows for label, rows in groups.items() if "kept" in rows[0]}
    attributes = sorted({a for rows in kept_rows.values() for r in rows for a in r["kept"]["per_attribute"]})
    lines += ["", "Attributes kept, per attribute:", "",
              "| model | " + " | ".join(attributes) + " |", "|---|" + "---|" * len(attributes)]
    for label, rows in kept_rows.items():
        cells = [f"{np.mean([r['kept']['per_attribute'][a] for r in rows if a in r['kept']['per_attribute']]):.2f}"
                 for a in attributes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def model_card(figures: Figures, training: dict, command: str) -> str:
    """The model card (markdown)."""
    g, u = str(figures.guidance), str(1.0)
    lines = [
        "# TinyWorld", "",
        "A miniature Stable Diffusion trained the way Stable Diffusion was, on TinyWorld: 32x32 scenes of one or "
        "two objects whose alt-text captions mostly leave out an object's usual colour (and a square's usual size); "
        "see `timelab/tinyworld/spec.py`. Components are Stable Diffusion 1.x's classes: `CLIPTokenizer` (77 "
        "tokens, end-token padding), `CLIPTextModel` (causal), `AutoencoderKL` (32x32x3 <-> 8x8x4), "
        "`UNet2DConditionModel` (cross-attention at 8x8 and 4x4), and in `scheduler/` the sampler it draws with; "
        "`clip/` holds the whole tiny CLIP (both towers), TinyWorld's CLIP judge.", "",
        *_training(training), "",
        "## Measured figures", "",
        f"Command: `{command}`. Judged by the exact `OracleJudge` over seeds 0..{figures.seeds - 1} per prompt "
        f"(stated prompts and attention: the first {figures.one_object['images'] // len(figures.named_colours)} "
        f"seeds), {figures.steps} steps of {SAMPLER_TITLES.get(figures.sampler, figures.sampler)}, guidance "
        f"{figures.guidance}; measuring took "
        f"{figures.seconds / 60:.1f} minutes.", "",
        "**Stated attributes obeyed** (fully stated prompts: kind, colour, size, position, background). A "
        "disagreement is a model error or a judge error; the judge reads rendered scenes exactly.", "",
        _agreement("one object (every kind x colour; sizes, positions, backgrounds cycled)", figures.one_object),
        _agreement("two objects (every pair of kinds in both layouts: both objects right)", figures.two_objects),
        "", "Colour obeyed per kind and named colour:", "",
        "| kind | " + " | ".join(spec.COLOURS) + " |", "|---|" + "---|" * len(spec.COLOURS),
    ]
    for kind in spec.KINDS:
        row = {thing["colour"]: v for p, v in figures.named_colours.items() for thing in describe(p).objects
               if thing["kind"] == kind}
        lines.append(f"| {kind} | " + _shares(row, spec.COLOURS) + " |")
    lines += [
        "", f"**Planted priors** (\"a KIND\": share of each colour at guidance {g}, then unguided; planted share "
        "in brackets):", "",
        "| prompt | " + " | ".join(spec.COLOURS) + " | big |", "|---|" + "---|" * (len(spec.COLOURS) + 1),
    ]
    for kind in spec.KINDS:
        cells = [f"{_pct(figures.colour_priors[g][kind].get(c, 0))} / {_pct(figures.colour_priors[u][kind].get(c, 0))} "
                 f"({_pct(spec.COLOUR_PRIOR[kind][c])})" for c in spec.COLOURS]
        big = (f"{_pct(figures.size_priors[g][kind].get('big', 0))} / {_pct(figures.size_priors[u][kind].get('big', 0))} "
               f"({_pct(spec.SIZE_PRIOR[kind]['big'])})")
        lines.append(f"| a {kind} | " + " | ".join(cells) + f" | {big} |")
    attention = figures.attention
    lines += [
        "", "**Attention localises**: for two-object prompts with stated positions, the share of each object "
        "word's cross-attention mass that falls on its own object's pixels, against the share of the image that "
        f"object covers (images the judge reads right: {attention['images_used']} of {attention['images']}).", "",
        "| maps | on its object | object's area | ratio |", "|---|---|---|---|",
        *[f"| {name} | {_pct(r['on_object'])} | {_pct(r['area'])} | {r['ratio']:.1f}x |"
          for name, r in attention["by_resolution"].items()],
    ]
    time_ = figures.time
    lines += ["", *_time_section(time_)]
    lines += [
        "", f"**TinyWorld's CLIP judge** (the paper's metric, zero-shot between two prompts, with `clip/`) agrees with "
        f"the exact judge on {_pct(time_['clip_agreement'])} of {time_['clip_decisions']} efficacy, generality and "
        "specificity decisions above.", "",
        "**Speed**: `python benchmarks/tinyworld_speed.py` times drawing (stock 25 DDIM steps against TinyWorld's "
        "default path and each lever), `--judge` whether faster samplers draw the same world; results in "
        "`benchmarks/results/tinyworld_speed.md` and `tinyworld_speed_judged.md`.",
    ]
    return "\n".join(lines) + "\n"


def write_model_card(model: Path, figures: Figures, command: str) -> None:
    """Write ``figures.json`` and the model card ``README.md`` into the pipeline folder."""
    training = json.loads((model / "training.json").read_text())
    write_text_atomic(model / "figures.json", json.dumps({"command": command, **asdict(figures)}, indent=2) + "\n")
    write_text_atomic(model / "README.md", model_card(figures, training, command))
