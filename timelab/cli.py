"""Command line: ``timelab demo | edit | eval | tinyworld train``.

Each sub-command lives beside the code it drives and registers itself here through a
``register(subparsers)`` function; this module only assembles the parser.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timelab", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from . import demo
    from .editing import cli as editing_cli

    demo.register(subparsers)
    editing_cli.register(subparsers)
    from .tinyworld import training as tinyworld_training

    tinyworld_training.register(subparsers)
    from .evaluation import cli as evaluation_cli

    evaluation_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"timelab {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
