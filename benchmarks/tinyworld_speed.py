"""How fast TinyWorld draws on this CPU, lever by lever, against the physical limit; and whether the
faster samplers draw the same world as the stock one, judged.

Throughput (images per second, 32x32, guidance 7.5, the same prompts and seeds for every row, median of
``--repeats`` runs of ``--images`` images after a warm-up, for 1 and 2 torch threads):

- stock: the shipped ``StableDiffusionPipeline`` called directly, 25 DDIM steps, batches of 8;
- timelab's :func:`~timelab.generation.generate` with each lever alone (batch size, fewer DDIM steps),
  TinyWorld's default path (``timelab.tinyworld.STEPS`` DDIM steps, batches of ``BATCH_SIZE``), the
  default with channels-last memory, ``torch.inference_mode`` or the text encoded once per prompt, and
  faster samplers that draw another world (DDIM at 15 or 10 steps, DPM-Solver++ at 10).

The limit: a UNet row's FLOPs (torch's FLOP counter) x steps x 2 (guidance) + the decoder's, against a
2048x2048 float32 matmul's FLOP/s measured in the same run. Peak memory: the resident set of a fresh
process that loads TinyWorld and draws with the default path.

``--judge`` judges instead of timing (it needs no quiet machine): the stock sampler (25 DDIM steps) and
the fast ones, by the exact judge on the same seeds: fully stated one-object prompts drawn right, the
planted priors, and TIME at the validated lambda (efficacy, generality, specificity, attributes kept),
each with its 95% interval.

    python benchmarks/tinyworld_speed.py [--images 64] [--repeats 3]
    python benchmarks/tinyworld_speed.py --judge [--seeds 512]

Writes benchmarks/results/tinyworld_speed.md, or with ``--judge`` tinyworld_speed_judged.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from timelab import load_pipeline
from timelab.editing import encode_prompts
from timelab.evaluation import evaluate_edit_item, summarize_edits, summarize_kept
from timelab.evaluation.metrics import wilson
from timelab.evaluation.tinyworld import OracleJudgeAdapter, edit_items
from timelab.evaluation.tinyworld.measure import stated_one_object
from timelab.files import write_text_atomic
from timelab.generation import GenerationSettings, generate, generate_from_states
from timelab.tinyworld import BATCH_SIZE, STEPS, OracleJudge, spec
from timelab.tinyworld.judge import attribute_of, shows

RESULTS = Path(__file__).resolve().parent / "results" / "tinyworld_speed.md"
JUDGED_RESULTS = RESULTS.with_name("tinyworld_speed_judged.md")
CACHE = Path(__file__).resolve().parents[1] / "build" / "benchmarks" / "tinyworld_speed_judged.json"
PROMPTS = ("a circle", "a blue circle on the left", "a big square", "a photo of a triangle at the top",
           "a small purple cross", "a circle on the left and a square on the right",
           "a yellow square at the top and a green triangle at the bottom", "a cross on a black background")
GUIDANCE = 7.5
STOCK = GenerationSettings(steps=25, guidance_scale=GUIDANCE, batch_size=8, sampler="ddim")
PRIORS = (("circle", "colour", "red"), ("square", "size", "big"), ("cross", "colour", "purple"))
VALIDATED_LAMBDA = 100.0  # the lambda the model card's validation split chose
DEFAULT = GenerationSettings(steps=STEPS, guidance_scale=GUIDANCE, batch_size=BATCH_SIZE, sampler="ddim")
FAST = replace(STOCK, steps=10, sampler="dpm-solver++", batch_size=BATCH_SIZE)
JUDGED = {"DPM-Solver++ 15 steps": replace(FAST, steps=15), "DPM-Solver++ 10 steps": FAST,
          "DPM-Solver++ 8 steps": replace(FAST, steps=8), "DDIM 20 steps": replace(FAST, sampler="ddim", steps=20),
          "DDIM 15 steps": replace(FAST, sampler="ddim", steps=15), "DDIM 10 steps": replace(FAST, sampler="ddim"),
          "DDIM 8 steps": replace(FAST, sampler="ddim", steps=8)}


@dataclass(frozen=True)
class Lever:
    name: str
    settings: GenerationSettings
    channels_last: bool = False
    inference_mode: bool = False
    text_once: bool = False


def levers() -> list[Lever]:
    """Each lever alone, then together: TinyWorld's default path (``DEFAULT``) and what it leaves out; last,
    faster paths that draw another world (``tinyworld_speed_judged.md``), to show what the world would cost."""
    steps_alone = replace(STOCK, steps=DEFAULT.steps)
    return [
        Lever(f"batch {DEFAULT.batch_size} alone (DDIM 25 steps)", replace(STOCK, batch_size=DEFAULT.batch_size)),
        Lever(f"DDIM {DEFAULT.steps} steps alone (batch 8)", steps_alone),
        *[Lever(f"DDIM {DEFAULT.steps} steps, batch {b}", replace(steps_alone, batch_size=b))
          for b in (16, 64)],
        Lever(f"**TinyWorld's default: DDIM {DEFAULT.steps} steps, batch {DEFAULT.batch_size}**", DEFAULT),
        Lever("default + channels-last", DEFAULT, channels_last=True),
        Lever("default + inference mode", DEFAULT, inference_mode=True),
        Lever("default + text encoded once", DEFAULT, text_once=True),
        *[Lever(f"{name}, batch {DEFAULT.batch_size} (another world)", settings)
          for name, settings in JUDGED.items() if name in ("DDIM 15 steps", "DDIM 10 steps", "DPM-Solver++ 10 steps")],
    ]


def stock_call(pipe, prompts: list[str], seeds: list[int]) -> None:
    """Today's path: the pipeline itself, 25 DDIM steps, batches of 8."""
    for start in range(0, len(prompts), STOCK.batch_size):
        chunk = slice(start, start + STOCK.batch_size)
        pipe(prompts[chunk], num_inference_steps=STOCK.steps, guidance_scale=GUIDANCE, output_type="np",
             generator=[torch.Generator().manual_seed(s) for s in seeds[chunk]])


def lever_call(pipe, lever: Lever, prompts: list[str]) -> None:
    """``len(prompts)`` images, one seed each, through generate (one prompt x one seed per image)."""
    unique = list(dict.fromkeys(prompts))
    seeds = [0]
    mode = torch.inference_mode() if lever.inference_mode else contextlib.nullcontext()
    with mode:
        if lever.text_once:
            states = encode_prompts(pipe, unique)
            repeat = len(prompts) // len(unique)
            generate_from_states(pipe, states.repeat_interleave(repeat, 0), seeds, lever.settings)
        else:
            generate(pipe, prompts, seeds, lever.settings)


def images_per_second(draw, n: int, repeats: int) -> float:
    draw()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        draw()
        times.append(time.perf_counter() - started)
    return n / statistics.median(times)


def flops_per_image(pipe, steps: int) -> float:
    """One image's FLOPs: a UNet row per step for each half of guidance, and one decode."""
    unet, vae = pipe.unet, pipe.vae
    size = spec.IMAGE_SIZE // pipe.vae_scale_factor
    latents = torch.zeros(1, unet.config.in_channels, size, size)
    text = torch.zeros(1, pipe.tokenizer.model_max_length, unet.config.cross_attention_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as unet_count:
        unet(latents, 500, encoder_hidden_states=text)
    with torch.no_grad(), FlopCounterMode(display=False) as vae_count:
        vae.decode(latents)
    return 2 * steps * unet_count.get_total_flops() + vae_count.get_total_flops()


def matmul_peak() -> float:
    """FLOP/s of a 2048x2048 float32 matmul (best of 5) on the current thread count."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 2048**3 / best


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def peak_memory_mb(settings: GenerationSettings, threads: int) -> float:
    """Peak resident memory of a fresh process that loads TinyWorld and draws 64 images with ``settings``."""
    code = (
        "import resource, torch\n"
        "from timelab import load_pipeline\n"
        "from timelab.generation import GenerationSettings, generate\n"
        f"torch.set_num_threads({threads})\n"
        "pipe = load_pipeline('tinyworld', device='cpu')\n"
        f"settings = GenerationSettings(**{settings.__dict__!r})\n"
        f"generate(pipe, {list(PROMPTS)!r}, range(8), settings)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # Linux reports KiB


def throughput(pipe, n: int, repeats: int) -> tuple[list[str], dict[int, tuple[float, float]]]:
    """The table's rows, and for each thread count the stock and default paths' images per second."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    rows, headline = [], {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        peak = matmul_peak()
        stock = images_per_second(lambda: stock_call(pipe, prompts, list(range(n))), n, repeats)
        rows.append(f"| {threads} | stock: pipeline call, 25 DDIM steps, batch 8 | {stock:.1f} | 1.0x | "
                    f"{peak / flops_per_image(pipe, 25):.0f} |")
        for lever in levers():
            if lever.channels_last:
                pipe.unet.to(memory_format=torch.channels_last)
            try:
                rate = images_per_second(lambda: lever_call(pipe, lever, prompts), n, repeats)
            finally:
                pipe.unet.to(memory_format=torch.contiguous_format)
            limit = peak / flops_per_image(pipe, lever.settings.steps)
            rows.append(f"| {threads} | {lever.name} | {rate:.1f} | {rate / stock:.1f}x | {limit:.0f} |")
            if lever.settings == DEFAULT and not (lever.channels_last or lever.inference_mode or lever.text_once):
                headline[threads] = (stock, rate)
        rows.append(f"| {threads} | (2048x2048 float32 matmul: {peak / 1e9:.0f} GFLOP/s) | | | |")
    return rows, headline


# ------------------------------------------------------------------------------------- judged
def judged_share(hits: list[bool]) -> str:
    low, high = wilson(int(sum(hits)), len(hits))
    return f"{100 * np.mean(hits):.1f} [{100 * low:.1f}, {100 * high:.1f}] (n={len(hits)})"


def one_object_hits(pipe, settings: GenerationSettings, seeds: int, time_seeds: int, time_items: int) -> dict:
    one = stated_one_object()
    images = generate(pipe, one, range(-(-seeds // len(one))), settings, progress=True)
    return {"one-object prompts drawn right": [shows(r, p) for p, row in zip(one, images)
                                               for r in OracleJudge().read(row)]}


def prior_hits(pipe, settings: GenerationSettings, seeds: int, time_seeds: int, time_items: int) -> dict:
    found = {}
    for kind, attribute, value in PRIORS:
        records = OracleJudge().read(generate(pipe, [f"a {kind}"], range(seeds), settings, progress=True)[0])
        found[f"'a {kind}' drawn {value}"] = [attribute_of(r, attribute, kind) == value for r in records]
    return found


def time_hits(pipe, settings: GenerationSettings, seeds: int, time_seeds: int, time_items: int) -> dict:
    records = [evaluate_edit_item(pipe, OracleJudgeAdapter(), item, range(time_seeds), [VALIDATED_LAMBDA], settings)
               for item in edit_items()[:time_items]]
    summarize_edits(records)  # every record is well formed
    rows = [row for record in records for row in record["rows"] if row["model"] == "TIME"]
    found = {f"TIME {metric} (lambda {VALIDATED_LAMBDA:g})": [bool(h) for row in rows for prompt in row[metric]
                                                              for h in prompt]
             for metric in ("efficacy", "generality", "specificity")}
    found["TIME attributes kept (mean, no interval)"] = next(iter(summarize_kept(records).values()))["mean"]
    return found


def judged(pipe, candidates: dict[str, GenerationSettings], seeds: int, time_seeds: int,
           time_items: int) -> list[str]:
    """A table: each measure under the stock sampler and each candidate, and whether their intervals overlap.

    Measured group by group (every sampler's one-object share first), each result kept in
    ``build/benchmarks/`` as soon as it is known, so a stopped run resumes where it was."""
    judged_stock = replace(STOCK, batch_size=FAST.batch_size)  # batch size changes only float rounding
    samplers = {"25 DDIM steps (stock)": judged_stock, **candidates}
    cache = CACHE.parent / f"{CACHE.stem}-{seeds}-{time_seeds}-{time_items}.json"
    done = json.loads(cache.read_text()) if cache.exists() else {}
    results: dict[str, dict] = {name: {"seconds": 0.0} for name in samplers}
    for group in (one_object_hits, prior_hits, time_hits):
        for name, settings in samplers.items():
            if name != "25 DDIM steps (stock)" and not same_world(results["25 DDIM steps (stock)"], results[name]):
                continue  # drew another world already: not worth the rest
            key = f"{group.__name__} {settings.sampler} {settings.steps}"
            if key not in done:
                started = time.perf_counter()
                done[key] = {"found": group(pipe, settings, seeds, time_seeds, time_items),
                             "seconds": time.perf_counter() - started}
                cache.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(cache, json.dumps(done))
            results[name].update(done[key]["found"])
            results[name]["seconds"] += done[key]["seconds"]
    stock, *quick = results.values()
    header = " | ".join(f"{name} | overlaps stock" for name in candidates)
    lines = [f"| measure | 25 DDIM steps | {header} |", "|---|---|" + "---|---|" * len(candidates)]
    for measure, hits in stock.items():
        if measure == "seconds":
            continue
        cells = []
        for q in quick:
            if measure not in q:
                cells.append("not measured: another world above | ")
            elif isinstance(hits, float):
                cells.append(f"{q[measure]:.2f} | ")
            else:
                cells.append(f"{judged_share(q[measure])} | {'yes' if overlaps(hits, q[measure]) else '**no**'}")
        shown = f"{hits:.2f}" if isinstance(hits, float) else judged_share(hits)
        lines.append(f"| {measure} | {shown} | " + " | ".join(cells) + " |")
    lines.append("| time to draw and judge (wall clock as run, some runs beside other work; speed: "
                 f"tinyworld_speed.md) | {stock['seconds']:.0f} s | "
                 + " | ".join(f"{q['seconds']:.0f} s | " for q in quick) + "|")
    complete = [(name, q) for name, q in zip(candidates, quick) if set(q) == set(stock)]
    overlapping = [name for name, q in complete if same_world(stock, q)]
    inside = [name for name, q in complete if inside_stock(stock, q)]
    lines += ["", f"Intervals overlap the stock ones on every measure: {', '.join(overlapping) or 'none'}.",
              f"Every share inside the stock share's 95% interval (the stricter test): {', '.join(inside) or 'none'}."]
    return lines


def overlaps(hits: list[bool], other: list[bool]) -> bool:
    a, b = wilson(int(sum(hits)), len(hits)), wilson(int(sum(other)), len(other))
    return a[0] <= b[1] and b[0] <= a[1]


def inside_stock(stock: dict, candidate: dict) -> bool:
    """Every share of ``candidate`` lies inside the 95% interval of the stock share."""
    def inside(hits: list[bool], share: float) -> bool:
        low, high = wilson(int(sum(hits)), len(hits))
        return low <= share <= high

    return all(inside(stock[m], np.mean(candidate[m])) for m in candidate if isinstance(candidate[m], list))


def same_world(stock: dict, candidate: dict) -> bool:
    """Every share measured on both has overlapping 95% intervals."""
    return all(overlaps(stock[m], candidate[m]) for m in candidate if isinstance(candidate[m], list))


def throughput_report(images: int, repeats: int) -> list[str]:
    pipe = load_pipeline("tinyworld", device="cpu")
    rows, headline = throughput(pipe, images, repeats)
    stock, default = headline[2]
    memory = peak_memory_mb(DEFAULT, threads=2)
    misses = [f"{30 - default:.1f} images/s short of 30"] if default < 30 else []
    misses += [f"{default / stock:.1f}x where 4x was asked"] if default < 4 * stock else []
    verdict = f"missed: {'; '.join(misses)}" if misses else "met"
    return [
        "# TinyWorld generation speed", "",
        f"Command: `python benchmarks/tinyworld_speed.py`; {machine()}.", "",
        f"{images} images of {spec.IMAGE_SIZE}x{spec.IMAGE_SIZE} per run (the 8 prompts below cycled), "
        f"guidance {GUIDANCE}, median of {repeats} runs after a warm-up. The limit is this machine's "
        "matmul FLOP/s over one image's FLOPs (UNet rows x steps x 2 for guidance, plus the decoder). "
        "Goal: at least 30 images/s on 2 threads, at least 4x the stock path, drawing the same world "
        "(judged: `tinyworld_speed_judged.md`; rows marked 'another world' fail that test).", "",
        "| torch threads | path | images/s | vs stock | limit, images/s |", "|---|---|---|---|---|", *rows, "",
        f"TinyWorld's default path on 2 threads (`timelab.tinyworld.STEPS`, `BATCH_SIZE`, through `generate`): "
        f"**{default:.1f} images/s, {default / stock:.1f}x the stock path**; goal {verdict}. Peak memory of "
        f"a fresh process that loads TinyWorld and draws with it: **{memory:.0f} MB** (resident set).", "",
    ]


def judged_report(seeds: int, time_seeds: int, time_items: int) -> list[str]:
    pipe = load_pipeline("tinyworld", device="cpu")
    return [
        "# Do TinyWorld's fast samplers draw the same world? The exact judge on each", "",
        f"Command: `python benchmarks/tinyworld_speed.py --judge`; {machine()}.", "",
        f"Same seeds for every sampler, guidance {GUIDANCE}. One-object prompts: the "
        f"{len(stated_one_object())} fully stated prompts of the model card, {seeds} images in all; priors: "
        f"{seeds} seeds each; TIME: the first {time_items} TinyWorld edit items at lambda {VALIDATED_LAMBDA:g}, "
        f"{time_seeds} seeds per prompt (efficacy one source prompt per item, generality and specificity five "
        "each). Shares in percent with Wilson's 95% interval; a candidate draws the same world when every "
        "interval overlaps the stock one, and strictly when each share lies inside the stock share's interval.", "",
        *judged(pipe, JUDGED, seeds, time_seeds, time_items), "",
    ]


def machine() -> str:
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__}, 1-minute load average {os.getloadavg()[0]:.1f} when it finished (other work "
            "shares the CPU)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images per timed run (default 64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--judge", action="store_true",
                        help="judge the stock sampler and the fast ones instead of timing them")
    parser.add_argument("--seeds", type=int, default=512, help="images per judged share (default 512)")
    parser.add_argument("--time-items", type=int, default=4, help="TinyWorld edit items for TIME (default 4)")
    parser.add_argument("--time-seeds", type=int, default=32, help="seeds per TIME prompt (default 32)")
    args = parser.parse_args(argv)
    if args.judge:
        path, text = JUDGED_RESULTS, judged_report(args.seeds, args.time_seeds, args.time_items)
    else:
        path, text = RESULTS, throughput_report(args.images, args.repeats)
    write_text_atomic(path, "\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
