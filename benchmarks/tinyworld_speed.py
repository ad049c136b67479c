"""How long TinyWorld takes to draw 8 images at 25 steps with classifier-free guidance on this CPU.

Target: at most 3 s on a 2-core CPU. Times the shipped pipeline with 1 and 2 torch threads side by
side (median of 5 runs after a warm-up) and writes benchmarks/results/tinyworld_speed.md.

    python benchmarks/tinyworld_speed.py
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import torch

from timelab import load_pipeline
from timelab.files import write_text_atomic
from timelab.tinyworld import spec

RESULTS = Path(__file__).resolve().parent / "results" / "tinyworld_speed.md"
PROMPTS = ("a circle", "a blue circle on the left", "a big square", "a photo of a triangle at the top",
           "a small purple cross", "a circle on the left and a square on the right",
           "a yellow square at the top and a green triangle at the bottom", "a cross on a black background")


def time_eight_images(pipe, repeats: int = 5) -> list[float]:
    """Seconds to draw 8 images at 25 steps with guidance 7.5, per repeat (after one warm-up call)."""
    def draw():
        pipe(list(PROMPTS), num_inference_steps=25, guidance_scale=7.5, output_type="np",
             generator=[torch.Generator().manual_seed(s) for s in range(len(PROMPTS))])

    draw()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        draw()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    pipe = load_pipeline("tinyworld", device="cpu")
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times = time_eight_images(pipe)
        rows.append(f"| {threads} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        "# TinyWorld generation speed", "",
        f"8 images ({spec.IMAGE_SIZE}x{spec.IMAGE_SIZE}), 25 DDIM steps, classifier-free guidance 7.5 (16 UNet rows per step), "
        "shipped pipeline, CPU, fp32. Target: at most 3 s on a 2-core CPU.", "",
        f"Command: `python benchmarks/tinyworld_speed.py`; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, 1-minute load average {load:.1f} when it finished (other work shares the CPU).", "",
        "| torch threads | median s | min s | max s |", "|---|---|---|---|", *rows, "",
    ])
    write_text_atomic(RESULTS, text)
    print(text)


if __name__ == "__main__":
    main()
