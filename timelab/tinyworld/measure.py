"""Measure TinyWorld with its exact judge: named colours, planted priors, judge agreement, and TIME.

Every figure is a share of judged images over seeds 0..n-1 (one image per seed and prompt), generated
with the shipped DDIM scheduler at ``steps`` steps and classifier-free guidance ``guidance``. The planted
priors are read at a mild guidance (``PRIOR_GUIDANCE`` = 1.5), and reported beside the unguided (1.0)
and the default (7.5) readings: guidance w samples from p(x|c)^w p(x)^(1-w), which by design sharpens a
conditional distribution towards its mode, so at 7.5 the priors are exaggerated; at 1.0 the model's
own underfitting of rare colours shows instead. TIME's figures are those of
:func:`timelab.evaluation.evaluate_edit_item` on the headline edit, judged by the oracle.
``timelab tinyworld measure`` writes them to ``figures.json`` and the model card ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..evaluation.edits import evaluate_edit_item
from ..evaluation.formats import EditItem
from ..evaluation.judges import OracleJudgeAdapter
from ..evaluation.metrics import METRICS, item_score
from ..files import write_text_atomic
from ..generation import GenerationSettings, generate
from . import MODEL_DIR, STEPS, spec
from .captions import stated_attributes
from .judge import OracleJudge, shares

GUIDANCE = 7.5
PRIOR_GUIDANCE = 1.5
UNGUIDED = 1.0
BATCH_SIZE = 64

# The headline edit and its evaluation prompts; none of the related or unrelated prompts is one the
# edit solves for (TIME augments "a circle" with "a photo of ", "an image of ", "a picture of " only).
EDIT_SOURCE = "a circle"
EDIT_DESTINATION = "a blue circle"
RELATED = ("a small circle", "a big circle", "a circle on a black background", "a circle on a white background",
           "a photo of a big circle", "a picture of a small circle on a white background")
UNRELATED = ("a square", "a triangle", "a cross", "a small square", "a big triangle",
             "a square on a black background", "a photo of a triangle")


def with_colour(prompt: str, colour: str) -> str:
    """The prompt with ``colour`` named before its object word ("a big circle" -> "a big blue circle")."""
    kind = stated_attributes(prompt).get("kind")
    if kind is None or "colour" in stated_attributes(prompt):
        raise ValueError(f"{prompt!r} must name an object and no colour")
    return prompt.replace(f" {kind}", f" {colour} {kind}", 1)


@dataclass
class Figures:
    seeds: int
    steps: int
    guidance: float
    named_colours: dict[str, float] = field(default_factory=dict)      # "a red square" -> share red
    priors: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> colour shares, PRIOR_GUIDANCE
    priors_unguided: dict[str, dict[str, float]] = field(default_factory=dict)  # the same at guidance 1
    priors_guided: dict[str, dict[str, float]] = field(default_factory=dict)  # the same at ``guidance``
    judge_agreement: float = 0.0   # fully named prompts: share of images whose every attribute matches
    judge_agreement_by_attribute: dict[str, float] = field(default_factory=dict)
    edit: dict = field(default_factory=dict)
    seconds: float = 0.0


def edit_item() -> EditItem:
    """The headline edit as an evaluation item: related pairs (prompt, prompt in the destination colour),
    unrelated pairs (prompt, prompt in that colour: the leaked form). For such a pair the oracle judge
    picks the second caption exactly when the image shows the colour, so hits are colour reads."""
    colour = stated_attributes(EDIT_DESTINATION)["colour"]
    return EditItem(EDIT_SOURCE, EDIT_DESTINATION, tuple((p, with_colour(p, colour)) for p in RELATED),
                    tuple((p, with_colour(p, colour)) for p in UNRELATED))


def measure_edit(pipe, seeds: list[int], lamb: float, settings: GenerationSettings) -> dict:
    """TIME's table for the headline edit (unedited, edited and oracle rows), measured by
    :func:`timelab.evaluation.evaluate_edit_item`, with each prompt's share in the destination colour."""
    from .. import time_edit

    timings = {}

    @contextmanager
    def timed_edit(*args, **kwargs):  # time_edit, keeping the solve's timings
        with time_edit(*args, **kwargs) as edit:
            timings.update(edit.timings)
            yield edit

    item = edit_item()
    record = evaluate_edit_item(pipe, OracleJudgeAdapter(), item, seeds, [lamb], settings, editor=timed_edit)
    prompts = {"efficacy": [item.source], "generality": list(RELATED), "specificity": list(UNRELATED)}
    rows, per_prompt = {}, {}
    for row in record["rows"]:
        # The oracle's unrelated images are the unedited model's: they are not figures of its own.
        metrics = METRICS[:2] if row["model"] == "oracle" else METRICS
        rows[row["model"]] = {m: item_score(row[m]) for m in metrics}
        # Each prompt's share in the destination colour (a specificity hit is an image *not* in it).
        per_prompt[row["model"]] = {p: 1 - float(np.mean(hits)) if m == "specificity" else float(np.mean(hits))
                                    for m in metrics for p, hits in zip(prompts[m], row[m])}
    return {"source": item.source, "destination": item.destination, "lamb": lamb,
            "solve_ms": 1000 * (timings["encode_s"] + timings["solve_s"]),
            "related": list(RELATED), "unrelated": list(UNRELATED), "rows": rows, "per_prompt": per_prompt}


def measure(pipe, n_seeds: int = 64, steps: int = STEPS, guidance: float = GUIDANCE, lamb: float = 0.1,
            progress: bool = True) -> Figures:
    """All of the model card's figures."""
    started = time.time()
    judge = OracleJudge()
    seeds = list(range(n_seeds))
    figures = Figures(seeds=n_seeds, steps=steps, guidance=guidance)
    settings = GenerationSettings(steps=steps, guidance_scale=guidance, batch_size=BATCH_SIZE)
    named = [f"a {c} {k}" for k in spec.KINDS for c in spec.COLOURS]
    for prompt, images in zip(named, generate(pipe, named, seeds, settings, progress)):
        colour = stated_attributes(prompt)["colour"]
        figures.named_colours[prompt] = float(np.mean([r["colour"] == colour for r in judge.read(images)]))
    bare = [f"a {k}" for k in spec.KINDS]
    for target, scale in ((figures.priors, PRIOR_GUIDANCE), (figures.priors_unguided, UNGUIDED),
                          (figures.priors_guided, guidance)):
        at_scale = replace(settings, guidance_scale=scale)
        for kind, images in zip(spec.KINDS, generate(pipe, bare, seeds, at_scale, progress)):
            measured = shares(judge.read(images), "colour")
            target[kind] = {c: measured.get(c, 0.0) for c in spec.COLOURS}
    full = [f"a {s} {c} {k} on a {b} background" for k in spec.KINDS for c in spec.COLOURS for s in spec.SIZES
            for b in spec.BACKGROUNDS]
    read = [(stated_attributes(p), judge.read(images)) for p, images in
            zip(full, generate(pipe, full, seeds[: max(8, n_seeds // 8)], settings, progress))]
    figures.judge_agreement = float(np.mean([all(r[a] == v for a, v in want.items())
                                             for want, records in read for r in records]))
    figures.judge_agreement_by_attribute = {
        a: float(np.mean([r[a] == want[a] for want, records in read for r in records])) for a in spec.ATTRIBUTES}
    figures.edit = measure_edit(pipe, seeds, lamb, settings)
    figures.seconds = round(time.time() - started, 1)
    return figures


def prior_gap(priors: dict[str, dict[str, float]]) -> dict[str, float]:
    """Largest absolute difference (in shares) between measured and planted colour priors, per kind."""
    return {k: max(abs(priors[k][c] - spec.COLOUR_PRIOR[k][c]) for c in spec.COLOURS) for k in spec.KINDS}


def model_card(figures: Figures, training: dict, command: str) -> str:
    """The model card (markdown) from measured figures and the training summary."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    lines = [
        "# TinyWorld", "",
        "A small latent text-to-image diffusion model trained on TinyWorld, a synthetic world of one object on "
        "a plain background whose captions leave out each object's usual colour (see `timelab/tinyworld/spec.py`). "
        "Built from Stable Diffusion 1.x's component classes: `CLIPTokenizer` (77 tokens, end-token padding), "
        "`CLIPTextModel` (causal attention, width 64, 2 layers), `UNet2DConditionModel` with cross-attention "
        "(8x8x4 latents), `AutoencoderKL` (16x16 RGB), `DDIMScheduler`.", "",
        "## Training", "",
        f"- command: `{training.get('command', 'timelab tinyworld train --seed 0')}`",
        f"- seed {training['config']['seed']}, {training['config']['steps']} steps of batch "
        f"{training['config']['batch_size']} (+ {training['config']['vae_steps']} autoencoder steps), "
        f"{training['train_seconds'] / 60:.1f} minutes on {training['device']} with {training['torch_threads']} "
        f"torch thread(s)",
        "- loss: noise prediction + caption-code loss (end and padding text states pulled to an additive code "
        "of the caption's stated attributes; see `timelab/tinyworld/caption_code.py`)",
        f"- final losses: diffusion {training['final_diffusion_loss']:.4f}, code {training['final_code_loss']:.4f}; "
        f"autoencoder reconstruction MSE {training['autoencoder_reconstruction_mse']:.5f}",
        "- the saved text encoder and UNet are the exponential moving average of the trained weights", "",
        "Why the caption code: TIME edits the keys and values of all 77 text positions, and most of them are "
        "end and padding states. When those states are an additive code of the stated attributes, \"a big circle\" "
        "and \"a photo of a circle\" share the \"a circle\" part of the code while \"a square\" is orthogonal to it, "
        "so one edit of \"a circle\" reaches every phrasing of a circle and leaves other objects alone. Key norms "
        "are sqrt(64) = 8 per position (LayerNorm outputs), so the paper's lambda 0.1 is kept.", "",
        "## Measured figures", "",
        f"Command: `{command}`. Judged by `OracleJudge` over seeds 0..{figures.seeds - 1} per prompt, "
        f"{figures.steps} DDIM steps, guidance {figures.guidance}; measuring took {figures.seconds / 60:.1f} minutes.", "",
        f"**Judge agreement** on fully named prompts (all 80 scenes x {max(8, figures.seeds // 8)} seeds): "
        f"{pct(figures.judge_agreement)} of images show every named attribute ("
        + ", ".join(f"{a} {100 * v:.1f}%" for a, v in figures.judge_agreement_by_attribute.items()) + "). "
        "A disagreement is a model error or a judge error; inspect the images to tell which.", "",
        f"**Named colours obeyed** (20 prompts \"a COLOUR KIND\"): worst {pct(min(figures.named_colours.values()))}, "
        f"mean {pct(np.mean(list(figures.named_colours.values())))}.", "",
        "| prompt | " + " | ".join(spec.COLOURS) + " |", "|---|" + "---|" * len(spec.COLOURS),
        *[f"| a {k} | " + " | ".join(pct(figures.named_colours[f'a {c} {k}']) for c in spec.COLOURS) + " |"
          for k in spec.KINDS], "",
        f"**Planted priors** (\"a KIND\" at guidance {PRIOR_GUIDANCE}: measured share, planted share in brackets; "
        f"after the slashes the same at guidance {UNGUIDED} and {figures.guidance}; largest gap at {PRIOR_GUIDANCE} "
        f"and {UNGUIDED}):", "",
        "| prompt | " + " | ".join(spec.COLOURS) + " | largest gap |", "|---|" + "---|" * (len(spec.COLOURS) + 1),
    ]
    gaps, gaps_unguided = prior_gap(figures.priors), prior_gap(figures.priors_unguided)
    for k in spec.KINDS:
        cells = [f"{pct(figures.priors[k][c])} ({pct(spec.COLOUR_PRIOR[k][c])}) / {pct(figures.priors_unguided[k][c])}"
                 f" / {pct(figures.priors_guided[k][c])}" for c in spec.COLOURS]
        lines.append(f"| a {k} | " + " | ".join(cells) + f" | {100 * gaps[k]:.0f} / {100 * gaps_unguided[k]:.0f} points |")
    edit = figures.edit
    lines += [
        "", f"**TIME** `\"{edit['source']}\" -> \"{edit['destination']}\"`, lambda {edit['lamb']} "
        f"(solve {edit['solve_ms']:.0f} ms). Efficacy: share of \"{edit['source']}\" images in the destination colour; "
        f"generality: the same over {len(edit['related'])} related prompts the edit never saw; specificity: share of "
        f"{len(edit['unrelated'])} unrelated prompts' images not in the destination colour. The oracle row prompts "
        "the destination form directly (\"a big circle\" -> \"a big blue circle\").", "",
        "| model | efficacy | generality | specificity |", "|---|---|---|---|",
    ]
    for name, row in edit["rows"].items():
        lines.append(f"| {name} | {pct(row['efficacy'])} | {pct(row['generality'])} | "
                     f"{pct(row['specificity']) if 'specificity' in row else '-'} |")
    lines += ["", "**Speed**: `python benchmarks/tinyworld_speed.py` (in the timelab repository) times 8 images at "
              "25 steps with guidance 7.5 on 1 and 2 CPU threads; its results: `benchmarks/results/tinyworld_speed.md`."]
    lines += ["", "Per prompt (share in the destination colour):", "", "| prompt | unedited | TIME | oracle |",
              "|---|---|---|---|"]
    for p in [edit["source"], *edit["related"], *edit["unrelated"]]:
        per = edit["per_prompt"]
        lines.append(f"| {p} | {pct(per['unedited'][p])} | {pct(per['TIME'][p])} | "
                     f"{pct(per['oracle'][p]) if p in per['oracle'] else '-'} |")
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace) -> int:
    from diffusers import StableDiffusionPipeline

    model = Path(args.model)
    pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    figures = measure(pipe, n_seeds=args.seeds, steps=args.steps, guidance=args.guidance, lamb=args.lamb)
    where = "" if model.resolve() == MODEL_DIR else f" --model {args.model}"
    command = (f"timelab tinyworld measure{where} --seeds {args.seeds} --steps {args.steps} "
               f"--guidance {args.guidance} --lamb {args.lamb} --threads {args.threads}")
    write_model_card(model, figures, command)
    print((model / "README.md").read_text())
    return 0


def write_model_card(model: Path, figures: Figures, command: str) -> None:
    """Write ``figures.json`` and the model card ``README.md`` into the pipeline folder."""
    training = json.loads((model / "training.json").read_text())
    for name, text in (("figures.json", json.dumps({"command": command, **asdict(figures)}, indent=2) + "\n"),
                       ("README.md", model_card(figures, training, command))):
        write_text_atomic(model / name, text)


def register(commands) -> None:
    """Add ``timelab tinyworld measure`` (called by ``training.register``)."""
    parser = commands.add_parser("measure", help="judge the model over seeds and write its model card")
    parser.add_argument("--model", default=str(MODEL_DIR), help="pipeline folder (default: the shipped one)")
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--guidance", type=float, default=GUIDANCE)
    parser.add_argument("--lamb", type=float, default=0.1)
    parser.set_defaults(run=_run)
