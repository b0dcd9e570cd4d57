"""The actor pool and the scheduler: backpressure, retries on another actor, probing failed actors, assembly.

:func:`start_pool` creates one :class:`~jobs.actor.PipelineActor` per requested slot
(the driver declares ``num_gpus``/``num_cpus``; Ray pins each actor to its GPU) and
waits until every actor has loaded its models. :class:`Scheduler` then keeps each
actor fed with at most ``max_in_flight_per_actor`` units, records every finished unit
at once (so an interrupted job loses nothing), retries a failed unit on another actor,
keeps work away from an actor Ray is restarting until it answers again, and sends a
video to be assembled as soon as its last frame range is staged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from colorstyle_core import storage
from colorstyle_core.timing import added
from jobs.manifest import ExecutionSpec
from jobs.metrics.store import MetricsStore
from jobs.metrics.tables import FailureRow, UnitRow, VideoRow, now_ms
from jobs.plan import Plan
from jobs.progress import ProgressReporter, progress_key
from jobs.resume import DoneState
from jobs.units.assembly import AssemblyResult, AssemblyTask
from jobs.units.base import PERMANENT_ERRORS, ActorInfo, UnitResult, WorkUnit
from jobs.units.frame_ranges import VideoPlan
from jobs.units.images import ImageShard

log = logging.getLogger(__name__)


class PoolError(RuntimeError):
    """The actor pool could not start (an actor failed, or resources never came)."""


@dataclass
class _Inflight:
    kind: str  # unit | assemble
    payload: Any
    actor: int
    attempt: int
    submitted_at: float


def gpus_per_actor(value: float | str) -> float:
    """GPUs each actor requests: the manifest's number, or for ``auto`` 1 when the cluster has GPUs, else 0."""
    if value != "auto":
        return float(value)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def start_pool(actor_class: type, ex: ExecutionSpec, args: tuple, ready_timeout_s: float
               ) -> tuple[list, list[ActorInfo]]:
    """Create ``ex.actors`` actors of ``actor_class`` and wait until each has loaded its models.

    Args:
        actor_class: the actor's Python class (``PipelineActor``, or a subclass in tests).
        ex: the job's execution settings (resources, retries).
        args: constructor arguments before the actor's name (spec, threads, job board).
        ready_timeout_s: how long to wait for the pool (GPU nodes may have to boot), seconds.
    Returns:
        The actor handles and where each runs.
    Raises:
        PoolError: an actor failed to start, or the pool was not ready in time.
    """
    gpus = gpus_per_actor(ex.gpus_per_actor)
    # two calls at a time: a frame range's encoder flush and upload overlap the next unit's network
    # (jobs.actor_threads.ComputeTurn serialises the model work)
    remote = ray.remote(actor_class).options(num_gpus=gpus, num_cpus=ex.cpus_per_actor, max_concurrency=2,
                                             max_restarts=ex.retries + 1, max_task_retries=0)
    actors = [remote.remote(*args, f"actor-{i}") for i in range(ex.actors)]
    try:
        infos = ray.get([a.info.remote() for a in actors], timeout=ready_timeout_s)
    except RayActorError as e:
        raise PoolError(f"an actor failed to start: {e}") from None
    except GetTimeoutError:
        raise PoolError(f"the actor pool was not ready after {ready_timeout_s:.0f} s (requested {ex.actors} x "
                        f"gpus={gpus}, cpus={ex.cpus_per_actor}); resources: {ray.cluster_resources()}") from None
    return actors, infos


class Scheduler:
    """Keeps every actor fed with at most ``max_in_flight_per_actor`` units, retries, and assembles videos.

    Args:
        actors: the pool's actor handles.
        ex: the job's execution settings.
        plan: the work of this run.
        store: where finished units and videos are recorded.
        done: what earlier runs finished (frame ranges already staged).
        progress: told about finished and abandoned units and, about once a second, the
            frames of the units in flight.
        board: the :class:`~jobs.progress.JobBoard` the actors report to (``None``: no live progress).
    """

    def __init__(self, actors: list, ex: ExecutionSpec, plan: Plan, store: MetricsStore, done: DoneState,
                 progress: ProgressReporter, board=None):
        self.actors = actors
        self.ex = ex
        self.store = store
        self.plan = plan
        self.progress = progress
        self.board = board
        self._snapshot: ray.ObjectRef | None = None
        pending = {t.unit_id for t in plan.tracks}
        self.queue: deque[tuple[WorkUnit, int, int | None]] = deque(
            (u, 1, None) for u in (*plan.tracks, *plan.shards, *plan.ranges) if u.after not in pending)
        self.waiting: dict[str, list[WorkUnit]] = {}  # units that start once another unit is done
        for u in plan.ranges:
            if u.after in pending:
                self.waiting.setdefault(u.after, []).append(u)
        self.inflight: dict[ray.ObjectRef, _Inflight] = {}
        self.load = [0] * len(actors)
        self.deaths = [0] * len(actors)
        self.dead: set[int] = set()
        self.probes: dict[ray.ObjectRef, int] = {}  # health checks of actors that failed (restarting?)
        # an actor's death is blamed on a unit only when the unit ran alone on it: units that died in company
        # run again alone, without spending an attempt (the company may have killed the actor)
        self.crowded: dict[int, bool] = {}  # actor -> whether its last death had several units in flight
        self.alone: set[str] = set()  # units that must run alone on an actor
        self.spared: dict[str, int] = {}  # unit -> attempts not counted against its retries (died in company)
        self.exclusive: dict[int, ray.ObjectRef] = {}  # actor -> the unit running alone on it
        self.recovering: set[int] = set()
        self.failures: list[FailureRow] = []
        self.videos = {v.key: v for v in plan.videos}
        self.remaining = {v.key: {u for u in v.unit_ids if u not in done.ranges} for v in plan.videos}
        self.failed_videos: set[str] = set()
        self.assembly: deque[VideoPlan] = deque(v for v in plan.videos if not self.remaining[v.key])
        self.assembled: list[AssemblyResult] = []

    def _pick(self, avoid: int | None) -> int | None:
        """The least loaded live actor with a free slot, never ``avoid`` (where the unit just failed)
        unless it is the only live actor; ``None`` = wait."""
        live = [i for i in range(len(self.actors))
                if i not in self.dead and i not in self.recovering and i not in self.exclusive]
        others = [i for i in live if i != avoid]
        candidates = others if others else live
        free = [i for i in candidates if self.load[i] < self.ex.max_in_flight_per_actor]
        return min(free, key=lambda i: self.load[i]) if free else None

    def _submit(self) -> None:
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
            if unit.video_key is not None and unit.video_key in self.failed_videos:
                self.queue.popleft()  # its video cannot be assembled any more: spare the work
                self.progress.finished(unit.frames)
                continue
            i = self._pick(avoid)
            alone = unit.unit_id in self.alone
            if i is not None and alone and self.load[i] > 0:
                idle = [j for j in range(len(self.actors)) if self.load[j] == 0 and j not in self.dead
                        and j not in self.recovering and j not in self.exclusive]
                i = idle[0] if idle else None
            if i is None:
                return
            self.queue.popleft()
            now = time.time()
            ref = self.actors[i].process.remote(unit, attempt, now)
            self.inflight[ref] = _Inflight("unit", unit, i, attempt, now)
            self.load[i] += 1
            if alone:
                self.exclusive[i] = ref

    def run(self) -> None:
        """Until every unit is done or given up and every video assembled or failed."""
        while self.queue or self.inflight or self.assembly:
            if len(self.dead) == len(self.actors):
                self._abandon_all("every actor died")
                return
            self._submit()
            self._poll_progress()
            if not self.inflight and not self.probes:
                continue
            ready, _ = ray.wait([*self.inflight, *self.probes], num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in self.probes:
                    self._probed(ref)
                    continue
                entry = self.inflight.pop(ref)
                self.load[entry.actor] -= 1
                if self.exclusive.get(entry.actor) == ref:
                    del self.exclusive[entry.actor]
                self._forget(entry)
                try:
                    result = ray.get(ref)
                except (RayTaskError, RayActorError, GetTimeoutError) as e:
                    self._failed(entry, e)
                else:
                    if entry.kind == "unit":
                        self._unit_done(entry, result)
                    else:
                        self._video_done(result)

    def _poll_progress(self) -> None:
        """Read the board's last snapshot when it has come (never waits) and ask for the next one."""
        if self.board is not None:
            if self._snapshot is not None and ray.wait([self._snapshot], timeout=0)[0]:
                live = ray.get(self._snapshot)
                keys = {progress_key(e.payload.unit_id, e.attempt) for e in self.inflight.values() if e.kind == "unit"}
                self.progress.in_flight({k: v for k, v in live.items() if k in keys})
                self._snapshot = None
            if self._snapshot is None:
                self._snapshot = self.board.snapshot.remote()
        self.progress.tick()

    def _forget(self, entry: _Inflight) -> None:
        if self.board is not None and entry.kind == "unit":
            self.board.forget.remote(progress_key(entry.payload.unit_id, entry.attempt))

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
        unit: WorkUnit = entry.payload
        rows = result.frame_rows
        self.failures.extend(result.failures)
        unit_row = UnitRow(
            job_id=self.store.job_id, run_id=self.store.run_id, unit_id=unit.unit_id, kind=unit.kind,
            inputs=len(unit.input_uris), frames=len(rows), failed=len(result.failures), attempt=entry.attempt,
            actor=result.actor.name, node=result.actor.hostname, gpu_id=result.actor.gpu_id,
            queue_wait_s=max(0.0, result.started_at - entry.submitted_at),
            wall_s=result.finished_at - result.started_at, stages=added(*(r.stages for r in rows)),
            started_at=int(result.started_at * 1000), finished_at=int(result.finished_at * 1000),
            untrained=any(r.untrained for r in rows), peak_rss_mb=result.peak_rss_mb,
        )
        self.store.record_unit(unit.unit_id, rows, unit_row, result.quality)
        self.progress.finished(len(rows) + len(result.failures), failures=len(result.failures))
        self.queue.extend((u, 1, None) for u in self.waiting.pop(unit.unit_id, ()))
        if unit.kind == "video":
            left = self.remaining[unit.video_key]
            left.discard(unit.unit_id)
            if not left and unit.video_key not in self.failed_videos:
                self.assembly.append(self.videos[unit.video_key])

    def _video_done(self, result: AssemblyResult) -> None:
        video = self.videos[result.video_key]
        self.store.record_video(VideoRow(
            job_id=self.store.job_id, run_id=self.store.run_id, video_key=result.video_key, input_uri=video.uri,
            output_uri=result.output_uri, frames=result.frames, audio=result.audio, assemble_s=result.seconds,
            finished_at=now_ms(), consistency=result.consistency,
        ))
        self.assembled.append(result)
        log.info("assembled %s (%d frames, audio %s)", result.output_uri, result.frames, result.audio)

    def _failed(self, entry: _Inflight, error: Exception) -> None:
        cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
        permanent = isinstance(cause, PERMANENT_ERRORS)
        if isinstance(error, RayActorError) and entry.actor not in self.recovering | self.dead:
            # the first failure of this death: were other units in flight on the actor?
            self.crowded[entry.actor] = any(e.actor == entry.actor for e in self.inflight.values())
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
        unit: WorkUnit = entry.payload
        died = isinstance(error, RayActorError)
        if died and self.crowded.get(entry.actor) and unit.unit_id not in self.alone:
            log.warning("unit %s was on actor-%d with other units when it died; running it again alone",
                        unit.unit_id, entry.actor)
            self.alone.add(unit.unit_id)
            self.spared[unit.unit_id] = self.spared.get(unit.unit_id, 0) + 1
            self.queue.appendleft((unit, entry.attempt + 1, entry.actor))
            return
        charged = entry.attempt - self.spared.get(unit.unit_id, 0)  # attempts that count against retries
        if isinstance(unit, ImageShard) and len(unit.items) > 1 and (died or charged > self.ex.retries):
            # one image may have killed the actor (memory) or keep failing: isolate it, keep the others
            log.warning("shard %s failed on actor-%d (%s: %s); retrying its %d images one by one",
                        unit.unit_id, entry.actor, type(cause).__name__, message, len(unit.items))
            parts = unit.split()
            self.queue.extendleft((part, entry.attempt + 1, entry.actor) for part in reversed(parts))
            self.progress.total_units += len(parts) - 1
            return
        if not permanent and charged <= self.ex.retries:
            log.warning("unit %s failed on actor-%d (attempt %d: %s: %s); retrying on another actor",
                        unit.unit_id, entry.actor, entry.attempt, type(cause).__name__, message)
            self.queue.appendleft((unit, entry.attempt + 1, entry.actor))
            return
        self._give_up(unit, cause, message, entry.attempt)

    def _record(self, input_uri: str, unit_id: str, cause: BaseException, message: str, attempt: int) -> None:
        self.failures.append(FailureRow(self.store.job_id, self.store.run_id, input_uri, unit_id,
                                        type(cause).__name__, message, attempt))

    def _give_up(self, unit: WorkUnit, cause: BaseException, message: str, attempt: int) -> None:
        for uri in unit.input_uris:
            self._record(uri, unit.unit_id, cause, message, attempt)
        if unit.video_key is not None:
            self.failed_videos.add(unit.video_key)
        self.progress.finished(unit.frames, failures=len(unit.input_uris))
        for waiter in self.waiting.pop(unit.unit_id, ()):  # its video cannot be done: spare the work
            self.progress.finished(waiter.frames)

    def _abandon_all(self, reason: str) -> None:
        err = RuntimeError(reason)
        while self.queue:
            unit, attempt, _ = self.queue.popleft()
            self._give_up(unit, err, reason, attempt)
        for video in self.assembly:
            self._record(video.uri, video.key, err, reason, 1)
        self.assembly.clear()
