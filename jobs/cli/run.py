"""``colorstyle run``, ``validate`` and ``submit``: the job commands."""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from jobs.cli.train import cmd_train
from jobs.exit_codes import EXIT_FAILURES, EXIT_OK
from jobs.manifest import Manifest, load_manifest
from jobs.manifest_base import is_training, read_text


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
    from colorstyle_core.colorizers import COLORIZERS
    from colorstyle_core.style.methods import METHODS

    pipe = manifest.pipeline
    console.print(f"[bold]job[/bold] {manifest.resolved_job_id}: manifest valid (schema, keys and values)")
    generated = " (generated UNTRAINED weights: pipeline.untrained_weights)" if pipe.untrained_weights else ""
    if (c := pipe.colorize) is not None:
        where = c.weights.uri if c.weights and c.weights.uri else None
        console.print(f"  colorize: {COLORIZERS.get(c.model).describe(where)}{generated}")
    if (style := pipe.stylize) is not None:
        method = METHODS.get(style.method)
        ref = style.weights_ref
        console.print(f"  stylize: {method.describe(style.step(), ref.uri if ref else None)}"
                      f"{generated if method.checkpoint_name(style.step()) else ''}")
        steps = f"{style.steps or 300} steps " if "steps" in method.options else ""
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
