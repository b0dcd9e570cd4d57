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
from jobs.report.text import CSS, ReportResult, duration, esc, fmt, html_target, mean_of
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


def _comparison(validation: pa.Table, summary: dict[str, Any]) -> str:
    if validation.num_rows == 0:
        return ("<p class='muted'>No held-out samples (train.validation is 0, or every held-out file was "
                "skipped).</p>")
    rows = validation.to_pylist()
    labels = [m for m in METRIC_LABELS if any(r[m[0]] is not None for r in rows)]
    baseline, baseline_name = BASELINES.get(summary.get("kind", "colorizer"), BASELINES["colorizer"])
    kinds = ("start", "tuned", baseline)
    means = {w: {c: mean_of(r[c] for r in rows if r["weights"] == w) for c, _, _ in labels} for w in kinds}
    head = "".join(f"<th class='n'>{esc(label)}</th>" for _, label, _ in labels)
    body = []
    names = {"start": "starting weights", "tuned": "trained weights", baseline: baseline_name}
    for w in kinds:
        cells = []
        for c, _, _ in labels:
            cls = _better(c, means["start"][c], means["tuned"][c]) if w == "tuned" else ""
            cells.append(f"<td class='n {cls}'>{fmt(means[w][c], '.4g')}</td>")
        body.append(f"<tr><td>{esc(names[w])}</td>{''.join(cells)}</tr>")
    samples = len({r["sample"] for r in rows})
    table = (f"<table id='validation'><tr><th>weights (mean of {samples} held-out sample"
             f"{'s' if samples != 1 else ''})</th>{head}</tr>{''.join(body)}</table>")
    per = []
    for sample in sorted({r["sample"] for r in rows}):
        by = {r["weights"]: r for r in rows if r["sample"] == sample}
        cells = "".join(f"<td class='n'>{fmt(by.get('start', {}).get(c), '.4g')} → "
                        f"<span class='{_better(c, by.get('start', {}).get(c), by.get('tuned', {}).get(c))}'>"
                        f"{fmt(by.get('tuned', {}).get(c), '.4g')}</span></td>" for c, _, _ in labels)
        per.append(f"<tr><td>{esc(sample)}</td>{cells}</tr>")
    detail = (f"<details><summary>Per sample (start → trained)</summary><table><tr><th>sample</th>{head}</tr>"
              f"{''.join(per)}</table></details>")
    return table + detail


def _examples(summary: dict[str, Any], opts, problems: list[str]) -> str:
    figures = []
    for ex in summary.get("examples", []):
        try:
            from colorstyle_core import imageio

            pixels = imageio.decode_image(storage.read_bytes(ex["uri"], opts), ex["uri"], keep_uint8=True).pixels
            src = jpeg_data_uri(pixels, STRIP_PX)
        except Exception as e:  # a missing strip is listed
            problems.append(f"{ex['uri']}: {type(e).__name__}: {e}")
            continue
        figures.append(f"<figure class='item'><img src='{src}' alt='{esc(ex['sample'])}' style='max-height:none'>"
                       f"<figcaption>{esc(ex['sample'])}: "
                       f"{STRIP_PANELS.get(summary.get('kind', 'colorizer'), '')}</figcaption></figure>")
    if not figures:
        return ""
    return "<h2 id='samples'>Held-out samples</h2>" + "".join(figures)


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
    body = [f"<h1>colorstyle report — training <code>{esc(summary.get('run'))}</code></h1>",
            f"<p class='lead'>{esc(summary.get('kind'))} {esc(summary.get('model'))} · output "
            f"<code>{esc(prefix)}</code> · checkpoint <code>{esc(summary.get('checkpoint'))}</code></p>",
            f"<div class='status ok' id='status'>✔ Trained {esc(summary.get('steps'))} steps "
            f"<small>loss {fmt(first, '.4f')} → {fmt(final, '.4f')}</small></div>"]
    if untrained:
        body.append("<div class='banner' id='untrained'>⚠ Started from UNTRAINED weights<span>A smoke run with "
                    "generated starting weights: the timings are real, the colours are not.</span></div>")
    if problems:
        body.append("<div class='problems'><b>Could not read everything:</b><ul>"
                    + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></div>")
    batch_size = summary.get("manifest", {}).get("train", {}).get("batch_size", "—")
    cards = [("steps", str(summary.get("steps")), f"batch {batch_size}"),
             ("workers", str(summary.get("workers")), "data-parallel (Ray Train)"),
             ("samples/s", fmt(summary.get("samples_per_s")), "all workers, last 10 steps"),
             ("wall time", duration(summary.get("wall_s")), "training steps"),
             ("final loss", fmt(final, ".4f"), f"first step {fmt(first, '.4f')}"),
             ("resumed", str(len(summary.get("resumed_from") or [])),
              "from step " + ", ".join(map(str, summary.get("resumed_from") or [])) if summary.get("resumed_from")
              else "never interrupted")]
    body.append("<h2 id='summary'>Summary</h2><div class='cards'>" + "".join(
        f"<div class='card'><div class='v'>{esc(v)}</div><div class='k'>{esc(k)} · {esc(sub)}</div></div>"
        for k, v, sub in cards) + "</div>")
    if summary.get("skipped"):
        body.append("<details><summary>Skipped data (" + str(len(summary["skipped"])) + ")</summary><table>"
                    "<tr><th>file</th><th>why</th></tr>" + "".join(
                        f"<tr><td>{esc(s['uri'])}</td><td class='msg'>{esc(s['reason'])}</td></tr>"
                        for s in summary["skipped"]) + "</table></details>")
    if png is not None:
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        body.append("<h2 id='loss'>Loss and speed</h2><div class='chart'><img src='" + src + "' alt='training loss'>"
                    "<p>Left: the loss of every optimiser step (grey; each is one random batch, so it is noisy) "
                    "and its running mean; the dotted line is the learning rate. Right: samples per second, per "
                    "worker and in all.</p></div>")
    body.append("<h2 id='comparison'>Held-out validation: starting vs trained weights</h2>"
                "<p class='lead'>" + (
                    "Held-out files (never trained on, not even other frames of their shot) stylized by the "
                    "starting and the trained network at the training size, with their weighted style and content "
                    "losses (the training objective); the input itself is the no-style reference. "
                    if summary.get("kind") == "stylizer" else
                    "Held-out files (never trained on, not even other frames of their shot) colorized from their "
                    "lightness with the starting and the trained weights, compared with the truth. ")
                + "Green: the trained weights do better.</p>" + _comparison(validation, summary))
    body.append(examples)
    manifest = summary.get("manifest")
    if manifest:
        body.append("<h2>Manifest</h2><details><summary>The training manifest (defaults filled in; credentials "
                    f"masked)</summary><pre>{esc(yaml.safe_dump(manifest, sort_keys=False))}</pre></details>")
    document = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>colorstyle report — training {esc(summary.get('run'))}</title><style>{CSS}</style></head>"
                "<body><main>\n" + "\n".join(b for b in body if b) +
                f"\n<footer>Generated by <code>colorstyle report</code> from <code>{esc(prefix)}</code>. "
                "Self-contained: charts and samples are embedded.</footer></main></body></html>\n")
    storage.write_bytes_atomic(html_uri, document.encode("utf-8"), storage_options)
    return ReportResult(html_uri, charts, prefix, problems)
