"""What the job page and the training page share: rendering their templates, formatting values, the
stylesheet, what a report wrote and where it goes.

The pages are jinja2 templates (``jobs/report/templates/``) with autoescaping on: every value a
page shows is escaped by the template engine, never by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jinja2

from colorstyle_core import storage

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("jobs.report", "templates"), autoescape=True,
                                keep_trailing_newline=True,
                                undefined=jinja2.StrictUndefined)


def render(template: str, **values: Any) -> str:
    """A page from its template (``templates/<template>``) and its values (the stylesheet is added)."""
    return _TEMPLATES.get_template(template).render(css=CSS, **values)


def finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    """A number for the page: ``—`` for missing/NaN, ``∞`` for infinity."""
    f = finite(value)
    if f is None:
        return "—"
    if math.isinf(f):
        return ("∞" if f > 0 else "−∞") + unit
    return f"{f:{spec}}{unit}"


def mean_of(values: Iterable[Any]) -> float | None:
    vals = [f for v in values if (f := finite(v)) is not None]
    return math.fsum(vals) / len(vals) if vals else None


def duration(seconds: Any) -> str:
    s = finite(seconds)
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {s % 60:.0f} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


CSS = """
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


def html_target(prefix: str, out: str | None) -> tuple[str, str]:
    """Where a report goes: ``(html_uri, its folder)``.

    ``out`` is the HTML file, or a folder for ``index.html``; default ``<prefix>/report/index.html``.
    """
    if out is None:
        html_uri = storage.join(prefix, "report", "index.html")
    elif out.endswith("/") or not out.lower().endswith((".html", ".htm")):
        html_uri = storage.join(out.rstrip("/") or out, "index.html")
    else:
        html_uri = out
    return html_uri, html_uri.rsplit("/", 1)[0] if "/" in html_uri else "."
