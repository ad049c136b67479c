"""Summary tables (Markdown) and figures of evaluation results."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .metrics import METRICS, delta, item_score, per_prompt_delta, summarize_bias


def _percent(mean_sem: tuple[float, float]) -> str:
    mean, sem = mean_sem
    return f"{100 * mean:.1f} ± {100 * sem:.1f}"


def _row_order(label: str) -> tuple:
    if label == "unedited":
        return (0, 0.0)
    if label == "oracle":
        return (2, 0.0)
    return (1, float(label.split("=")[1].rstrip(")")))


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


def edits_table(summary: dict[str, dict[str, tuple[float, float]]]) -> str:
    """Markdown table: one row per model row, metrics in percent (mean ± SEM over items)."""
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for label in sorted(summary, key=_row_order):
        lines.append(f"| {label} | " + " | ".join(_percent(summary[label][m]) for m in METRICS) + " |")
    return "\n".join(lines)


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


def edits_figure(summary: dict[str, dict[str, tuple[float, float]]], title: str = ""):
    """Metric vs lambda (unedited and oracle as dashed lines) when several lambdas ran, else grouped bars."""
    edited = sorted((label for label in summary if label.startswith("TIME")), key=_row_order)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    colours = dict(zip(METRICS, ("tab:blue", "tab:orange", "tab:green")))
    if len(edited) > 1:
        lambdas = [_row_order(label)[1] for label in edited]
        for metric in METRICS:
            means = [summary[label][metric][0] for label in edited]
            sems = [summary[label][metric][1] for label in edited]
            ax.errorbar(lambdas, means, yerr=sems, marker="o", capsize=3, color=colours[metric], label=metric)
            for label, style in (("unedited", ":"), ("oracle", "--")):
                if label in summary:
                    ax.axhline(summary[label][metric][0], color=colours[metric], linestyle=style, linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("lambda   (dotted: unedited, dashed: oracle)")
    else:
        labels = sorted(summary, key=_row_order)
        width = 0.8 / len(METRICS)
        for k, metric in enumerate(METRICS):
            xs = [i + (k - 1) * width for i in range(len(labels))]
            ax.bar(xs, [summary[label][metric][0] for label in labels], width,
                   yerr=[summary[label][metric][1] for label in labels], capsize=3,
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
    fig, (search, held) = plt.subplots(1, 2, figsize=(10.0, 3.6), gridspec_kw={"width_ratios": [1, 1.2]})
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
