"""Command line: ``timelab demo | edit | eval | tinyworld train | tinyworld measure``.

Each sub-command lives beside the code it drives and registers itself here through a
``register(subparsers)`` function; this module assembles the parser and runs the command. Every
command takes ``--verbose`` (library warnings and loading bars) and ``--threads`` (torch CPU threads).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from .editing.keys import UnknownWordsWarning
from .quiet import VERBOSE_ENV, quiet_loading


def _commands(parser: argparse.ArgumentParser):
    """Every runnable (leaf) sub-command parser under ``parser``."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in action.choices.values():
            yield from (_commands(sub) if sub._subparsers else [sub])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timelab", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import demo
    from .editing import cli as editing_cli
    from .evaluation import cli as evaluation_cli
    from .tinyworld import training as tinyworld_training

    for module in (demo, editing_cli, tinyworld_training, evaluation_cli):
        module.register(subparsers)
    for command in _commands(parser):
        command.add_argument("--verbose", action="store_true", help="show library warnings and loading bars")
        command.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's own)")
    return parser


def main(argv: list[str] | None = None) -> int:
    with quiet_loading("--verbose" in (sys.argv[1:] if argv is None else argv)):
        parser = build_parser()  # the commands' modules import diffusers, which warns on import
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be 0 (torch's default) or more, got {args.threads}")
    if args.threads:
        import torch

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
