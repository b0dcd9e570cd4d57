"""Reading a finished (or interrupted) job back: its metrics prefix, summary, tables and manifest.

Everything is read leniently: a missing or corrupt file becomes a problem sentence,
never an exception, so a report can always be written.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from colorstyle_core import storage
from jobs.manifest import Manifest
from jobs.metrics.tables import FAILURE_SCHEMA, FRAME_SCHEMA, QUALITY_SCHEMA, STAGE_COLUMNS, UNIT_SCHEMA, VIDEO_SCHEMA
from jobs.paths import CONTROL_DIR

log = logging.getLogger(__name__)

TABLES = {"frames": FRAME_SCHEMA, "units": UNIT_SCHEMA, "videos": VIDEO_SCHEMA, "quality": QUALITY_SCHEMA,
          "failures": FAILURE_SCHEMA}



def _is_metrics_prefix(uri: str, storage_options: dict | None) -> bool:
    return any(storage.exists(storage.join(uri, name), storage_options)
               for name in ("summary.json", "frames.parquet", "parts/units"))


def find_metrics_prefix(prefix: str, job: str | None = None, storage_options: dict | None = None) -> str:
    """The metrics prefix of the job to report on.

    Args:
        prefix: a job's output prefix (its jobs live under ``_colorstyle/<job id>/``) or a
            metrics prefix itself (it holds ``summary.json``, ``frames.parquet`` or ``parts/units/``).
        job: a job id under ``prefix``; default: the most recent job (latest run id in
            its ``summary.json``, then the latest modification time).
        storage_options: fsspec options for ``prefix``.
    Returns:
        The metrics prefix URI (no trailing slash).
    Raises:
        FileNotFoundError: nothing that looks like a job is there.
    """
    prefix = prefix.rstrip("/") or prefix
    if job:
        candidate = storage.join(prefix, CONTROL_DIR, job)
        if _is_metrics_prefix(candidate, storage_options):
            return candidate
        if storage.basename(prefix) == job and _is_metrics_prefix(prefix, storage_options):
            return prefix
        raise FileNotFoundError(f"{prefix}: no job {job!r} (looked for {CONTROL_DIR}/{job}/summary.json)")
    if _is_metrics_prefix(prefix, storage_options):
        return prefix
    fs, root = storage.filesystem(storage.join(prefix, CONTROL_DIR), storage_options)
    try:
        found = fs.glob(root.rstrip("/") + "/*/summary.json")
    except (FileNotFoundError, OSError):
        found = []
    if not found:
        raise FileNotFoundError(f"{prefix}: no job found (no summary.json here and none under {CONTROL_DIR}/*/)")

    def recency(path: str) -> tuple[str, float]:
        run_id = ""
        try:
            run_id = str(json.loads(fs.cat_file(path)).get("run_id") or "")
        except (OSError, ValueError, AttributeError):
            pass
        try:
            info = fs.info(path)
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
            mtime = mtime.timestamp() if isinstance(mtime, datetime) else float(mtime)
        except (OSError, ValueError, TypeError):
            mtime = 0.0
        return run_id, mtime

    best = max(found, key=recency)
    return storage.unstrip(fs, best.rsplit("/", 1)[0])


def _aligned(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones (older jobs) become nulls."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass
class JobData:
    """What a job left under its metrics prefix, read leniently.

    Attributes:
        metrics_prefix: where it was read from.
        summary: ``summary.json`` (``{}`` when missing: the job is running or was interrupted).
        tables: ``frames``, ``units``, ``videos``, ``quality``, ``failures`` (empty when missing),
            each with exactly its :mod:`jobs.metrics.tables` schema.
        problems: what could not be read, one sentence each.
        manifest: the job's manifest as the summary kept it (credentials masked), parsed
            through :class:`jobs.manifest.Manifest`; ``None`` when missing or invalid.
    """

    metrics_prefix: str
    summary: dict[str, Any]
    tables: dict[str, pa.Table]
    problems: list[str] = field(default_factory=list)
    manifest: Manifest | None = None


def load_job(metrics_prefix: str, storage_options: dict | None = None) -> JobData:
    """Read a job's summary and tables; never raises for missing or corrupt files."""
    problems: list[str] = []
    summary: dict[str, Any] = {}
    uri = storage.join(metrics_prefix, "summary.json")
    try:
        loaded = json.loads(storage.read_bytes(uri, storage_options))
        summary = loaded if isinstance(loaded, dict) else {}
        if not isinstance(loaded, dict):
            problems.append(f"{uri}: not a JSON object")
    except FileNotFoundError:
        problems.append(f"{uri}: missing (the job is running, was interrupted, or never started)")
    except (OSError, ValueError) as e:
        problems.append(f"{uri}: unreadable ({e})")
    tables = {}
    for name, schema in TABLES.items():
        uri = storage.join(metrics_prefix, f"{name}.parquet")
        try:
            tables[name] = _aligned(pq.read_table(io.BytesIO(storage.read_bytes(uri, storage_options))), schema)
        except FileNotFoundError:
            tables[name] = schema.empty_table()
            if name in ("frames", "failures"):
                problems.append(f"{uri}: missing")
        except (OSError, ValueError, pa.ArrowException) as e:
            tables[name] = schema.empty_table()
            problems.append(f"{uri}: unreadable ({type(e).__name__}: {e})")
    manifest = None
    if isinstance(summary.get("manifest"), dict):
        try:
            manifest = Manifest.model_validate(summary["manifest"])
        except ValidationError as e:
            problems.append(f"{storage.join(metrics_prefix, 'summary.json')}: its manifest is not valid here "
                            f"({e.error_count()} problem(s), first: {e.errors()[0]['msg']})")
    return JobData(metrics_prefix, summary, tables, problems, manifest)


def completion_times(frames: pa.Table) -> tuple[np.ndarray, list[str]]:
    """When each frame finished, in seconds since the first frame started, and its actor.

    A unit's frames share the unit's ``started_at`` and run one after another on one
    actor, so frame k of a unit finished at ``started_at + sum(total_s of frames 0..k)``.
    """
    if frames.num_rows == 0:
        return np.zeros(0), []
    started = frames["started_at"].cast(pa.int64()).to_numpy(zero_copy_only=False).astype(float) / 1000.0
    total = np.nan_to_num(frames["total_s"].to_numpy(zero_copy_only=False).astype(float))
    units = frames["unit_id"].to_pylist()
    done = np.zeros(len(units))
    elapsed: dict[str, float] = {}
    for i, (u, s, t) in enumerate(zip(units, started, total)):
        elapsed[u] = elapsed.get(u, 0.0) + t
        done[i] = s + elapsed[u]
    t0 = np.nanmin(started)
    return done - t0, [a or "?" for a in frames["actor"].to_pylist()]



def stage_percentiles(frames: pa.Table) -> list[tuple[str, float, float]]:
    """``(stage, p50 s, p95 s)`` per frame for every stage that took any time, then ``total`` and ``queue wait``."""
    out = []
    for col in (*STAGE_COLUMNS, "total_s", "queue_wait_s"):
        values = frames[col].to_numpy(zero_copy_only=False).astype(float) if frames.num_rows else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size and values.max() > 0:
            out.append((col.removesuffix("_s").replace("_", " "), float(np.percentile(values, 50)),
                        float(np.percentile(values, 95))))
    return out



MAX_CURVES = 2000
"""Loss curves read per term (evenly spaced over the frames) for the median."""


def loss_curves(frames: pa.Table, limit: int = MAX_CURVES) -> dict[str, tuple[list[np.ndarray], int]]:
    """``{term: (curves, frames with a curve)}`` for the stylization loss terms.

    At most ``limit`` curves per term are returned, evenly spaced over the frames that
    have one, so a long film does not need its whole loss history in memory.
    """
    out: dict[str, tuple[list[np.ndarray], int]] = {}
    for term in ("total", "content", "style", "tv"):
        col = frames[f"loss_{term}"].combine_chunks() if frames.num_rows else None
        if col is None or len(col) == 0:
            continue
        offsets = col.offsets.to_numpy()
        values = col.values.to_numpy(zero_copy_only=False).astype(float)
        lengths = np.diff(offsets)
        has = np.flatnonzero(lengths > 0)
        if has.size == 0:
            continue
        pick = has[np.unique(np.linspace(0, has.size - 1, min(limit, has.size)).round().astype(int))]
        out[term] = ([values[offsets[i]:offsets[i + 1]] for i in pick], int(has.size))
    return out



def median_curves(series: list[np.ndarray]) -> list[tuple[int, int, np.ndarray]]:
    """``[(steps, frames, median curve), ...]`` per group of curves of the same length, largest group first.

    A median is only taken over frames that all ran that many steps: warm-started video
    frames (fewer steps) and first frames of a shot (all steps) are separate groups.
    """
    groups: dict[int, list[np.ndarray]] = {}
    for c in series:
        if len(c):
            groups.setdefault(len(c), []).append(np.asarray(c, dtype=float))
    out = [(n, len(g), np.median(np.stack(g), axis=0)) for n, g in groups.items()]
    return sorted(out, key=lambda t: (-t[1], -t[0]))


@dataclass(frozen=True)
class VideoSeries:
    """One video's E_warp per frame pair, on the input's frame numbering."""

    name: str
    first_frame: int
    pairs: tuple[float, ...]
    seams: tuple[int, ...]
    cuts: tuple[int, ...]
    e_warp: float | None

