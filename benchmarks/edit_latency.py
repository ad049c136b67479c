"""Edit latency of timelab's TIME against a straightforward implementation of the paper's formula.

Model: Stable Diffusion 1.4's architecture with random weights (CLIP ViT-L/14 text encoder, 77 tokens,
16 cross-attention layers, K and V: 32 matrices), the paper's three augmentation prefixes (4 pairs,
8 prompts). Both implementations share the text encoding; the solve is everything from the text states
to the new weights (targets included); timelab's in-place application (undo snapshot, weight writes)
is reported on its own, the baseline only returns new weights. Baseline: per matrix, ``W' = (lambda W + V^T C)(lambda I + C^T C)^{-1}`` with one float32
inverse, as in the authors' code. Agreement is measured against an exact float64 solve.

    python benchmarks/edit_latency.py [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from timelab import time_edit
from timelab.editing import cross_attention_layers, edit_pairs, keys_and_aligned_states, projections, reset_edits
from timelab.testing import sd14_shaped_pipeline

SOURCE, DESTINATION, LAMB = "a pack of roses", "a pack of blue roses", 0.1
RESULTS = Path(__file__).resolve().parent / "results" / "edit_latency.md"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def keys_and_aligned(pipe):
    return keys_and_aligned_states(pipe, edit_pairs([SOURCE], [DESTINATION]))


@torch.no_grad()
def baseline_solve(weights, C, C_star):
    """The paper's formula, one float32 inverse per matrix."""
    solved = {}
    for name, W in weights.items():
        V = C_star @ W.T
        mat1 = LAMB * W + V.T @ C
        mat2 = LAMB * torch.eye(W.shape[1], device=W.device, dtype=W.dtype) + C.T @ C
        solved[name] = mat1 @ torch.inverse(mat2)
    return solved


@torch.no_grad()
def exact_solve(weights, C, C_star):
    C64, S64 = C.double(), C_star.double()
    A = LAMB * torch.eye(C.shape[1], dtype=torch.float64, device=C.device) + C64.T @ C64
    L = torch.linalg.cholesky(A)
    return {n: torch.cholesky_solve((LAMB * W.double() + (S64 @ W.double().T).T @ C64).T, L).T for n, W in weights.items()}


def relative_error(got, exact):
    return max(((got[n].double() - exact[n]).norm() / exact[n].norm()).item() for n in exact)


def timed(fn, device, repeats):
    values = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        values.append(time.perf_counter() - start)
    return statistics.median(values), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    pipe = sd14_shaped_pipeline(vae_block_out_channels=(32,)).to(args.device)
    linears = projections(cross_attention_layers(pipe.unet))
    weights = {n: lin.weight.detach().clone() for n, lin in linears.items()}
    n_params = sum(w.numel() for w in weights.values())

    time_edit(pipe, SOURCE, DESTINATION, lamb=LAMB)  # warm-up
    reset_edits(pipe)
    runs = []
    for _ in range(args.repeats):
        sync(args.device)
        start = time.perf_counter()
        edit = time_edit(pipe, SOURCE, DESTINATION, lamb=LAMB)
        sync(args.device)
        runs.append((time.perf_counter() - start, edit.timings["encode_s"], edit.timings["solve_s"],
                     edit.timings["apply_s"]))
        ours = dict(edit.edited)
        edit.undo()
    total, encode, solve, apply = (statistics.median(r[i] for r in runs) for i in range(4))

    C, C_star = keys_and_aligned(pipe)
    baseline_encode, _ = timed(lambda: keys_and_aligned(pipe), args.device, args.repeats)
    baseline_time, theirs = timed(lambda: baseline_solve(weights, C, C_star), args.device, args.repeats)
    exact = exact_solve(weights, C, C_star)
    ours_error, theirs_error = relative_error(ours, exact), relative_error(theirs, exact)
    agreement = relative_error(ours, {n: t.double() for n, t in theirs.items()})

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    lines = [
        f"## Edit latency, SD 1.4-shaped random-weight model, {args.device} ({device_name}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__})",
        "",
        f"Command: `python {' '.join(sys.argv)}` (median of {args.repeats} runs after a warm-up). "
        f"{len(weights)} matrices ({n_params / 1e6:.1f}M parameters), 4 prompt pairs (3 augmentations), lambda {LAMB}.",
        "",
        "| | text encoding (8 prompts) | solve | apply in place | whole edit | max relative error vs float64 exact |",
        "|---|---|---|---|---|---|",
        f"| timelab `time_edit` | {encode * 1e3:.0f} ms | {solve * 1e3:.0f} ms | {apply * 1e3:.0f} ms | {total * 1e3:.0f} ms "
        f"| {ours_error:.1e} |",
        f"| paper's formula, float32 inverse per matrix | {baseline_encode * 1e3:.0f} ms | {baseline_time * 1e3:.0f} ms "
        f"| - | {(baseline_encode + baseline_time) * 1e3:.0f} ms | {theirs_error:.1e} |",
        "",
        f"Solve speed-up: {baseline_time / solve:.1f}x. Relative difference timelab vs baseline: {agreement:.1e} "
        "(the baseline's error, not ours: see the float64 column).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    marker = f"## Edit latency, SD 1.4-shaped random-weight model, {args.device} "
    kept = [block for block in RESULTS.read_text().split("\n## ")[1:] if not ("## " + block).startswith(marker)] if RESULTS.exists() else []
    body = "# Edit latency\n\n" + "".join("## " + b.rstrip() + "\n\n" for b in kept) + text
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(body)
    tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
