"""How long the widget lab takes to answer on TinyWorld: one apply, beside a plain drawing of the same size.

The lab as notebook 07 runs it on a CPU: TinyWorld, its four test prompts over 8 seeds each (32 images),
10 DDIM steps, the oracle judge, "a circle" -> "a blue circle" at lambda 10. Timed side by side, in
alternating order after one warm-up of each:

- apply: ``LabSession.apply`` with the original model's drawing already cached (as after the lab's first
  view): the TIME solve, drawing the edited model with attention recorded, judging, the edit's numbers;
- view at a new seed: ``LabSession.view`` of the unedited model at a seed not drawn yet: the same drawing
  and judging, without the edit. The difference between the two is what editing adds to an answer.

Target: an apply answers within 20 s on one thread (the bound tests/test_lab.py asserted until this
measurement moved here: wall time in a test fails on a busy machine, not on a slow lab).

    python benchmarks/lab_speed.py [--repeats 5] [--threads 1 2]

Results go to benchmarks/results/lab_speed.md, one section per machine kind (a rerun replaces its own
section); everything in the file is written by this script.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from timelab import load_pipeline
from timelab.generation import GenerationSettings
from timelab.lab import LabControls, LabSession, lab_defaults, lab_judge
from timelab.models import TINYWORLD

from results_file import write_section

RESULTS = Path(__file__).resolve().parent / "results" / "lab_speed.md"
TITLE = "# Widget lab speed\n\n"
N_SEEDS, STEPS, LAMB = 8, 10, 10.0  # notebook 07's lab on a CPU (N_SEEDS, LAB_STEPS) and the test's lambda
TARGET_APPLY_S = 20.0


def measure(pipe, repeats: int) -> dict[str, list[float]]:
    """Seconds per repeat of each action (and the solve inside each apply), alternating which goes first."""
    defaults = lab_defaults(TINYWORLD)
    session = LabSession(pipe, defaults.test_prompts, judge=lab_judge(TINYWORLD), n_seeds=N_SEEDS,
                         settings=GenerationSettings(steps=STEPS))
    controls = LabControls(defaults.source, defaults.destination, lamb=LAMB)
    runs: dict[str, list[float]] = {"apply": [], "view": [], "solve": []}
    fresh_seed = iter(range(1000, 2000))  # every timed view draws a seed the session has not drawn

    def apply(record: bool) -> None:
        started = time.perf_counter()
        view = session.apply(controls)
        took = time.perf_counter() - started
        assert view.ok and view.judged, view.message
        if record:
            runs["apply"].append(took)
            runs["solve"].append(session.active.timings["solve_s"])
        session.reset()  # back to the original (its drawing at seed 0 is cached: not timed, no drawing)

    def view(record: bool) -> None:
        started = time.perf_counter()
        answer = session.view(seed=next(fresh_seed))
        took = time.perf_counter() - started
        assert answer.ok, answer.message
        if record:
            runs["view"].append(took)

    assert session.view().ok  # the lab's first view: draws and caches the original at seed 0
    for action in (apply, view):  # warm-up
        action(False)
    for r in range(repeats):
        for action in ((apply, view) if r % 2 == 0 else (view, apply)):
            action(True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch thread counts, one after the other (default: 1, then all cores)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    pipe = load_pipeline(TINYWORLD, device="cpu")

    rows = []
    for threads in args.threads or sorted({1, cores}):
        torch.set_num_threads(threads)
        runs = measure(pipe, args.repeats)
        fast = {key: min(values) for key, values in runs.items()}
        median = {key: statistics.median(values) for key, values in runs.items()}
        rows.append(f"| {threads} | {fast['apply']:.2f} ({median['apply']:.2f}) | {fast['solve'] * 1e3:.1f} "
                    f"({median['solve'] * 1e3:.1f}) | {fast['view']:.2f} ({median['view']:.2f}) | "
                    f"{fast['apply'] - fast['view']:+.2f} | "
                    f"{'met' if fast['apply'] <= TARGET_APPLY_S else 'NOT met'} |")
        print(rows[-1], "apply s:", [round(s, 2) for s in runs["apply"]], "view s:", [round(s, 2) for s in runs["view"]])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    heading = f"## TinyWorld, cpu ({platform.processor() or platform.machine()}, {cores} CPUs)"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", "benchmarks/lab_speed.py", *sys.argv[1:]])
    section = "\n".join([
        heading, "",
        f"Command: `{command}`; {date}; torch {torch.__version__}; 1-minute load average {load:.1f} when it "
        "finished (other work shares the CPU and only ever adds time).", "",
        f"{len(lab_defaults(TINYWORLD).test_prompts)} test prompts x {N_SEEDS} seeds, {STEPS} DDIM steps, oracle "
        f"judge, {lab_defaults(TINYWORLD).source!r} -> {lab_defaults(TINYWORLD).destination!r} at lambda {LAMB:g}. "
        f"Fastest of {args.repeats} runs of each after a warm-up, median in brackets. Target: an apply within "
        f"{TARGET_APPLY_S:g} s on one thread.", "",
        "| torch threads | apply s | its solve ms | view at a new seed s | apply - view s | target |",
        "|---|---|---|---|---|---|",
        *rows, "",
    ])
    print(section)
    write_section(RESULTS, TITLE, heading, section)


if __name__ == "__main__":
    main()
