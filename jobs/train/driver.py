"""The driver of a training run: list and split the data, verify the starting weights, start Ray Train.

Everything that can be checked is checked here, before a worker starts: the manifest (at
the edge), the data (listed through fsspec; problems and skipped files recorded), the
starting weights (resolved and hash-checked through the loader), the output prefix
(written to). Then a :class:`ray.train.torch.TorchTrainer` runs
:func:`jobs.train.loop.train_loop_per_worker` on ``execution.workers`` workers. Its
checkpoints live under ``<output>/ray-train/<run name>/``; a run that dies (the driver, the
head, every worker) and is started again with the same manifest resumes from the last
one, and a finished run started again writes nothing. The driver holds no model code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import ray
from rich.console import Console
from rich.table import Table

from colorstyle_core import imageio, loader, storage
from colorstyle_core.synthetic import UNTRAINED_NOTE
from colorstyle_core.training.data import Source, split_by_file
from jobs.exit_codes import EXIT_FAILURES, EXIT_FATAL, EXIT_OK
from jobs.raycluster import connect_ray
from jobs.train.manifest import ColorizerTraining, TrainManifest
from jobs.train.outputs import TrainPaths

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A training run that cannot start (no usable data, unwritable output), in one sentence."""


@dataclass(frozen=True)
class TrainOptions:
    """How to run a training manifest.

    Attributes:
        dry_run: list and split the data, check the weights, start nothing.
        address: Ray cluster address (default: ``$RAY_ADDRESS``, else an embedded local Ray).
    """

    dry_run: bool = False
    address: str | None = None


@dataclass(frozen=True)
class TrainPlan:
    """The files a run learns from and the ones it holds out (whole files), and what it skipped."""

    train: tuple[Source, ...]
    validation: tuple[Source, ...]
    skipped: tuple[dict[str, str], ...]


@dataclass
class TrainReport:
    """What a run did.

    Attributes:
        run: the run's name (its Ray Train experiment).
        exit_code: 0 = trained (or already trained), 1 = training failed, 2 = could not start.
        summary: ``training.json``'s content when the run finished.
        plan: the data split.
    """

    run: str
    exit_code: int = EXIT_OK
    summary: dict[str, Any] | None = None
    plan: TrainPlan | None = None
    error: str | None = None
    already_done: bool = False
    notes: list[str] = field(default_factory=list)


def code_version() -> str:
    """``colorstyle <version>``, and the git commit when the code runs from a checkout."""
    try:
        version = metadata.version("colorstyle")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return f"colorstyle {version} (git {commit}{'+changes' if dirty else ''})"
        except (OSError, subprocess.SubprocessError):
            pass
    return f"colorstyle {version}"


def absolute_output(manifest: TrainManifest) -> TrainManifest:
    """The manifest with a relative local ``train.output`` made absolute (workers may run elsewhere)."""
    output = manifest.train.output
    if not storage.is_local(output) or os.path.isabs(output.removeprefix("file://")):
        return manifest
    train = manifest.train.model_copy(update={"output": os.path.abspath(output.removeprefix("file://"))})
    return manifest.model_copy(update={"train": train})


def plan_training(manifest: TrainManifest) -> TrainPlan:
    """List ``train.data`` and hold out whole files for validation.

    Raises:
        storage.StorageError: the data cannot be listed at all.
        TrainingError: no image or video file was found.
    """
    from jobs.listing import list_files

    spec = manifest.train
    files, problems, ignored = list_files(spec.data, manifest.storage_options, spec.output)
    skipped = [{"uri": p.input_uri, "reason": f"{p.error_type}: {p.message}"} for p in problems]
    skipped += [{"uri": uri, "reason": "not an image or video suffix"} for uri in ignored]
    if not files:
        raise TrainingError(f"no image or video files in train.data ({len(skipped)} problem(s): "
                            + "; ".join(s["reason"] for s in skipped[:3]) + ")")
    sources = [Source(f.uri, f.kind) for f in files]
    if spec.validation_data is None:
        train, held = split_by_file(sources, spec.validation, spec.seed)
        return TrainPlan(tuple(train), tuple(held), tuple(skipped))
    held_files, problems, _ = list_files(spec.validation_data, manifest.storage_options, spec.output)
    skipped += [{"uri": p.input_uri, "reason": f"{p.error_type}: {p.message}"} for p in problems]
    held_uris = {f.uri for f in held_files}
    train = [s for s in sources if s.uri not in held_uris]
    if not train:
        raise TrainingError("every file in train.data is also in train.validation_data: nothing left to learn from")
    return TrainPlan(tuple(train), tuple(Source(f.uri, f.kind) for f in held_files), tuple(skipped))


def _ray_storage(paths: TrainPaths) -> tuple[str, Any]:
    """Ray Train's ``storage_path`` and ``storage_filesystem`` for the run's output prefix."""
    fs, path = storage.filesystem(paths.ray_storage, paths.options)
    if storage.is_local(paths.ray_storage):
        return os.path.abspath(path), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return path, PyFileSystem(FSSpecHandler(fs))


def _scaling(manifest: TrainManifest):
    """Ray Train's scaling: one GPU per worker when the cluster has one for every worker (``auto``), else
    CPUs only (a group that waited for GPUs it cannot get would never start)."""
    from ray.train import ScalingConfig

    ex = manifest.execution
    gpus = ex.gpus_per_worker
    if gpus == "auto":
        available = ray.cluster_resources().get("GPU", 0)
        gpus = 1.0 if available >= ex.workers else 0.0
        if 0 < available < ex.workers:
            log.warning("%g GPU(s) for %d workers: training on CPUs (set execution.workers to the GPU count, or "
                        "gpus_per_worker to a fraction)", available, ex.workers)
    resources = {"CPU": ex.cpus_per_worker, **({"GPU": gpus} if gpus else {})}
    return ScalingConfig(num_workers=ex.workers, use_gpu=bool(gpus), resources_per_worker=resources)


def print_plan(manifest: TrainManifest, plan: TrainPlan, console: Console) -> None:
    spec = manifest.train
    what = spec.model if isinstance(spec, ColorizerTraining) else f"fast stylizer ({len(spec.styles)} style(s))"
    console.print(f"[bold]training[/bold] {manifest.run_name}: {spec.kind} {what}, {spec.steps} steps of "
                  f"{spec.batch_size} crops of {spec.size} px on {manifest.execution.workers} worker(s)")
    videos = sum(s.kind == "video" for s in plan.train)
    films = f", {videos} of them film(s): {spec.frames_per_video} frames each, spread over the film" if videos else ""
    console.print(f"  data: {len(plan.train)} file(s) to learn from{films}; {len(plan.validation)} held out for "
                  "validation")
    for s in plan.skipped:
        console.print(f"  [yellow]skipped[/yellow] {s['uri']}: {s['reason']}")
    console.print(f"  output: {spec.output}")


def print_summary(summary: dict[str, Any], console: Console) -> None:
    first, final = summary.get("first_loss"), summary.get("final_loss")
    console.print(f"trained {summary['model']} for {summary['steps']} steps on {summary['workers']} worker(s) in "
                  f"{summary['wall_s']:.1f} s ({summary['samples_per_s']:.2f} samples/s); loss "
                  f"{first:.4f} -> {final:.4f}" if first is not None and final is not None else "")
    for s in summary.get("skipped", []):
        console.print(f"  [yellow]skipped[/yellow] {s['uri']}: {s['reason']}")
    if summary.get("validation"):
        table = Table(title=f"held-out validation ({summary.get('validation_samples', 0)} samples)")
        keys = list(next(iter(summary["validation"].values())))
        table.add_column("weights")
        for key in keys:
            table.add_column(key.replace("_", " "), justify="right")
        for which, m in summary["validation"].items():
            table.add_row(which, *(f"{m[k]:.4g}" if k in m else "" for k in keys))
        console.print(table)
    console.print(f"checkpoint: {summary['checkpoint']}")


def load_styles(manifest: TrainManifest) -> list[tuple[str, str, np.ndarray]]:
    """The style images of a stylizer run, read and decoded in the driver: ``(uri, sha256, (H, W, 3) uint8)``.

    Raises:
        TrainingError: a style image that cannot be read or decoded (names it and why).
    """
    spec = manifest.train
    out = []
    for uri in getattr(spec, "styles", ()):
        try:
            data = storage.read_bytes(uri, manifest.storage_options)
            decoded = imageio.decode_image(data, uri)
        except (FileNotFoundError, OSError, imageio.ImageDecodeError) as e:
            raise TrainingError(f"style image {uri}: {e}") from None
        pixels = decoded.pixels if decoded.pixels.shape[2] == 3 else np.repeat(decoded.pixels, 3, axis=2)
        out.append((uri, hashlib.sha256(data).hexdigest(), np.round(pixels * 255.0).astype(np.uint8)))
    return out


def _already_done(manifest: TrainManifest, paths: TrainPaths) -> dict[str, Any] | None:
    """The summary of a finished run of this manifest, or ``None``."""
    try:
        summary = json.loads(storage.read_bytes(paths.summary, paths.options))
    except (FileNotFoundError, ValueError):
        return None
    if summary.get("run") == manifest.run_name and summary.get("steps") == manifest.train.steps and \
            summary.get("checkpoint") and storage.exists(summary["checkpoint"], paths.options):
        return summary
    return None


def _check_writable(paths: TrainPaths, run: str) -> None:
    probe = storage.join_under(paths.output, f".write-test-{run}")
    storage.write_bytes_atomic(probe, b"ok", paths.options)
    fs, path = storage.filesystem(probe, paths.options)
    fs.rm_file(path)


def run_training(manifest: TrainManifest, options: TrainOptions = TrainOptions(),
                 console: Console | None = None) -> TrainReport:
    """Run (or dry-run) a training manifest; rerunning the same manifest resumes it.

    Returns:
        The report; ``exit_code`` 0 = trained (or had been), 1 = training failed after it
        started (workers kept failing beyond ``execution.max_failures``), 2 = it could not
        start (no data, bad weights, unwritable output, unreachable storage).
    """
    from jobs.train.tasks import check_start, load_start

    console = console or Console(stderr=True, soft_wrap=True)
    manifest = absolute_output(manifest)
    spec = manifest.train
    paths = TrainPaths(spec.output, manifest.storage_options)
    report = TrainReport(manifest.run_name)

    def cannot_start(e: BaseException) -> TrainReport:
        console.print(f"[bold red]error[/bold red]: {e}")
        report.exit_code, report.error = EXIT_FATAL, str(e)
        return report

    if getattr(spec, "untrained_init", False) or getattr(spec, "untrained_vgg", False):
        console.print(f"[bold red]{UNTRAINED_NOTE}[/bold red] (starting weights)")
    try:
        done = _already_done(manifest, paths)
        if done is not None:
            console.print(f"training {report.run}: already trained ({done['steps']} steps); nothing to do")
            report.summary, report.already_done = done, True
            print_summary(done, console)
            return report
        plan = plan_training(manifest)
        report.plan = plan
        if getattr(spec, "temporal_weight", 0) > 0 and not any(s.kind == "video" for s in plan.train):
            raise TrainingError("train.temporal_weight needs videos in train.data (consecutive frames); "
                                "there are none to learn from")
        print_plan(manifest, plan, console)
        start = load_start(manifest)
        check_start(manifest, start)
        styles = load_styles(manifest)
        if options.dry_run:
            return report
        _check_writable(paths, report.run)
    except (storage.StorageError, TrainingError, loader.WeightsError) as e:
        return cannot_start(e)

    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    from jobs.train.loop import FatalNote, train_loop_per_worker

    started_ray = connect_ray(options.address)
    note_name = f"colorstyle-train-fatal-{report.run}"
    note = ray.remote(FatalNote).options(name=note_name, num_cpus=0).remote()
    try:
        storage_path, filesystem = _ray_storage(paths)
        config = {
            "manifest": manifest.model_dump(mode="json"),
            "start": ray.put(start) if start is not None else None,
            "styles": ray.put(styles) if styles else None,
            "train": [[s.uri, s.kind] for s in plan.train],
            "validation": [[s.uri, s.kind] for s in plan.validation],
            "skipped": list(plan.skipped),
            "threads": max(1, int(manifest.execution.cpus_per_worker)),
            "code_version": code_version(),
            "fatal_note": note_name,
        }
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=config, scaling_config=_scaling(manifest),
            run_config=RunConfig(name=report.run, storage_path=storage_path, storage_filesystem=filesystem,
                                 failure_config=FailureConfig(max_failures=manifest.execution.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2),
                                 logging_config=LoggingConfig(log_level="WARNING")))
        try:
            trainer.fit()
        except TrainingFailedError as e:
            console.print(f"[bold red]training failed[/bold red]: {e}")
            report.exit_code, report.error = EXIT_FAILURES, str(e)
            return report
        fatal = ray.get(note.get.remote())
        if fatal:  # a worker met what every attempt would meet: not retried
            console.print(f"[bold red]training failed[/bold red]: {fatal}")
            report.exit_code, report.error = EXIT_FAILURES, fatal
            return report
    finally:
        ray.kill(note)
        if started_ray:
            ray.shutdown()
    report.summary = json.loads(storage.read_bytes(paths.summary, paths.options))
    print_summary(report.summary, console)
    return report
