"""The job driver: plan, check, fan out to the actor pool, retry, assemble, record.

``run_job(manifest)`` is what ``colorstyle run`` calls, locally (an embedded Ray is
started when none is running) or on a cluster (``RAY_ADDRESS`` / the Jobs API).
Bad inputs become failure rows and never stop the rest; finished work is recorded
as it completes, so a rerun resumes.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.table import Table

from colorstyle_core import imageio, loader, storage
from colorstyle_core.colorizers import COLORIZERS
from colorstyle_core.pipeline_types import ModelWeights
from colorstyle_core.provenance import mark_untrained_logs, unmark_untrained_logs
from colorstyle_core.style.methods import METHODS
from colorstyle_core.synthetic import UNTRAINED_NOTE, UNTRAINED_TAG
from jobs.actor import PipelineActor
from jobs.exit_codes import EXIT_FAILURES, EXIT_FATAL, EXIT_OK
from jobs.feed import PlanFeed
from jobs.listing import InputProblem
from jobs.manifest import Manifest
from jobs.metrics.store import MetricsStore
from jobs.metrics.summary import summarize, summarize_job
from jobs.metrics.tables import STAGE_COLUMNS, FailureRow
from jobs.metrics.writer import MetricsWriter
from jobs.paths import staging_root
from jobs.plan import Plan, Tally, header_estimate, plan_job, plan_stream
from jobs.pool import PoolError, start_pool
from jobs.progress import JobBoard, ProgressReporter
from jobs.raycluster import connect_ray
from jobs.resume import DoneState, load_done_state
from jobs.scheduler import Scheduler
from jobs.units.base import ActorInfo, WorkerSpec

log = logging.getLogger(__name__)



class FatalJobError(RuntimeError):
    """The job cannot start (weights, style images, output prefix); nothing was processed."""


@dataclass(frozen=True)
class RunOptions:
    """How to run a manifest.

    Attributes:
        dry_run: plan and print, run nothing.
        progress: show a progress bar.
        address: Ray address; ``None`` = ``RAY_ADDRESS`` if set, else an embedded local Ray.
        actor_ready_timeout_s: how long to wait for the pool (GPU nodes may have to boot).
        actor_class: the actor's class (tests inject faults with a subclass).
        log_interval_s: where the console is not a terminal, seconds between progress lines (0 = none).
    """

    dry_run: bool = False
    progress: bool = True
    address: str | None = None
    actor_ready_timeout_s: float = 900.0
    actor_class: type = PipelineActor
    log_interval_s: float = 30.0


@dataclass
class RunReport:
    """The outcome of one run: ``summary`` is this run's own figures, ``job_summary`` the whole job's.

    ``timings`` (seconds from the start of :func:`run_job`, wall clock unless said): ``resume_read_s``
    (what earlier runs finished, read), ``plan_s`` (the whole input listed; with a bounded feed the
    listing of a large job waits on the dispatch), ``first_unit_s`` (the first unit submitted),
    ``driver_cpu_s`` and ``dispatch_cpu_s`` (this process's CPU seconds, all threads: the whole run,
    and from the first unit submitted to the end of processing), ``units_recorded``,
    ``metrics_flushes``, ``metrics_flush_s`` (the writer's seconds), ``part_files`` (the most part
    files this run's writer had), ``consolidate_s`` (summary and job tables).
    """

    job_id: str
    run_id: str
    exit_code: int
    plan: Plan | Tally | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    failures: list[FailureRow] = field(default_factory=list)
    actors: list[ActorInfo] = field(default_factory=list)
    pool_ready_at: float | None = None  # when the first actor had loaded its models (wall clock): work starts
    timings: dict[str, Any] = field(default_factory=dict)
    job_summary: dict[str, Any] = field(default_factory=dict)  # the whole job, as written to summary.json


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


# ---- printing ------------------------------------------------------------------------------


def print_plan(plan: Plan, manifest: Manifest, console: Console) -> None:
    ex = manifest.execution
    console.print(f"[bold]job[/bold] {plan.job_id}")
    console.print(f"  inputs found: {plan.inputs_found} "
                  f"({plan.skipped_images} images and {plan.skipped_videos} videos already done)")
    console.print(f"  image shards: {len(plan.shards)} ({sum(s.frames for s in plan.shards)} images, "
                  f"{ex.images_per_shard} per shard)")
    for v in plan.videos:
        todo = sum(1 for r in plan.ranges if r.video_key == v.key)
        estimate = " (as its header states: the job probes it exactly)" if v.info.estimated else ""
        kind = "image sequence" if v.info.is_sequence else "video"
        console.print(f"  {kind} {v.rel}: frames [{v.start}, {v.stop}) of {v.info.frame_count}{estimate}, "
                      f"{v.info.width}x{v.info.height} @ {float(v.info.average_rate):.3f} fps, "
                      f"{len(v.unit_ids)} ranges ({todo} to do) -> {v.output_uri}{'/' if v.as_frames else ''}"
                      + (f"; keyframe hints {v.hints_uri}" if v.hints_uri else ""))
    console.print(f"  work units: {len(plan.shards) + len(plan.ranges) + len(plan.tracks)}"
                  f"{f' ({len(plan.tracks)} carrying keyframe hints through shots)' if plan.tracks else ''}, "
                  f"frames to process: {plan.frames_to_do}")
    console.print(f"  actors: {ex.actors} x (gpus={ex.gpus_per_actor}, cpus={ex.cpus_per_actor}), "
                  f"batch {ex.batch_size}, {ex.max_in_flight_per_actor} units in flight per actor, "
                  f"{ex.retries} retries")
    console.print(f"  output: {manifest.output.prefix}   metrics: {manifest.metrics_prefix}")
    for p in plan.problems:
        console.print(f"  [red]problem[/red] {p.error_type}: {p.message}")
    if plan.ignored:
        shown = ", ".join(plan.ignored[:10]) + (f" and {len(plan.ignored) - 10} more" if len(plan.ignored) > 10 else "")
        console.print(f"  ignored {len(plan.ignored)} file{'s' if len(plan.ignored) != 1 else ''} that are not "
                      f"images or videos: {shown}", highlight=False)


def print_listed(tally: Tally, console) -> None:
    """The line printed once a run's inputs are all listed (its units started as they were found)."""
    ignored = f"; {tally.ignored_count} other files ignored" if tally.ignored_count else ""
    probes = f" (and {tally.probes} films without an index, planned once probed on the cluster)" \
        if tally.probes else ""
    console.print(f"  listed {tally.inputs_found} inputs: {tally.units} work units, {tally.frames} frames to "
                  f"process{probes} ({tally.skipped_images} images and {tally.skipped_videos} videos already done; "
                  f"{tally.problems} problems{ignored})", highlight=False)


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"run {summary['run_id']}" + (" — UNTRAINED weights" if summary.get("weights_untrained")
                                                       else ""))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("frames/images processed", str(summary["frames"]))
    table.add_row("start-up: Ray, actors, models (s)", f"{summary.get('startup_s', 0.0):.2f}")
    table.add_row("processing wall time (s)", f"{summary['wall_s']:.2f}")
    table.add_row("frames/s overall (processing)", f"{summary['frames_per_s']:.3f}")
    table.add_row("frames/s end to end", f"{summary.get('end_to_end_frames_per_s', 0.0):.3f}")
    for name, a in summary["per_actor"].items():
        table.add_row(f"  {name} frames/s (busy)", f"{a['frames_per_s']:.3f} ({a['frames_per_busy_s']:.3f})")
    for stage, p in summary["stages"].items():
        table.add_row(f"{stage} p50 / p95 (s)", f"{p['p50']:.4f} / {p['p95']:.4f}")
    table.add_row("failures", str(summary["failures"]))
    table.add_row("skipped (done earlier)", str(summary["skipped_finished_inputs"]))
    console.print(table)


# ---- checks before any work ----------------------------------------------------------------


def load_weights(manifest: Manifest) -> tuple[ModelWeights | None, ModelWeights | None]:
    """Resolve and verify every weight set the pipeline needs, in the driver, before any work.

    Raises:
        loader.WeightsError: with the clear message naming the file and how to provide it.
    """
    pipe = manifest.pipeline
    colorizer = stylizer = None
    if (c := pipe.colorize) is not None and not pipe.untrained_weights:
        colorizer = COLORIZERS.get(c.model).load_weights(manifest.weights_source(c.weights))
    if (st := pipe.stylize) is not None:
        stylizer = METHODS.get(st.method).weights(st.step(), manifest.weights_source(st.weights_ref),
                                                  pipe.untrained_weights)
    return colorizer, stylizer


def _check_images(manifest: Manifest) -> None:
    """The style images and the colour reference decode, before any work.

    Raises:
        FatalJobError: naming the image and the problem.
    """
    step = manifest.pipeline.stylize
    colorize = manifest.pipeline.colorize
    if colorize is not None and colorize.reference:
        try:
            imageio.decode_image(storage.read_bytes(colorize.reference, manifest.storage_options), colorize.reference)
        except (FileNotFoundError, OSError, imageio.ImageDecodeError) as e:
            raise FatalJobError(f"colour reference {colorize.reference}: {e}") from None
    for uri in step.styles if step else ():
        try:
            imageio.decode_image(storage.read_bytes(uri, manifest.storage_options), uri)
        except (FileNotFoundError, OSError, imageio.ImageDecodeError) as e:
            raise FatalJobError(f"style image {uri}: {e}") from None


def run_job(manifest: Manifest, options: RunOptions = RunOptions(), console: Console | None = None) -> RunReport:
    """Run (or dry-run) a manifest. Never raises for bad inputs: they become failure rows.

    Returns:
        The report; ``exit_code`` 0 = all done, 1 = some inputs failed, 2 = the job could not start.
    """
    console = console or Console(stderr=True, soft_wrap=True)
    untrained = manifest.pipeline.untrained_weights
    marker = None
    if untrained:  # every line this run prints or logs says so
        console = _UntrainedConsole(console)
        marker = mark_untrained_logs()
        console.print(f"[bold red]{UNTRAINED_NOTE}[/bold red]")
    try:
        return _run(manifest, options, console, untrained)
    finally:
        if marker is not None:
            unmark_untrained_logs(marker)


class _UntrainedConsole:
    """A console whose every text line says the weights are untrained (tables carry it in their title)."""

    def __init__(self, console: Console):
        self._console = console

    def print(self, *objects, **kwargs) -> None:
        if objects and isinstance(objects[0], str):
            objects = (f"({UNTRAINED_TAG} weights) " + objects[0], *objects[1:])
        self._console.print(*objects, **kwargs)

    @property
    def rich(self) -> Console:
        return self._console


def _rich(console) -> Console:
    return console.rich if isinstance(console, _UntrainedConsole) else console


def _run(manifest: Manifest, options: RunOptions, console, untrained: bool) -> RunReport:
    job_id, run_id = manifest.resolved_job_id, new_run_id()
    store = MetricsStore(manifest.metrics_prefix, job_id, run_id, manifest.output_storage_options)
    report = RunReport(job_id, run_id, EXIT_OK)
    start, start_cpu = time.time(), time.process_time()

    def cannot_start(e: Exception) -> RunReport:
        console.print(f"[bold red]error[/bold red]: {e}")
        report.exit_code = EXIT_FATAL
        report.failures = [FailureRow(job_id, run_id, "", "", type(e).__name__, str(e), 0)]
        return report

    try:  # reads only: a job that cannot start leaves nothing behind
        done = load_done_state(store, manifest)
        report.timings["resume_read_s"] = time.time() - start
        if options.dry_run:
            plan = plan_job(manifest, done, prober=lambda f: header_estimate(f, manifest.storage_options))
            report.plan = plan
            print_plan(plan, manifest, console)
            return report
        tally = Tally()
        feed = PlanFeed(plan_stream(manifest, done, tally=tally), on_end=lambda: print_listed(tally, console))
        head = _first_work(feed)  # the listing goes on in the background from here
    except storage.StorageError as e:
        return cannot_start(e)
    report.plan = tally
    if not head:
        report.timings["plan_s"] = time.time() - start
        return _nothing_to_do(manifest, store, tally, report, console)
    only_problems = all(isinstance(item, InputProblem) for item in head)  # and the listing is over
    for item in reversed(head):
        feed.push_back(item)
    console.print(f"[bold]job[/bold] {job_id}: listing inputs and starting the pool; output {manifest.output.prefix}, "
                  f"metrics {manifest.metrics_prefix}", highlight=False)
    try:
        _check_images(manifest)
        colorizer_weights, stylizer_weights = load_weights(manifest)
        store.check_writable()  # last: it creates the metrics prefix
    except (storage.StorageError, FatalJobError, loader.WeightsError) as e:
        feed.close()
        return cannot_start(e)

    writer = MetricsWriter(store)
    sched = None
    problems = [FailureRow(job_id, run_id, p.input_uri, "", p.error_type, p.message, 0)
                for p in head] if only_problems else []
    if problems:  # nothing to process: no pool
        writer.add_failures(problems)
    else:
        started_ray = connect_ray(options.address)
        try:
            sched = _run_pool(manifest, feed, writer, done, colorizer_weights, stylizer_weights, options, run_id,
                              console, report)
        except PoolError as e:
            console.print(f"[bold red]error[/bold red]: {e}")
            report.exit_code = EXIT_FATAL
            writer.add_failures([FailureRow(job_id, run_id, "", "", type(e).__name__, str(e), 0)])
        finally:
            feed.close()
            if started_ray:
                ray.shutdown()
    writer.close()  # raises if the metrics could not be written: the outputs are there, a rerun redoes the records
    end, end_cpu = time.time(), time.process_time()
    dispatching = sched is not None and sched.first_submit_at is not None
    report.timings.update(
        plan_s=(feed.listed_at or end) - start, first_unit_s=(sched.first_submit_at - start) if dispatching else None,
        driver_cpu_s=end_cpu - start_cpu, dispatch_cpu_s=(end_cpu - sched.first_submit_cpu) if dispatching else None,
        units_recorded=writer.durable_units, metrics_flushes=writer.flushes, metrics_flush_s=writer.flush_seconds,
        part_files=writer.max_parts)
    _remove_empty_staging(manifest, job_id)
    failures = sched.failures if sched else problems
    failure_count = (sched.failure_count if sched else len(problems)) + (report.exit_code == EXIT_FATAL)
    consolidating = time.time()
    frames = store.table("frames", ["run_id", "actor", "total_s", "queue_wait_s", *STAGE_COLUMNS])
    ready = report.pool_ready_at or end
    summary = summarize(frames, run_id, end - ready, failure_count, job_frames=frames.num_rows,
                        skipped=tally.skipped_images + tally.skipped_videos, untrained=untrained)
    n = summary["frames"]
    summary.update(job_id=job_id, startup_s=ready - start, end_to_end_s=end - start,
                   end_to_end_frames_per_s=n / (end - start) if n else 0.0,
                   manifest=manifest.redacted(), actors=[a.__dict__ for a in report.actors])
    store.write_run_summary(summary)
    report.job_summary = summarize_job(store.run_summaries(), summary, job_frames=frames.num_rows)
    report.written = store.consolidate(report.job_summary)
    report.timings["consolidate_s"] = time.time() - consolidating
    report.summary, report.failures = summary, failures
    print_summary(summary, console)
    _print_job_line(report.job_summary, console)
    for f in failures:
        console.print(f"  [red]failed[/red] {f.input_uri or '(job)'}: {f.error_type}: {f.message}")
    if failure_count > len(failures):
        console.print(f"  ... and {failure_count - len(failures)} more failures (failures.parquet lists them all)")
    console.print(f"outputs: {manifest.output.prefix}")
    console.print(f"metrics: {manifest.metrics_prefix} (frames.parquet, units.parquet, failures.parquet, "
                  f"summary.json)")
    if report.exit_code != EXIT_FATAL:
        report.exit_code = EXIT_FAILURES if failure_count else EXIT_OK
    return report


def _first_work(feed: PlanFeed) -> list:
    """The plan's items up to its first piece of work (a unit, a video, a film to probe); only problems, or
    nothing, when the listing ends first."""
    head = []
    while (item := feed.take(timeout=86400.0)) is not None:
        head.append(item)
        if not isinstance(item, InputProblem):
            break
    return head


def _nothing_to_do(manifest: Manifest, store: MetricsStore, tally: Tally, report: RunReport, console) -> RunReport:
    """A rerun of a finished job: report what the job did, write nothing."""
    job = store.job_summary() or {}
    report.summary = summarize(store.table("frames", ["run_id"]), report.run_id, 0.0, 0,
                               job_frames=int(job.get("frames") or 0),
                               skipped=tally.skipped_images + tally.skipped_videos,
                               untrained=manifest.pipeline.untrained_weights)
    report.job_summary = job
    console.print(f"nothing to do: all {tally.skipped_images + tally.skipped_videos} inputs were finished by "
                  f"earlier runs; nothing was written (job summary: {manifest.metrics_prefix}/summary.json)")
    if job:
        _print_job_line(job, console)
    return report


def _print_job_line(job: dict[str, Any], console) -> None:
    runs = job.get("runs") or []
    console.print(f"job: {job.get('frames', 0)} frames/images done over {len(runs)} run(s), "
                  f"{job.get('frames_per_s', 0.0):.3f} frames/s over the {job.get('runs_with_work', 0)} run(s) "
                  f"that did work ({job.get('wall_s', 0.0):.1f} s of processing)", highlight=False)


def _remove_empty_staging(manifest: Manifest, job_id: str) -> None:
    """Drop the job's staging prefix once every video in it was assembled (its segments removed)."""
    fs, root = storage.filesystem(staging_root(manifest.output.prefix, job_id), manifest.output_storage_options)
    try:
        if fs.exists(root) and not [p for p in fs.find(root) if not p.endswith("/")]:
            fs.rm(root, recursive=True)
            parent = root.rstrip("/").rsplit("/", 1)[0]
            if fs.exists(parent) and not fs.ls(parent):
                fs.rm(parent, recursive=True)
    except OSError as e:  # cosmetic: never fail a finished job over it
        log.warning("could not remove empty staging prefix %s: %s", root, e)


def worker_spec(manifest: Manifest, job_id: str, run_id: str) -> WorkerSpec:
    """What every actor of this job needs to know (also what the benchmark's in-process actor path uses)."""
    ex = manifest.execution
    return WorkerSpec(
        job_id=job_id, run_id=run_id, pipeline=manifest.pipeline.frame_pipeline(),
        untrained_seed=0 if manifest.pipeline.untrained_weights else None,
        storage_options=manifest.storage_options, output_storage_options=manifest.output_storage_options,
        batch_size=ex.batch_size, video_crf=manifest.output.video_crf, video_preset=manifest.output.video_preset,
        video_encoder=manifest.output.video_encoder,
        cpu_threads=max(1, int(ex.cpus_per_actor)), measure_consistency=manifest.metrics.video_consistency,
        reencode_videos=manifest.reencode_videos, max_pixels=ex.max_pixels, precision=ex.precision,
        overlap_io=ex.overlap_io, compile_colour=ex.compile_colour,
    )


def _run_pool(manifest: Manifest, feed: PlanFeed, writer: MetricsWriter, done: DoneState,
              colorizer_weights: ModelWeights | None, stylizer_weights: ModelWeights | None,
              options: RunOptions, run_id: str, console: Console, report: RunReport) -> Scheduler:
    ex = manifest.execution
    spec = worker_spec(manifest, report.job_id, run_id)
    refs = {"colorizer": ray.put(colorizer_weights) if colorizer_weights else None,
            "stylizer": ray.put(stylizer_weights) if stylizer_weights else None}
    board_name = f"colorstyle-board-{run_id}"  # actors find it by name: a handle argument draws Ray's warning
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)  # lives with the driver
    board = ray.remote(JobBoard).options(name=board_name, num_cpus=0, max_restarts=0,
                                         scheduling_strategy=here).remote(refs)
    pool = start_pool(options.actor_class, ex, (spec, spec.cpu_threads, board_name), options.actor_ready_timeout_s)
    label = f"frames ({UNTRAINED_TAG} weights)" if isinstance(console, _UntrainedConsole) else "frames"

    def ready(info: ActorInfo) -> None:
        report.pool_ready_at = report.pool_ready_at or time.time()
        report.actors.append(info)
        console.print(f"  {info.name}: node {info.hostname} device {info.device} gpu {info.gpu_id or '-'} "
                      f"pid {info.pid}")

    with ProgressReporter(_rich(console), 0, 0, bar=options.progress, interval_s=options.log_interval_s,
                          label=label, printer=console.print) as progress:
        sched = Scheduler(pool, ex, feed, writer, report.job_id, run_id, done, progress, board, on_ready=ready,
                          storage_options=manifest.storage_options)
        try:
            sched.run()
        finally:
            if progress.lines:
                console.print(progress.line(), highlight=False)
            for a in (*pool.actors, board):
                ray.kill(a)
    return sched
