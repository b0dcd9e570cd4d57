"""The ``colorstyle`` command: single-image commands plus the job commands."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from colorstyle_core.cli import add_core_commands, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorstyle",
        description="Colorize black-and-white photos and films (Zhang et al.) and paint them in the style "
        "of an artwork (Gatys et al.), on one machine or a Ray cluster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_core_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``colorstyle`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
