"""``colorstyle train``: run a training manifest (fine-tune a colorizer, train a fast stylizer) with Ray Train."""

from __future__ import annotations

import argparse

from rich.console import Console

from jobs.manifest_base import read_text


def cmd_train(args: argparse.Namespace) -> int:
    from jobs.train.driver import TrainOptions, run_training
    from jobs.train.manifest import parse_train_manifest

    manifest = parse_train_manifest(read_text(args.manifest), args.manifest)
    options = TrainOptions(dry_run=args.dry_run, address=args.address)
    return run_training(manifest, options, Console(stderr=True, soft_wrap=True)).exit_code


def add_train_command(sub: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    p = sub.add_parser(
        "train", help="run a training manifest (fine-tune a colorizer on your colour material; Ray Train)",
        description="Run a training manifest with Ray Train: data-parallel workers read the data through fsspec, "
        "checkpoint every train.checkpoint_every steps and write <model>-<sha8>.pth (loadable with --weights), "
        "train_metrics.parquet, validation.parquet and training.json under train.output. Starts an embedded "
        "local Ray unless RAY_ADDRESS or --address names a cluster. Rerunning the same manifest resumes it "
        "from its last checkpoint (a finished run is not redone). Exit 0 = trained, 1 = training failed, "
        "2 = it could not start.")
    p.add_argument("manifest", help="path or fsspec URI of the training manifest YAML")
    p.add_argument("--dry-run", action="store_true",
                   help="list and split the data and verify the starting weights; train nothing")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else embedded)")
    p.set_defaults(func=cmd_train)
