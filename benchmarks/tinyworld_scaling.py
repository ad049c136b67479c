"""Many edits at once on TinyWorld 2, judged exactly: efficacy and attributes kept against the number K
of edited assumptions, for a joint solve, stacked single edits, and a joint solve with preservation.

    python benchmarks/tinyworld_scaling.py                     # K = 1, 2, 4, 8, 9; lambda 100; 8 seeds

The edits (``EDITS``, the first K at size K) are the assumptions the world plants: every kind's usual
colour, then every kind's position (unstated, an object sits anywhere; each source states the kind's
usual colour, so the colour edits leave it alone), then a square's usual size. Methods:

- ``joint``: one ``time_edit`` of the K pairs;
- ``stacked``: K single edits, each on top of the last (``stack=True``);
- ``joint + hand-picked preservation``: the joint solve with ``HAND_PICKED`` preserved: prompts that
  state every attribute the edits touch, so nothing should move them;
- ``joint + leakage-picked preservation``: the joint solve with the ``len(HAND_PICKED)`` prompts of the
  world that the edits should leave alone and that the joint edit moves most (``timelab.leakage``).

Efficacy: per edit, the share of its source prompt's images that show its destination (``shows``),
averaged over the K edits. Attributes kept: on ``TEST_PROMPTS`` (world prompts drawn once, never
preserved), ``1 - TV(before, after)`` per attribute that none of the K edits targets, averaged per
prompt, then over prompts. Writes ``benchmarks/results/tinyworld_scaling.json`` (read by notebook 08),
``tinyworld_scaling.md`` and ``tinyworld_scaling.png`` (figures folder).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import timelab
from timelab.evaluation.tinyworld.attributes import attributes_kept, edited_attributes, kept_attributes, left_alone
from timelab.files import write_text_atomic
from timelab.generation import GenerationSettings, generate
from timelab.tinyworld.captions import world_prompts
from timelab.tinyworld.judge import OracleJudge, shows
from timelab.viz import save_figure

RESULTS = Path(__file__).resolve().parent / "results" / "tinyworld_scaling.json"
EDITS = [
    ("a circle", "a blue circle"), ("a square", "a red square"), ("a triangle", "a blue triangle"),
    ("a cross", "a green cross"),
    ("a red circle", "a red circle on the left"), ("a green square", "a green square on the right"),
    ("a yellow triangle", "a yellow triangle at the top"), ("a purple cross", "a purple cross at the bottom"),
    ("a blue square", "a small blue square"),
]
HAND_PICKED = ["a big green circle on the right", "a small yellow circle at the bottom", "a small blue square on the left",
               "a big purple square at the top", "a big red triangle at the bottom", "a small green triangle on the left",
               "a big blue cross at the top", "a small red cross on the right"]
METHODS = ("joint", "stacked", "joint + hand-picked preservation", "joint + leakage-picked preservation")


def kept_on(prompt: str, before, after, changed) -> float:
    return float(np.mean(list(attributes_kept(before, after, kept_attributes(prompt, changed)).values())))


def apply(pipe, method: str, edits, lamb: float, preserve: list[str]) -> None:
    sources, destinations = [s for s, _ in edits], [d for _, d in edits]
    timelab.reset_edits(pipe)
    if method == "stacked":
        for source, destination in edits:
            timelab.time_edit(pipe, source, destination, lamb=lamb, stack=True)
    else:
        timelab.time_edit(pipe, sources, destinations, lamb=lamb, preserve=preserve or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 9])
    parser.add_argument("--lamb", type=float, default=100.0, help="the model card's validation choice")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--test-prompts", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.ks or min(args.ks) < 1 or max(args.ks) > len(EDITS):
        parser.error(f"K must lie in 1..{len(EDITS)}, got {args.ks}")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = timelab.load_pipeline("tinyworld", device="cpu")
    judge = OracleJudge()
    settings = GenerationSettings(steps=args.steps, guidance_scale=7.5, batch_size=64)
    seeds = list(range(args.seeds))
    world = world_prompts()
    sources = {s for s, _ in EDITS}
    rng = np.random.default_rng(1)
    candidates = [p for p in world if p not in sources and p not in HAND_PICKED]
    test_prompts = [candidates[i] for i in rng.choice(len(candidates), args.test_prompts, replace=False)]
    before = {p: judge.read(images) for p, images in zip(test_prompts, generate(pipe, test_prompts, seeds, settings))}

    rows = []
    for k in tqdm(args.ks, desc="K"):
        edits = EDITS[:k]
        changed = edited_attributes([s for s, _ in edits], [d for _, d in edits])
        alone = [p for p in candidates if p not in test_prompts and left_alone(p, changed)]
        with timelab.time_edit(pipe, [s for s, _ in edits], [d for _, d in edits], lamb=args.lamb) as joint:
            leak = timelab.leakage(joint, alone).numpy()
        picked = [alone[i] for i in np.argsort(-leak)[:len(HAND_PICKED)]]
        for method in METHODS:
            preserve = {"joint + hand-picked preservation": HAND_PICKED,
                        "joint + leakage-picked preservation": picked}.get(method, [])
            apply(pipe, method, edits, args.lamb, preserve)
            prompts = [s for s, _ in edits] + test_prompts
            images = generate(pipe, prompts, seeds, settings)
            timelab.reset_edits(pipe)
            per_edit = [float(np.mean([shows(r, d) for r in judge.read(images[i])])) for i, (_, d) in enumerate(edits)]
            kept = [kept_on(p, before[p], judge.read(images[k + j]), changed) for j, p in enumerate(test_prompts)]
            rows.append({"method": method, "k": k, "efficacy": float(np.mean(per_edit)), "per_edit_efficacy": per_edit,
                         "kept": float(np.mean(kept)), "preserve": preserve})

    command = (f"python benchmarks/tinyworld_scaling.py --ks {' '.join(map(str, args.ks))} --lamb {args.lamb:g} "
               f"--seeds {args.seeds} --steps {args.steps} --test-prompts {args.test_prompts} --threads {args.threads}")
    result = {"command": command, "date": str(datetime.date.today()), "lamb": args.lamb, "seeds": args.seeds,
              "steps": args.steps, "edits": [list(e) for e in EDITS], "test_prompts": test_prompts, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    write_text_atomic(RESULTS, json.dumps(result, indent=1) + "\n")

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        for ax, metric in zip(axes, ("efficacy", "kept")):
            ax.plot([r["k"] for r in mine], [r[metric] for r in mine], marker="o", label=method)
    for ax, label in zip(axes, ("efficacy (source shows destination)", "attributes kept (test prompts)")):
        ax.set(xscale="log", xlabel="K edits at once", ylabel=label, ylim=(0, 1.02))
        ax.set_xticks(args.ks, [str(k) for k in args.ks])
    axes[1].axhline(0.9, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"TinyWorld 2, lambda {args.lamb:g}, {args.seeds} seeds")
    figure = save_figure(fig, "tinyworld_scaling.png")
    plt.close(fig)

    lines = ["# Many edits at once on TinyWorld 2 (exact judge)", "",
             f"Command: `{command}`; {result['date']}; {result['seconds']:.0f} s. Edits in order: "
             + "; ".join(f"{i + 1}. '{s}' -> '{d}'" for i, (s, d) in enumerate(EDITS)) + ".", "",
             f"Attributes kept on {len(test_prompts)} world prompts drawn once (seed 1), over the attributes none "
             "of the K edits targets. Goal: kept >= 0.9 with preservation at the largest K.", "",
             "| K | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for k in args.ks:
        cells = [next(r for r in rows if r["k"] == k and r["method"] == m) for m in METHODS]
        lines.append(f"| {k} | " + " | ".join(f"{c['efficacy']:.0%} / {c['kept']:.2f}" for c in cells) + " |")
    lines += ["", "Cells: efficacy / attributes kept.", "", f"Figure: `{figure.name}` (figures folder); data: "
              "`tinyworld_scaling.json`.", ""]
    write_text_atomic(RESULTS.with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
