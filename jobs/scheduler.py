"""The scheduler: backpressure, retries on another actor, probing failed actors, assembly.

:class:`Scheduler` takes the run's work from the plan as it is listed (a
:class:`~jobs.feed.PlanFeed`) and sends it to the pool's actors (:mod:`jobs.pool`) as each
becomes ready, keeps each actor fed with at most ``max_in_flight_per_actor`` units (but never
queues a unit behind a busy actor while the units left are no more than the actors still
starting: a job of a few units, or the start of any job, would otherwise run on the first actor
up while the others wait for work), hands
every finished unit's rows to the metrics writer (:class:`~jobs.metrics.writer.MetricsWriter`,
which records them in batches off this loop), retries a failed unit on another actor, keeps
work away from an actor Ray is restarting until it answers again, and sends a video to be
assembled as soon as its last frame range is staged. Results are collected as many at a time
as are ready, in one ``ray.get``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from colorstyle_core import storage
from colorstyle_core.timing import added
from jobs.feed import Intake, PlanFeed
from jobs.listing import InputProblem
from jobs.manifest import ExecutionSpec
from jobs.metrics.tables import FailureRow, UnitRow, VideoRow, now_ms
from jobs.metrics.writer import MetricsWriter
from jobs.pool import ActorStates, Pool
from jobs.progress import BoardReader, ProgressReporter, progress_key
from jobs.resume import DoneState
from jobs.units.assembly import AssemblyResult, AssemblyTask
from jobs.units.base import PERMANENT_ERRORS, ActorInfo, UnitResult, WorkUnit
from jobs.units.images import ImageShard

FAILURES_KEPT = 200
"""Failure rows the scheduler keeps for the run's printout; all of them go to the metrics."""

log = logging.getLogger(__name__)


def _get_all(refs: list[ray.ObjectRef]) -> dict[ray.ObjectRef, Any]:
    """The values of finished calls in one ``ray.get`` (empty when one of them failed: those are taken one
    by one, so each error reaches its own unit)."""
    if len(refs) < 2:
        return {}
    try:
        return dict(zip(refs, ray.get(refs)))
    except RayError:
        return {}


@dataclass
class _Inflight:
    kind: str  # unit | assemble
    payload: Any
    actor: int
    attempt: int
    submitted_at: float


class Scheduler:
    """Keeps every actor fed with at most ``max_in_flight_per_actor`` units, retries, and assembles videos.

    Args:
        pool: the run's actors (work goes to each as soon as it is ready).
        ex: the job's execution settings.
        feed: the run's work, as it is listed.
        writer: where finished units, videos and failures are recorded (in batches).
        job_id, run_id: for the rows the scheduler makes itself.
        done: what earlier runs finished (frame ranges already staged).
        progress: told about work found, finished and abandoned units and, about once a second, the
            frames of the units in flight.
        board: the :class:`~jobs.progress.JobBoard` the actors report to (``None``: no live progress).
        on_ready: told where each actor runs once it has loaded its models.
        storage_options: fsspec options of the inputs (films probed on the cluster).
    Raises:
        PoolError: no actor was ready in time, or every actor failed to start.
    """

    def __init__(self, pool: Pool, ex: ExecutionSpec, feed: PlanFeed, writer: MetricsWriter, job_id: str,
                 run_id: str, done: DoneState, progress: ProgressReporter, board=None,
                 on_ready: Callable[[ActorInfo], None] = lambda info: None, storage_options: dict | None = None):
        self.actors = pool.actors
        self.states = ActorStates(pool, ex.retries + 1, on_ready)
        self.ex = ex
        self.writer = writer
        self.job_id, self.run_id = job_id, run_id
        self.done = done
        self.progress = progress
        self.board = BoardReader(board)
        self.work = Intake(feed, done, progress, self._problem, storage_options,
                           ahead=max(8, 2 * len(self.actors) * ex.max_in_flight_per_actor))
        self.inflight: dict[ray.ObjectRef, _Inflight] = {}
        # an actor's death is blamed on a unit only when the unit ran alone on it: units that died in company
        # run again alone, without spending an attempt (the company may have killed the actor)
        self.alone: set[str] = set()  # units that must run alone on an actor
        self.spared: dict[str, int] = {}  # unit -> attempts not counted against its retries (died in company)
        self.failures: list[FailureRow] = []  # the first FAILURES_KEPT, for the printout
        self.failure_count = 0
        self.assembled: list[AssemblyResult] = []
        self.units_done = 0
        self.first_submit_at: float | None = None  # wall clock and process CPU time of the first submission
        self.first_submit_cpu = 0.0
        self.last_done_at: float | None = None

    def _problem(self, problem: InputProblem) -> None:
        self._fail(FailureRow(self.job_id, self.run_id, problem.input_uri, "", problem.error_type, problem.message, 0))
        self.progress.finished(0, units=0, failures=1)

    # ---- dispatch -------------------------------------------------------------------------------

    def _submit(self) -> None:
        work, states, limit = self.work, self.states, self.ex.max_in_flight_per_actor
        while work.assembly:
            i = states.pick(None, limit)
            if i is None:
                return
            video = work.assembly.popleft()
            segments = tuple(storage.join(video.staging_prefix, f"{u}.mkv") for u in video.unit_ids)
            ref = self.actors[i].assemble.remote(AssemblyTask(video, segments))
            self.inflight[ref] = _Inflight("assemble", video, i, 1, time.time())
            states.load[i] += 1
        while work.queue:
            unit, attempt, avoid = work.queue[0]
            if unit.video_key is not None and unit.video_key in work.failed_videos:
                work.queue.popleft()  # its video cannot be assembled any more: spare the work
                self.progress.finished(unit.frames)
                continue
            alone = unit.unit_id in self.alone
            i = states.pick(avoid, limit, alone)
            if i is None or (states.load[i] > 0 and len(work.queue) <= len(states.booting)):
                return  # every ready actor is busy: leave the last units to the actors still starting
            work.queue.popleft()
            now = time.time()
            ref = self.actors[i].process.remote(unit, attempt, now)
            self.inflight[ref] = _Inflight("unit", unit, i, attempt, now)
            if self.first_submit_at is None:
                self.first_submit_at, self.first_submit_cpu = now, time.process_time()
            states.load[i] += 1
            if alone:
                states.exclusive[i] = ref

    def run(self) -> None:
        """Until the plan is over and every unit is done or given up and every video assembled or failed.

        Raises:
            storage.StorageError, OSError: the listing or the metrics writer failed for good.
        """
        try:
            self._loop()
        finally:
            self.states.boot_report()

    def _loop(self) -> None:
        work = self.work
        while True:
            work.refill(0.0 if (work.queue or self.inflight) else 0.2)
            if work.over and not self.inflight:
                return
            if self.states.all_dead:
                self._abandon_all("every actor died" if self.units_done or self.inflight else
                                  "every actor failed to start")
                return
            self.states.check_boot()
            self._submit()
            self._poll_progress()
            refs = [*self.inflight, *self.states.refs, *work.probing]
            if not refs:
                continue
            ready, _ = ray.wait(refs, num_returns=1, timeout=0.1 if not work.feed.exhausted else 1.0)
            if ready:  # and whatever else is ready now: results are taken in batches
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
            results = [ref for ref in ready if ref in self.inflight]
            values = _get_all(results)
            for ref in ready:
                if self.states.answered(ref):
                    continue
                if ref in work.probing:
                    work.film_probed(ref)
                    continue
                entry = self.inflight.pop(ref)
                self.states.load[entry.actor] -= 1
                if self.states.exclusive.get(entry.actor) == ref:
                    del self.states.exclusive[entry.actor]
                self._forget(entry)
                try:
                    result = values[ref] if ref in values else ray.get(ref)
                except (RayTaskError, RayActorError, GetTimeoutError) as e:
                    self._failed(entry, e)
                else:
                    if entry.kind == "unit":
                        self._unit_done(entry, result)
                    else:
                        self._video_done(result)

    # ---- actors coming up, films probed on the cluster --------------------------------------

    def _poll_progress(self) -> None:
        live = self.board.poll()
        if live is not None:  # the frames done of the units still in flight
            keys = {progress_key(e.payload.unit_id, e.attempt) for e in self.inflight.values() if e.kind == "unit"}
            self.progress.in_flight({k: v for k, v in live.items() if k in keys})
        self.progress.tick()

    def _forget(self, entry: _Inflight) -> None:
        if entry.kind == "unit":
            self.board.ended(progress_key(entry.payload.unit_id, entry.attempt))

    def _fail(self, row: FailureRow) -> None:
        self.failure_count += 1
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(row)
        self.writer.add_failures([row])

    def _unit_done(self, entry: _Inflight, result: UnitResult) -> None:
        unit: WorkUnit = entry.payload
        rows = result.frame_rows
        self.failure_count += len(result.failures)
        self.failures.extend(result.failures[: max(0, FAILURES_KEPT - len(self.failures))])
        unit_row = UnitRow(
            job_id=self.job_id, run_id=self.run_id, unit_id=unit.unit_id, kind=unit.kind,
            inputs=len(unit.input_uris), frames=len(rows), failed=len(result.failures), attempt=entry.attempt,
            actor=result.actor.name, node=result.actor.hostname, gpu_id=result.actor.gpu_id,
            queue_wait_s=max(0.0, result.started_at - entry.submitted_at),
            wall_s=result.finished_at - result.started_at, stages=added(*(r.stages for r in rows)),
            started_at=int(result.started_at * 1000), finished_at=int(result.finished_at * 1000),
            untrained=any(r.untrained for r in rows), peak_rss_mb=result.peak_rss_mb,
        )
        self.writer.add_unit(rows, unit_row, result.quality, result.failures)
        self.units_done += 1
        self.last_done_at = time.time()
        self.progress.finished(len(rows) + len(result.failures), failures=len(result.failures))
        self.work.unit_done(unit)

    def _video_done(self, result: AssemblyResult) -> None:
        video = self.work.videos[result.video_key]
        self.writer.add_video(VideoRow(
            job_id=self.job_id, run_id=self.run_id, video_key=result.video_key, input_uri=video.uri,
            output_uri=result.output_uri, frames=result.frames, audio=result.audio, assemble_s=result.seconds,
            finished_at=now_ms(), consistency=result.consistency,
        ))
        self.assembled.append(result)
        log.info("assembled %s (%d frames, audio %s)", result.output_uri, result.frames, result.audio)

    def _failed(self, entry: _Inflight, error: Exception) -> None:
        cause = error.cause if isinstance(error, RayTaskError) and error.cause is not None else error
        permanent = isinstance(cause, PERMANENT_ERRORS)
        if isinstance(error, RayActorError):  # were other units in flight on the actor when it died?
            self.states.died(entry.actor, any(e.actor == entry.actor for e in self.inflight.values()))
        message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        if entry.kind == "assemble":
            video = entry.payload
            if not permanent and entry.attempt <= self.ex.retries:
                self.work.assembly.append(video)
                return
            self._record(video.uri, video.key, cause, f"assembling failed: {message}", entry.attempt)
            return
        unit: WorkUnit = entry.payload
        died = isinstance(error, RayActorError)
        if died and self.states.crowded.get(entry.actor) and unit.unit_id not in self.alone:
            log.warning("unit %s was on actor-%d with other units when it died; running it again alone",
                        unit.unit_id, entry.actor)
            self.alone.add(unit.unit_id)
            self.spared[unit.unit_id] = self.spared.get(unit.unit_id, 0) + 1
            self.work.queue.appendleft((unit, entry.attempt + 1, entry.actor))
            return
        charged = entry.attempt - self.spared.get(unit.unit_id, 0)  # attempts that count against retries
        if isinstance(unit, ImageShard) and len(unit.items) > 1 and (died or charged > self.ex.retries):
            # one image may have killed the actor (memory) or keep failing: isolate it, keep the others
            log.warning("shard %s failed on actor-%d (%s: %s); retrying its %d images one by one",
                        unit.unit_id, entry.actor, type(cause).__name__, message, len(unit.items))
            parts = unit.split()
            self.work.queue.extendleft((part, entry.attempt + 1, entry.actor) for part in reversed(parts))
            self.progress.total_units += len(parts) - 1
            return
        if not permanent and charged <= self.ex.retries:
            log.warning("unit %s failed on actor-%d (attempt %d: %s: %s); retrying on another actor",
                        unit.unit_id, entry.actor, entry.attempt, type(cause).__name__, message)
            self.work.queue.appendleft((unit, entry.attempt + 1, entry.actor))
            return
        self._give_up(unit, cause, message, entry.attempt)

    def _record(self, input_uri: str, unit_id: str, cause: BaseException, message: str, attempt: int) -> None:
        self._fail(FailureRow(self.job_id, self.run_id, input_uri, unit_id, type(cause).__name__, message, attempt))

    def _give_up(self, unit: WorkUnit, cause: BaseException, message: str, attempt: int) -> None:
        for uri in unit.input_uris:
            self._record(uri, unit.unit_id, cause, message, attempt)
        self.progress.finished(unit.frames, failures=len(unit.input_uris))
        for waiter in self.work.given_up(unit):  # its video cannot be done: spare the work
            self.progress.finished(waiter.frames)

    def _abandon_all(self, reason: str) -> None:
        """Give up everything left: what is queued and what the plan still holds (each input its failure row)."""
        err = RuntimeError(reason)
        work = self.work
        while work.queue or not work.feed.exhausted:
            if not work.queue:
                item = work.feed.take(timeout=1.0)
                if item is not None:
                    work.take(item)
                continue
            unit, attempt, _ = work.queue.popleft()
            self._give_up(unit, err, reason, attempt)
        for video in work.assembly:
            self._record(video.uri, video.key, err, reason, 1)
        work.assembly.clear()
