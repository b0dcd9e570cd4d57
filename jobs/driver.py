"""The job driver: plan, check, fan out to the actor pool, retry, assemble, record.

``run_job(manifest)`` is what ``colorstyle run`` calls, locally (an embedded Ray is
started when none is running) or on a cluster (``RAY_ADDRESS`` / the Jobs API).
Bad inputs become failure rows and never stop the rest; finished work is recorded
as it completes, so a rerun resumes.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from colorstyle_core import imageio, loader, storage
from colorstyle_core.models.vgg import vgg_features_only
from colorstyle_core.provenance import Provenance, mark_untrained_logs, unmark_untrained_logs
from colorstyle_core.synthetic import UNTRAINED_NOTE, UNTRAINED_TAG
from colorstyle_core.weights import get_spec
from jobs.actor import PipelineActor
from jobs.manifest import Manifest
from jobs.metrics import STAGE_COLUMNS, MetricsStore, failure_row, now_ms, summarize
from jobs.plan import CONTROL_DIR, DoneState, Plan, plan_job
from jobs.units import ActorInfo, AssemblyResult, AssemblyTask, FrameRange, ImageShard, UnitResult, VideoPlan
from jobs.worker import PERMANENT_ERRORS, WeightsPayload, WorkerSpec

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURES, EXIT_FATAL = 0, 1, 2


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
    """

    dry_run: bool = False
    progress: bool = True
    address: str | None = None
    actor_ready_timeout_s: float = 900.0


@dataclass
class RunReport:
    """The outcome of one run."""

    job_id: str
    run_id: str
    exit_code: int
    plan: Plan | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    actors: list[ActorInfo] = field(default_factory=list)
    pool_ready_at: float | None = None  # when every actor had loaded its models (wall clock)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


# ---- done state ----------------------------------------------------------------------------


def load_done_state(store: MetricsStore, manifest: Manifest) -> DoneState:
    """What earlier runs finished: recorded in the metrics *and* still present in storage."""
    done = DoneState()
    frames, units, videos = store.frames(), store.units(), store.videos()
    if not (frames.num_rows or units.num_rows or videos.num_rows):
        return done
    fs, root = storage.filesystem(manifest.output.prefix, manifest.output_storage_options)
    try:
        existing = {storage.unstrip(fs, p) for p in fs.find(root)}
    except (FileNotFoundError, OSError):
        existing = set()
    for kind, inp, out in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(),
                              frames["output_uri"].to_pylist()):
        if kind == "image" and out in existing:
            done.images.add(inp)
    staged = {uri for uri in existing if f"/{CONTROL_DIR}/staging/" in uri}
    segment_of = {u: o for u, o, k in zip(frames["unit_id"].to_pylist(), frames["output_uri"].to_pylist(),
                                          frames["kind"].to_pylist()) if k == "video"}
    for uid, kind in zip(units["unit_id"].to_pylist(), units["kind"].to_pylist()):
        if kind == "video" and segment_of.get(uid) in staged:
            done.ranges.add(uid)
    for key, out in zip(videos["video_key"].to_pylist(), videos["output_uri"].to_pylist()):
        if out in existing:
            done.videos.add(key)
    return done


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
        console.print(f"  video {v.rel}: frames [{v.start}, {v.stop}) of {v.info.frame_count}, "
                      f"{v.info.width}x{v.info.height} @ {float(v.info.average_rate):.3f} fps, "
                      f"{len(v.unit_ids)} ranges ({todo} to do) -> {v.output_uri}")
    console.print(f"  work units: {len(plan.shards) + len(plan.ranges)}, frames to process: {plan.frames_to_do}")
    console.print(f"  actors: {ex.actors} x (gpus={ex.gpus_per_actor}, cpus={ex.cpus_per_actor}), "
                  f"batch {ex.batch_size}, {ex.max_in_flight_per_actor} units in flight per actor, "
                  f"{ex.retries} retries")
    console.print(f"  output: {manifest.output.prefix}   metrics: {manifest.metrics_prefix}")
    for p in plan.problems:
        console.print(f"  [red]problem[/red] {p.error_type}: {p.message}")
    if plan.ignored:
        console.print(f"  ignored {len(plan.ignored)} files with other suffixes")


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


def _load_weights(manifest: Manifest) -> tuple[WeightsPayload | None, WeightsPayload | None]:
    """Resolve and verify every weight set the pipeline needs, in the driver, before any work.

    Raises:
        loader.WeightsError: with the clear message naming the file and how to provide it.
    """
    pipe = manifest.pipeline
    payloads: list[WeightsPayload | None] = []
    for step, name, key_filter in (
        (pipe.colorize, pipe.colorize.model if pipe.colorize else None, None),
        (pipe.stylize, pipe.stylize.arch if pipe.stylize else None, vgg_features_only),
    ):
        if step is None or pipe.untrained_weights:
            payloads.append(None)
            continue
        state_dict, resolved = loader.load_verified_state_dict(
            get_spec(name), manifest.weights_source(step.weights), key_filter=key_filter)
        arrays = {k: v.detach().contiguous().numpy() for k, v in state_dict.items()}
        payloads.append(WeightsPayload(name, arrays, Provenance.from_resolved(name, resolved)))
    return payloads[0], payloads[1]


def _check_styles(manifest: Manifest) -> None:
    step = manifest.pipeline.stylize
    for uri in step.styles if step else ():
        try:
            imageio.decode_image(storage.read_bytes(uri, manifest.storage_options), uri)
        except (FileNotFoundError, OSError, imageio.ImageDecodeError) as e:
            raise FatalJobError(f"style image {uri}: {e}") from None


# ---- the pool ------------------------------------------------------------------------------


@dataclass
class _Inflight:
    kind: str  # unit | assemble
    payload: Any
    actor: int
    attempt: int
    submitted_at: float


class _Scheduler:
    """Keeps every actor fed with at most ``max_in_flight`` units, retries, and assembles videos."""

    def __init__(self, actors: list, manifest: Manifest, plan: Plan, store: MetricsStore, done: DoneState,
                 on_frames: Callable[[int], None]):
        self.actors = actors
        self.ex = manifest.execution
        self.store = store
        self.plan = plan
        self.on_frames = on_frames
        self.queue: deque[tuple[ImageShard | FrameRange, int, int | None]] = deque(
            (u, 1, None) for u in (*plan.shards, *plan.ranges))
        self.inflight: dict[ray.ObjectRef, _Inflight] = {}
        self.load = [0] * len(actors)
        self.deaths = [0] * len(actors)
        self.dead: set[int] = set()
        self.probes: dict[ray.ObjectRef, int] = {}  # health checks of actors that failed (restarting?)
        self.recovering: set[int] = set()
        self.failures: list[dict[str, Any]] = []
        self.videos = {v.key: v for v in plan.videos}
        self.remaining = {v.key: {u for u in v.unit_ids if u not in done.ranges} for v in plan.videos}
        self.failed_videos: set[str] = set()
        self.assembly: deque[VideoPlan] = deque(v for v in plan.videos if not self.remaining[v.key])
        self.assembled: list[AssemblyResult] = []

    def _pick(self, avoid: int | None) -> int | None:
        """The least loaded live actor with a free slot, never ``avoid`` (where the unit just failed)
        unless it is the only live actor; ``None`` = wait."""
        live = [i for i in range(len(self.actors)) if i not in self.dead and i not in self.recovering]
        others = [i for i in live if i != avoid]
        candidates = others if others else live
        free = [i for i in candidates if self.load[i] < self.ex.max_in_flight_per_actor]
        return min(free, key=lambda i: self.load[i]) if free else None

    def _submit_units(self) -> None:
        while self.assembly:
            i = self._pick(None)
            if i is None:
                return
            video = self.assembly.popleft()
            segments = tuple(storage.join(video.staging_prefix, f"{u}.mkv") for u in video.unit_ids)
            ref = self.actors[i].assemble.remote(AssemblyTask(video, segments))
            self.inflight[ref] = _Inflight("assemble", video, i, 1, time.time())
            self.load[i] += 1
        while self.queue:
            unit, attempt, avoid = self.queue[0]
            if isinstance(unit, FrameRange) and unit.video_key in self.failed_videos:
                self.queue.popleft()  # its video cannot be assembled any more: spare the work
                self.on_frames(unit.frames)
                continue
            i = self._pick(avoid)
            if i is None:
                return
            self.queue.popleft()
            now = time.time()
            ref = self.actors[i].process.remote(unit, attempt, now)
            self.inflight[ref] = _Inflight("unit", unit, i, attempt, now)
            self.load[i] += 1

    def run(self) -> None:
        while self.queue or self.inflight or self.assembly:
            if len(self.dead) == len(self.actors):
                self._abandon_all("every actor died")
                return
            self._submit_units()
            if not self.inflight and not self.probes:
                continue
            ready, _ = ray.wait([*self.inflight, *self.probes], num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in self.probes:
                    self._probed(ref)
                    continue
                entry = self.inflight.pop(ref)
                self.load[entry.actor] -= 1
                try:
                    result = ray.get(ref)
                except (RayTaskError, RayActorError, GetTimeoutError) as e:
                    self._failed(entry, e)
                else:
                    if entry.kind == "unit":
                        self._unit_done(entry, result)
                    else:
                        self._video_done(result)

    def _probed(self, ref: ray.ObjectRef) -> None:
        i = self.probes.pop(ref)
        try:
            ray.get(ref)
        except RayActorError:
            if self.deaths[i] > self.ex.retries + 1:
                self.dead.add(i)
                self.recovering.discard(i)
            else:  # still restarting: ask again
                self.probes[self.actors[i].info.remote()] = i
            return
        self.recovering.discard(i)
        log.info("actor-%d is back", i)

    def _unit_done(self, entry: _Inflight, result: UnitResult) -> None:
        unit = entry.payload
        kind = "image" if isinstance(unit, ImageShard) else "video"
        rows = list(result.frame_rows)
        self.failures.extend(result.failures)
        stage_sums = {c: float(sum(r[c] for r in rows)) for c in STAGE_COLUMNS}
        unit_row = {
            "job_id": self.store.job_id, "run_id": self.store.run_id, "unit_id": unit.unit_id, "kind": kind,
            "inputs": len(unit.items) if kind == "image" else 1, "frames": len(rows),
            "failed": len(result.failures), "attempt": entry.attempt, "actor": result.actor.name,
            "node": result.actor.hostname, "gpu_id": result.actor.gpu_id,
            "queue_wait_s": max(0.0, result.started_at - entry.submitted_at),
            "wall_s": result.finished_at - result.started_at, **stage_sums,
            "started_at": int(result.started_at * 1000), "finished_at": int(result.finished_at * 1000),
            "untrained": any(r["untrained"] for r in rows),
        }
        self.store.record_unit(unit.unit_id, rows, unit_row, result.quality)
        self.on_frames(len(rows) + len(result.failures))
        if isinstance(unit, FrameRange):
            left = self.remaining[unit.video_key]
            left.discard(unit.unit_id)
            if not left and unit.video_key not in self.failed_videos:
                self.assembly.append(self.videos[unit.video_key])

    def _video_done(self, result: AssemblyResult) -> None:
        video = self.videos[result.video_key]
        self.store.record_video({
            "job_id": self.store.job_id, "run_id": self.store.run_id, "video_key": result.video_key,
            "input_uri": video.uri, "output_uri": result.output_uri, "frames": result.frames, "audio": result.audio,
            "assemble_s": result.seconds, "finished_at": now_ms(), **(result.consistency or {}),
        })
        self.assembled.append(result)
        log.info("assembled %s (%d frames, audio %s)", result.output_uri, result.frames, result.audio)

    def _failed(self, entry: _Inflight, error: Exception) -> None:
        cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
        permanent = isinstance(cause, PERMANENT_ERRORS)
        if isinstance(error, RayActorError) and entry.actor not in self.recovering | self.dead:
            self.deaths[entry.actor] += 1
            if self.deaths[entry.actor] > self.ex.retries + 1:
                self.dead.add(entry.actor)
            else:  # Ray restarts it; keep work away until it answers again
                self.recovering.add(entry.actor)
                self.probes[self.actors[entry.actor].info.remote()] = entry.actor
        message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        if entry.kind == "assemble":
            video = entry.payload
            if not permanent and entry.attempt <= self.ex.retries:
                self.assembly.append(video)
                return
            self._record(video.uri, video.key, cause, f"assembling failed: {message}", entry.attempt)
            return
        unit = entry.payload
        if not permanent and entry.attempt <= self.ex.retries:
            log.warning("unit %s failed on actor-%d (attempt %d: %s: %s); retrying on another actor",
                        unit.unit_id, entry.actor, entry.attempt, type(cause).__name__, message)
            self.queue.appendleft((unit, entry.attempt + 1, entry.actor))
            return
        self._give_up(unit, cause, message, entry.attempt)

    def _record(self, input_uri: str, unit_id: str, cause: BaseException, message: str, attempt: int) -> None:
        self.failures.append(failure_row(self.store.job_id, self.store.run_id, input_uri, unit_id,
                                         type(cause).__name__, message, attempt))

    def _give_up(self, unit, cause: BaseException, message: str, attempt: int) -> None:
        if isinstance(unit, ImageShard):
            for item in unit.items:
                self._record(item.uri, unit.unit_id, cause, message, attempt)
            self.on_frames(unit.frames)
        else:
            self._record(unit.video_uri, unit.unit_id, cause, message, attempt)
            self.failed_videos.add(unit.video_key)
            self.on_frames(unit.frames)

    def _abandon_all(self, reason: str) -> None:
        err = RuntimeError(reason)
        while self.queue:
            unit, attempt, _ = self.queue.popleft()
            self._give_up(unit, err, reason, attempt)
        for video in self.assembly:
            self._record(video.uri, video.key, err, reason, 1)
        self.assembly.clear()


def _connect_ray(address: str | None) -> bool:
    """Connect to Ray; returns True when this call started it (so the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:  # an embedded single-machine cluster: no token needed (Ray 2.60 enables it by default)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    return True


def _gpus_per_actor(value: float | str) -> float:
    if value != "auto":
        return float(value)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def run_job(manifest: Manifest, options: RunOptions = RunOptions(), console: Console | None = None) -> RunReport:
    """Run (or dry-run) a manifest. Never raises for bad inputs: they become failure rows.

    Returns:
        The report; ``exit_code`` 0 = all done, 1 = some inputs failed, 2 = the job could not start.
    """
    console = console or Console(stderr=True)
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
    done = load_done_state(store, manifest)
    plan = plan_job(manifest, done)
    report.plan = plan
    print_plan(plan, manifest, console)
    if options.dry_run:
        return report
    failures = [failure_row(job_id, run_id, p.input_uri, "", p.error_type, p.message, 0) for p in plan.problems]
    try:
        _check_styles(manifest)
        colorizer_weights, stylizer_weights = _load_weights(manifest)
        store.check_writable()  # last: it creates the metrics prefix
    except (storage.StorageError, FatalJobError, loader.WeightsError) as e:
        console.print(f"[bold red]error[/bold red]: {e}")
        report.exit_code = EXIT_FATAL
        report.failures = [*failures, failure_row(job_id, run_id, "", "", type(e).__name__, str(e), 0)]
        return report

    start = time.time()
    if plan.shards or plan.ranges or plan.videos:
        started_ray = _connect_ray(options.address)
        try:
            sched = _run_pool(manifest, plan, store, done, colorizer_weights, stylizer_weights, options, run_id,
                              console, report)
            failures += sched.failures
        except FatalJobError as e:
            console.print(f"[bold red]error[/bold red]: {e}")
            report.exit_code = EXIT_FATAL
            failures.append(failure_row(job_id, run_id, "", "", type(e).__name__, str(e), 0))
        finally:
            if started_ray:
                ray.shutdown()
    end = time.time()
    _remove_empty_staging(manifest, job_id)
    frames = store.frames()
    ready = report.pool_ready_at or end
    summary = summarize(frames, run_id, end - ready, len(failures), job_frames=frames.num_rows,
                        skipped=plan.skipped_images + plan.skipped_videos, untrained=untrained)
    n = summary["frames"]
    summary.update(job_id=job_id, startup_s=ready - start, end_to_end_s=end - start,
                   end_to_end_frames_per_s=n / (end - start) if n else 0.0,
                   manifest=manifest.redacted(), actors=[a.__dict__ for a in report.actors])
    store.write_failures(failures)
    report.written = store.consolidate(failures, summary)
    report.summary, report.failures = summary, failures
    print_summary(summary, console)
    for f in failures:
        console.print(f"  [red]failed[/red] {f['input_uri'] or '(job)'}: {f['error_type']}: {f['message']}")
    console.print(f"outputs: {manifest.output.prefix}")
    console.print(f"metrics: {manifest.metrics_prefix} (frames.parquet, units.parquet, failures.parquet, "
                  f"summary.json)")
    if report.exit_code != EXIT_FATAL:
        report.exit_code = EXIT_FAILURES if failures else EXIT_OK
    return report


def _temporal(step, default_preset: str):
    t = step.temporal if step is not None else None
    return t.settings(default_preset) if t is not None and t.enabled else None


def _remove_empty_staging(manifest: Manifest, job_id: str) -> None:
    """Drop the job's staging prefix once every video in it was assembled (its segments removed)."""
    fs, root = storage.filesystem(storage.join(manifest.output.prefix, CONTROL_DIR, "staging", job_id),
                                  manifest.output_storage_options)
    try:
        if fs.exists(root) and not [p for p in fs.find(root) if not p.endswith("/")]:
            fs.rm(root, recursive=True)
            parent = root.rstrip("/").rsplit("/", 1)[0]
            if fs.exists(parent) and not fs.ls(parent):
                fs.rm(parent, recursive=True)
    except OSError as e:  # cosmetic: never fail a finished job over it
        log.warning("could not remove empty staging prefix %s: %s", root, e)


def _run_pool(manifest: Manifest, plan: Plan, store: MetricsStore, done: DoneState,
              colorizer_weights: WeightsPayload | None, stylizer_weights: WeightsPayload | None,
              options: RunOptions, run_id: str, console: Console, report: RunReport) -> _Scheduler:
    ex = manifest.execution
    spec = WorkerSpec(
        job_id=store.job_id, run_id=run_id, colorize=manifest.pipeline.colorize, stylize=manifest.pipeline.stylize,
        untrained_seed=0 if manifest.pipeline.untrained_weights else None,
        storage_options=manifest.storage_options, output_storage_options=manifest.output_storage_options,
        batch_size=ex.batch_size, video_crf=manifest.output.video_crf, video_preset=manifest.output.video_preset,
        cpu_threads=max(1, int(ex.cpus_per_actor)), chaos_kill_once=os.environ.get("COLORSTYLE_CHAOS_KILL_ONCE"),
        color_temporal=_temporal(manifest.pipeline.colorize, "fast"),
        style_temporal=_temporal(manifest.pipeline.stylize, "medium"),
        measure_consistency=manifest.metrics.video_consistency, reencode_videos=manifest.reencode_videos,
    )
    gpus = _gpus_per_actor(ex.gpus_per_actor)
    actor_cls = ray.remote(PipelineActor).options(
        num_gpus=gpus, num_cpus=ex.cpus_per_actor, max_restarts=ex.retries + 1, max_task_retries=0)
    cref = ray.put(colorizer_weights) if colorizer_weights else None
    sref = ray.put(stylizer_weights) if stylizer_weights else None
    threads = max(1, int(ex.cpus_per_actor))
    actors = [actor_cls.remote(spec, cref, sref, f"actor-{i}", threads) for i in range(ex.actors)]
    try:
        report.actors = ray.get([a.info.remote() for a in actors], timeout=options.actor_ready_timeout_s)
    except RayActorError as e:
        raise FatalJobError(f"an actor failed to start: {e}") from None
    except GetTimeoutError:
        raise FatalJobError(f"the actor pool was not ready after {options.actor_ready_timeout_s:.0f} s "
                            f"(requested {ex.actors} x gpus={gpus}, cpus={ex.cpus_per_actor}); "
                            f"resources: {ray.cluster_resources()}") from None
    report.pool_ready_at = time.time()
    for a in report.actors:
        console.print(f"  {a.name}: node {a.hostname} device {a.device} gpu {a.gpu_id or '-'} pid {a.pid}")
    total = plan.frames_to_do
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=_rich(console), disable=not options.progress, transient=False) as progress:
        label = f"frames ({UNTRAINED_TAG} weights)" if isinstance(console, _UntrainedConsole) else "frames"
        task = progress.add_task(label, total=total, rate="")
        t0 = time.time()

        def on_frames(n: int) -> None:
            progress.advance(task, n)
            done_n = progress.tasks[0].completed
            progress.update(task, rate=f"{done_n / max(1e-9, time.time() - t0):.2f} fr/s")

        sched = _Scheduler(actors, manifest, plan, store, done, on_frames)
        sched.run()
    for a in actors:
        ray.kill(a)
    return sched
