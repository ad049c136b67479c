"""Command line: ``timelab demo | edit | eval | tinyworld train | tinyworld measure``.

Each sub-command lives beside the code it drives and registers itself here through a
``register(subparsers) -> parser`` function; this module assembles the parser and runs the command. Every
command takes ``--verbose`` (library warnings and loading bars) and ``--threads`` (torch CPU threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

from .quiet import VERBOSE_ENV, quiet_loading

with quiet_loading():  # the commands' modules import diffusers, which warns on import
    from . import demo
    from .editing import cli as editing_cli
    from .editing.keys import UnknownWordsWarning
    from .evaluation import cli as evaluation_cli
    from .evaluation.tinyworld import measure
    from .tinyworld import training


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timelab", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = [demo.register(subparsers), editing_cli.register(subparsers)]
    tinyworld = subparsers.add_parser("tinyworld", help="the TinyWorld synthetic world and model")
    tinyworld_commands = tinyworld.add_subparsers(dest="tinyworld_command", required=True, metavar="ACTION")
    commands += [training.register(tinyworld_commands), measure.register(tinyworld_commands),
                 evaluation_cli.register(subparsers)]
    for command in commands:
        command.add_argument("--verbose", action="store_true", help="show library warnings and loading bars")
        command.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"

    def show(message, category, *_):
        print(f"timelab {args.command}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            if not args.verbose:
                warnings.simplefilter("ignore")
            warnings.simplefilter("default", UnknownWordsWarning)
            warnings.showwarning = show
            return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"timelab {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
