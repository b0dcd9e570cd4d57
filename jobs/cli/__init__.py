"""The ``colorstyle`` command: the entry point and its subcommands, one module each audience:
job commands (:mod:`jobs.cli.run`: ``run``, ``validate``, ``submit``), the single-image commands
(:mod:`jobs.cli.images`), ``models``/``weights`` (:mod:`jobs.cli.models`), ``eval`` (:mod:`jobs.cli.eval`),
``hints`` (:mod:`jobs.cli.hints`), ``train`` (:mod:`jobs.cli.train`), ``bench`` (:mod:`jobs.bench.job`) and
``report`` (:mod:`jobs.report`)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from colorstyle_core import imageio, loader, storage
from colorstyle_core.hints import HintsError
from jobs.bench.job import add_bench_command
from jobs.cli.eval import add_eval_commands
from jobs.cli.hints import add_hints_commands
from jobs.cli.images import add_image_commands
from jobs.cli.models import add_model_commands
from jobs.cli.run import add_job_commands
from jobs.cli.train import add_train_command
from jobs.exit_codes import EXIT_CRASH, EXIT_FATAL, EXIT_INTERRUPTED
from jobs.manifest_base import ManifestError
from jobs.report import add_report_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="colorstyle",
        description="Colorize black-and-white photos and films (Zhang et al.) and paint them in the style "
        "of an artwork (Gatys et al.), on one machine or a Ray cluster.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_image_commands(sub)
    add_model_commands(sub)
    add_eval_commands(sub)
    add_hints_commands(sub)
    add_job_commands(sub)
    add_train_command(sub)
    add_bench_command(sub)
    add_report_command(sub)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: expected failures become one clear line and exit code 2, anything else
    (a bug) its traceback and exit code 3."""
    try:
        return args.func(args)
    except ManifestError as e:
        print(f"colorstyle: invalid manifest:\n{e}", file=sys.stderr)
        return EXIT_FATAL
    except (loader.WeightsError, imageio.ImageDecodeError, HintsError, storage.StorageError,
            FileNotFoundError, ValueError) as e:  # VideoError is a ValueError
        print(f"colorstyle: error: {e}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("colorstyle: interrupted (finished work is recorded; rerun to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 -- a bug: say so, distinctly from "some inputs failed"
        traceback.print_exc()
        print("colorstyle: internal error (a bug; the traceback is above): exit code 3", file=sys.stderr)
        return EXIT_CRASH


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``colorstyle`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_command(args)
