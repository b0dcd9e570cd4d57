"""Metrics off the scheduling loop: finished units' rows gathered and written many units to a part.

The scheduler hands each finished unit's rows to a :class:`MetricsWriter` (a list append); a
thread of its own writes them as one part per table every ``max_units`` units or
``max_seconds`` seconds, whichever comes first (an append-only log, as Delta Lake's and
Iceberg's commit logs: many rows per write, a record counts only once durable). The frame,
quality and failure rows of a batch are written before its unit and video rows, which are
the done records: a driver killed between a result and its flush loses only those units'
records, and a rerun redoes exactly those units. As the run goes on, every ``fan_in`` parts
of one level are merged into one part of the next (an LSM-style compaction), so a job of
N units leaves about ``fan_in * log_fan_in(N / max_units)`` part files per table, not N.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobs.metrics.store import KINDS, MetricsStore, part_name
from jobs.metrics.tables import FailureRow, FrameRow, QualityRow, Row, UnitRow, VideoRow

log = logging.getLogger(__name__)

MAX_UNITS = 1024
"""Default units per flush. At 500 units/s that is a part every two seconds; a part of 1024 image units
is about 0.3 MB per table (measured with ``python -m jobs.bench.scale``)."""
MAX_SECONDS = 2.0
"""Default seconds between flushes when units come slowly: a driver killed loses at most this much bookkeeping."""
FIRST_SECONDS = 0.25
"""The first flush's interval; it doubles with each flush up to ``max_seconds`` (a short job's first
records are durable at once, a long one settles to ``max_seconds``)."""
FAN_IN = 16
"""Parts of one level merged into one of the next."""
ATTEMPTS = 4
"""Tries of each write before the writer gives up (1, 2, 4 s apart): object stores have bad seconds."""


@dataclass
class _Batch:
    frames: list[FrameRow] = field(default_factory=list)
    quality: list[QualityRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    units: list[UnitRow] = field(default_factory=list)
    videos: list[VideoRow] = field(default_factory=list)
    first_at: float | None = None

    def __len__(self) -> int:
        return len(self.units) + len(self.videos) + len(self.failures)

    def rows(self, kind: str) -> list[Row]:
        return getattr(self, kind)


class MetricsWriter:
    """Writes finished units' metrics in batches, on its own thread, and compacts the parts as the run goes.

    Args:
        store: where the job's metrics live.
        max_units: units (and videos, failures) per flush.
        max_seconds: at most this long between a unit's result and its record being durable (the first
            flushes come sooner).
        first_seconds: the first flush's interval (:data:`FIRST_SECONDS`), doubled at each flush up to ``max_seconds``.
        fan_in: parts of one level merged into one of the next.
    Raises:
        storage.StorageError, OSError: from :meth:`add_unit` & co or :meth:`close`, once a write has failed
            :data:`ATTEMPTS` times (the records of the units since the last flush are lost; a rerun redoes them).
    """

    def __init__(self, store: MetricsStore, *, max_units: int = MAX_UNITS, max_seconds: float = MAX_SECONDS,
                 first_seconds: float = FIRST_SECONDS, fan_in: int = FAN_IN):
        if max_units < 1 or max_seconds <= 0 or fan_in < 2:
            raise ValueError(f"bad writer settings: max_units {max_units}, max_seconds {max_seconds}, fan_in {fan_in}")
        self.store, self.max_units, self.max_seconds, self.fan_in = store, max_units, max_seconds, fan_in
        self.first_seconds = min(first_seconds, max_seconds)
        self._batch = _Batch()
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._seq = 0
        self._levels: dict[str, dict[int, list[str]]] = {kind: {} for kind in KINDS}  # kind -> level -> parts
        self.durable_units = 0
        self.flushes = 0
        self.flush_seconds = 0.0
        self.max_parts = 0
        self._thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
        self._thread.start()

    # ---- what the scheduler calls ------------------------------------------------------------

    def add_unit(self, frame_rows: Sequence[FrameRow], unit_row: UnitRow, quality_rows: Sequence[QualityRow] = (),
                 failures: Sequence[FailureRow] = ()) -> None:
        """A finished unit's rows (recorded within ``max_seconds``)."""
        with self._cond:
            self._raise()
            b = self._batch
            b.frames.extend(frame_rows)
            b.quality.extend(quality_rows)
            b.failures.extend(failures)
            b.units.append(unit_row)
            self._added(b)

    def add_video(self, row: VideoRow) -> None:
        """An assembled video's row (its done record)."""
        with self._cond:
            self._raise()
            self._batch.videos.append(row)
            self._added(self._batch)

    def add_failures(self, rows: Sequence[FailureRow]) -> None:
        """Problems not tied to a finished unit (bad inputs found while planning, units given up)."""
        if not rows:
            return
        with self._cond:
            self._raise()
            self._batch.failures.extend(rows)
            self._added(self._batch)

    def close(self) -> None:
        """Write what is left, wait for the thread, and raise the error of a write that failed."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        self._raise()

    @property
    def part_files(self) -> int:
        """Part files this run's writer has now (after compaction)."""
        return sum(len(parts) for levels in self._levels.values() for parts in levels.values())

    # ---- the writer's thread -----------------------------------------------------------------

    def _added(self, b: _Batch) -> None:
        if b.first_at is None:
            b.first_at = time.monotonic()
        if len(b) >= self.max_units:
            self._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    @property
    def _interval(self) -> float:
        return min(self.max_seconds, self.first_seconds * 2.0 ** min(self.flushes, 16))

    def _due(self) -> bool:
        b = self._batch
        return bool(len(b)) and (len(b) >= self.max_units or self._closing or
                                 time.monotonic() - (b.first_at or 0.0) >= self._interval)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due() and not (self._closing and not len(self._batch)):
                    wait = self._interval if self._batch.first_at is None else \
                        max(0.0, self._interval - (time.monotonic() - self._batch.first_at))
                    self._cond.wait(timeout=wait)
                if self._closing and not len(self._batch):
                    return
                batch, self._batch = self._batch, _Batch()
            try:
                start = time.perf_counter()
                self._flush(batch)
                self._compact()
                self.flush_seconds += time.perf_counter() - start
            except BaseException as e:  # noqa: BLE001 -- handed to the scheduler's thread
                log.error("metrics writer: %s: %s", type(e).__name__, e)
                with self._cond:
                    self._error = e
                return

    def _write(self, kind: str, level: int, rows: Sequence[Row]) -> None:
        name = part_name(self.store.run_id, level, self._seq)
        self._seq += 1
        _retry(lambda: self.store.write_part(kind, name, rows))
        self._levels[kind].setdefault(level, []).append(name)

    def _flush(self, batch: _Batch) -> None:
        for kind in ("frames", "quality", "failures"):  # the rows first ...
            if batch.rows(kind):
                self._write(kind, 0, batch.rows(kind))
        for kind in ("units", "videos"):  # ... then the done records
            if batch.rows(kind):
                self._write(kind, 0, batch.rows(kind))
        self.durable_units += len(batch.units)
        self.flushes += 1
        self.max_parts = max(self.max_parts, self.part_files)

    def _compact(self) -> None:
        """Merge every ``fan_in`` parts of one level of one table into one part of the next level."""
        for kind, levels in self._levels.items():
            level = 0
            while len(levels.get(level, ())) >= self.fan_in:
                names = levels[level][: self.fan_in]
                merged = part_name(self.store.run_id, level + 1, self._seq)
                self._seq += 1
                _retry(lambda kind=kind, names=names, merged=merged: self.store.merge_parts(kind, names, merged))
                levels[level] = levels[level][self.fan_in:]
                levels.setdefault(level + 1, []).append(merged)
                level += 1


def _retry(write) -> None:
    """``write()``, tried :data:`ATTEMPTS` times, 1, 2, 4 s apart."""
    for attempt in range(ATTEMPTS):
        try:
            write()
            return
        except OSError as e:
            if attempt == ATTEMPTS - 1:
                raise
            log.warning("metrics writer: %s (try %d of %d); trying again", e, attempt + 1, ATTEMPTS)
            time.sleep(2.0 ** attempt)
