"""Many edits at once on a Stable Diffusion 1.4-shaped model: one joint solve against K stacked single edits.

    python benchmarks/many_edits.py                      # K = 1, 10, 100, 1000 with P = 0 and 100
    python benchmarks/many_edits.py --ks 1 10 --preserved 0

For K edit pairs (each augmented with the paper's three prefixes: 4 x 77 keys a pair) and P preserved
prompts (77 keys each), the joint solve is one call of timelab's solver for all 32 cross-attention
matrices; stacking solves each pair alone on top of the previous result, K times. The parent process
builds the SD 1.4-shaped pipeline (random weights) once and saves its 32 projection matrices and a pool
of real text states of its text encoder; each case then runs in a fresh process that loads only those,
and reports its wall time and its peak memory above what it held before the solve (Linux ``VmHWM``,
reset through ``/proc/self/clear_refs``). Keys are drawn from the pool with a small jitter (encoding
thousands of prompts would dominate the run and is not what is timed; time and memory of the solve
depend on the shapes only). Results: ``benchmarks/results/many_edits.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "many_edits.md"
POOL = 48  # distinct encoded prompts the keys are drawn from
AUGMENTED = 4  # a prompt and its three prefixed copies
LAMB = 0.1


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def save_inputs(path: Path) -> None:
    """The SD 1.4-shaped model's 32 projection matrices and a pool of its text states, to ``path``."""
    from timelab import load_pipeline
    from timelab.editing import cross_attention_layers, encode_prompts, projections

    pipe = load_pipeline("sd14-random", device="cpu")
    weights = [lin.weight.detach().clone() for lin in projections(cross_attention_layers(pipe.unet)).values()]
    objects = ["rose", "car", "dog", "house", "tree", "cup", "bird", "chair"]
    sources = [f"a photo of a {o}" for o in objects] + [f"a {o} on a table" for o in objects]
    destinations = [f"a photo of a blue {o}" for o in objects] + [f"a red {o} on a table" for o in objects]
    torch.save({"weights": weights, "sources": encode_prompts(pipe, sources),
                "destinations": encode_prompts(pipe, destinations)}, path)


def _problem(path: Path, k: int, preserved: int, seed: int = 0):
    """Weights, keys and target states of ``k`` pairs ``(k, 4 * 77, d)``, and ``preserved`` prompts' keys."""
    saved = torch.load(path)
    sources, destinations = saved["sources"], saved["destinations"]
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(sources), (AUGMENTED * k,), generator=g)
    jitter = 1e-2 * torch.randn(len(pick), *sources.shape[1:], generator=g)  # distinct keys, realistic scale
    keys = (sources[pick] + jitter).reshape(k, -1, sources.shape[-1])
    targets = (destinations[pick] + jitter).reshape(k, -1, sources.shape[-1])
    kept = None
    if preserved:
        noise = 1e-2 * torch.randn(preserved, *sources.shape[1:], generator=g)
        kept = (sources[torch.randint(0, len(sources), (preserved,), generator=g)] + noise).reshape(-1, sources.shape[-1])
    return saved["weights"], keys, targets, kept


def run_one(path: Path, method: str, k: int, preserved: int) -> dict:
    """One case in this process: seconds and peak extra bytes of the joint or stacked solve."""
    from timelab.editing import solve_for_states

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    weights, keys, targets, kept = _problem(path, k, preserved)
    solve_for_states(weights, keys[0], targets[0], LAMB)  # warm-up: first-call set-up of the kernels
    baseline = _status("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    if method == "joint":
        flat = keys.reshape(-1, keys.shape[-1])
        solved = solve_for_states(weights, flat, targets.reshape(-1, keys.shape[-1]), LAMB, kept)
    else:
        solved = weights
        for pair in range(k):
            solved = solve_for_states(solved, keys[pair], targets[pair], LAMB, kept)
    seconds = time.perf_counter() - started
    return {"method": method, "k": k, "preserved": preserved, "keys": int(keys.shape[0] * keys.shape[1]),
            "seconds": seconds, "peak_mb": (_status("VmHWM") - baseline) / 2**20,
            "finite": all(bool(torch.isfinite(w).all()) for w in solved)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--preserved", type=int, nargs="+", default=[0, 100])
    parser.add_argument("--one", nargs=4, metavar=("INPUTS", "METHOD", "K", "P"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1], int(args.one[2]), int(args.one[3]))))
        return 0
    if min(args.ks) < 1 or min(args.preserved) < 0:
        parser.error("--ks must be >= 1 and --preserved >= 0")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "inputs.pt"
        save_inputs(inputs)
        for preserved in args.preserved:
            for k in args.ks:
                for method in ("joint", "stacked"):
                    rows.append(_case(inputs, method, k, preserved))
    write_results(rows, argv)
    return 0


def _case(inputs: Path, method: str, k: int, preserved: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", str(inputs), method, str(k), str(preserved)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{method:8s} K={k:5d} P={preserved:4d}  {row['seconds']:8.2f} s  {row['peak_mb']:8.0f} MB", flush=True)
    return row


def write_results(rows: list[dict], argv: list[str] | None) -> None:
    given = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/many_edits.py" + ("" if not given else " " + " ".join(given))
    lines = [
        "# Many edits at once: one joint solve against K stacked single edits", "",
        f"Command: `{command}`; {datetime.date.today()}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {os.environ.get('BENCH_THREADS', '2')} threads; SD 1.4-shaped model "
        "(random weights), 32 cross-attention matrices, 4 x 77 keys per pair, 77 per preserved prompt, "
        f"lambda {LAMB}. Peak: memory above the process's size just before the solve (after a warm-up solve).", "",
        "| K pairs | P preserved | keys | joint s | stacked s | stacked / joint | joint peak MB | stacked peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_case = {(r["k"], r["preserved"], r["method"]): r for r in rows}
    for (k, preserved, method), r in by_case.items():
        if method != "joint":
            continue
        s = by_case[(k, preserved, "stacked")]
        lines.append(f"| {k} | {preserved} | {r['keys']} | {r['seconds']:.2f} | {s['seconds']:.2f} | "
                     f"{s['seconds'] / r['seconds']:.1f}x | {r['peak_mb']:.0f} | {s['peak_mb']:.0f} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    raise SystemExit(main())
