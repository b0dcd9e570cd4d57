"""Job metrics: one pyarrow schema per table, one typed row per table, one store.

Every row is built through its dataclass (:class:`FrameRow`, :class:`UnitRow`,
:class:`VideoRow`, :class:`QualityRow`, :class:`FailureRow`), and :func:`to_table`
refuses a row whose columns differ from its schema. Stage names come from
:class:`colorstyle_core.timing.Stage`.

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
run's own figures beside it. A rerun with nothing to do writes nothing.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colorstyle_core import storage
from colorstyle_core.timing import Seconds, Stage

STAGE_COLUMNS = tuple(f"{s.value}_s" for s in Stage)

FRAME_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("run_id", pa.string()),
        ("unit_id", pa.string()),
        ("kind", pa.string()),  # image | video
        ("input_uri", pa.string()),
        ("output_uri", pa.string()),
        ("frame_index", pa.int64()),  # 0 for images
        ("actor", pa.string()),
        ("node", pa.string()),
        ("gpu_id", pa.string()),
        ("device", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("batch_size", pa.int32()),
        ("weights", pa.string()),  # provenance of every model used; "UNTRAINED" for generated weights
        ("untrained", pa.bool_()),
        ("queue_wait_s", pa.float64()),
        *[(c, pa.float64()) for c in STAGE_COLUMNS],
        ("total_s", pa.float64()),  # sum of the stage columns
        ("started_at", pa.timestamp("ms", tz="UTC")),
        ("loss_total", pa.list_(pa.float32())),  # stylization loss per step (empty without stylize)
        ("loss_content", pa.list_(pa.float32())),
        ("loss_style", pa.list_(pa.float32())),
        ("loss_tv", pa.list_(pa.float32())),
        ("chain_reset", pa.bool_()),  # temporal chain (re)started here: first frame of a shot or range
        ("cut_score", pa.float32()),  # scene-cut score against the previous frame (temporal only)
        ("flow_trusted", pa.float32()),  # fraction of pixels the flow consistency mask trusted
        ("perframe_diff", pa.float32()),  # mean |RGB| difference to the per-frame colours, every 4th pixel (temporal)
        ("colorized_uri", pa.string()),  # the colorized image before stylization (output.save_colorized)
        ("hint_points", pa.int32()),  # SIGGRAPH17 hint points on this frame (keyframes carried; null: no hints)
    ]
)
"""One row per written image or video frame. Batched stages are shared evenly by the batch's frames."""

UNIT_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("run_id", pa.string()),
        ("unit_id", pa.string()),
        ("kind", pa.string()),
        ("inputs", pa.int32()),
        ("frames", pa.int32()),
        ("failed", pa.int32()),
        ("attempt", pa.int32()),
        ("actor", pa.string()),
        ("node", pa.string()),
        ("gpu_id", pa.string()),
        ("queue_wait_s", pa.float64()),
        ("wall_s", pa.float64()),
        *[(c, pa.float64()) for c in STAGE_COLUMNS],
        ("started_at", pa.timestamp("ms", tz="UTC")),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
        ("untrained", pa.bool_()),
        ("peak_rss_mb", pa.float64()),  # the actor's peak resident memory during the unit
    ]
)
"""One row per finished work unit."""

VIDEO_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("run_id", pa.string()),
        ("video_key", pa.string()),
        ("input_uri", pa.string()),
        ("output_uri", pa.string()),
        ("frames", pa.int64()),
        ("audio", pa.string()),
        ("assemble_s", pa.float64()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
        ("e_warp", pa.float64()),  # warping error, scene cuts excluded (metrics.video_consistency)
        ("e_warp_seams", pa.float64()),  # at pairs straddling frame-range seams
        ("e_warp_inside", pa.float64()),  # at the other pairs
        ("e_warp_pairs", pa.list_(pa.float32())),  # per consecutive pair (NaN at cuts)
        ("seams", pa.list_(pa.int64())),  # first frame index of every range after the first
        ("scene_cuts", pa.list_(pa.int64())),
    ]
)
"""One row per assembled video."""

QUALITY_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("run_id", pa.string()),
        ("unit_id", pa.string()),
        ("input_uri", pa.string()),
        ("output_uri", pa.string()),
        ("reference_uri", pa.string()),  # the ground truth it was compared with
        ("psnr", pa.float64()),  # dB, RGB, 8-bit range (inf for identical images)
        ("ssim", pa.float64()),  # RGB, scikit-image defaults (7x7 uniform window), mean over channels
        ("ab_error", pa.float64()),  # mean Euclidean ab distance in CIE Lab
        ("colorfulness_pred", pa.float64()),  # Hasler & Suesstrunk 2003, RGB on 0..255
        ("colorfulness_ref", pa.float64()),
        ("delta_colorfulness", pa.float64()),  # pred - ref
        ("baseline_psnr", pa.float64()),  # the same metrics for the grey baseline (same L, ab = 0)
        ("baseline_ssim", pa.float64()),
        ("baseline_ab_error", pa.float64()),
        ("baseline_colorfulness", pa.float64()),
        ("abs_diff_uri", pa.string()),  # |pred - ref| per pixel (8-bit levels)
        ("clamped_diff_uri", pa.string()),  # the same clamped at 32 levels and stretched to full scale
    ]
)
"""One row per output image compared with a ground-truth image (``metrics.reference``)."""

FAILURE_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("run_id", pa.string()),
        ("input_uri", pa.string()),
        ("unit_id", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("attempt", pa.int32()),
        ("recorded_at", pa.timestamp("ms", tz="UTC")),
    ]
)
"""One row per problem: a bad input, or a unit that failed after its retries."""


def now_ms() -> int:
    return int(time.time() * 1000)


class _Row:
    """A typed metrics row; :meth:`record` gives exactly its table's columns."""

    SCHEMA: pa.Schema

    def record(self) -> dict[str, Any]:
        """The row as ``{column: value}`` for its schema (nested figures flattened)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "stages":
                out.update({f"{s.value}_s": float(value.get(s, 0.0)) for s in Stage})
                if "total_s" in self.SCHEMA.names:
                    out["total_s"] = float(sum(value.get(s, 0.0) for s in Stage))
            elif f.name == "consistency":
                out.update(value.__dict__ if value is not None else dict.fromkeys(ConsistencyFigures.COLUMNS))
            else:
                out[f.name] = value
        return out


@dataclass(frozen=True)
class ConsistencyFigures:
    """Temporal consistency of one output video (``metrics.video_consistency``)."""

    e_warp: float
    e_warp_seams: float
    e_warp_inside: float
    e_warp_pairs: list[float]
    seams: list[int]
    scene_cuts: list[int]

    COLUMNS = ("e_warp", "e_warp_seams", "e_warp_inside", "e_warp_pairs", "seams", "scene_cuts")


@dataclass(frozen=True)
class FrameRow(_Row):
    """One written image or video frame (:data:`FRAME_SCHEMA`); ``stages`` become the ``<stage>_s`` columns."""

    job_id: str
    run_id: str
    unit_id: str
    kind: str
    input_uri: str
    output_uri: str
    frame_index: int
    actor: str
    node: str
    gpu_id: str
    device: str
    width: int
    height: int
    batch_size: int
    weights: str
    untrained: bool
    queue_wait_s: float
    stages: Seconds
    started_at: int
    loss_total: list[float] = field(default_factory=list)
    loss_content: list[float] = field(default_factory=list)
    loss_style: list[float] = field(default_factory=list)
    loss_tv: list[float] = field(default_factory=list)
    chain_reset: bool | None = None
    cut_score: float | None = None
    flow_trusted: float | None = None
    perframe_diff: float | None = None
    colorized_uri: str | None = None
    hint_points: int | None = None


@dataclass(frozen=True)
class UnitRow(_Row):
    """One finished work unit (:data:`UNIT_SCHEMA`); ``stages`` are its frames' sums."""

    job_id: str
    run_id: str
    unit_id: str
    kind: str
    inputs: int
    frames: int
    failed: int
    attempt: int
    actor: str
    node: str
    gpu_id: str
    queue_wait_s: float
    wall_s: float
    stages: Seconds
    started_at: int
    finished_at: int
    untrained: bool
    peak_rss_mb: float | None = None


@dataclass(frozen=True)
class VideoRow(_Row):
    """One assembled video (:data:`VIDEO_SCHEMA`)."""

    job_id: str
    run_id: str
    video_key: str
    input_uri: str
    output_uri: str
    frames: int
    audio: str
    assemble_s: float
    finished_at: int
    consistency: ConsistencyFigures | None = None


@dataclass(frozen=True)
class QualityRow(_Row):
    """One output image compared with its ground truth (:data:`QUALITY_SCHEMA`)."""

    job_id: str
    run_id: str
    unit_id: str
    input_uri: str
    output_uri: str
    reference_uri: str
    psnr: float
    ssim: float
    ab_error: float
    colorfulness_pred: float
    colorfulness_ref: float
    delta_colorfulness: float
    baseline_psnr: float
    baseline_ssim: float
    baseline_ab_error: float
    baseline_colorfulness: float
    abs_diff_uri: str
    clamped_diff_uri: str


@dataclass(frozen=True)
class FailureRow(_Row):
    """One problem: a bad input, or a unit that failed after its retries (:data:`FAILURE_SCHEMA`)."""

    job_id: str
    run_id: str
    input_uri: str
    unit_id: str
    error_type: str
    message: str
    attempt: int
    recorded_at: int = field(default_factory=now_ms)


FrameRow.SCHEMA, UnitRow.SCHEMA, VideoRow.SCHEMA = FRAME_SCHEMA, UNIT_SCHEMA, VIDEO_SCHEMA
QualityRow.SCHEMA, FailureRow.SCHEMA = QUALITY_SCHEMA, FAILURE_SCHEMA


def to_table(rows: Sequence[_Row], schema: pa.Schema) -> pa.Table:
    """Typed rows as a table of ``schema``.

    Raises:
        ValueError: a row whose columns are not exactly the schema's (a misspelt or
            missing column never becomes a silent null).
    """
    records = [r.record() for r in rows]
    names = set(schema.names)
    for r in records:
        if set(r) != names:
            raise ValueError(f"metrics row does not fit its table: unknown columns {sorted(set(r) - names)}, "
                             f"missing {sorted(names - set(r))}")
    return pa.Table.from_pylist(records, schema=schema)


def _to_parquet(rows: Sequence[_Row], schema: pa.Schema) -> bytes:
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


RUN_FIGURES = ("run_id", "frames", "wall_s", "frames_per_s", "startup_s", "end_to_end_s", "end_to_end_frames_per_s",
               "failures", "skipped_finished_inputs")
"""The figures of each run listed in the job summary's ``runs``."""


def summarize_job(runs: Sequence[dict], last: dict, *, job_frames: int) -> dict[str, Any]:
    """The job-wide ``summary.json``: every run's figures, throughput of the runs that did work.

    Args:
        runs: each run's summary (:func:`summarize` plus start-up and end-to-end figures), oldest first.
        last: this run's summary (also in ``runs``).
        job_frames: frames/images done over all runs (one per input and frame).
    Returns:
        The last run's summary with job-wide ``frames``, ``wall_s``, ``frames_per_s``,
        ``end_to_end_s``, ``end_to_end_frames_per_s`` and ``startup_s`` (sums and rates over
        the runs that processed frames), per-actor and per-stage figures of the last such
        run, ``runs`` (every run's figures) and ``last_run`` (this run's own summary).
    """
    working = [r for r in runs if r.get("frames")]
    frames = sum(r["frames"] for r in working)
    wall = sum(r.get("wall_s") or 0.0 for r in working)
    e2e = sum(r.get("end_to_end_s") or 0.0 for r in working)
    latest = working[-1] if working else last
    return {
        **last,
        "frames": job_frames,
        "frames_processed_by_runs": frames,
        "wall_s": wall,
        "frames_per_s": frames / wall if wall > 0 else 0.0,
        "end_to_end_s": e2e,
        "end_to_end_frames_per_s": frames / e2e if e2e > 0 else 0.0,
        "startup_s": sum(r.get("startup_s") or 0.0 for r in working),
        "per_actor": latest.get("per_actor", {}),
        "stages": latest.get("stages", {}),
        "runs_with_work": len(working),
        "runs": [{k: r.get(k) for k in RUN_FIGURES} for r in runs],
        "last_run": last,
    }


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": math.nan, "p95": math.nan}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def summarize(frames: pa.Table, run_id: str, wall_s: float, failures: int, *, job_frames: int,
              skipped: int, untrained: bool) -> dict[str, Any]:
    """Throughput and per-stage latency of one run.

    Args:
        frames: all frame rows of the job (rows of other runs are ignored for rates).
        run_id: this run.
        wall_s: this run's processing wall time (pool ready to the end), seconds.
        failures: problems recorded in this run.
        job_frames: frames/images done over all runs.
        skipped: inputs skipped because an earlier run finished them.
        untrained: whether generated weights were used.
    Returns:
        A JSON-ready dict: frames, wall time, frames/s overall and per actor, p50/p95 per stage.
    """
    this = frames.filter(pc.equal(frames["run_id"], run_id)) if frames.num_rows else frames
    n = this.num_rows
    stages = {col.removesuffix("_s"): _percentiles(this[col].to_numpy()) for col in
              ("queue_wait_s", *STAGE_COLUMNS, "total_s")} if n else {}
    per_actor: dict[str, dict[str, float]] = {}
    if n:
        actors = this["actor"].to_pylist()
        totals = this["total_s"].to_numpy()
        for name in sorted(set(actors)):
            mask = np.array([a == name for a in actors])
            busy = float(totals[mask].sum())
            per_actor[name] = {
                "frames": int(mask.sum()),
                "frames_per_s": float(mask.sum() / wall_s) if wall_s > 0 else math.nan,
                "busy_s": busy,
                "frames_per_busy_s": float(mask.sum() / busy) if busy > 0 else math.nan,
            }
    return {
        "run_id": run_id,
        "frames": n,
        "wall_s": wall_s,
        "frames_per_s": n / wall_s if wall_s > 0 and n else 0.0,
        "per_actor": per_actor,
        "stages": stages,
        "failures": failures,
        "job_frames_done": job_frames,
        "skipped_finished_inputs": skipped,
        "weights_untrained": untrained,
    }
