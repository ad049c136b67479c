"""Does predicted leakage rank the prompts an edit disturbs? TinyWorld 2, measured with the exact judge.

    python benchmarks/leakage_prediction.py                  # "a circle" -> "a blue circle", lambda 10
    python benchmarks/leakage_prediction.py --lamb 0.1 --sample 96 --seeds 8

``timelab.leakage(edit, prompts)`` says, without drawing, how far an edit moves each prompt's keys and
values. This script computes it for every prompt TinyWorld's grammar writes
(``captions.world_prompts()``, 59,616), then draws a random sample of them (stratified: half name the
edited kind, half do not) before and after the edit over seeds and judges each image exactly. A prompt's
judged change is ``1 - attributes kept`` (mean over the attributes the edit should leave alone of
``1 - TV(before, after)``, as ``timelab eval`` reports it). Reported: Spearman's rank correlation between
predicted leakage and judged change over the sample and within each half, and a scatter plot. Results:
``benchmarks/results/leakage_prediction.md`` and ``leakage_prediction.png`` (figures folder).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import timelab
from timelab.evaluation.tinyworld.attributes import added_attribute, attributes_kept, kept_attributes
from timelab.generation import GenerationSettings, generate
from timelab.tinyworld.captions import world_prompts
from timelab.tinyworld.judge import OracleJudge
from timelab.viz import save_figure

from results_file import write_section

RESULTS = Path(__file__).resolve().parent / "results" / "leakage_prediction.md"
TITLE = "# Predicted leakage against the judged change (TinyWorld 2)\n"


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    return float(np.corrcoef(ranks(np.asarray(x, float)), ranks(np.asarray(y, float)))[0, 1])


def sample_prompts(prompts: list[str], kind: str, n: int, seed: int) -> list[str]:
    """``n`` prompts, half naming ``kind`` and half not, drawn without replacement."""
    rng = np.random.default_rng(seed)
    naming = [p for p in prompts if kind in p.split()]
    others = [p for p in prompts if kind not in p.split()]
    return ([naming[i] for i in rng.choice(len(naming), n // 2, replace=False)]
            + [others[i] for i in rng.choice(len(others), n - n // 2, replace=False)])


def judged_change(pipe, prompts: list[str], seeds: list[int], settings: GenerationSettings, edit_args: dict,
                  edited: tuple[str, str]) -> np.ndarray:
    """Per prompt, ``1 - mean attributes kept`` between its images before and after the edit."""
    judge = OracleJudge()
    before = generate(pipe, prompts, seeds, settings, progress=True)
    with timelab.time_edit(pipe, **edit_args):
        after = generate(pipe, prompts, seeds, settings, progress=True)
    changes = []
    for prompt, images_before, images_after in zip(prompts, before, after):
        kept = attributes_kept(judge.read(images_before), judge.read(images_after), kept_attributes(prompt, {edited}))
        changes.append(1.0 - float(np.mean(list(kept.values()))))
    return np.asarray(changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="a circle")
    parser.add_argument("--destination", default="a blue circle")
    parser.add_argument("--lamb", type=float, default=10.0)
    parser.add_argument("--sample", type=int, default=96, help="prompts judged (half name the edited kind)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pipe = timelab.load_pipeline("tinyworld", device="cpu")
    edited_kind, edited_attribute, _ = added_attribute(args.source, args.destination)
    edit_args = {"source": args.source, "destination": args.destination, "lamb": args.lamb}

    prompts = world_prompts()
    with timelab.time_edit(pipe, **edit_args) as edit:
        started = time.perf_counter()
        predicted_all = timelab.leakage(edit, prompts)
        leakage_seconds = time.perf_counter() - started
    predicted_all = predicted_all.numpy()
    index = {p: i for i, p in enumerate(prompts)}

    sample = sample_prompts(prompts, edited_kind, args.sample, seed=0)
    settings = GenerationSettings(steps=args.steps, guidance_scale=7.5, batch_size=64)
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    change = judged_change(pipe, sample, seeds, settings, edit_args, (edited_kind, edited_attribute))
    judge_seconds = time.perf_counter() - started
    predicted = predicted_all[[index[p] for p in sample]]
    names = np.array([edited_kind in p.split() for p in sample])

    rho = spearman(predicted, change)
    rho_naming = spearman(predicted[names], change[names])
    rho_other = spearman(predicted[~names], change[~names])
    naming_all = np.array([edited_kind in p.split() for p in prompts])

    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, (scatter, histogram) = plt.subplots(1, 2, figsize=(10, 4))
    scatter.scatter(predicted[names], change[names], s=14, label=f"names '{edited_kind}'")
    scatter.scatter(predicted[~names], change[~names], s=14, marker="x", label="does not")
    scatter.set(xscale="log", xlabel="predicted leakage (relative change of W c)",
                ylabel="judged change (1 - attributes kept)",
                title=f"{len(sample)} prompts x {len(seeds)} seeds: Spearman {rho:.2f}")
    scatter.xaxis.set_minor_formatter(NullFormatter())  # log-axis minor labels collide at this width
    scatter.legend()
    bins = np.logspace(np.log10(predicted_all.min()), np.log10(predicted_all.max()), 40)
    histogram.hist([predicted_all[naming_all], predicted_all[~naming_all]], bins=bins, stacked=True,
                   label=[f"names '{edited_kind}'", "does not"])
    histogram.set(xscale="log", xlabel="predicted leakage", ylabel="prompts",
                  title=f"all {len(prompts):,} world prompts ({leakage_seconds:.1f} s)")
    histogram.legend()
    fig.suptitle(f"'{args.source}' -> '{args.destination}', lambda {args.lamb:g}")
    figure = save_figure(fig, "leakage_prediction.png")
    plt.close(fig)

    top = sorted(zip(predicted, change, sample), reverse=True)
    heading = f"## '{args.source}' -> '{args.destination}', lambda {args.lamb:g}"
    section = "\n".join([
        heading, "",
        f"Command: `python benchmarks/leakage_prediction.py --source '{args.source}' --destination "
        f"'{args.destination}' --lamb {args.lamb:g} --sample {args.sample} --seeds {args.seeds} --steps "
        f"{args.steps} --threads {args.threads}`; {datetime.date.today()}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads.", "",
        f"Predicted leakage of all {len(prompts):,} prompts the grammar writes: {leakage_seconds:.1f} s "
        f"(median {np.median(predicted_all[~naming_all]):.3f} for prompts that do not name '{edited_kind}', "
        f"{np.median(predicted_all[naming_all]):.3f} for those that do). Judged: {len(sample)} of them "
        f"(half naming '{edited_kind}'), {len(seeds)} seeds each, before and after, {args.steps} DDIM steps, "
        f"guidance 7.5: {judge_seconds:.0f} s.", "",
        "| prompts | Spearman (predicted leakage, judged change) | mean judged change |",
        "|---|---:|---:|",
        f"| all {len(sample)} | {rho:.2f} | {change.mean():.3f} |",
        f"| {names.sum()} naming '{edited_kind}' | {rho_naming:.2f} | {change[names].mean():.3f} |",
        f"| {(~names).sum()} not naming it | {rho_other:.2f} | {change[~names].mean():.3f} |", "",
        "Highest predicted leakage in the sample (predicted, judged change, prompt): "
        + "; ".join(f"{p:.3f}, {c:.2f}, '{s}'" for p, c, s in top[:5]) + ".", "",
        f"Figure: `{figure.name}` (figures folder).", "",
    ])
    write_section(RESULTS, TITLE, heading, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
