"""Timing metrics: one schema (pyarrow), one stage enum, one timer, one store.

Layout under the job's metrics prefix::

    parts/frames/<unit id>.parquet   rows of a finished unit (also its "done" record)
    parts/units/<unit id>.parquet    the unit's row
    parts/videos/<video key>.parquet an assembled video's row (its "done" record)
    runs/<run id>/failures.parquet   problems of one run
    frames.parquet units.parquet videos.parquet failures.parquet summary.json
                                     consolidated at the end of every run

Parts are written as units finish, atomically, so an interrupted job loses no
metrics and a rerun knows what is done.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colorstyle_core import storage


class Stage(StrEnum):
    """The stages a frame goes through; the metrics have a ``<stage>_s`` column for each."""

    READ = "read"
    DECODE = "decode"
    PREPROCESS = "preprocess"
    COLORIZE = "colorize"
    STYLIZE = "stylize"
    TEMPORAL = "temporal"  # optical flow, consistency masks and warping (temporal consistency)
    ENCODE = "encode"
    WRITE = "write"
    EVALUATE = "evaluate"  # comparison with ground truth (metrics.reference)


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
        ("perframe_diff", pa.float32()),  # mean |RGB| difference to the per-frame colorization (temporal)
        ("colorized_uri", pa.string()),  # the colorized image before stylization (output.save_colorized)
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


class StageTimer:
    """Accumulates wall-clock seconds per :class:`Stage`.

    ``with timer(Stage.COLORIZE): ...``. On a GPU pass ``sync=torch.cuda.synchronize``
    so asynchronous kernels are charged to the stage that launched them.
    """

    def __init__(self, sync: Callable[[], None] | None = None):
        self.seconds: dict[Stage, float] = {s: 0.0 for s in Stage}
        self._sync = sync

    @contextmanager
    def __call__(self, stage: Stage) -> Iterator[None]:
        if self._sync:
            self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                self._sync()
            self.seconds[stage] += time.perf_counter() - start

    def take(self) -> dict[Stage, float]:
        """The seconds so far, resetting the timer."""
        out, self.seconds = self.seconds, {s: 0.0 for s in Stage}
        return out


def now_ms() -> int:
    return int(time.time() * 1000)


def failure_row(job_id: str, run_id: str, input_uri: str, unit_id: str, error_type: str, message: str,
                attempt: int) -> dict[str, Any]:
    return {"job_id": job_id, "run_id": run_id, "input_uri": input_uri, "unit_id": unit_id,
            "error_type": error_type, "message": message, "attempt": attempt, "recorded_at": now_ms()}


def _to_parquet(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> bytes:
    table = pa.Table.from_pylist(list(rows), schema=schema)
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
        return storage.join(self.prefix, *parts)

    def _read_parts(self, kind: str, schema: pa.Schema) -> pa.Table:
        fs, root = storage.filesystem(self._uri("parts", kind), self.storage_options)
        try:
            paths = sorted(p for p in fs.find(root) if p.endswith(".parquet"))
        except (FileNotFoundError, OSError):
            paths = []
        tables = [pq.read_table(io.BytesIO(fs.cat_file(p))).cast(schema) for p in paths]
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
        return self._read_parts("frames", FRAME_SCHEMA)

    def quality(self) -> pa.Table:
        return self._read_parts("quality", QUALITY_SCHEMA)

    def units(self) -> pa.Table:
        return self._read_parts("units", UNIT_SCHEMA)

    def videos(self) -> pa.Table:
        return self._read_parts("videos", VIDEO_SCHEMA)

    def record_unit(self, unit_id: str, frame_rows: Sequence[dict], unit_row: dict,
                    quality_rows: Sequence[dict] = ()) -> None:
        """Persist a finished unit: frame and quality rows first, then its unit row (the done record)."""
        storage.write_bytes_atomic(self._uri("parts", "frames", f"{unit_id}.parquet"),
                                   _to_parquet(frame_rows, FRAME_SCHEMA), self.storage_options)
        if quality_rows:
            storage.write_bytes_atomic(self._uri("parts", "quality", f"{unit_id}.parquet"),
                                       _to_parquet(quality_rows, QUALITY_SCHEMA), self.storage_options)
        storage.write_bytes_atomic(self._uri("parts", "units", f"{unit_id}.parquet"),
                                   _to_parquet([unit_row], UNIT_SCHEMA), self.storage_options)

    def record_video(self, row: dict) -> None:
        storage.write_bytes_atomic(self._uri("parts", "videos", f"{row['video_key']}.parquet"),
                                   _to_parquet([row], VIDEO_SCHEMA), self.storage_options)

    def write_failures(self, rows: Sequence[dict]) -> None:
        storage.write_bytes_atomic(self._uri("runs", self.run_id, "failures.parquet"),
                                   _to_parquet(rows, FAILURE_SCHEMA), self.storage_options)

    def consolidate(self, failures: Sequence[dict], summary: dict) -> dict[str, str]:
        """Write the job-wide tables and ``summary.json``; returns their URIs."""
        written = {}
        for name, table in (("frames", self.frames()), ("units", self.units()), ("videos", self.videos()),
                            ("quality", self.quality()),
                            ("failures", pa.Table.from_pylist(list(failures), schema=FAILURE_SCHEMA))):
            buf = io.BytesIO()
            pq.write_table(table, buf, compression="zstd")
            uri = self._uri(f"{name}.parquet")
            storage.write_bytes_atomic(uri, buf.getvalue(), self.storage_options)
            written[name] = uri
        uri = self._uri("summary.json")
        storage.write_bytes_atomic(uri, json.dumps(summary, indent=2, default=str).encode(), self.storage_options)
        written["summary"] = uri
        return written


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
