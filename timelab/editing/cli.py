"""``timelab edit``: apply a TIME edit to a model and save it as a safetensors edit file."""

from __future__ import annotations

import argparse

from ..models import load_pipeline
from .solver import PAPER_LAMBDA
from .time_edit import time_edit


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("edit", help="solve a TIME edit and save it as an edit file")
    parser.add_argument("source", help='under-specified prompt, e.g. "a pack of roses"')
    parser.add_argument("destination", help='what it should mean, e.g. "a pack of blue roses"')
    parser.add_argument("--model", default="tinyworld", help='"tinyworld" (default), a diffusers id or folder')
    parser.add_argument("--lamb", type=float, default=PAPER_LAMBDA,
                        help=f"ridge strength lambda (default {PAPER_LAMBDA}, the paper's)")
    parser.add_argument("--only", choices=["keys", "values"], help="edit only to_k or only to_v")
    parser.add_argument("--layers", nargs="+", help="cross-attention layer names or prefixes to edit")
    parser.add_argument("--no-augment", action="store_true", help='skip the "A photo of ..." prefixes')
    parser.add_argument("--device", help="cpu, cuda, ... (default: best available)")
    parser.add_argument("--out", required=True, help="edit file to write (.safetensors)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if not args.out.endswith(".safetensors"):
        raise ValueError(f"--out must name a .safetensors file, got {args.out!r}")
    pipe = load_pipeline(args.model, device=args.device)
    edit = time_edit(
        pipe, args.source, args.destination, lamb=args.lamb, edit_keys=args.only != "values",
        edit_values=args.only != "keys", layers=args.layers, augment=not args.no_augment,
    )
    path = edit.save(args.out)
    t = edit.timings
    print(f"{edit}\ntext encoding {t['encode_s'] * 1e3:.1f} ms, solve {t['solve_s'] * 1e3:.1f} ms\nwrote {path}")
    return 0
