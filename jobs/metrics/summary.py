"""A job's figures: throughput and per-stage latency of one run (:func:`summarize`) and of the whole job
over its runs (:func:`summarize_job`), as ``summary.json`` holds them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.metrics.tables import STAGE_COLUMNS

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
