"""Where a job's metrics live and how they are written and read back.

Layout under the job's metrics prefix::

    parts/frames/<unit id>.parquet   rows of a finished unit (also its "done" record)
    parts/units/<unit id>.parquet    the unit's row
    parts/videos/<video key>.parquet an assembled video's row (its "done" record)
    runs/<run id>/failures.parquet   problems of one run
    runs/<run id>/summary.json       figures of one run
    frames.parquet units.parquet videos.parquet failures.parquet summary.json
                                     consolidated at the end of every run that did something

Parts are written as units finish, atomically, so an interrupted job loses no
metrics and a rerun knows what is done. A frame redone by a later run replaces the
earlier row (one row per input and frame, the newest); ``summary.json`` describes the
whole job (every run's figures, frames/s of the runs that did work) with the last
run's own figures beside it (:mod:`jobs.metrics.summary`). A rerun with nothing to do
writes nothing. The tables' columns are :mod:`jobs.metrics.tables`'.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from colorstyle_core import storage
from jobs.metrics.tables import (
    FAILURE_SCHEMA,
    FRAME_SCHEMA,
    QUALITY_SCHEMA,
    UNIT_SCHEMA,
    VIDEO_SCHEMA,
    FailureRow,
    FrameRow,
    QualityRow,
    Row,
    UnitRow,
    VideoRow,
    to_table,
)


def _to_parquet(rows: Sequence[Row], schema: pa.Schema) -> bytes:
    table = to_table(rows, schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def read_table(uri: str, schema: pa.Schema, storage_options=None) -> pa.Table:
    """A Parquet file, or an empty table of ``schema`` if it does not exist."""
    try:
        data = storage.read_bytes(uri, storage_options)
    except FileNotFoundError:
        return schema.empty_table()
    return pq.read_table(io.BytesIO(data)).cast(schema)


@dataclass
class MetricsStore:
    """Reads and writes a job's metrics under ``prefix``."""

    prefix: str
    job_id: str
    run_id: str
    storage_options: dict | None = None

    def _uri(self, *parts: str) -> str:
        return storage.join_under(self.prefix, *parts)

    def _read_parts(self, kind: str, schema: pa.Schema) -> pa.Table:
        uri = self._uri("parts", kind)
        try:
            with storage.errors(uri, "list"):
                fs, root = storage.filesystem(uri, self.storage_options)
                paths = sorted(p for p in fs.find(root) if p.endswith(".parquet"))
                tables = [pq.read_table(io.BytesIO(fs.cat_file(p))).cast(schema) for p in paths]
        except FileNotFoundError:
            tables = []
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def check_writable(self) -> None:
        """Write and remove a probe file.

        Raises:
            storage.StorageError: naming the prefix, when it cannot be written.
        """
        probe = self._uri(f".write-test-{self.run_id}")
        storage.write_bytes_atomic(probe, b"ok", self.storage_options)
        fs, path = storage.filesystem(probe, self.storage_options)
        fs.rm_file(path)

    def frames(self) -> pa.Table:
        """Every frame row of the job, one per ``(input_uri, frame_index)``: the newest attempt wins."""
        return newest_per_frame(self._read_parts("frames", FRAME_SCHEMA))

    def quality(self) -> pa.Table:
        return self._read_parts("quality", QUALITY_SCHEMA)

    def units(self) -> pa.Table:
        return self._read_parts("units", UNIT_SCHEMA)

    def videos(self) -> pa.Table:
        return self._read_parts("videos", VIDEO_SCHEMA)

    def record_unit(self, unit_id: str, frame_rows: Sequence[FrameRow], unit_row: UnitRow,
                    quality_rows: Sequence[QualityRow] = ()) -> None:
        """Persist a finished unit: frame and quality rows first, then its unit row (the done record)."""
        storage.write_bytes_atomic(self._uri("parts", "frames", f"{unit_id}.parquet"),
                                   _to_parquet(frame_rows, FRAME_SCHEMA), self.storage_options)
        if quality_rows:
            storage.write_bytes_atomic(self._uri("parts", "quality", f"{unit_id}.parquet"),
                                       _to_parquet(quality_rows, QUALITY_SCHEMA), self.storage_options)
        storage.write_bytes_atomic(self._uri("parts", "units", f"{unit_id}.parquet"),
                                   _to_parquet([unit_row], UNIT_SCHEMA), self.storage_options)

    def record_video(self, row: VideoRow) -> None:
        storage.write_bytes_atomic(self._uri("parts", "videos", f"{row.video_key}.parquet"),
                                   _to_parquet([row], VIDEO_SCHEMA), self.storage_options)

    def write_failures(self, rows: Sequence[FailureRow]) -> None:
        storage.write_bytes_atomic(self._uri("runs", self.run_id, "failures.parquet"),
                                   _to_parquet(rows, FAILURE_SCHEMA), self.storage_options)

    def write_run_summary(self, summary: dict) -> None:
        """This run's own figures, kept under ``runs/<run id>/``."""
        storage.write_bytes_atomic(self._uri("runs", self.run_id, "summary.json"),
                                   json.dumps(summary, indent=2, default=str).encode(), self.storage_options)

    def run_summaries(self) -> list[dict]:
        """Every recorded run's figures, oldest first (run ids sort by time)."""
        uri = self._uri("runs")
        try:
            with storage.errors(uri, "list"):
                fs, root = storage.filesystem(uri, self.storage_options)
                paths = sorted(p for p in fs.find(root) if p.endswith("/summary.json"))
                return [json.loads(fs.cat_file(p)) for p in paths]
        except FileNotFoundError:
            return []

    def job_summary(self) -> dict | None:
        """The consolidated ``summary.json``, or ``None`` when there is none (yet)."""
        try:
            return json.loads(storage.read_bytes(self._uri("summary.json"), self.storage_options))
        except (FileNotFoundError, ValueError):
            return None

    def consolidate(self, failures: Sequence[FailureRow], summary: dict) -> dict[str, str]:
        """Write the job-wide tables and ``summary.json``; returns their URIs."""
        written = {}
        for name, table in (("frames", self.frames()), ("units", self.units()), ("videos", self.videos()),
                            ("quality", self.quality()),
                            ("failures", to_table(failures, FAILURE_SCHEMA))):
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            uri = self._uri(f"{name}.parquet")
            storage.write_bytes_atomic(uri, buf.getvalue(), self.storage_options)
            written[name] = uri
        uri = self._uri("summary.json")
        storage.write_bytes_atomic(uri, json.dumps(summary, indent=2, default=str).encode(), self.storage_options)
        written["summary"] = uri
        return written


def newest_per_frame(frames: pa.Table) -> pa.Table:
    """One row per ``(input_uri, frame_index)``: the one that started last (a frame redone by a later run)."""
    if frames.num_rows == 0:
        return frames
    keys = list(zip(frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()))
    started = frames["started_at"].cast(pa.int64()).to_pylist()
    runs = frames["run_id"].to_pylist()
    best: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        j = best.get(key)
        if j is None or (started[i] or 0, runs[i] or "") >= (started[j] or 0, runs[j] or ""):
            best[key] = i
    if len(best) == frames.num_rows:
        return frames
    return frames.take(pa.array(sorted(best.values())))
