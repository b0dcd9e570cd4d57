"""The report page: a job's data turned into what the template (``templates/job.html.j2``) shows.

:class:`Page` reads the job's figures, tables and images (thumbnails through
:class:`~jobs.report.media.Media`) and hands them to jinja2 as plain values; the template
does the HTML, the template engine the escaping.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import yaml

from colorstyle_core import storage
from jobs.report.charts import seconds_text
from jobs.report.data import JobData, VideoSeries
from jobs.report.media import Media
from jobs.report.text import duration, finite, fmt, mean_of, render

MAX_IMAGES = 24
"""Images shown in the grid by default."""
MAX_VIDEOS = 8
"""Videos shown with frames (and in the E_warp chart)."""
MAX_LISTED_OUTPUTS = 300
"""Output files listed by name under "Files"."""

METRIC_FILES = (("summary.json", "the run's figures and the manifest"),
                ("frames.parquet", "one row per image / video frame: stage times, losses"),
                ("units.parquet", "one row per work unit"),
                ("videos.parquet", "one row per video: audio, E_warp"),
                ("quality.parquet", "comparison with the ground truth"),
                ("failures.parquet", "one row per problem"))

QUALITY_METRICS = (("PSNR (dB)", "psnr", "baseline_psnr", ".2f", True),
                   ("SSIM", "ssim", "baseline_ssim", ".3f", True),
                   ("ab error (Lab units)", "ab_error", "baseline_ab_error", ".2f", False),
                   ("colourfulness", "colorfulness_pred", "baseline_colorfulness", ".2f", None))
"""(label, column, the grey baseline's column, format, whether higher is better)."""


def _short(uri: str, root: str | None = None) -> str:
    """A URI shortened for display: relative to ``root`` when under it, else as is."""
    if root and uri.startswith(root.rstrip("/") + "/"):
        return uri[len(root.rstrip("/")) + 1:]
    return uri


@dataclass(frozen=True)
class Figure:
    """One picture of a strip: its embedded thumbnail (``None``: missing), caption, file and role."""

    src: str | None
    caption: str
    uri: str | None
    role: str

    @property
    def name(self) -> str:
        return storage.basename(self.uri or "") or ""


class Page:
    """Turns a :class:`JobData` into the page's values; links are relative to ``report_dir`` when both are local."""

    def __init__(self, job: JobData, media: Media, report_dir: str, max_images: int):
        self.job = job
        self.media = media
        self.report_dir = report_dir
        self.max_images = max_images
        self.s = job.summary
        self.t = job.tables
        self.problems = list(job.problems)
        man = job.manifest
        self.colorize = man is not None and man.pipeline.colorize is not None
        self.stylize = man is not None and man.pipeline.stylize is not None
        self.output_prefix = man.output.prefix if man is not None else None
        self.colour_reference = man.pipeline.colorize.reference if self.colorize else None
        self._reference_figure: Figure | None = None

    def reference_figure(self) -> Figure | None:
        """The colour reference every input took its colours from (``deepexemplar``), shown beside each output."""
        if self.colour_reference and self._reference_figure is None:
            self._reference_figure = self.figure(self.colour_reference, "colour-reference", "colour reference",
                                                 "input")
        return self._reference_figure

    def href(self, uri: str | None) -> str | None:
        """A relative link to a local file from the report's folder, else ``None``."""
        if not uri or not storage.is_local(uri) or not storage.is_local(self.report_dir):
            return None
        target = os.path.abspath(uri.removeprefix("file://"))
        rel = os.path.relpath(target, os.path.abspath(self.report_dir.removeprefix("file://")))
        return urllib.parse.quote(rel.replace(os.sep, "/"))

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

    def status(self, c: dict[str, int]) -> dict[str, str]:
        """The banner: did it work (``cls`` ok / bad / warn, ``text``, ``sub``, ``icon``)."""
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
        return {"cls": cls, "text": text, "sub": sub, "icon": {"ok": "✔", "bad": "✖", "warn": "!"}[cls]}

    def cards(self, c: dict[str, int]) -> list[dict[str, str]]:
        """The key figures."""
        s = self.s
        return [{"id": ident, "label": k, "value": v, "sub": sub, "cls": cls} for ident, k, v, sub, cls in (
            ("inputs", "inputs", str(c["inputs"]), f"{c['images']} image(s), {c['videos']} video(s)", ""),
            ("outputs", "outputs written", str(c["outputs"]), "files", ""),
            ("frames", "frames / images done", str(c["frames"]),
             f"{(s.get('last_run') or s).get('frames', '—')} in the last run, {len(s.get('runs') or [1])} run(s)", ""),
            ("failures", "failures", str(c["failures"]), f"{c['failed_inputs']} input(s)",
             "bad" if c["failures"] else "ok"),
            ("fps", "frames/s (processing)", fmt(s.get("frames_per_s"), ".2f"), "pool ready → last frame", ""),
            ("fps-e2e", "frames/s (end to end)", fmt(s.get("end_to_end_frames_per_s"), ".2f"), "incl. start-up", ""),
            ("wall", "wall time", duration(s.get("end_to_end_s")), f"processing {duration(s.get('wall_s'))}", ""),
            ("startup", "start-up", duration(s.get("startup_s")), "Ray, actors, models", ""))]

    def actors(self) -> list[dict[str, Any]]:
        """The per-actor table of the last run."""
        per_actor = self.s.get("per_actor") if isinstance(self.s.get("per_actor"), dict) else {}
        info = {a.get("name"): a for a in self.s.get("actors") or [] if isinstance(a, dict)}
        if not per_actor:
            frames, _ = self.run_frames()
            for name in sorted({a for a in frames["actor"].to_pylist() if a}):
                per_actor[name] = {"frames": sum(1 for a in frames["actor"].to_pylist() if a == name)}
        return [{"name": name, "node": info.get(name, {}).get("hostname", "—"),
                 "device": info.get(name, {}).get("device", "—"),
                 "gpus": ",".join(str(g) for g in info.get(name, {}).get("gpu_ids") or []) or "—",
                 "frames": a.get("frames", "—"), "fps": fmt(a.get("frames_per_s"), ".3f"),
                 "busy": fmt(a.get("busy_s"), ".1f", " s"), "per_busy": fmt(a.get("frames_per_busy_s"), ".3f")}
                for name, a in sorted(per_actor.items())]

    def quality(self) -> dict[str, Any] | None:
        """Means against the ground truth, beside the grey baseline's."""
        q = self.t["quality"]
        if q.num_rows == 0:
            return None
        rows = []
        for label, col, base, spec, higher in QUALITY_METRICS:
            mine, grey = mean_of(q[col].to_pylist()), mean_of(q[base].to_pylist())
            verdict = ""
            if higher is not None and mine is not None and grey is not None:
                verdict = "better" if (mine > grey if higher else mine < grey) else "worse"
            rows.append({"label": label, "col": col, "base": base, "mine": fmt(mine, spec), "grey": fmt(grey, spec),
                         "verdict": verdict})
        return {"n": q.num_rows, "rows": rows, "ref_cf": fmt(mean_of(q["colorfulness_ref"].to_pylist())),
                "dcf": fmt(mean_of(q["delta_colorfulness"].to_pylist()), "+.2f")}

    def figure(self, uri: str | None, role: str, caption: str, kind: str = "output") -> Figure:
        return Figure(self.media.thumbnail(uri, kind), caption, uri, role)

    def video_series(self) -> list[VideoSeries]:
        out = []
        firsts = first_frames(self.t["frames"])
        for r in self.t["videos"].to_pylist()[:MAX_VIDEOS]:
            pairs = tuple(float("nan") if p is None else float(p) for p in r.get("e_warp_pairs") or [])
            out.append(VideoSeries(storage.basename(r["output_uri"] or r["input_uri"] or "?"),
                                   firsts.get(r["input_uri"], 0), pairs, tuple(r.get("seams") or ()),
                                   tuple(r.get("scene_cuts") or ()), finite(r.get("e_warp"))))
        return out

    def files(self) -> dict[str, Any]:
        m = self.job.metrics_prefix
        frames = self.t["frames"]
        outs = sorted({o for o, k in zip(frames["output_uri"].to_pylist(), frames["kind"].to_pylist())
                       if k == "image" and o} | {o for o in self.t["videos"]["output_uri"].to_pylist() if o})
        return {"output_prefix": self.output_prefix, "metrics_prefix": m,
                "metrics": [(name, storage.join(m, name), desc) for name, desc in METRIC_FILES],
                "outputs": outs, "shown": [(o, _short(o, self.output_prefix)) for o in outs[:MAX_LISTED_OUTPUTS]],
                "more": max(0, len(outs) - MAX_LISTED_OUTPUTS)}

    def manifest(self) -> dict[str, str] | None:
        man = self.job.manifest
        if man is None:
            return None
        try:
            return {"text": yaml.safe_dump(man.redacted(), sort_keys=False, allow_unicode=True, width=110),
                    "kind": "YAML"}
        except yaml.YAMLError:
            return {"text": json.dumps(man.redacted(), indent=2, default=str), "kind": "JSON"}

    def document(self, charts: dict[str, str], stage_rows: Sequence[tuple[str, float, float]]) -> str:
        """The HTML document, ``charts`` mapping chart names to their ``src``."""
        c = self.counts()
        explain = chart_explanations()
        explain["stages"] = (explain["stages"][0], explain["stages"][1] + stage_notes(stage_rows))
        images, videos = image_section(self), video_section(self)
        present = {"performance": "throughput" in charts or "stages" in charts,
                   "quality": self.t["quality"].num_rows > 0, "stylization": "losses" in charts,
                   "consistency": "ewarp" in charts, "images": images is not None, "videos": videos is not None}
        untrained = self.s.get("weights_untrained") or any(v for v in self.t["frames"]["untrained"].to_pylist())
        return render("job.html.j2", href=self.href,
                      job_id=self.s.get("job_id") or storage.basename(self.job.metrics_prefix),
                      what=" → ".join(x for x, on in (("colorize", self.colorize), ("stylize", self.stylize)) if on),
                      metrics_prefix=self.job.metrics_prefix, run_id=self.s.get("run_id", "—"),
                      made=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), status=self.status(c),
                      untrained=untrained, read_problems=self.problems,
                      draw_problems=self.problems[len(self.job.problems):],
                      toc=[(a, t) for a, t in TOC if present.get(a, True)], cards=self.cards(c), actors=self.actors(),
                      failures=self.t["failures"].to_pylist(), charts=charts, explain=explain,
                      quality=self.quality(), images=images, videos=videos, files=self.files(),
                      manifest=self.manifest())


TOC = (("summary", "Summary"), ("failures", "Failures"), ("performance", "How fast"), ("quality", "How good"),
       ("stylization", "Stylization"), ("consistency", "Video flicker"), ("images", "Images"), ("videos", "Videos"),
       ("files", "Files"), ("glossary", "What the numbers mean"))


def first_frames(frames: pa.Table) -> dict[str, int]:
    """The first processed frame of every video input."""
    firsts: dict[str, int] = {}
    for k, u, i in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()):
        if k == "video" and i is not None:
            firsts[u] = min(firsts.get(u, i), i)
    return firsts


def image_section(page: Page) -> dict[str, Any] | None:
    """Before and after of the first ``max_images`` images (by input path), with their quality where measured."""
    frames = page.t["frames"]
    rows = [r for r in frames.select(["kind", "input_uri", "output_uri", "colorized_uri"]).to_pylist()
            if r["kind"] == "image"]
    if not rows:
        return None
    seen, unique = set(), []
    for r in rows:  # a rerun may record an image again
        if r["output_uri"] not in seen:
            seen.add(r["output_uri"])
            unique.append(r)
    unique.sort(key=lambda r: r["input_uri"] or "")
    quality_rows = page.t["quality"].to_pylist()
    by_output = {r["output_uri"]: r for r in quality_rows}
    by_input = {r["input_uri"]: r for r in quality_rows}
    shown = unique[: page.max_images]
    out_label = "stylized" if page.stylize else "colorized" if page.colorize else "output"
    items = []
    for r in shown:
        q = by_output.get(r["output_uri"]) or by_input.get(r["input_uri"])
        figs = [page.figure(r["input_uri"], "input", "input", "input")]
        if r.get("colorized_uri"):
            figs.append(page.figure(r["colorized_uri"], "colorized", "colorized"))
        figs.append(page.figure(r["output_uri"], "output", out_label))
        if (reference := page.reference_figure()) is not None:
            figs.append(reference)
        quality = None
        if q:
            figs += [page.figure(q["reference_uri"], "reference", "ground truth", "input"),
                     page.figure(q["abs_diff_uri"], "abs-diff", "|output − truth|"),
                     page.figure(q["clamped_diff_uri"], "clamped-diff", "|difference|, clamped at 32")]
            quality = {"psnr": fmt(q["psnr"], ".2f", " dB"), "grey_psnr": fmt(q["baseline_psnr"], ".2f"),
                       "ssim": fmt(q["ssim"], ".3f"), "grey_ssim": fmt(q["baseline_ssim"], ".3f"),
                       "ab": fmt(q["ab_error"], ".2f"), "grey_ab": fmt(q["baseline_ab_error"], ".2f"),
                       "dcf": fmt(q["delta_colorfulness"], "+.2f"), "cf": fmt(q["colorfulness_pred"], ".1f"),
                       "cf_ref": fmt(q["colorfulness_ref"], ".1f")}
        items.append({"title": storage.basename(r["input_uri"] or "?"), "output_uri": r["output_uri"],
                      "output_label": _short(r["output_uri"] or "", page.output_prefix), "figs": figs, "q": quality})
    return {"total": len(unique), "shown": items, "with_truth": bool(quality_rows),
            "more": len(unique) - len(shown)}


def video_section(page: Page) -> dict[str, Any] | None:
    """The first, middle and last processed frame of each video, input above output, with its figures."""
    videos = page.t["videos"].to_pylist()
    if not videos:
        return None
    frames = page.t["frames"]
    indices: dict[str, set[int]] = {}
    for k, u, i in zip(frames["kind"].to_pylist(), frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()):
        if k == "video" and i is not None:
            indices.setdefault(u, set()).add(i)
    items = []
    for r in videos[:MAX_VIDEOS]:
        done = sorted(indices.get(r["input_uri"], set())) or list(range(int(r["frames"] or 0)))
        picks = sorted({done[0], done[len(done) // 2], done[-1]}) if done else []
        first = done[0] if done else 0
        ins = page.media.video_thumbnails(r["input_uri"], picks, "input")
        outs = page.media.video_thumbnails(r["output_uri"], [p - first for p in picks], "output")
        ewarp = None
        if finite(r.get("e_warp")) is not None:
            ewarp = {"all": fmt(r.get("e_warp"), ".5f"), "seams": fmt(r.get("e_warp_seams"), ".5f"),
                     "inside": fmt(r.get("e_warp_inside"), ".5f"),
                     "seam_list": ", ".join(map(str, r.get("seams") or [])) or "none",
                     "cuts": ", ".join(map(str, r.get("scene_cuts") or [])) or "none",
                     "cdc": fmt(r.get("cdc"), ".5f"), "cdc_without_cuts": fmt(r.get("cdc_without_cuts"), ".5f"),
                     "input_cdc": fmt(r.get("input_cdc"), ".5f"), "colourfulness": fmt(r.get("colourfulness"), ".1f"),
                     "input_colourfulness": fmt(r.get("input_colourfulness"), ".1f")}
        items.append({
            "title": storage.basename(r["input_uri"] or "?"), "output_uri": r["output_uri"],
            "output_label": _short(r["output_uri"] or "", page.output_prefix),
            "inputs": [Figure(ins.get(p), f"input frame {p}", r["input_uri"], "video-input") for p in picks],
            "outputs": [Figure(outs.get(p - first), f"output frame {p - first}", r["output_uri"], "video-output")
                        for p in picks] + [f for f in (page.reference_figure(),) if f is not None],
            "frames": r["frames"], "audio": r.get("audio") or "—", "ewarp": ewarp,
            "assembly": fmt(r.get("assemble_s"), ".2f", " s")})
    return {"total": len(videos), "shown": items, "more": max(0, len(videos) - MAX_VIDEOS)}


def stage_notes(rows: Sequence[tuple[str, float, float]]) -> str:
    """The figures :func:`chart_stages` leaves out of its bars, as a sentence."""
    notes = []
    total = next((r[2] for r in rows if r[0] == "total"), 0.0)
    small = [r for r in rows if r[0] not in ("total", "queue wait") and r[2] < 0.005 * total]
    wait = next((r for r in rows if r[0] == "queue wait"), None)
    if wait:
        notes.append(f" Queue wait (a unit waiting on its actor before it starts; not work): p50 "
                     f"{seconds_text(wait[1])}, p95 {seconds_text(wait[2])}.")
    if small:
        notes.append(" Under 0.5% of the total, not drawn: " + ", ".join(
            f"{name} (p95 {seconds_text(p95)})" for name, _, p95 in small) + ".")
    return "".join(notes)


def chart_explanations() -> dict[str, tuple[str, str]]:
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
