"""``timelab demo``: TinyWorld's implicit assumption, a TIME edit of it, the paper's three numbers and
what the edit cost elsewhere.

Loads TinyWorld, shows what it draws for an under-specified prompt ("a circle": red, as its training
captions implied), edits "a circle" -> "a blue circle", writes ``figures/demo.png`` (before/after images
for the source, a related prompt, the circle inside a two-object scene, an unrelated prompt and a
two-object scene whose other object is judged) and prints efficacy / generality / specificity for the
unedited model, the edited model and the destination-prompt oracle, with the attributes kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .editing import time_edit
from .evaluation import evaluate_edit_item, summarize_edits, summarize_kept
from .evaluation.report import edits_table
from .evaluation.tinyworld import OracleJudgeAdapter, added_attribute, edit_items
from .generation import GenerationSettings, generate
from .models import load_pipeline
from .tinyworld import OracleJudge, shares, validated_lambda
from .viz import image_grid, save_figure

DEFAULT_SOURCE, DEFAULT_DESTINATION = "a circle", "a blue circle"
FIGURE_SEEDS = 6


def pick_item(source: str, destination: str):
    """The TinyWorld edit item with this source and destination."""
    items = {(item.source, item.destination): item for item in edit_items()}
    if (source, destination) not in items:
        known = ", ".join(f"{s!r} -> {d!r}" for s, d in list(items)[:6])
        raise ValueError(f"no TinyWorld item {source!r} -> {destination!r}; try one of: {known}, ...")
    return items[(source, destination)]


def attribute_summary(images, kind: str, attribute: str, top: int = 2) -> str:
    """The most common values of one object's attribute over images, e.g. "red 94%, purple 6%"."""
    found = shares(OracleJudge().read(images.reshape(-1, *images.shape[-3:])), attribute, kind)
    return ", ".join(f"{value} {100 * share:.0f}%" for value, share in sorted(found.items(), key=lambda kv: -kv[1])[:top])


def run_demo(source: str = DEFAULT_SOURCE, destination: str = DEFAULT_DESTINATION, seeds: int = 16,
             lamb: float | None = None, device: str | None = None) -> tuple[str, Path]:
    """Run the demo at ``lamb`` (default: TinyWorld's validated lambda, from its model card); returns the
    results table (Markdown) and the path of the figure."""
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    lamb = validated_lambda() if lamb is None else lamb
    started = time.perf_counter()
    item = pick_item(source, destination)
    pipe = load_pipeline("tinyworld", device=device)
    settings = GenerationSettings(batch_size=64)
    kind, attribute, _ = added_attribute(item.source, item.destination)
    shown = [item.source, item.related[0][0], item.related[-1][0], item.unrelated[0][0], item.unrelated[-1][0]]
    figure_seeds = list(range(FIGURE_SEEDS))

    before = generate(pipe, shown, figure_seeds, settings)
    print(f"TinyWorld's implicit assumption: {item.source!r} is drawn {attribute_summary(before[:1], kind, attribute)}")
    with time_edit(pipe, item.source, item.destination, lamb=lamb) as edit:
        after = generate(pipe, shown, figure_seeds, settings)
        print(f"after {edit} (solved in {1e3 * edit.timings['solve_s']:.0f} ms): {item.source!r} is drawn "
              f"{attribute_summary(after[:1], kind, attribute)}")
    rows = [list(b) + list(a) for b, a in zip(before, after)]
    roles = ["source", "related", "related: two objects", "unrelated", "unrelated: two objects"]
    labels = [f"{p}\n({role})" for p, role in zip(shown, roles)]
    columns = ["before"] + [""] * (FIGURE_SEEDS - 1) + ["after TIME"] + [""] * (FIGURE_SEEDS - 1)
    fig = image_grid(rows, row_labels=labels, col_labels=columns,
                     title=f"TIME on TinyWorld: {item.source!r} -> {item.destination!r} (lambda {lamb:g})")
    path = save_figure(fig, "demo.png")

    record = evaluate_edit_item(pipe, OracleJudgeAdapter(), item, range(seeds), [lamb], settings)
    table = edits_table(summarize_edits([record]), summarize_kept([record]))
    print(f"\nOracle-judged over {seeds} seeds, 1 source, {len(item.related)} related and "
          f"{len(item.unrelated)} unrelated prompts:\n{table}")
    print(f"\nwrote {path}  ({time.perf_counter() - started:.0f} s)")
    return table, path


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("demo", help="TinyWorld's implicit assumption, edited with TIME, with figures")
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--destination", default=DEFAULT_DESTINATION)
    parser.add_argument("--seeds", type=int, default=16, help="seeds per prompt for the table (default 16)")
    parser.add_argument("--lamb", type=float, default=None,
                        help="ridge strength (default: TinyWorld's lambda chosen on a validation split, as its "
                             "model card states; the paper's 0.1 also works)")
    parser.add_argument("--device", default=None)
    parser.set_defaults(run=_run)
    return parser


def _run(args: argparse.Namespace) -> int:
    run_demo(args.source, args.destination, args.seeds, args.lamb, args.device)
    return 0
