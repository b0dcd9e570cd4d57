"""The run's work as it arrives: the plan listed on a thread of its own (:class:`PlanFeed`) and taken in by the
scheduler (:class:`Intake`): units queued or waiting for their video's hint track, videos registered until their
ranges are staged, films without an index probed on the cluster, problems recorded."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import ray
from ray.exceptions import RayActorError, RayTaskError

from jobs.listing import InputProblem
from jobs.plan import PlanItem, ProbeNeeded, probe_or_problem
from jobs.progress import ProgressReporter
from jobs.resume import DoneState
from jobs.units.base import WorkUnit
from jobs.units.frame_ranges import VideoPlan

_END = object()


_PROBE_TASK = None


def _probe_task():
    """:func:`jobs.plan.probe_or_problem` as a Ray task. It asks for no CPU: it mostly waits on storage, and the
    actors hold the cluster's CPUs for the whole run (a task that needed one would wait for them forever)."""
    global _PROBE_TASK
    if _PROBE_TASK is None:
        _PROBE_TASK = ray.remote(num_cpus=0, max_retries=2)(probe_or_problem)
    return _PROBE_TASK


class PlanFeed:
    """A plan stream (:func:`jobs.plan.plan_stream`) run on a thread of its own, ``maxsize`` items ahead of the
    scheduler, so listing and probing overlap the dispatch and the first units start while the listing goes on.

    Args:
        stream: the plan's items.
        maxsize: items listed ahead at most (bounds the driver's memory whatever the archive's size).
        on_end: called on the listing's thread once the whole plan was listed (not when it failed or was closed).
    """

    def __init__(self, stream: Iterator[PlanItem], maxsize: int = 4096, on_end: Callable[[], None] | None = None):
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stream = stream
        self._on_end = on_end
        self._ended = False
        self.error: BaseException | None = None
        self.first_at: float | None = None  # wall clock: the first item taken, the last item listed,
        self.listed_at: float | None = None  # and the end of the stream taken
        self.done_at: float | None = None
        self._stop = threading.Event()
        self._back: list[PlanItem] = []
        self._thread = threading.Thread(target=self._run, name="plan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._stream:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self.listed_at = time.time()
            if self._on_end is not None:
                self._on_end()
        except BaseException as e:  # noqa: BLE001 -- raised on the scheduler's thread
            self.error = e
        self._queue.put(_END)

    @property
    def exhausted(self) -> bool:
        """The stream is over and every item was taken."""
        return self._ended and not self._back

    def push_back(self, item: PlanItem) -> None:
        """Give back an item taken too early (it comes next)."""
        self._back.append(item)

    def take(self, timeout: float = 0.0) -> PlanItem | None:
        """The next item (``None``: none ready within ``timeout`` seconds, or the stream is over).

        Raises:
            storage.StorageError: the listing failed (credentials, connection).
        """
        if self._back:
            return self._back.pop()
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            self._ended = True
            self.done_at = time.time()
            if self.error is not None:
                raise self.error
            return None
        if self.first_at is None:
            self.first_at = time.time()
        return item

    def close(self) -> None:
        """Stop listing (a run that ends early)."""
        self._stop.set()


class Intake:
    """The scheduler's side of the plan: what is queued, what waits, which videos are still being made.

    Args:
        feed: the plan as it is listed.
        done: what earlier runs finished (ranges already staged).
        progress: told about the work found.
        on_problem: records an input that cannot be processed (a failure row).
        storage_options: fsspec options of the inputs (films probed on the cluster).
        ahead: units taken from the feed ahead of the actors.
    """

    def __init__(self, feed: PlanFeed, done: DoneState, progress: ProgressReporter,
                 on_problem: Callable[[InputProblem], None], storage_options: dict | None, ahead: int):
        self.feed, self.done, self.progress = feed, done, progress
        self.on_problem, self.storage_options, self.ahead = on_problem, storage_options, ahead
        self.queue: deque[tuple[WorkUnit, int, int | None]] = deque()  # (unit, attempt, actor to avoid)
        self.pending_tracks: set[str] = set()  # hint tracks not yet done: their video's ranges wait
        self.waiting: dict[str, list[WorkUnit]] = {}  # units that start once another unit is done
        self.videos: dict[str, VideoPlan] = {}
        self.remaining: dict[str, set[str]] = {}
        self.failed_videos: set[str] = set()
        self.assembly: deque[VideoPlan] = deque()
        self.probing: dict[ray.ObjectRef, ProbeNeeded] = {}  # films probed on the cluster (no index)

    @property
    def over(self) -> bool:
        """Nothing left to take, queue or assemble (units in flight aside)."""
        return self.feed.exhausted and not (self.queue or self.assembly or self.probing)

    def take(self, item: PlanItem) -> None:
        """One item of the plan."""
        if isinstance(item, ProbeNeeded):
            self.probing[_probe_task().remote(item.file, self.storage_options)] = item
        elif isinstance(item, InputProblem):
            self.on_problem(item)
        elif isinstance(item, VideoPlan):
            self.videos[item.key] = item
            self.remaining[item.key] = {u for u in item.unit_ids if u not in self.done.ranges}
            if not self.remaining[item.key]:
                self.assembly.append(item)
        else:
            self.progress.planned(item.frames)
            if item.kind == "hints":
                self.pending_tracks.add(item.unit_id)
            if item.after is not None and item.after in self.pending_tracks:
                self.waiting.setdefault(item.after, []).append(item)
            else:
                self.queue.append((item, 1, None))

    def refill(self, wait: float) -> None:
        """Take what the plan has ready, until ``ahead`` units are queued (waiting up to ``wait`` s for one)."""
        first = True
        while len(self.queue) < self.ahead and not self.feed.exhausted:
            item = self.feed.take(timeout=wait if first else 0.0)
            first = False
            if item is None:
                break
            self.take(item)
        self.progress.listed(not self.feed.exhausted)

    def film_probed(self, ref: ray.ObjectRef) -> None:
        """A film probed on the cluster: its plan (or its problem) taken in."""
        need = self.probing.pop(ref)
        try:
            result = ray.get(ref)
        except (RayTaskError, RayActorError) as e:
            result = InputProblem(need.file.uri, "ReadError", f"{need.file.uri}: probing failed: {e}")
        for item in need.expand(result):
            self.take(item)

    def unit_done(self, unit: WorkUnit) -> None:
        """A unit finished: the units waiting for it start, and its video is assembled once its last range is in."""
        self.pending_tracks.discard(unit.unit_id)
        self.queue.extend((u, 1, None) for u in self.waiting.pop(unit.unit_id, ()))
        if unit.kind == "video":
            left = self.remaining[unit.video_key]
            left.discard(unit.unit_id)
            if not left and unit.video_key not in self.failed_videos:
                self.assembly.append(self.videos[unit.video_key])

    def given_up(self, unit: WorkUnit) -> list[WorkUnit]:
        """A unit given up: its video cannot be made any more; returns the units that waited for it (spared)."""
        self.pending_tracks.discard(unit.unit_id)
        if unit.video_key is not None:
            self.failed_videos.add(unit.video_key)
        return self.waiting.pop(unit.unit_id, [])
