"""``timelab eval``: measure TIME on an item set (resumable; shards under ``accelerate launch`` or ``torchrun``)."""

from __future__ import annotations

import argparse

from ..editing.solver import PAPER_LAMBDA
from .bias import DEFAULT_REFINE
from ..models import TINYWORLD
from .experiment import DATASETS, MODEL_DEFAULTS, model_defaults, run_eval
from ..generation import GenerationSettings
from .judges import DEFAULT_CLIP

EXAMPLES = """examples:
  timelab eval --dataset tinyworld --seeds 32 --lamb 0.1 --output results/tinyworld.jsonl
  timelab eval --model CompVis/stable-diffusion-v1-4 --dataset timed-test-sd14 --output sd14.jsonl
  accelerate launch -m timelab.cli eval --model CompVis/stable-diffusion-v1-4 --dataset timed-test-sd14 \\
      --output sd14.jsonl          (items sharded over every GPU or machine; one merged file)
  torchrun --nproc_per_node 2 -m timelab.cli eval --dataset tinyworld --output tw.jsonl   (CPU processes)
Run the same command again to resume: finished items are skipped."""


def run(args: argparse.Namespace) -> int:
    batch_size = model_defaults(args.model).batch_size if args.batch_size is None else args.batch_size
    settings = GenerationSettings(steps=args.steps, guidance_scale=args.guidance, height=args.size,
                                  width=args.size, batch_size=batch_size)
    run_eval(args.model, args.dataset, args.output, seeds=args.seeds, lambdas=args.lamb, judge=args.judge,
             clip_model=args.clip_model, settings=settings, refine=args.refine, timed_dir=args.timed_dir,
             download=not args.no_download, device=args.device, values=args.values)
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval", help="evaluate TIME on TinyWorld or TIMED (efficacy, generality, specificity, bias)",
        description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tinyworld", help="'tinyworld' or a diffusers model id or folder")
    parser.add_argument("--dataset", default="tinyworld", help=f"one of {', '.join(DATASETS)}, or a TIMED-layout .csv")
    parser.add_argument("--output", required=True, help="results file (JSON lines); a summary .md is written beside it")
    tinyworld = model_defaults(TINYWORLD)
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"number of seeds per prompt (0..N-1; default {tinyworld.seeds} for tinyworld, "
                             f"{MODEL_DEFAULTS['*'].seeds} otherwise, as the paper)")
    parser.add_argument("--lamb", type=float, nargs="+", default=None,
                        help=f"lambda(s): one TIME row each (default {PAPER_LAMBDA}); for bias sets, the search grid")
    parser.add_argument("--values", nargs=2, default=["female", "male"], metavar=("VALUE", "OTHER"),
                        help="bias CSVs: the two values of the attribute (default: female male)")
    parser.add_argument("--refine", type=int, default=DEFAULT_REFINE,
                        help=f"bias sets: bisection steps after the lambda grid (default {DEFAULT_REFINE})")
    parser.add_argument("--judge", choices=["oracle", "clip"], default=None,
                        help="default: oracle for tinyworld, clip otherwise")
    parser.add_argument("--clip-model", default=None,
                        help=f"CLIP model id or folder for the clip judge (default: TinyWorld's own for tinyworld, "
                             f"{DEFAULT_CLIP} otherwise)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the pipeline's)")
    parser.add_argument("--size", type=int, default=None, help="image height and width (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"images per pipeline call (default {tinyworld.batch_size} for tinyworld, "
                             f"{MODEL_DEFAULTS['*'].batch_size} otherwise)")
    parser.add_argument("--timed-dir", default=None, help="folder holding the TIMED CSV files")
    parser.add_argument("--no-download", action="store_true", help="never download TIMED")
    parser.add_argument("--device", default=None, help="default: this process's accelerator, else cpu")
    parser.set_defaults(run=run)
    return parser
