"""``colorstyle report``: one self-contained HTML page per job -- did it work, how fast, what does it look like.

Reads what a finished (or interrupted) job left under its metrics prefix --
``summary.json`` and the Parquet tables declared in :mod:`jobs.metrics` -- plus the
images it names, and writes::

    <metrics prefix>/report/index.html     the page (inline CSS, thumbnails as data: URIs)
    <metrics prefix>/report/*.png          charts (matplotlib, Agg), referenced relatively

The page needs no network: no scripts, fonts or styles from elsewhere. Thumbnails
are small JPEGs (longer side :data:`THUMB_PX`) embedded in the page; the grid shows at
most ``max_images`` images and says how many more there are. Every read goes through
:mod:`colorstyle_core.storage` (any fsspec URI) and every write is atomic. A missing
or unreadable file never stops the report: the page shows a "missing" placeholder
and lists the problem.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import math
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from colorstyle_core import imageio, storage
from colorstyle_core.video import probe, read_frames
from jobs.manifest import redact
from jobs.metrics import FAILURE_SCHEMA, FRAME_SCHEMA, QUALITY_SCHEMA, STAGE_COLUMNS, UNIT_SCHEMA, VIDEO_SCHEMA

log = logging.getLogger(__name__)

THUMB_PX = 200
"""Longer side of every thumbnail, in pixels."""
THUMB_QUALITY = 72
"""JPEG quality of the embedded thumbnails."""
MAX_IMAGES = 24
"""Images shown in the grid by default."""
MAX_VIDEOS = 8
"""Videos shown with frames (and in the E_warp chart)."""
MAX_LISTED_OUTPUTS = 300
"""Output files listed by name under "Files"."""
TABLES = {"frames": FRAME_SCHEMA, "units": UNIT_SCHEMA, "videos": VIDEO_SCHEMA, "quality": QUALITY_SCHEMA,
          "failures": FAILURE_SCHEMA}


# ---- finding and loading a job ----------------------------------------------------------------


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
        candidate = storage.join(prefix, "_colorstyle", job)
        if _is_metrics_prefix(candidate, storage_options):
            return candidate
        if storage.basename(prefix) == job and _is_metrics_prefix(prefix, storage_options):
            return prefix
        raise FileNotFoundError(f"{prefix}: no job {job!r} (looked for _colorstyle/{job}/summary.json)")
    if _is_metrics_prefix(prefix, storage_options):
        return prefix
    fs, root = storage.filesystem(storage.join(prefix, "_colorstyle"), storage_options)
    try:
        found = fs.glob(root.rstrip("/") + "/*/summary.json")
    except (FileNotFoundError, OSError):
        found = []
    if not found:
        raise FileNotFoundError(f"{prefix}: no job found (no summary.json here and none under _colorstyle/*/)")

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
            each with exactly its :mod:`jobs.metrics` schema.
        problems: what could not be read, one sentence each.
    """

    metrics_prefix: str
    summary: dict[str, Any]
    tables: dict[str, pa.Table]
    problems: list[str] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any]:
        m = self.summary.get("manifest")
        return m if isinstance(m, dict) else {}


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
    return JobData(metrics_prefix, summary, tables, problems)


# ---- small helpers ----------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    """A number for the page: ``—`` for missing/NaN, ``∞`` for infinity."""
    f = _finite(value)
    if f is None:
        return "—"
    if math.isinf(f):
        return ("∞" if f > 0 else "−∞") + unit
    return f"{f:{spec}}{unit}"


def _mean(values: Iterable[Any]) -> float | None:
    vals = [f for v in values if (f := _finite(v)) is not None]
    return math.fsum(vals) / len(vals) if vals else None


def _duration(seconds: Any) -> str:
    s = _finite(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {s % 60:.0f} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def _short(uri: str, root: str | None = None) -> str:
    """A URI shortened for display: relative to ``root`` when under it, else as is."""
    if root and uri.startswith(root.rstrip("/") + "/"):
        return uri[len(root.rstrip("/")) + 1:]
    return uri


# ---- reading media ----------------------------------------------------------------------------


class _Media:
    """Reads images and video frames for thumbnails, with the right storage options per URI.

    Inputs and ground truth are read with the manifest's ``storage_options``, outputs and
    metrics files with the output's; ``override`` (the command's ``--storage-options``)
    wins for both. Local paths get no options.
    """

    def __init__(self, override: dict | None, manifest: dict[str, Any]):
        out = manifest.get("output") if isinstance(manifest.get("output"), dict) else {}
        self.input_opts = override if override is not None else manifest.get("storage_options")
        self.output_opts = override if override is not None else (
            out.get("storage_options") if out.get("storage_options") is not None else manifest.get("storage_options"))

    def opts(self, uri: str, role: str) -> dict | None:
        if storage.is_local(uri):
            return None
        return self.input_opts if role == "input" else self.output_opts

    def read(self, uri: str, role: str) -> bytes:
        return storage.read_bytes(uri, self.opts(uri, role))

    def thumbnail(self, uri: str | None, role: str) -> str | None:
        """A ``data:image/jpeg`` URI of a small copy of the image at ``uri``; ``None`` if unreadable."""
        if not uri:
            return None
        try:
            pixels = imageio.decode_image(self.read(uri, role), uri).pixels
            rgb = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
            return _jpeg_data_uri(rgb[..., 0] if rgb.shape[2] == 1 else rgb)
        except Exception as e:  # one bad file must never stop the report
            log.info("report: no thumbnail for %s (%s: %s)", uri, type(e).__name__, e)
            return None

    def video_thumbnails(self, uri: str | None, indices: Sequence[int], role: str) -> dict[int, str]:
        """Thumbnails of frames ``indices`` of the video at ``uri`` (those that decode).

        Each frame is decoded on its own (a seek to the key frame before it), so the last
        frame of a long film costs no more than the first.
        """
        if not uri or not indices:
            return {}
        local = storage.is_local(uri)
        path = uri.removeprefix("file://")

        def decode(fn):
            if local:
                return fn(path)
            with storage.open_read(uri, self.opts(uri, role)) as f:
                return fn(f)

        out: dict[int, str] = {}
        try:
            info = decode(lambda src: probe(src, uri))
        except Exception as e:  # a broken or missing video: placeholders
            log.info("report: %s unreadable (%s: %s)", uri, type(e).__name__, e)
            return out
        for index in sorted(set(indices)):
            if not 0 <= index < info.frame_count:
                continue
            try:
                rgb = decode(lambda src, i=index: next(read_frames(src, info, i, i + 1, uri))[1])
            except Exception as e:
                log.info("report: frame %d of %s unreadable (%s: %s)", index, uri, type(e).__name__, e)
                continue
            out[index] = _jpeg_data_uri(rgb)
        return out


def _jpeg_data_uri(pixels: np.ndarray, size: int = THUMB_PX) -> str:
    """``(H, W)`` or ``(H, W, 3)`` uint8 -> a small JPEG as a data URI (longer side ``size``)."""
    img = Image.fromarray(pixels)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---- charts -----------------------------------------------------------------------------------

_COLORS = ["#3b6fb6", "#e07b39", "#4a9d5b", "#b8466b", "#7d5fb2", "#8c6d46", "#3a9aa5", "#777777"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, Agg for PNG

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _style(ax) -> None:
    ax.grid(True, color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


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


def chart_throughput(frames: pa.Table, overall_fps: float | None) -> bytes | None:
    """Frames completed per time bin, stacked per actor (frames/s)."""
    t, actors = completion_times(frames)
    t = t[np.isfinite(t)] if len(t) else t
    if len(t) == 0:
        return None
    span = max(float(t.max()), 1e-3)
    bins = min(40, max(4, len(t) // 3))  # about three frames per bin on average, 4 to 40 bins
    width = next((w for w in (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / w <= bins),
                 7200)
    edges = np.arange(0, span + width, width)
    if len(edges) < 2:
        edges = np.array([0, width])
    fig = _figure(11, 3.4)
    ax = fig.add_subplot()
    bottom = np.zeros(len(edges) - 1)
    for k, name in enumerate(sorted(set(actors))):
        mine = np.array([tt for tt, a in zip(t, actors) if a == name])
        counts, _ = np.histogram(mine, bins=edges)
        rate = counts / width
        ax.bar(edges[:-1], rate, width=width, bottom=bottom, align="edge", color=_COLORS[k % len(_COLORS)],
               edgecolor="white", linewidth=0.5, label=name)
        bottom += rate
    if overall_fps:
        ax.axhline(overall_fps, color="#333333", linestyle="--", linewidth=1,
                   label=f"overall {overall_fps:.2f} frames/s")
    ax.set_xlabel("seconds since the first frame started")
    ax.set_ylabel(f"frames/s (per {width:g} s bin)")
    ax.set_xlim(0, edges[-1])
    ax.legend(fontsize=8, frameon=False, ncols=min(5, len(set(actors)) + 1), loc="lower left",
              bbox_to_anchor=(0, 1.0))
    _style(ax)
    return _png(fig)


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


def chart_stages(rows: Sequence[tuple[str, float, float]]) -> bytes | None:
    """Horizontal p50/p95 bars, seconds per frame, one pair per stage and the total.

    Queue wait (not work) and stages under 0.5% of the total's p95 are left out of the
    bars; the page lists them.
    """
    total = next((r[2] for r in rows if r[0] == "total"), max((r[2] for r in rows), default=0.0))
    rows = [r for r in rows if r[0] != "queue wait" and (r[2] >= 0.005 * total or r[0] == "total")]
    if not rows:
        return None
    fig = _figure(11, 0.42 * len(rows) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    p50 = np.array([r[1] for r in rows])
    p95 = np.array([r[2] for r in rows])
    ax.barh(y + 0.18, p50, height=0.36, color=_COLORS[0], label="p50 (median)")
    ax.barh(y - 0.18, p95, height=0.36, color=_COLORS[1], label="p95")
    top = float(max(p95.max(), p50.max(), 1e-9))
    for yy, a, b in zip(y, p50, p95):
        ax.text(a + top * 0.01, yy + 0.18, _seconds(a), va="center", fontsize=7.5)
        ax.text(b + top * 0.01, yy - 0.18, _seconds(b), va="center", fontsize=7.5)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xlim(0, top * 1.15)
    if rows[-1][0] == "total" and len(rows) > 1:
        ax.axhline(0.5, color="#9aa4b1", linewidth=0.8)
    ax.set_xlabel("seconds per frame")
    ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2)
    _style(ax)
    return _png(fig)


def _seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1000:.1f} ms" if s >= 1e-3 else f"{s * 1000:.2g} ms"


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


def chart_losses(curves: dict[str, tuple[list[np.ndarray], int]], examples: int = 5) -> bytes | None:
    """One panel per loss term: the median over frames (bold) and a few frames' curves."""
    from matplotlib.ticker import MaxNLocator

    if not curves:
        return None
    terms = [t for t in ("total", "content", "style", "tv") if t in curves]
    fig = _figure(11, 2.8 if len(terms) <= 2 else 5.2)
    cols = 2 if len(terms) > 1 else 1
    rows = math.ceil(len(terms) / cols)
    for k, term in enumerate(terms):
        ax = fig.add_subplot(rows, cols, k + 1)
        series, total = curves[term]
        n = max(len(c) for c in series)
        padded = np.full((len(series), n), np.nan)
        for i, c in enumerate(series):
            padded[i, : len(c)] = c
        pick = np.linspace(0, len(series) - 1, min(examples, len(series))).round().astype(int)
        for i in sorted(set(pick.tolist())):
            ax.plot(np.arange(len(series[i])), series[i], color="#9aa4b1", linewidth=0.8, alpha=0.8)
        with np.errstate(all="ignore"):
            median = np.nanmedian(padded, axis=0)
        ax.plot(np.arange(n), median, color=_COLORS[k % len(_COLORS)], linewidth=2.2,
                label=f"median of {len(series)} frames" + (f" (of {total})" if total > len(series) else ""))
        finite = padded[np.isfinite(padded)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        ax.set_title(f"{term} loss", loc="left", fontsize=10)
        ax.set_xlabel("optimiser step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7.5, frameon=False)
        _style(ax)
    return _png(fig)


@dataclass(frozen=True)
class VideoSeries:
    """One video's E_warp per frame pair, on the input's frame numbering."""

    name: str
    first_frame: int
    pairs: tuple[float, ...]
    seams: tuple[int, ...]
    cuts: tuple[int, ...]
    e_warp: float | None


def chart_ewarp(videos: Sequence[VideoSeries]) -> bytes | None:
    """E_warp per consecutive frame pair, one panel per video; seams dashed, scene cuts red."""
    videos = [v for v in videos if v.pairs]
    if not videos:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _figure(11, 2.4 * len(videos) + 0.4)
    for k, v in enumerate(videos):
        ax = fig.add_subplot(len(videos), 1, k + 1)
        x = v.first_frame + 1 + np.arange(len(v.pairs))  # pair (t-1, t) plotted at t
        y = np.array(v.pairs, dtype=float)
        ax.plot(x, y, marker="o", markersize=3, color=_COLORS[0], linewidth=1.4, label="E_warp of pair (t−1, t)")
        if v.e_warp is not None:
            ax.axhline(v.e_warp, color="#333333", linestyle=":", linewidth=1, label=f"mean {v.e_warp:.5f}")
        for i, s in enumerate(v.seams):
            ax.axvline(s, color=_COLORS[1], linestyle="--", linewidth=1.2, label="range seam" if i == 0 else None)
        for i, c in enumerate(v.cuts):
            ax.axvline(c, color="#c0392b", linewidth=1.6, label="scene cut (left out)" if i == 0 else None)
        ax.set_title(v.name, loc="left", fontsize=10)
        ax.set_ylabel("E_warp", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7.5, frameon=False, loc="upper left", ncols=4)
        _style(ax)
    fig.axes[-1].set_xlabel("input frame t")
    return _png(fig)


def chart_quality(quality: pa.Table) -> bytes | None:
    """Output against the grey baseline: PSNR, SSIM, ab error, colourfulness (means, with every image as a dot)."""
    if quality.num_rows == 0:
        return None
    panels = [
        ("PSNR (dB) — higher is closer", [("output", "psnr"), ("grey baseline", "baseline_psnr")]),
        ("SSIM — higher is closer", [("output", "ssim"), ("grey baseline", "baseline_ssim")]),
        ("ab error (Lab) — lower is better", [("output", "ab_error"), ("grey baseline", "baseline_ab_error")]),
        ("colourfulness", [("output", "colorfulness_pred"), ("grey baseline", "baseline_colorfulness"),
                           ("ground truth", "colorfulness_ref")]),
    ]
    colors = {"output": _COLORS[0], "grey baseline": "#9a9a9a", "ground truth": _COLORS[2]}
    fig = _figure(11, 3.0)
    rng = np.random.default_rng(0)
    for k, (title, bars) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ticks = []
        for i, (label, col) in enumerate(bars):
            values = np.array([v for v in quality[col].to_pylist() if v is not None], dtype=float)
            values = values[np.isfinite(values)]
            mean = float(values.mean()) if values.size else 0.0
            ax.bar(i, mean, color=colors[label], width=0.7)
            if values.size:
                ax.scatter(i + rng.uniform(-0.18, 0.18, values.size), values, s=9, color="#222222", zorder=3,
                           alpha=0.7)
            ticks.append(f"{label}\n{mean:.3g}" if values.size else f"{label}\n—")
        ax.set_xticks(range(len(bars)), ticks, fontsize=7.5)
        ax.set_title(title, loc="left", fontsize=8.5)
        ax.tick_params(labelsize=7.5)
        _style(ax)
    return _png(fig)


# ---- the page ---------------------------------------------------------------------------------

_CSS = """
:root { --ok:#1e7d3a; --bad:#b3261e; --warn:#9a5b00; --ink:#1d232b; --muted:#5f6b7a; --line:#e3e6ea;
        --bg:#f5f6f8; --card:#fff; --accent:#3b6fb6; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; } h1 code { font-size: 20px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.lead, .muted { color: var(--muted); } p.lead { margin: 0 0 14px; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
a { color: var(--accent); }
.status { display:flex; align-items:center; gap:14px; padding:14px 18px; border-radius:10px; margin:14px 0;
          font-size:18px; font-weight:600; color:#fff; }
.status.ok { background: var(--ok); } .status.bad { background: var(--bad); } .status.warn { background: var(--warn); }
.status small { font-weight: 400; font-size: 14px; opacity: .92; }
.banner { border: 2px solid var(--bad); background: #fdecea; color: #7a1b14; border-radius: 10px;
          padding: 12px 16px; margin: 12px 0; font-weight: 600; }
.banner span { font-weight: 400; display:block; margin-top:3px; }
.problems { border:1px solid #f0c36d; background:#fff8e6; border-radius:8px; padding:8px 14px; margin:10px 0; }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap:10px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 14px; }
.card .v { font-size: 22px; font-weight: 650; } .card .k { color: var(--muted); font-size: 12.5px; }
.card.bad .v { color: var(--bad); } .card.ok .v { color: var(--ok); }
table { border-collapse: collapse; background: var(--card); border:1px solid var(--line); border-radius: 8px;
        overflow:hidden; margin: 6px 0 10px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f5; font-weight: 600; font-size: 13px; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.msg { max-width: 560px; word-break: break-word; }
.chart { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px; margin: 10px 0; }
.chart img { max-width:100%; height:auto; display:block; }
.chart p { margin: 6px 2px 0; color: var(--muted); font-size: 13px; }
.item { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:10px 12px; margin:10px 0; }
.item .title { font-weight:600; margin-bottom:6px; word-break: break-all; }
.strip { display:grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap:10px; align-items:start; }
figure { margin:0; min-width: 0; }
figure img { display:block; max-width:100%; max-height:200px; border-radius:4px; border:1px solid var(--line);
             background: #fafafa; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 3px; }
.missing { width:100%; height:112px; display:flex; align-items:center; justify-content:center; border-radius:4px;
           border:1px dashed #c3c8cf; color:#8a94a1; background:#fafbfc; font-size:12px; text-align:center;
           padding:6px; }
.metrics { font-size: 12.5px; margin-top: 8px; display:flex; flex-wrap: wrap; gap: 4px 16px; }
.metrics b { font-variant-numeric: tabular-nums; }
.better { color: var(--ok); } .worse { color: var(--bad); }
details { background: var(--card); border:1px solid var(--line); border-radius:8px; padding: 8px 12px; margin:8px 0; }
details summary { cursor: pointer; font-weight: 600; }
details pre { overflow-x:auto; background:#f7f8fa; padding:10px; border-radius:6px; }
dl.glossary dt { font-weight: 600; margin-top: 8px; } dl.glossary dd { margin: 2px 0 0 0; color: var(--muted); }
ul.files { columns: 2; padding-left: 18px; } ul.files li { break-inside: avoid; word-break: break-all; }
nav.toc { font-size: 13px; margin: 4px 0 0; } nav.toc a { margin-right: 12px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    html_uri: str
    charts: dict[str, str]  # chart name -> URI of its PNG
    metrics_prefix: str
    problems: list[str]


class _Page:
    """Turns a :class:`JobData` into HTML; links are made relative to ``report_dir`` when both are local."""

    def __init__(self, job: JobData, media: _Media, report_dir: str, max_images: int):
        self.job = job
        self.media = media
        self.report_dir = report_dir
        self.max_images = max_images
        self.s = job.summary
        self.t = job.tables
        self.problems = list(job.problems)
        man = job.manifest
        pipe = man.get("pipeline") if isinstance(man.get("pipeline"), dict) else {}
        self.colorize = bool(pipe.get("colorize"))
        self.stylize = bool(pipe.get("stylize"))
        self.output_prefix = (man.get("output") or {}).get("prefix") if isinstance(man.get("output"), dict) else None

    # links ----------------------------------------------------------------------------------
    def href(self, uri: str | None) -> str | None:
        """A relative link to a local file from the report's folder, else ``None``."""
        if not uri or not storage.is_local(uri) or not storage.is_local(self.report_dir):
            return None
        target = os.path.abspath(uri.removeprefix("file://"))
        rel = os.path.relpath(target, os.path.abspath(self.report_dir.removeprefix("file://")))
        return urllib.parse.quote(rel.replace(os.sep, "/"))

    def link(self, uri: str | None, text: str | None = None) -> str:
        """A relative link labelled ``text`` when the file is local like the report, else the full URI as text."""
        if not uri:
            return "—"
        h = self.href(uri)
        if h:
            return f'<a href="{_e(h)}" title="{_e(uri)}">{_e(text or uri)}</a>'
        return f"<code>{_e(uri)}</code>"

    def out_link(self, uri: str | None) -> str:
        """:meth:`link` labelled with the path under the output prefix."""
        return self.link(uri, _short(uri or "", self.output_prefix))

    # numbers --------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        frames, videos, failures = self.t["frames"], self.t["videos"], self.t["failures"]
        kinds = frames["kind"].to_pylist()
        inputs = frames["input_uri"].to_pylist()
        outputs = frames["output_uri"].to_pylist()
        image_inputs = {u for u, k in zip(inputs, kinds) if k == "image"}
        image_outputs = {o for o, k in zip(outputs, kinds) if k == "image" and o}
        video_inputs = {u for u, k in zip(inputs, kinds) if k == "video"} | set(videos["input_uri"].to_pylist())
        failed_inputs = {u for u in failures["input_uri"].to_pylist() if u}
        return {
            "frames": frames.num_rows,
            "images": len(image_inputs),
            "videos": len(video_inputs),
            "outputs": len(image_outputs) + len(set(videos["output_uri"].to_pylist())),
            "inputs": len(image_inputs | video_inputs | failed_inputs),
            "failed_inputs": len(failed_inputs),
            "failures": failures.num_rows,
            "job_level": sum(1 for u in failures["input_uri"].to_pylist() if not u),
        }

    def run_frames(self) -> tuple[pa.Table, str]:
        """The frames of the latest run that processed any (the summary's run when it did)."""
        frames = self.t["frames"]
        if frames.num_rows == 0:
            return frames, ""
        runs = frames["run_id"].to_pylist()
        run = self.s.get("run_id") if self.s.get("run_id") in set(runs) else max(r or "" for r in runs)
        mask = pa.array([r == run for r in runs])
        return frames.filter(mask), run or ""

    # sections -------------------------------------------------------------------------------
    def header(self, c: dict[str, int]) -> str:
        job_id = self.s.get("job_id") or storage.basename(self.job.metrics_prefix)
        parts = [f"<h1>colorstyle report — job <code>{_e(job_id)}</code></h1>"]
        what = " → ".join(x for x, on in (("colorize", self.colorize), ("stylize", self.stylize)) if on)
        parts.append(f'<p class="lead">{_e(what or "pipeline unknown")} · metrics at '
                     f"<code>{_e(self.job.metrics_prefix)}</code> · last run <code>{_e(self.s.get('run_id', '—'))}"
                     f"</code> · report made {_e(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}</p>")
        if not self.s:
            cls, text = "warn", "Incomplete: no summary.json"
            sub = "the job is running, was interrupted or never started"
        elif not c["inputs"] and not c["failures"]:
            cls, text, sub = "warn", "Nothing was processed", "no frames and no failures are recorded"
        elif c["job_level"] and not c["frames"]:
            cls, text, sub = "bad", "The job could not start", "see the failures below"
        elif c["failures"]:
            n = c["failed_inputs"] or c["failures"]
            cls = "bad"
            text = f"{n} of {c['inputs']} input{'s' if c['inputs'] != 1 else ''} failed"
            sub = f"{c['inputs'] - c['failed_inputs']} done; {c['failures']} failure row(s) listed below"
        else:
            cls, text, sub = "ok", f"All {c['inputs']} input{'s' if c['inputs'] != 1 else ''} done", "no failures"
        icon = {"ok": "✔", "bad": "✖", "warn": "!"}[cls]
        parts.append(f'<div class="status {cls}" id="status">{icon} {_e(text)} <small>{_e(sub)}</small></div>')
        untrained = self.s.get("weights_untrained") or any(v for v in self.t["frames"]["untrained"].to_pylist())
        if untrained:
            parts.append('<div class="banner" id="untrained">⚠ UNTRAINED weights — these pictures are not a real '
                         "colorization or stylization.<span>This was a smoke run with generated weights "
                         "(<code>pipeline.untrained_weights: true</code>): timings are real, colours and "
                         "quality figures are meaningless.</span></div>")
        if self.problems:
            items = "".join(f"<li>{_e(p)}</li>" for p in self.problems)
            parts.append(f'<div class="problems"><b>Could not read everything:</b><ul>{items}</ul></div>')
        return "\n".join(parts)

    def key_figures(self, c: dict[str, int]) -> str:
        s = self.s
        fps, e2e = s.get("frames_per_s"), s.get("end_to_end_frames_per_s")
        cards = [
            ("inputs", "inputs", str(c["inputs"]), f"{c['images']} image(s), {c['videos']} video(s)", ""),
            ("outputs", "outputs written", str(c["outputs"]), "files", ""),
            ("frames", "frames / images done", str(c["frames"]), f"{s.get('frames', '—')} in the last run", ""),
            ("failures", "failures", str(c["failures"]), f"{c['failed_inputs']} input(s)",
             "bad" if c["failures"] else "ok"),
            ("fps", "frames/s (processing)", fmt(fps, ".2f"), "pool ready → last frame", ""),
            ("fps-e2e", "frames/s (end to end)", fmt(e2e, ".2f"), "incl. start-up", ""),
            ("wall", "wall time", _duration(s.get("end_to_end_s")), f"processing {_duration(s.get('wall_s'))}", ""),
            ("startup", "start-up", _duration(s.get("startup_s")), "Ray, actors, models", ""),
        ]
        html_cards = "".join(
            f'<div class="card {cls}" id="fig-{ident}"><div class="k">{_e(k)}</div>'
            f'<div class="v">{_e(v)}</div><div class="k">{_e(sub)}</div></div>' for ident, k, v, sub, cls in cards)
        return f'<div class="cards" id="key-figures">{html_cards}</div>' + self.actor_table()

    def actor_table(self) -> str:
        per_actor = self.s.get("per_actor") if isinstance(self.s.get("per_actor"), dict) else {}
        info = {a.get("name"): a for a in self.s.get("actors") or [] if isinstance(a, dict)}
        if not per_actor:
            frames, _ = self.run_frames()
            for name in sorted({a for a in frames["actor"].to_pylist() if a}):
                n = sum(1 for a in frames["actor"].to_pylist() if a == name)
                per_actor[name] = {"frames": n}
        if not per_actor:
            return ""
        rows = []
        for name, a in sorted(per_actor.items()):
            i = info.get(name, {})
            gpus = ",".join(str(g) for g in i.get("gpu_ids") or []) or "—"
            rows.append(f"<tr><td>{_e(name)}</td><td>{_e(i.get('hostname', '—'))}</td><td>{_e(i.get('device', '—'))}"
                        f"</td><td>{_e(gpus)}</td><td class='n'>{_e(a.get('frames', '—'))}</td>"
                        f"<td class='n'>{fmt(a.get('frames_per_s'), '.3f')}</td>"
                        f"<td class='n'>{fmt(a.get('busy_s'), '.1f', ' s')}</td>"
                        f"<td class='n'>{fmt(a.get('frames_per_busy_s'), '.3f')}</td></tr>")
        return ("<h3>Per actor (last run)</h3><table id='actors'><tr><th>actor</th><th>node</th><th>device</th>"
                "<th>GPU</th><th class='n'>frames</th><th class='n'>frames/s</th><th class='n'>busy</th>"
                "<th class='n'>frames per busy s</th></tr>" + "".join(rows) + "</table>"
                "<p class='muted'>frames/s counts the actor's frames over the whole processing time; "
                "frames per busy second only over the time it was working (the difference is waiting).</p>")

    def failures(self) -> str:
        f = self.t["failures"]
        if f.num_rows == 0:
            return "<h2 id='failures'>Failures</h2><p>None: every input was processed.</p>"
        rows = []
        for r in f.to_pylist():
            rows.append(f"<tr><td>{_e(r['input_uri'] or '(the job)')}</td><td><code>{_e(r['unit_id'] or '—')}</code>"
                        f"</td><td>{_e(r['error_type'])}</td><td class='msg'>{_e(r['message'])}</td>"
                        f"<td class='n'>{_e(r['attempt'])}</td></tr>")
        return (f"<h2 id='failures'>Failures ({f.num_rows})</h2><p class='lead'>Bad inputs are recorded and "
                "skipped; the rest of the job goes on. Attempt 0 = found while planning.</p>"
                "<table id='failures-table'><tr><th>input</th><th>unit</th><th>error</th><th>message</th>"
                "<th class='n'>attempt</th></tr>" + "".join(rows) + "</table>")

    def chart_block(self, charts: dict[str, str], name: str, title: str, explain: str) -> str:
        if name not in charts:
            return ""
        return (f'<div class="chart"><h3>{_e(title)}</h3><img class="chart-img" id="chart-{_e(name)}" '
                f'src="{_e(charts[name])}" alt="{_e(title)}"><p>{explain}</p></div>')

    def quality_table(self) -> str:
        q = self.t["quality"]
        if q.num_rows == 0:
            return ""
        rows = []
        for label, col, base, spec, higher in (
            ("PSNR (dB)", "psnr", "baseline_psnr", ".2f", True),
            ("SSIM", "ssim", "baseline_ssim", ".3f", True),
            ("ab error (Lab units)", "ab_error", "baseline_ab_error", ".2f", False),
            ("colourfulness", "colorfulness_pred", "baseline_colorfulness", ".2f", None),
        ):
            mine, grey = _mean(q[col].to_pylist()), _mean(q[base].to_pylist())
            verdict = ""
            if higher is not None and mine is not None and grey is not None:
                good = mine > grey if higher else mine < grey
                verdict = ('<span class="better">better than grey</span>' if good
                           else '<span class="worse">not better than grey</span>')
            rows.append(f"<tr><td>{label}</td><td class='n' data-metric='{col}'>{fmt(mine, spec)}</td>"
                        f"<td class='n' data-metric='{base}'>{fmt(grey, spec)}</td><td>{verdict}</td></tr>")
        ref_cf = _mean(q["colorfulness_ref"].to_pylist())
        dcf = _mean(q["delta_colorfulness"].to_pylist())
        rows.append(f"<tr><td>colourfulness of the ground truth / ΔCF</td><td class='n'>{fmt(ref_cf)}</td>"
                    f"<td class='n'>—</td><td>output − truth: <b>{fmt(dcf, '+.2f')}</b></td></tr>")
        return (f"<h3>Against the ground truth ({q.num_rows} image{'s' if q.num_rows != 1 else ''}, means)</h3>"
                "<table id='quality-summary'><tr><th>metric</th><th class='n'>output</th>"
                "<th class='n'>grey baseline</th><th></th></tr>" + "".join(rows) + "</table>")

    # images ---------------------------------------------------------------------------------
    def _fig(self, data_uri: str | None, caption: str, uri: str | None, role: str) -> str:
        if data_uri:
            img = f'<img src="{data_uri}" alt="{_e(caption)}">'
            h = self.href(uri)
            if h:
                img = f'<a href="{_e(h)}" title="{_e(uri)}">{img}</a>'
        else:
            img = f'<div class="missing" data-missing="{_e(role)}">missing<br>{_e(storage.basename(uri or "") or "")}' \
                  "</div>"
        return f"<figure>{img}<figcaption>{_e(caption)}</figcaption></figure>"

    def images(self) -> str:
        frames = self.t["frames"]
        rows = [r for r in frames.select(["kind", "input_uri", "output_uri", "colorized_uri"]).to_pylist()
                if r["kind"] == "image"]
        if not rows:
            return ""
        seen, unique = set(), []
        for r in rows:  # a rerun may record an image again
            if r["output_uri"] not in seen:
                seen.add(r["output_uri"])
                unique.append(r)
        unique.sort(key=lambda r: r["input_uri"] or "")
        quality_rows = self.t["quality"].to_pylist()
        by_output = {r["output_uri"]: r for r in quality_rows}
        by_input = {r["input_uri"]: r for r in quality_rows}
        shown = unique[: self.max_images]
        out_label = "stylized" if self.stylize else "colorized" if self.colorize else "output"
        parts = [f"<h2 id='images'>Images ({len(unique)})</h2>",
                 "<p class='lead'>Before and after, small copies (click one for the full file where it is local)."
                 + (" With ground truth: the reference photo and where the output differs from it — "
                    "|difference| in 8-bit levels, and the same clamped at 32 levels and stretched so small "
                    "errors show (black = identical)." if quality_rows else "") + "</p>"]
        for r in shown:
            q = by_output.get(r["output_uri"]) or by_input.get(r["input_uri"])
            figs = [self._fig(self.media.thumbnail(r["input_uri"], "input"), "input", r["input_uri"], "input")]
            if r.get("colorized_uri"):
                figs.append(self._fig(self.media.thumbnail(r["colorized_uri"], "output"), "colorized",
                                      r["colorized_uri"], "colorized"))
            figs.append(self._fig(self.media.thumbnail(r["output_uri"], "output"), out_label, r["output_uri"],
                                  "output"))
            metrics = ""
            if q:
                figs.append(self._fig(self.media.thumbnail(q["reference_uri"], "input"), "ground truth",
                                      q["reference_uri"], "reference"))
                figs.append(self._fig(self.media.thumbnail(q["abs_diff_uri"], "output"), "|output − truth|",
                                      q["abs_diff_uri"], "abs-diff"))
                figs.append(self._fig(self.media.thumbnail(q["clamped_diff_uri"], "output"),
                                      "|difference|, clamped at 32", q["clamped_diff_uri"], "clamped-diff"))
                metrics = (
                    "<div class='metrics'>"
                    f"<span>PSNR <b>{fmt(q['psnr'], '.2f', ' dB')}</b> (grey {fmt(q['baseline_psnr'], '.2f')})</span>"
                    f"<span>SSIM <b>{fmt(q['ssim'], '.3f')}</b> (grey {fmt(q['baseline_ssim'], '.3f')})</span>"
                    f"<span>ab error <b>{fmt(q['ab_error'], '.2f')}</b> (grey {fmt(q['baseline_ab_error'], '.2f')})"
                    f"</span><span>ΔCF <b>{fmt(q['delta_colorfulness'], '+.2f')}</b> "
                    f"(CF {fmt(q['colorfulness_pred'], '.1f')} vs truth {fmt(q['colorfulness_ref'], '.1f')})</span>"
                    "</div>")
            title = _e(storage.basename(r["input_uri"] or "?"))
            parts.append(f"<div class='item image-item'><div class='title'>{title} "
                         f"<span class='muted'>→ {self.out_link(r['output_uri'])}</span></div>"
                         f"<div class='strip'>{''.join(figs)}</div>{metrics}</div>")
        if len(unique) > len(shown):
            parts.append(f"<p id='more-images'><b>{len(unique) - len(shown)} more image(s)</b> not shown "
                         f"(the first {len(shown)} by input path); every output is listed under "
                         "<a href='#files'>Files</a>.</p>")
        return "\n".join(parts)

    def video_series(self) -> list[VideoSeries]:
        out = []
        firsts = self._first_frames()
        for r in self.t["videos"].to_pylist()[:MAX_VIDEOS]:
            pairs = tuple(float("nan") if p is None else float(p) for p in r.get("e_warp_pairs") or [])
            out.append(VideoSeries(storage.basename(r["output_uri"] or r["input_uri"] or "?"),
                                   firsts.get(r["input_uri"], 0), pairs, tuple(r.get("seams") or ()),
                                   tuple(r.get("scene_cuts") or ()), _finite(r.get("e_warp"))))
        return out

    def _first_frames(self) -> dict[str, int]:
        frames = self.t["frames"]
        firsts: dict[str, int] = {}
        for k, u, i in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(),
                           frames["frame_index"].to_pylist()):
            if k == "video" and i is not None:
                firsts[u] = min(firsts.get(u, i), i)
        return firsts

    def videos(self) -> str:
        videos = self.t["videos"].to_pylist()
        if not videos:
            return ""
        frames = self.t["frames"]
        indices: dict[str, set[int]] = {}
        for k, u, i in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(),
                           frames["frame_index"].to_pylist()):
            if k == "video" and i is not None:
                indices.setdefault(u, set()).add(i)
        parts = [f"<h2 id='videos'>Videos ({len(videos)})</h2>",
                 "<p class='lead'>The first, middle and last processed frame of each video, input above output "
                 "(decoded at the same frame).</p>"]
        for r in videos[:MAX_VIDEOS]:
            done = sorted(indices.get(r["input_uri"], set())) or list(range(int(r["frames"] or 0)))
            picks = sorted({done[0], done[len(done) // 2], done[-1]}) if done else []
            first = done[0] if done else 0
            ins = self.media.video_thumbnails(r["input_uri"], picks, "input")
            outs = self.media.video_thumbnails(r["output_uri"], [p - first for p in picks], "output")
            figs_in = "".join(self._fig(ins.get(p), f"input frame {p}", r["input_uri"], "video-input") for p in picks)
            figs_out = "".join(self._fig(outs.get(p - first), f"output frame {p - first}", r["output_uri"],
                                         "video-output") for p in picks)
            ew = _finite(r.get("e_warp"))
            if ew is not None:
                cuts = r.get("scene_cuts") or []
                ewarp = (f"<span>E_warp <b>{fmt(ew, '.5f')}</b></span>"
                         f"<span>at seams <b>{fmt(r.get('e_warp_seams'), '.5f')}</b> / elsewhere "
                         f"<b>{fmt(r.get('e_warp_inside'), '.5f')}</b></span>"
                         f"<span>seams at frames {_e(', '.join(map(str, r.get('seams') or [])) or 'none')}</span>"
                         f"<span>scene cuts {_e(', '.join(map(str, cuts)) or 'none')}</span>")
            else:
                ewarp = "<span class='muted'>E_warp not measured (metrics.video_consistency off)</span>"
            audio = r.get("audio") or "—"
            parts.append(
                f"<div class='item video-item'><div class='title'>{_e(storage.basename(r['input_uri'] or '?'))} "
                f"<span class='muted'>→ {self.out_link(r['output_uri'])}</span></div>"
                f"<div class='strip'>{figs_in}</div><div class='strip' style='margin-top:8px'>{figs_out}</div>"
                f"<div class='metrics'><span>frames <b>{_e(r['frames'])}</b></span>"
                f"<span>audio <b>{_e(audio)}</b></span>{ewarp}"
                f"<span>assembly {fmt(r.get('assemble_s'), '.2f', ' s')}</span></div></div>")
        if len(videos) > MAX_VIDEOS:
            parts.append(f"<p>{len(videos) - MAX_VIDEOS} more video(s) not shown; see <a href='#files'>Files</a>.</p>")
        return "\n".join(parts)

    def files(self) -> str:
        m = self.job.metrics_prefix
        parts = ["<h2 id='files'>Files</h2>"]
        if self.output_prefix:
            parts.append(f"<p>Outputs under {self.link(self.output_prefix)}; metrics under {self.link(m)}.</p>")
        metric_files = [("summary.json", "the run's figures and the manifest")] + [
            (f"{n}.parquet", d) for n, d in (("frames", "one row per image / video frame: stage times, losses"),
                                               ("units", "one row per work unit"),
                                               ("videos", "one row per video: audio, E_warp"),
                                               ("quality", "comparison with the ground truth"),
                                               ("failures", "one row per problem"))]
        items = []
        for name, desc in metric_files:
            uri = storage.join(m, name)
            items.append(f"<li>{self.link(uri, name)} — <span class='muted'>{_e(desc)}</span></li>")
        parts.append("<h3>Metrics</h3><ul id='metric-files'>" + "".join(items) + "</ul>")
        frames = self.t["frames"]
        outs = sorted({o for o, k in zip(frames["output_uri"].to_pylist(), frames["kind"].to_pylist())
                       if k == "image" and o} | {o for o in self.t["videos"]["output_uri"].to_pylist() if o})
        if outs:
            listed = "".join(f"<li>{self.out_link(o)}</li>"
                             for o in outs[:MAX_LISTED_OUTPUTS])
            more = (f"<p>… and {len(outs) - MAX_LISTED_OUTPUTS} more under {self.link(self.output_prefix)}</p>"
                    if len(outs) > MAX_LISTED_OUTPUTS else "")
            parts.append(f"<details id='outputs' {'open' if len(outs) <= 12 else ''}><summary>Outputs "
                         f"({len(outs)})</summary><ul class='files'>{listed}</ul>{more}</details>")
        return "\n".join(parts)

    def manifest(self) -> str:
        man = self.job.manifest
        if not man:
            return "<h2>Manifest</h2><p class='muted'>missing (no summary.json)</p>"
        try:
            text = yaml.safe_dump(redact(man), sort_keys=False, allow_unicode=True, width=110)
            kind = "YAML"
        except yaml.YAMLError:
            text, kind = json.dumps(redact(man), indent=2, default=str), "JSON"
        return (f"<h2>Manifest</h2><details id='manifest'><summary>The job's manifest ({kind}, defaults filled in; "
                f"credentials masked)</summary><pre>{_e(text)}</pre></details>")


GLOSSARY = """
<h2 id="glossary">What the numbers mean</h2>
<dl class="glossary">
<dt>frames/s (processing) and (end to end)</dt>
<dd>Images and video frames finished per second: from the moment every actor had its models loaded to the last
frame, and from the start of the command (including starting Ray and loading models: the start-up time).</dd>
<dt>p50 / p95</dt><dd>Median and 95th percentile over frames: half of the frames took at most p50, 95% at most p95.
Work done for a whole batch is shared evenly by its frames.</dd>
<dt>PSNR (peak signal-to-noise ratio)</dt><dd>How close the output is to the ground-truth colour photo, pixel by
pixel, in decibels: higher is closer; 30 dB and more is hard to tell apart, around 20 dB is clearly different.</dd>
<dt>SSIM (structural similarity)</dt><dd>Similarity of local structure and contrast, 0 to 1 (1 = identical).</dd>
<dt>ab error</dt><dd>Mean colour distance to the ground truth in CIE Lab, ignoring lightness (which the colorizer
copies from its input): lower is better.</dd>
<dt>Colourfulness (CF) and ΔCF</dt><dd>How vivid the colours are (Hasler &amp; Süsstrunk 2003; 0 = grey, about
30–60 for typical photos). ΔCF = output − ground truth: negative means duller than reality, as colorizers tend
to be.</dd>
<dt>Grey baseline</dt><dd>The ground truth's own lightness with no colour at all — what doing nothing gives. A
colorizer should beat it on ab error and colourfulness. PSNR and SSIM often favour the grey baseline, because a
wrong colour costs more than no colour: compare, don't read them alone.</dd>
<dt>E_warp (warping error, Lai et al. 2018)</dt><dd>Flicker in a video: each output frame is compared with the next
one moved back onto it along the motion (optical flow from the input), where the motion can be trusted. 0 means
perfectly stable; lower is steadier. Pairs across a scene cut are left out; a seam is where two work units, processed
on different actors, meet — a jump there would show as a spike.</dd>
</dl>
"""


def _stage_notes(rows: Sequence[tuple[str, float, float]]) -> str:
    """The figures :func:`chart_stages` leaves out of its bars, as a sentence."""
    notes = []
    total = next((r[2] for r in rows if r[0] == "total"), 0.0)
    small = [r for r in rows if r[0] not in ("total", "queue wait") and r[2] < 0.005 * total]
    wait = next((r for r in rows if r[0] == "queue wait"), None)
    if wait:
        notes.append(f" Queue wait (a unit waiting on its actor before it starts; not work): p50 "
                     f"{_seconds(wait[1])}, p95 {_seconds(wait[2])}.")
    if small:
        notes.append(" Under 0.5% of the total, not drawn: " + ", ".join(
            f"{_e(name)} (p95 {_seconds(p95)})" for name, _, p95 in small) + ".")
    return "".join(notes)


def _chart_explanations() -> dict[str, tuple[str, str]]:
    return {
        "throughput": ("Throughput over time",
                       "Frames finished per second in each time bin, stacked by actor; the dashed line is the run's "
                       "overall rate. Gaps mean actors were idle or busy with something other than frames "
                       "(e.g. assembling a video)."),
        "stages": ("Where the time goes",
                   "Seconds per frame in each stage and in all (median and 95th percentile)."),
        "losses": ("Stylization loss",
                   "Gatys et al. optimise the picture to lower this loss: content (keep the photo's layout), style "
                   "(match the painting's textures), tv (smoothness). Bold: median over frames; grey: a few "
                   "individual frames. A curve that falls and flattens has converged."),
        "ewarp": ("Temporal consistency (E_warp per frame pair)",
                  "Warping error between consecutive output frames (lower = less flicker). Dashed orange lines mark "
                  "seams between work units; red lines mark scene cuts, whose pairs are left out."),
        "quality": ("Quality against the ground truth",
                    "Bars are means over images, dots are single images. The grey baseline is the ground truth "
                    "without colour."),
    }


def build_report(metrics_prefix: str, out: str | None = None, storage_options: dict | None = None, *,
                 max_images: int = MAX_IMAGES) -> ReportResult:
    """Write the HTML report of the job whose metrics are at ``metrics_prefix``.

    Args:
        metrics_prefix: the job's metrics prefix (see :func:`find_metrics_prefix`).
        out: URI of the HTML file, or of a folder (ends with ``/`` or has no ``.html`` suffix)
            to write ``index.html`` into; default ``<metrics prefix>/report/index.html``.
            Charts go beside it as ``*.png``.
        storage_options: fsspec options for every URI (default: the manifest's own).
        max_images: images shown in the grid.
    Returns:
        The page's URI, the charts written and the problems met.
    Raises:
        storage.StorageError: when the report itself cannot be written.
    """
    job = load_job(metrics_prefix, storage_options)
    if out is None:
        html_uri = storage.join(metrics_prefix, "report", "index.html")
    elif out.endswith("/") or not out.lower().endswith((".html", ".htm")):
        html_uri = storage.join(out.rstrip("/") or out, "index.html")
    else:
        html_uri = out
    report_dir = html_uri.rsplit("/", 1)[0] if "/" in html_uri else "."
    media = _Media(storage_options, job.manifest)
    out_opts = media.opts(html_uri, "output")
    page = _Page(job, media, report_dir, max_images)

    run_frames, _ = page.run_frames()
    stage_rows = stage_percentiles(run_frames)
    makers: dict[str, Callable[[], bytes | None]] = {
        "throughput": lambda: chart_throughput(run_frames, _finite(job.summary.get("frames_per_s")) or None),
        "stages": lambda: chart_stages(stage_rows),
        "losses": lambda: chart_losses(loss_curves(job.tables["frames"])),
        "ewarp": lambda: chart_ewarp(page.video_series()),
        "quality": lambda: chart_quality(job.tables["quality"]),
    }
    charts: dict[str, str] = {}
    chart_uris: dict[str, str] = {}
    for name, make in makers.items():
        try:
            png = make()
        except Exception as e:  # a chart that cannot be drawn is reported, not fatal
            page.problems.append(f"chart {name}: {type(e).__name__}: {e}")
            log.warning("report: chart %s failed: %s", name, e, exc_info=True)
            continue
        if png is None:
            continue
        uri = storage.join(report_dir, f"{name}.png")
        storage.write_bytes_atomic(uri, png, out_opts)
        charts[name] = f"{name}.png"
        chart_uris[name] = uri

    c = page.counts()
    explain = _chart_explanations()
    explain["stages"] = (explain["stages"][0], explain["stages"][1] + _stage_notes(stage_rows))
    toc = [("summary", "Summary"), ("failures", "Failures"), ("performance", "How fast"),
           ("quality", "How good"), ("stylization", "Stylization"), ("consistency", "Video flicker"),
           ("images", "Images"), ("videos", "Videos"), ("files", "Files"), ("glossary", "What the numbers mean")]
    present = {"performance": "throughput" in charts or "stages" in charts,
               "quality": job.tables["quality"].num_rows > 0, "stylization": "losses" in charts,
               "consistency": "ewarp" in charts, "images": "image" in job.tables["frames"]["kind"].to_pylist(),
               "videos": job.tables["videos"].num_rows > 0}
    nav = "<nav class='toc'>" + "".join(f"<a href='#{a}'>{t}</a>" for a, t in toc if present.get(a, True)) + "</nav>"
    body = [page.header(c), nav, "<h2 id='summary'>Summary</h2>", page.key_figures(c), page.failures()]
    perf = [page.chart_block(charts, n, *explain[n]) for n in ("throughput", "stages")]
    if any(perf):
        body += ["<h2 id='performance'>How fast</h2>", *perf]
    looks = [page.quality_table(), page.chart_block(charts, "quality", *explain["quality"])]
    if any(looks):
        body += ["<h2 id='quality'>How good</h2>", *looks]
    if "losses" in charts:
        body += ["<h2 id='stylization'>Stylization</h2>", page.chart_block(charts, "losses", *explain["losses"])]
    if "ewarp" in charts:
        body += ["<h2 id='consistency'>Video flicker</h2>", page.chart_block(charts, "ewarp", *explain["ewarp"])]
    body += [page.images(), page.videos(), page.files(), page.manifest(), GLOSSARY]
    if page.problems != job.problems:  # chart problems found after the header was written
        extra = "".join(f"<li>{_e(p)}</li>" for p in page.problems[len(job.problems):])
        body.insert(1, f'<div class="problems"><b>Could not draw everything:</b><ul>{extra}</ul></div>')
    job_id = job.summary.get("job_id") or storage.basename(metrics_prefix)
    document = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>colorstyle report — {_e(job_id)}</title><style>{_CSS}</style></head>"
        "<body><main>\n" + "\n".join(b for b in body if b) +
        f"\n<footer>Generated by <code>colorstyle report</code> from <code>{_e(metrics_prefix)}</code>. "
        "Self-contained: no network needed; charts are the PNG files beside this page.</footer>"
        "</main></body></html>\n")
    storage.write_bytes_atomic(html_uri, document.encode("utf-8"), out_opts)
    return ReportResult(html_uri, chart_uris, metrics_prefix, page.problems)


# ---- command line -----------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    opts = storage.parse_options(args.storage_options)
    prefix = find_metrics_prefix(args.prefix, args.job, opts)
    result = build_report(prefix, args.out, opts, max_images=args.max_images)
    for p in result.problems:
        print(f"colorstyle report: warning: {p}", file=sys.stderr)
    print(result.html_uri)
    return 0


def add_report_command(sub: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="write an HTML report of a finished job (status, speed, before/after)",
                       description="Write one self-contained HTML page about a job: status and failures, "
                       "throughput and time per stage, loss curves, E_warp, quality against ground truth, and "
                       "before/after thumbnails. Charts are PNG files beside the page.")
    p.add_argument("prefix", help="the job's output prefix (jobs under _colorstyle/<job id>/) or its metrics prefix")
    p.add_argument("--job", metavar="ID", help="job id under PREFIX (default: the most recent job)")
    p.add_argument("--out", metavar="URI", help="the HTML file, or a folder for index.html "
                   "(default: <metrics prefix>/report/index.html)")
    p.add_argument("--max-images", type=int, default=MAX_IMAGES,
                   help=f"images shown in the before/after grid (default: {MAX_IMAGES})")
    p.add_argument("--storage-options", metavar="JSON",
                   help="fsspec options for every URI (default: the job manifest's own)")
    p.set_defaults(func=cmd_report)
