"""Summary tables (Markdown) and figures of evaluation results, and the report of a results file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..figures import save_figure
from ..files import write_text_atomic
from .metrics import (
    METRICS, Estimate, RowLabel, delta, item_score, per_prompt_delta, summarize_bias, summarize_edits, summarize_kept,
)
from .runner import read_run

# What a table cell's uncertainty is over: several items (an SEM), or one item's images (Wilson's interval).
UNCERTAINTY = {
    "items": "± the standard error of the mean over items",
    "images": "[low, high] Wilson's 95% score interval over the item's images (hits pooled over prompts and seeds)",
}


def _pyplot():
    """``matplotlib.pyplot``, imported when a figure is first drawn: pyplot picks a backend when it is
    imported, and importing :mod:`timelab.evaluation` must leave the caller's matplotlib as it was."""
    import matplotlib.pyplot

    return matplotlib.pyplot


def _percent(e: Estimate) -> str:
    if e.sem is not None:
        return f"{100 * e.mean:.1f} ± {100 * e.sem:.1f}"
    return f"{100 * e.mean:.1f} [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def reproduce(config: dict, output) -> str:
    """The ``timelab eval`` command that (re)makes a run, when its header names model and dataset."""
    if "model" not in config or "dataset" not in config or config["seeds"] != list(range(len(config["seeds"]))):
        return ""
    settings = config["settings"]
    words = ["timelab eval", f"--model {config['model']}", f"--dataset {config['dataset']}",
             f"--seeds {len(config['seeds'])}", "--lamb " + " ".join(f"{x:g}" for x in config["lambdas"])]
    if config.get("judge", "").startswith("clip:"):
        words.append(f"--judge clip --clip-model {config['judge'][5:]}")
    if "refine" in config:
        words.append(f"--refine {config['refine']}")
    flags = {"steps": "--steps", "guidance_scale": "--guidance", "height": "--size"}
    words += [f"{flag} {settings[key]:g}" for key, flag in flags.items() if settings.get(key) is not None]
    return f"Command: `{' '.join(words)} --output {output}`\n\n"


# What the "attributes kept" column is, when a table has one.
KEPT_NOTE = ("Attributes kept (percent): per judged prompt and per attribute the edit should not touch, 1 - the total "
             "variation distance between its values before and after the edit (same seeds), averaged over the "
             "prompt's attributes, then over prompts (and items); no interval.")


def edits_table(summary: dict[RowLabel, dict[str, Estimate]], kept: dict[str, dict] | None = None) -> str:
    """Markdown table: one row per model row, metrics in percent (and, given ``kept`` from
    :func:`~timelab.evaluation.metrics.summarize_kept`, an "attributes kept" column, "-" for rows
    without); then a line saying what the intervals are."""
    columns = list(METRICS) + (["attributes kept"] if kept else [])
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label in sorted(summary, key=lambda label: label.order):
        cells = [_percent(summary[label][m]) for m in METRICS]
        if kept:
            cells.append(f"{100 * kept[label]['mean']:.1f}" if label in kept else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    kinds = dict.fromkeys("items" if e.sem is not None else "images" for row in summary.values() for e in row.values())
    note = "\n\nPercent of images; " + "; ".join(UNCERTAINTY[k] for k in kinds) + "."
    return "\n".join(lines) + note + (f"\n\n{KEPT_NOTE}" if kept else "")


def bias_table(records: Sequence[dict]) -> str:
    """Markdown table: per item the chosen lambda and, on the held-out prompts before and after the edit,
    the shares judged as each of the two values, Delta (pooled over the item's prompts) and the mean
    of the prompts' own Deltas; then the means over items."""
    lines = ["| item | lambda | shares before | Delta before | per prompt | shares after | Delta after | per prompt |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        value, other = r["values"]
        cells = []
        for name in ("unedited", "TIME"):
            p = item_score(r["held_out"][name])
            cells += [f"{value} {p:.2f} / {other} {1 - p:.2f}", f"{delta(p):.2f}",
                      f"{per_prompt_delta(r['held_out'][name]):.2f}"]
        lines.append(f"| {r['key']} | {r['lamb']:.3g} | " + " | ".join(cells) + " |")
    summary = summarize_bias(records)
    means = [f"{summary[name][key][0]:.2f}" for name in ("unedited", "TIME") for key in ("Delta", "Delta per prompt")]
    lines.append(f"| mean over {len(records)} items | | | {means[0]} | {means[1]} | | {means[2]} | {means[3]} |")
    return "\n".join(lines)


def _error_bars(estimates: Sequence[Estimate]) -> list[list[float]]:
    """Matplotlib's ``yerr`` (distances below and above each mean) for the estimates' intervals."""
    return [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]


def edits_figure(summary: dict[RowLabel, dict[str, Estimate]], title: str = "", kept: dict[str, dict] | None = None):
    """Metric vs lambda (unedited and oracle as dashed lines) when several lambdas ran, else grouped bars;
    error bars as in :func:`edits_table`. ``kept`` (:func:`summarize_kept`) adds attributes kept against
    lambda (no error bars: it has no interval)."""
    edited = sorted((label for label in summary if label.lamb is not None), key=lambda label: label.order)
    fig, ax = _pyplot().subplots(figsize=(6.0, 3.6))
    colours = dict(zip(METRICS, ("tab:blue", "tab:orange", "tab:green")))
    if len(edited) > 1:
        lambdas = [label.lamb for label in edited]
        for metric in METRICS:
            estimates = [summary[label][metric] for label in edited]
            ax.errorbar(lambdas, [e.mean for e in estimates], yerr=_error_bars(estimates), marker="o", capsize=3,
                        color=colours[metric], label=metric)
            for label, style in (("unedited", ":"), ("oracle", "--")):
                if label in summary:
                    ax.axhline(summary[label][metric].mean, color=colours[metric], linestyle=style, linewidth=1)
        if kept and all(label in kept for label in edited):
            ax.plot(lambdas, [kept[label]["mean"] for label in edited], marker="s", color="tab:purple",
                    label="attributes kept")
        ax.set_xscale("log")
        ax.set_xlabel("lambda   (dotted: unedited, dashed: oracle)")
    else:
        labels = sorted(summary, key=lambda label: label.order)
        width = 0.8 / len(METRICS)
        for k, metric in enumerate(METRICS):
            xs = [i + (k - 1) * width for i in range(len(labels))]
            estimates = [summary[label][metric] for label in labels]
            ax.bar(xs, [e.mean for e in estimates], width, yerr=_error_bars(estimates), capsize=3,
                   color=colours[metric], label=metric)
        ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of images")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def bias_figure(records: Sequence[dict], title: str = ""):
    """Left: the validation share p against lambda for each item's search (star: chosen; dashed: 1/2).
    Right: each held-out prompt's share before (hollow) and after (filled) the edit."""
    fig, (search, held) = _pyplot().subplots(1, 2, figsize=(10.0, 3.6), gridspec_kw={"width_ratios": [1, 1.2]})
    row = 0
    for r in records:
        lambdas, shares = zip(*r["search"])
        line, = search.plot(lambdas, shares, marker="o", label=r["key"])
        colour = line.get_color()
        search.plot([r["lamb"]], [dict(r["search"])[r["lamb"]]], marker="*", markersize=14, color=colour)
        for k, prompt in enumerate(r["held_out_prompts"]):
            before, after = (float(np.mean(r["held_out"][name][k])) for name in ("unedited", "TIME"))
            held.plot([before, after], [row, row], color=colour, linewidth=1)
            held.plot([before], [row], marker="o", fillstyle="none", color=colour)
            held.plot([after], [row], marker="o", color=colour)
            held.text(1.02, row, prompt, va="center", fontsize=7, transform=held.get_yaxis_transform())
            row += 1
    search.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    held.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    search.set_xscale("log")
    search.set_ylim(-0.02, 1.02)
    search.set_xlabel("lambda (star: chosen)")
    search.set_ylabel("validation share of the destination value")
    search.legend(fontsize=7)
    held.set_xlim(-0.02, 1.02)
    held.set_yticks([])
    held.invert_yaxis()
    held.set_xlabel("held-out share of the destination value (hollow: before, filled: after)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_report(output: str | os.PathLike, figure: str | None = None) -> str:
    """Render the results file ``output``: its table (returned) and the command that made it into a
    Markdown summary beside it, its figure through :func:`timelab.viz.save_figure` (default name
    ``eval_<output stem>.png``)."""

    config, records = read_run(output)
    if not records:
        raise ValueError(f"{output} holds no results to report")
    title = f"{Path(output).name}: {len(records)} items x {len(config['seeds'])} seeds"
    if config["kind"] == "bias":
        table, fig = bias_table(records), bias_figure(records, title)
    else:
        summary, kept = summarize_edits(records), summarize_kept(records)
        table, fig = edits_table(summary, kept), edits_figure(summary, title, kept)
    figure_path = save_figure(fig, figure or f"eval_{Path(output).stem}.png")
    _pyplot().close(fig)
    text = (f"# {Path(output).name}\n\n{table}\n\n{reproduce(config, output)}"
            f"Figure: `{figure_path.name}` (figures folder). Settings: `{config}`\n")
    write_text_atomic(Path(output).with_suffix(".md"), text)
    return table
