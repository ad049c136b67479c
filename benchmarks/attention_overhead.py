"""What recording cross-attention maps costs: plain generation against generation inside an AttentionRecorder.

Both runs use the same prompts, seed, steps and guidance, alternate (plain, recorded, recorded, plain,
...) after one warm-up each, and the script checks that the images are bit-identical. Target: recording
costs at most 1.3x the plain generation time on TinyWorld.

    python benchmarks/attention_overhead.py [--model tinyworld|tiny-sd1|sd14-shaped] [--steps 20]
        [--repeats 5] [--size H W] [--device cpu|cuda]

Results go to benchmarks/results/attention_overhead.md, one section per model and device (a rerun
replaces its own section).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

from timelab.attention import AttentionRecorder

RESULTS = Path(__file__).resolve().parent / "results" / "attention_overhead.md"
PROMPTS = ["a pack of roses", "a photo of a red circle"]
TARGET = 1.3


def build(model: str, device: str):
    if model == "tinyworld":
        from timelab import load_pipeline

        return load_pipeline("tinyworld", device=device)
    from timelab.testing import sd14_shaped_pipeline, tiny_pipeline

    pipe = tiny_pipeline("sd1") if model == "tiny-sd1" else sd14_shaped_pipeline(vae_block_out_channels=(32, 32, 32, 32))
    return pipe.to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinyworld", choices=["tinyworld", "tiny-sd1", "sd14-shaped"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="image size (default: the model's own)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    pipe = build(args.model, args.device)
    pipe.set_progress_bar_config(disable=True)
    scale = pipe.vae_scale_factor
    height, width = args.size or (pipe.unet.config.sample_size * scale,) * 2

    def generate() -> torch.Tensor:
        sync(args.device)
        start = time.perf_counter()
        images = pipe(PROMPTS, height=height, width=width, num_inference_steps=args.steps,
                      guidance_scale=args.guidance, output_type="pt",
                      generator=torch.Generator(args.device).manual_seed(0)).images
        sync(args.device)
        return time.perf_counter() - start, images

    def recorded():
        with AttentionRecorder(pipe) as rec:
            seconds, images = generate()
        return seconds, images, rec

    generate(), recorded()  # warm-up
    plain_s, recorded_s = [], []
    identical = True
    for r in range(args.repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        for record in order:
            if record:
                seconds, images, rec = recorded()
                recorded_s.append(seconds)
                recorded_images = images
            else:
                seconds, plain_images = generate()
                plain_s.append(seconds)
        identical &= torch.equal(plain_images, recorded_images)

    plain, with_maps = statistics.median(plain_s), statistics.median(recorded_s)
    ratio, best_ratio = with_maps / plain, min(recorded_s) / min(plain_s)
    layers = ", ".join(f"{h}x{w}" for h, w in rec.shapes.values())
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    heading = f"## {args.model}, {device_name}, torch {torch.__version__}"
    section = "\n".join([
        heading,
        "",
        f"Command: `{' '.join(['python', 'benchmarks/attention_overhead.py', *sys.argv[1:]])}`",
        "",
        f"{len(PROMPTS)} prompts, {height}x{width} images, {args.steps} steps, guidance {args.guidance} "
        f"(UNet batch {2 * len(PROMPTS) if args.guidance > 1 else len(PROMPTS)}), {len(rec.shapes)} "
        f"cross-attention layers recorded (maps {layers}); median of {args.repeats} alternating runs "
        "after a warm-up.",
        "",
        "| | median | ratio | fastest | ratio |",
        "|---|---|---|---|---|",
        f"| plain | {plain * 1000:.0f} ms | 1.00x | {min(plain_s) * 1000:.0f} ms | 1.00x |",
        f"| inside `AttentionRecorder` (all layers, all steps) | {with_maps * 1000:.0f} ms | {ratio:.2f}x "
        f"| {min(recorded_s) * 1000:.0f} ms | {best_ratio:.2f}x |",
        "",
        f"Target <= {TARGET}x (medians): {'met' if ratio <= TARGET else 'NOT met'}. Images bit-identical with and "
        f"without recording: {'yes' if identical else 'NO'}. Memory held by the recorder: "
        f"{rec.nbytes} bytes ({rec.nbytes / 2**20:.2f} MiB), the same for any number of steps.",
        f"All runs (s): plain {[round(s, 3) for s in plain_s]}, recorded {[round(s, 3) for s in recorded_s]}.",
        "",
    ])
    print(section)
    write_section(heading, section)


def write_section(heading: str, section: str) -> None:
    """Replace this heading's section of the results file (or add it), atomically."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    text = RESULTS.read_text() if RESULTS.exists() else "# Attention recording overhead\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    tmp = RESULTS.with_name("." + RESULTS.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    main()
