"""``colorstyle report``: one self-contained HTML page per job -- did it work, how fast, what does it look like.

Reads what a finished (or interrupted) job left under its metrics prefix --
``summary.json`` and the Parquet tables declared in :mod:`jobs.metrics.tables` -- plus the
images it names, and writes::

    <metrics prefix>/report/index.html     the page (inline CSS; charts and thumbnails embedded as data: URIs)
    <metrics prefix>/report/*.png          the same charts as files (matplotlib, Agg), for slides and mails

The page stands alone (copy or mail ``index.html`` by itself) and needs no network: no
scripts, fonts or styles from elsewhere. Thumbnails are small JPEGs (longer side
:data:`~jobs.report.media.THUMB_PX`) embedded in the page; the grid shows at
most ``max_images`` images and says how many more there are. Every read goes through
:mod:`colorstyle_core.storage` (any fsspec URI) and every write is atomic. A missing
or unreadable file never stops the report: the page shows a "missing" placeholder
and lists the problem.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sys
from collections.abc import Callable

from colorstyle_core import storage
from jobs.report.charts import chart_ewarp, chart_losses, chart_quality, chart_stages, chart_throughput
from jobs.report.data import find_metrics_prefix, load_job, loss_curves, stage_percentiles
from jobs.report.media import Media
from jobs.report.page import MAX_IMAGES, Page
from jobs.report.text import ReportResult, finite, fmt, html_target

__all__ = ["ReportResult", "build_report", "find_metrics_prefix", "fmt", "loss_curves"]

log = logging.getLogger(__name__)


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
    html_uri, report_dir = html_target(metrics_prefix, out)
    media = Media(storage_options, job.manifest)
    out_opts = media.opts(html_uri, "output")
    page = Page(job, media, report_dir, max_images)

    run_frames, _ = page.run_frames()
    stage_rows = stage_percentiles(run_frames)
    makers: dict[str, Callable[[], bytes | None]] = {
        "throughput": lambda: chart_throughput(run_frames, finite(job.summary.get("frames_per_s")) or None),
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
        storage.write_bytes_atomic(uri, png, out_opts)  # also a file, for slides and mails
        charts[name] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")  # the page stands alone
        chart_uris[name] = uri

    document = page.document(charts, stage_rows)
    storage.write_bytes_atomic(html_uri, document.encode("utf-8"), out_opts)
    return ReportResult(html_uri, chart_uris, metrics_prefix, page.problems)


# ---- command line -----------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from jobs.report.training import build_training_report, is_training_output

    opts = storage.parse_options(args.storage_options)
    if not args.job and is_training_output(args.prefix, opts):  # a training run's output prefix
        result = build_training_report(args.prefix, args.out, opts)
        for p in result.problems:
            print(f"colorstyle report: warning: {p}", file=sys.stderr)
        print(result.html_uri)
        return 0
    prefix = find_metrics_prefix(args.prefix, args.job, opts)
    result = build_report(prefix, args.out, opts, max_images=args.max_images)
    for p in result.problems:
        print(f"colorstyle report: warning: {p}", file=sys.stderr)
    print(result.html_uri)
    return 0


def add_report_command(sub: argparse._SubParsersAction) -> None:
    """Register ``report``."""
    p = sub.add_parser("report", help="write an HTML report of a finished job or training run",
                       description="Write one self-contained HTML page about a job: status and failures, "
                       "throughput and time per stage, loss curves, E_warp, quality against ground truth, and "
                       "before/after thumbnails; or about a training run (PREFIX = its train.output): loss curve, "
                       "samples/s per worker, held-out comparison of the starting and trained weights. Charts are "
                       "PNG files beside the page.")
    p.add_argument("prefix", help="the job's output prefix (jobs under _colorstyle/<job id>/) or its metrics prefix; "
                   "or a training run's output prefix")
    p.add_argument("--job", metavar="ID", help="job id under PREFIX (default: the most recent job)")
    p.add_argument("--out", metavar="URI", help="the HTML file, or a folder for index.html "
                   "(default: <metrics prefix>/report/index.html)")
    p.add_argument("--max-images", type=int, default=MAX_IMAGES,
                   help=f"images shown in the before/after grid (default: {MAX_IMAGES})")
    p.add_argument("--storage-options", metavar="JSON",
                   help="fsspec options for every URI (default: the job manifest's own)")
    p.set_defaults(func=cmd_report)
