"""Many edits at once on a Stable Diffusion 1.4-shaped model: one joint solve against K stacked single edits.

    python benchmarks/many_edits.py                      # K = 1, 10, 100, 1000 with P = 0 and 100
    python benchmarks/many_edits.py --ks 1 10 --preserved 0

For K distinct edit pairs ("a {adjective} {noun}" -> "a {adjective} {colour} {noun}", 77 keys a pair:
no augmentation, so that encoding stays a small part of the run) and P preserved prompts (77 keys each),
the joint solve is one call of timelab's solver for all 32 cross-attention matrices; stacking solves
each pair alone on top of the previous result, K times. The parent process builds the SD 1.4-shaped
pipeline (random weights) once and saves its 32 projection matrices and the text states of every
prompt; each case then runs in a fresh process that loads only those, and reports its wall time and
its peak memory above what it held before the solve (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``). Results: ``benchmarks/results/many_edits.md``.
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
LAMB = 0.1


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


ADJECTIVES = ("old", "small", "tall", "wooden", "shiny", "broken", "tiny", "huge", "plastic", "glass",
              "striped", "dusty", "wet", "frozen", "golden", "paper", "stone", "soft", "round", "square",
              "bright", "dark", "ancient", "modern", "folded")
NOUNS = ("rose", "car", "dog", "house", "tree", "cup", "bird", "chair", "lamp", "boat", "book", "clock",
         "shoe", "hat", "vase", "kite", "bench", "door", "bell", "bottle", "horse", "train", "bridge", "fence",
         "guitar", "piano", "candle", "basket", "helmet", "ladder", "mirror", "pillow", "rocket", "sofa",
         "tent", "tower", "violin", "wagon", "window", "cat")
COLOURS = ("blue", "red", "green", "yellow", "purple", "orange")


def pairs(k: int) -> list[tuple[str, str]]:
    """``k`` distinct (source, destination) pairs (at most 1000)."""
    found = [(f"a {a} {n}", f"a {a} {COLOURS[(i + j) % len(COLOURS)]} {n}")
             for i, a in enumerate(ADJECTIVES) for j, n in enumerate(NOUNS)]
    if k > len(found):
        raise SystemExit(f"at most {len(found)} distinct pairs, asked for {k}")
    return found[:k]


def save_inputs(path: Path, k: int, preserved: int) -> None:
    """The SD 1.4-shaped model's 32 projection matrices and the states of the pairs and preserved prompts."""
    from timelab import load_pipeline
    from timelab.editing import cross_attention_layers, encode_prompts, projections

    pipe = load_pipeline("sd14-random", device="cpu")
    weights = [lin.weight.detach().clone() for lin in projections(cross_attention_layers(pipe.unet)).values()]
    chosen = pairs(k)
    kept = [f"a photo of a {n} at dusk, number {i}" for i in range(preserved // len(NOUNS) + 1) for n in NOUNS]
    encode = lambda prompts: torch.cat([encode_prompts(pipe, prompts[i:i + 64]) for i in range(0, len(prompts), 64)])  # noqa: E731
    torch.save({"weights": weights, "sources": encode([s for s, _ in chosen]),
                "destinations": encode([d for _, d in chosen]),
                "preserved": encode(kept[:preserved]) if preserved else None}, path)


def _problem(path: Path, k: int, preserved: int):
    """Weights, keys and target states of the first ``k`` pairs ``(k, 77, d)``, and ``preserved`` prompts' keys."""
    saved = torch.load(path)
    kept = saved["preserved"]
    kept = kept[:preserved].reshape(-1, kept.shape[-1]) if preserved else None
    return saved["weights"], saved["sources"][:k], saved["destinations"][:k], kept


def run_one(path: Path, method: str, k: int, preserved: int) -> dict:
    """One case in this process: seconds and peak extra bytes of the joint or stacked solve."""
    from timelab.editing import solve_for_states

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    weights, keys, targets, kept = _problem(path, k, preserved)
    solve_for_states(weights, keys[0], targets[0], LAMB)  # warm-up: first-call set-up of the kernels
    baseline = _status("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    done, failure = 0, ""
    try:
        if method == "joint":
            flat = keys.reshape(-1, keys.shape[-1])
            solve_for_states(weights, flat, targets.reshape(-1, keys.shape[-1]), LAMB, kept)
            done = k
        else:
            solved = weights
            for pair in range(k):
                solved = solve_for_states(solved, keys[pair], targets[pair], LAMB, kept)
                done += 1
    except ValueError as error:  # e.g. the weights overflow: report it as a result
        failure = str(error)
    seconds = time.perf_counter() - started
    return {"method": method, "k": k, "preserved": preserved, "keys": int(keys.shape[0] * keys.shape[1]),
            "seconds": seconds, "peak_mb": (_status("VmHWM") - baseline) / 2**20, "done": done,
            "failure": failure}


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
        save_inputs(inputs, max(args.ks), max(args.preserved))
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
    print(f"{method:8s} K={k:5d} P={preserved:4d}  {row['seconds']:8.2f} s  {row['peak_mb']:8.0f} MB  {row['failure']}",
          flush=True)
    return row


def _seconds(row: dict) -> str:
    return f"{row['seconds']:.2f}" + ("" if not row["failure"] else f" (failed after {row['done']})")


def write_results(rows: list[dict], argv: list[str] | None) -> None:
    given = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/many_edits.py" + ("" if not given else " " + " ".join(given))
    lines = [
        "# Many edits at once: one joint solve against K stacked single edits", "",
        f"Command: `{command}`; {datetime.date.today()}; {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {os.environ.get('BENCH_THREADS', '2')} threads; SD 1.4-shaped model "
        "(random weights), 32 cross-attention matrices, 77 keys per pair (no augmentation), 77 per preserved prompt, "
        f"lambda {LAMB}. Peak: memory above the process's size just before the solve (after a warm-up solve).", "",
        "| K pairs | P preserved | keys | joint s | stacked s | stacked / joint | joint peak MB | stacked peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_case = {(r["k"], r["preserved"], r["method"]): r for r in rows}
    for (k, preserved, method), r in by_case.items():
        if method != "joint":
            continue
        s = by_case[(k, preserved, "stacked")]
        lines.append(f"| {k} | {preserved} | {r['keys']} | {_seconds(r)} | {_seconds(s)} | "
                     f"{s['seconds'] / r['seconds']:.1f}x | {r['peak_mb']:.0f} | {s['peak_mb']:.0f} |")
    failed = [r for r in rows if r["failure"]]
    lines += [""] + [f"- {r['method']} K={r['k']} P={r['preserved']} stopped after {r['done']} edits: {r['failure']}"
                     for r in failed]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    raise SystemExit(main())
