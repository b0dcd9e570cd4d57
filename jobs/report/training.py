"""The report of a training run: did it learn, how fast, and is it better than where it started.

Reads what :mod:`jobs.train.loop` wrote under the run's output prefix (``training.json``,
``train_metrics.parquet``, ``validation.parquet``, ``validation/*.jpg``) and writes one
self-contained page, ``<output>/report/index.html``, with the loss curve, the throughput
per worker, the held-out comparison of the starting and the trained weights, and a few
held-out samples side by side. A missing file is listed, never fatal.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from colorstyle_core import storage
from jobs.report.charts import chart_training
from jobs.report.media import jpeg_data_uri
from jobs.report.text import ReportResult, duration, fmt, html_target, mean_of, render
from jobs.train.outputs import METRICS_SCHEMA, VALIDATION_SCHEMA, TrainPaths

log = logging.getLogger(__name__)

STRIP_PX = 880
"""Longer side of an embedded held-out strip, in pixels."""
METRIC_LABELS = (("psnr", "PSNR dB", True), ("ssim", "SSIM", True), ("ab_error", "ab error", False),
                 ("delta_colorfulness", "ΔCF", None), ("style_loss", "style loss", False),
                 ("content_loss", "content loss", False))
"""(column, heading, whether higher is better; ``None``: closer to 0 is better)."""

BASELINES = {"colorizer": ("grey", "grey baseline (no colour)"), "stylizer": ("input", "the input as is (no style)")}
"""The reference row of each kind's held-out table."""
STRIP_PANELS = {"colorizer": "grey input · starting weights · trained weights · truth",
                "stylizer": "input · starting network · trained network"}


def is_training_output(prefix: str, storage_options: dict | None = None) -> bool:
    """Whether ``prefix`` holds a training run (its ``training.json``)."""
    return storage.exists(TrainPaths(prefix.rstrip("/") or prefix).summary, storage_options)


def _table(uri: str, schema: pa.Schema, opts, problems: list[str]) -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(storage.read_bytes(uri, opts)))
    except FileNotFoundError:
        problems.append(f"{uri}: missing")
    except Exception as e:  # an unreadable table is listed, not fatal
        problems.append(f"{uri}: unreadable ({type(e).__name__}: {e})")
    return schema.empty_table()


def _better(column: str, start: float | None, tuned: float | None) -> str:
    higher = dict((c, h) for c, _, h in METRIC_LABELS)[column]
    if start is None or tuned is None or start == tuned:
        return ""
    if higher is None:
        return "better" if abs(tuned) < abs(start) else "worse"
    return "better" if (tuned > start) == higher else "worse"


def _comparison(validation: pa.Table, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The held-out table: the means of each set of weights, and each sample from start to trained."""
    if validation.num_rows == 0:
        return None
    rows = validation.to_pylist()
    labels = [m for m in METRIC_LABELS if any(r[m[0]] is not None for r in rows)]
    baseline, baseline_name = BASELINES.get(summary.get("kind", "colorizer"), BASELINES["colorizer"])
    kinds = ("start", "tuned", baseline)
    means = {w: {c: mean_of(r[c] for r in rows if r["weights"] == w) for c, _, _ in labels} for w in kinds}
    names = {"start": "starting weights", "tuned": "trained weights", baseline: baseline_name}
    per_sample = []
    for sample in sorted({r["sample"] for r in rows}):
        by = {r["weights"]: r for r in rows if r["sample"] == sample}
        start, tuned = by.get("start", {}), by.get("tuned", {})
        per_sample.append((sample, [(fmt(start.get(c), ".4g"), fmt(tuned.get(c), ".4g"),
                                     _better(c, start.get(c), tuned.get(c))) for c, _, _ in labels]))
    return {"samples": len({r["sample"] for r in rows}), "labels": [label for _, label, _ in labels],
            "means": [(names[w], [(fmt(means[w][c], ".4g"),
                                   _better(c, means["start"][c], means["tuned"][c]) if w == "tuned" else "")
                                  for c, _, _ in labels]) for w in kinds],
            "per_sample": per_sample}


def _examples(summary: dict[str, Any], opts, problems: list[str]) -> list[tuple[str, str]]:
    """``(sample, embedded strip)`` of the held-out samples the run kept."""
    from colorstyle_core import imageio

    out = []
    for ex in summary.get("examples", []):
        try:
            pixels = imageio.decode_image(storage.read_bytes(ex["uri"], opts), ex["uri"], keep_uint8=True).pixels
            out.append((ex["sample"], jpeg_data_uri(pixels, STRIP_PX)))
        except Exception as e:  # a missing strip is listed
            problems.append(f"{ex['uri']}: {type(e).__name__}: {e}")
    return out


def build_training_report(prefix: str, out: str | None = None, storage_options: dict | None = None) -> ReportResult:
    """Write the HTML report of the training run under ``prefix`` (its ``train.output``).

    Args:
        out: the HTML file, or a folder for ``index.html``; default ``<prefix>/report/index.html``.
    Raises:
        FileNotFoundError: no ``training.json`` under ``prefix``.
        storage.StorageError: the report cannot be written.
    """
    prefix = prefix.rstrip("/") or prefix
    paths = TrainPaths(prefix, storage_options)
    summary = json.loads(storage.read_bytes(paths.summary, storage_options))
    problems: list[str] = []
    metrics = _table(paths.metrics, METRICS_SCHEMA, storage_options, problems)
    validation = _table(paths.validation, VALIDATION_SCHEMA, storage_options, problems)
    html_uri, report_dir = html_target(prefix, out)
    charts: dict[str, str] = {}
    try:
        png = chart_training(metrics)
    except Exception as e:  # a chart that cannot be drawn is reported, not fatal
        problems.append(f"chart training: {type(e).__name__}: {e}")
        png = None
    if png is not None:
        uri = storage.join(report_dir, "training.png")
        storage.write_bytes_atomic(uri, png, storage_options)
        charts["training"] = uri
    examples = _examples(summary, storage_options, problems)
    first, final = summary.get("first_loss"), summary.get("final_loss")
    untrained = "UNTRAINED" in json.dumps(summary.get("base_weights", "")) or any(
        summary.get("manifest", {}).get("train", {}).get(k) for k in ("untrained_init", "untrained_vgg"))
    batch_size = summary.get("manifest", {}).get("train", {}).get("batch_size", "—")
    resumed = summary.get("resumed_from") or []
    cards = [("steps", str(summary.get("steps")), f"batch {batch_size}"),
             ("workers", str(summary.get("workers")), "data-parallel (Ray Train)"),
             ("samples/s", fmt(summary.get("samples_per_s")), "all workers, last 10 steps"),
             ("wall time", duration(summary.get("wall_s")), "training steps"),
             ("final loss", fmt(final, ".4f"), f"first step {fmt(first, '.4f')}"),
             ("resumed", str(len(resumed)), "from step " + ", ".join(map(str, resumed)) if resumed
              else "never interrupted")]
    manifest = summary.get("manifest")
    document = render(
        "training.html.j2", s=summary, prefix=prefix, first_loss=fmt(first, ".4f"), final_loss=fmt(final, ".4f"),
        untrained=untrained, problems=problems, cards=cards, skipped=summary.get("skipped") or [],
        chart="data:image/png;base64," + base64.b64encode(png).decode("ascii") if png is not None else None,
        comparison=_comparison(validation, summary), examples=examples,
        panels=STRIP_PANELS.get(summary.get("kind", "colorizer"), ""),
        manifest=yaml.safe_dump(manifest, sort_keys=False) if manifest else None)
    storage.write_bytes_atomic(html_uri, document.encode("utf-8"), storage_options)
    return ReportResult(html_uri, charts, prefix, problems)
