"""The ``colorstyle`` command: job commands (``run``, ``validate``, ``submit``, ``bench``, ``report``)
and the single-image, model, weights and evaluation commands (``jobs/cli_*.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from rich.console import Console

from colorstyle_core import imageio, loader, storage
from colorstyle_core.hints import HintsError
from jobs.bench import add_bench_command
from jobs.cli_eval import add_eval_commands
from jobs.cli_hints import add_hints_commands
from jobs.cli_images import add_image_commands
from jobs.cli_models import add_model_commands
from jobs.cli_train import add_train_command, cmd_train
from jobs.exit_codes import EXIT_CRASH, EXIT_FAILURES, EXIT_FATAL, EXIT_INTERRUPTED, EXIT_OK
from jobs.manifest import Manifest, ManifestError, is_training, load_manifest, read_text
from jobs.report import add_report_command


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.driver import RunOptions, run_job

    if is_training(read_text(args.manifest)):  # a training manifest: what `colorstyle train` does
        return cmd_train(argparse.Namespace(manifest=args.manifest, dry_run=args.dry_run, address=args.address))
    manifest = load_manifest(args.manifest)
    options = RunOptions(dry_run=args.dry_run, progress=not args.no_progress, address=args.address,
                         log_interval_s=args.log_interval)
    return run_job(manifest, options, Console(stderr=True, soft_wrap=True)).exit_code


def _validate_offline(manifest: Manifest, console: Console) -> int:
    """What can be checked without touching storage: the schema (already parsed), the weight records, the keys."""
    from colorstyle_core.weights import get_spec

    pipe = manifest.pipeline
    console.print(f"[bold]job[/bold] {manifest.resolved_job_id}: manifest valid (schema, keys and values)")
    style = pipe.stylize
    generated = " (generated UNTRAINED weights: pipeline.untrained_weights)" if pipe.untrained_weights else ""
    for step, name, weights in (("colorize", pipe.colorize.model if pipe.colorize else None,
                                 pipe.colorize.weights if pipe.colorize else None),
                                ("stylize", style.arch if style and style.method == "gatys" else None,
                                 style.weights if style else None)):
        if name is None:
            continue
        spec = get_spec(name)
        where = weights.uri if weights and weights.uri else f"the cache, else {spec.url}"
        console.print(f"  {step}: {name} weights {spec.filename} sha256 {spec.sha256}... from {where}{generated}")
    if style and style.method == "fast":
        console.print(f"  stylize: fast network {style.model.uri if style.model else None}{generated}")
    elif style and style.method == "arbitrary":
        where = style.model.uri if style.model and style.model.uri else "the cache, else the installed package"
        console.print(f"  stylize: arbitrary-style networks (sha256 {get_spec('arbitrary-predict').sha256[:8]}..., "
                      f"{get_spec('arbitrary-transform').sha256[:8]}...) from {where}")
    if style:
        steps = f"{style.steps or 300} steps " if style.method == "gatys" else ""
        size = f"{style.size} px" if style.size else "the input's size"
        console.print(f"  stylize ({style.method}): {len(style.styles)} style image(s), {steps}at {size}")
    if pipe.colorize and pipe.colorize.hints:
        console.print(f"  colorize: hints under {pipe.colorize.hints}")
    console.print(f"  inputs: {len(manifest.inputs)} entr{'y' if len(manifest.inputs) == 1 else 'ies'}; output: "
                  f"{manifest.output.prefix}; metrics: {manifest.metrics_prefix}")
    console.print("  skipped (--no-storage): listing inputs, probing videos, reading styles and hints, resolving "
                  "and verifying weights, checking that the output prefix is writable")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from jobs.driver import RunOptions, run_job

    if is_training(read_text(args.manifest)):
        if args.no_storage:
            from jobs.train.manifest import parse_train_manifest

            manifest = parse_train_manifest(read_text(args.manifest), args.manifest)
            print(f"training {manifest.run_name}: manifest valid (schema, keys and values)")
            return EXIT_OK
        return cmd_train(argparse.Namespace(manifest=args.manifest, dry_run=True, address=None))
    manifest = load_manifest(args.manifest)
    if args.no_storage:
        return _validate_offline(manifest, Console(stderr=True, soft_wrap=True))
    report = run_job(manifest, RunOptions(dry_run=True), Console(stderr=True, soft_wrap=True))
    if report.exit_code != EXIT_OK:
        return report.exit_code
    return EXIT_FAILURES if report.plan and report.plan.problems else EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from jobs.submit import submit

    try:
        sub = submit(args.manifest, args.address, wait=not args.no_wait)
    except RuntimeError as e:
        print(f"colorstyle: error: {e}", file=sys.stderr)
        return 2
    if args.no_wait:
        print(sub.submission_id)
        return 0
    print(f"job {sub.submission_id}: {sub.status}", file=sys.stderr)
    return 0 if sub.status == "SUCCEEDED" else 1


def add_job_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``run``, ``validate`` and ``submit``."""
    p = sub.add_parser("run", help="run a job manifest (embedded Ray, or RAY_ADDRESS / --address)",
                       description="Run a job manifest. Starts an embedded local Ray unless RAY_ADDRESS or "
                       "--address names a cluster. Rerunning the same manifest resumes it.")
    p.add_argument("manifest", help="path or fsspec URI of the manifest YAML")
    p.add_argument("--dry-run", action="store_true", help="print the plan (inputs, work units, actors), run nothing")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else embedded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (the interval log lines stay)")
    p.add_argument("--log-interval", type=float, default=30.0, metavar="SECONDS",
                   help="when the output is not a terminal, print a progress line this often (default 30; 0 = off)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="check a manifest and print its plan without running models",
                       description="Check a manifest: schema, inputs (listed), videos (probed), weights (resolved "
                       "and verified), styles; print the plan. Exit 0 = fine, 1 = some inputs have problems, "
                       "2 = the job could not start.")
    p.add_argument("manifest")
    p.add_argument("--no-storage", action="store_true",
                   help="offline: check only the schema, the weight records and the keys; touch no storage")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("submit", help="send a manifest to a Ray cluster (Ray Jobs API) and follow it",
                       description="Submit MANIFEST to the cluster's Jobs API with a runtime environment that "
                       "carries this project's code; follow its logs until it ends (or --no-wait).")
    p.add_argument("manifest")
    p.add_argument("--address", default=os.environ.get("RAY_DASHBOARD_ADDRESS", "http://127.0.0.1:8265"),
                   help="dashboard address of the cluster (default: $RAY_DASHBOARD_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return")
    p.set_defaults(func=cmd_submit)


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


if __name__ == "__main__":
    raise SystemExit(main())
