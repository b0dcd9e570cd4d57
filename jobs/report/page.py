"""The report page: HTML sections built from a job's data, thumbnails and charts."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime

import pyarrow as pa
import yaml

from colorstyle_core import storage
from jobs.report.charts import seconds_text
from jobs.report.data import JobData, VideoSeries
from jobs.report.media import Media
from jobs.report.text import CSS, duration, esc, finite, fmt, mean_of

MAX_IMAGES = 24
"""Images shown in the grid by default."""
MAX_VIDEOS = 8
"""Videos shown with frames (and in the E_warp chart)."""
MAX_LISTED_OUTPUTS = 300
"""Output files listed by name under "Files"."""


# ---- small helpers ----------------------------------------------------------------------------


def _short(uri: str, root: str | None = None) -> str:
    """A URI shortened for display: relative to ``root`` when under it, else as is."""
    if root and uri.startswith(root.rstrip("/") + "/"):
        return uri[len(root.rstrip("/")) + 1:]
    return uri


# ---- the page ---------------------------------------------------------------------------------

class Page:
    """Turns a :class:`JobData` into HTML; links are made relative to ``report_dir`` when both are local."""

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
            return f'<a href="{esc(h)}" title="{esc(uri)}">{esc(text or uri)}</a>'
        return f"<code>{esc(uri)}</code>"

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
        parts = [f"<h1>colorstyle report — job <code>{esc(job_id)}</code></h1>"]
        what = " → ".join(x for x, on in (("colorize", self.colorize), ("stylize", self.stylize)) if on)
        parts.append(f'<p class="lead">{esc(what or "pipeline unknown")} · metrics at '
                     f"<code>{esc(self.job.metrics_prefix)}</code> · last run <code>{esc(self.s.get('run_id', '—'))}"
                     f"</code> · report made {esc(datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC'))}</p>")
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
        parts.append(f'<div class="status {cls}" id="status">{icon} {esc(text)} <small>{esc(sub)}</small></div>')
        untrained = self.s.get("weights_untrained") or any(v for v in self.t["frames"]["untrained"].to_pylist())
        if untrained:
            parts.append('<div class="banner" id="untrained">⚠ UNTRAINED weights — these pictures are not a real '
                         "colorization or stylization.<span>This was a smoke run with generated weights "
                         "(<code>pipeline.untrained_weights: true</code>): timings are real, colours and "
                         "quality figures are meaningless.</span></div>")
        if self.problems:
            items = "".join(f"<li>{esc(p)}</li>" for p in self.problems)
            parts.append(f'<div class="problems"><b>Could not read everything:</b><ul>{items}</ul></div>')
        return "\n".join(parts)

    def key_figures(self, c: dict[str, int]) -> str:
        s = self.s
        fps, e2e = s.get("frames_per_s"), s.get("end_to_end_frames_per_s")
        cards = [
            ("inputs", "inputs", str(c["inputs"]), f"{c['images']} image(s), {c['videos']} video(s)", ""),
            ("outputs", "outputs written", str(c["outputs"]), "files", ""),
            ("frames", "frames / images done", str(c["frames"]),
             f"{(s.get('last_run') or s).get('frames', '—')} in the last run, {len(s.get('runs') or [1])} run(s)",
             ""),
            ("failures", "failures", str(c["failures"]), f"{c['failed_inputs']} input(s)",
             "bad" if c["failures"] else "ok"),
            ("fps", "frames/s (processing)", fmt(fps, ".2f"), "pool ready → last frame", ""),
            ("fps-e2e", "frames/s (end to end)", fmt(e2e, ".2f"), "incl. start-up", ""),
            ("wall", "wall time", duration(s.get("end_to_end_s")), f"processing {duration(s.get('wall_s'))}", ""),
            ("startup", "start-up", duration(s.get("startup_s")), "Ray, actors, models", ""),
        ]
        html_cards = "".join(
            f'<div class="card {cls}" id="fig-{ident}"><div class="k">{esc(k)}</div>'
            f'<div class="v">{esc(v)}</div><div class="k">{esc(sub)}</div></div>' for ident, k, v, sub, cls in cards)
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
            rows.append(f"<tr><td>{esc(name)}</td><td>{esc(i.get('hostname', '—'))}</td><td>{esc(i.get('device', '—'))}"
                        f"</td><td>{esc(gpus)}</td><td class='n'>{esc(a.get('frames', '—'))}</td>"
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
            rows.append(f"<tr><td>{esc(r['input_uri'] or '(the job)')}</td><td><code>{esc(r['unit_id'] or '—')}</code>"
                        f"</td><td>{esc(r['error_type'])}</td><td class='msg'>{esc(r['message'])}</td>"
                        f"<td class='n'>{esc(r['attempt'])}</td></tr>")
        return (f"<h2 id='failures'>Failures ({f.num_rows})</h2><p class='lead'>Bad inputs are recorded and "
                "skipped; the rest of the job goes on. Attempt 0 = found while planning.</p>"
                "<table id='failures-table'><tr><th>input</th><th>unit</th><th>error</th><th>message</th>"
                "<th class='n'>attempt</th></tr>" + "".join(rows) + "</table>")

    def chart_block(self, charts: dict[str, str], name: str, title: str, explain: str) -> str:
        if name not in charts:
            return ""
        return (f'<div class="chart"><h3>{esc(title)}</h3><img class="chart-img" id="chart-{esc(name)}" '
                f'src="{esc(charts[name])}" alt="{esc(title)}"><p>{explain}</p></div>')

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
            mine, grey = mean_of(q[col].to_pylist()), mean_of(q[base].to_pylist())
            verdict = ""
            if higher is not None and mine is not None and grey is not None:
                good = mine > grey if higher else mine < grey
                verdict = ('<span class="better">better than grey</span>' if good
                           else '<span class="worse">not better than grey</span>')
            rows.append(f"<tr><td>{label}</td><td class='n' data-metric='{col}'>{fmt(mine, spec)}</td>"
                        f"<td class='n' data-metric='{base}'>{fmt(grey, spec)}</td><td>{verdict}</td></tr>")
        ref_cf = mean_of(q["colorfulness_ref"].to_pylist())
        dcf = mean_of(q["delta_colorfulness"].to_pylist())
        rows.append(f"<tr><td>colourfulness of the ground truth / ΔCF</td><td class='n'>{fmt(ref_cf)}</td>"
                    f"<td class='n'>—</td><td>output − truth: <b>{fmt(dcf, '+.2f')}</b></td></tr>")
        return (f"<h3>Against the ground truth ({q.num_rows} image{'s' if q.num_rows != 1 else ''}, means)</h3>"
                "<table id='quality-summary'><tr><th>metric</th><th class='n'>output</th>"
                "<th class='n'>grey baseline</th><th></th></tr>" + "".join(rows) + "</table>")

    # images ---------------------------------------------------------------------------------
    def _fig(self, data_uri: str | None, caption: str, uri: str | None, role: str) -> str:
        if data_uri:
            img = f'<img src="{data_uri}" alt="{esc(caption)}">'
            h = self.href(uri)
            if h:
                img = f'<a href="{esc(h)}" title="{esc(uri)}">{img}</a>'
        else:
            name = esc(storage.basename(uri or "") or "")
            img = f'<div class="missing" data-missing="{esc(role)}">missing<br>{name}</div>'
        return f"<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>"

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
            title = esc(storage.basename(r["input_uri"] or "?"))
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
                                   tuple(r.get("scene_cuts") or ()), finite(r.get("e_warp"))))
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
            ew = finite(r.get("e_warp"))
            if ew is not None:
                cuts = r.get("scene_cuts") or []
                ewarp = (f"<span>E_warp <b>{fmt(ew, '.5f')}</b></span>"
                         f"<span>at seams <b>{fmt(r.get('e_warp_seams'), '.5f')}</b> / elsewhere "
                         f"<b>{fmt(r.get('e_warp_inside'), '.5f')}</b></span>"
                         f"<span>seams at frames {esc(', '.join(map(str, r.get('seams') or [])) or 'none')}</span>"
                         f"<span>scene cuts {esc(', '.join(map(str, cuts)) or 'none')}</span>")
            else:
                ewarp = "<span class='muted'>E_warp not measured (metrics.video_consistency off)</span>"
            audio = r.get("audio") or "—"
            parts.append(
                f"<div class='item video-item'><div class='title'>{esc(storage.basename(r['input_uri'] or '?'))} "
                f"<span class='muted'>→ {self.out_link(r['output_uri'])}</span></div>"
                f"<div class='strip'>{figs_in}</div><div class='strip' style='margin-top:8px'>{figs_out}</div>"
                f"<div class='metrics'><span>frames <b>{esc(r['frames'])}</b></span>"
                f"<span>audio <b>{esc(audio)}</b></span>{ewarp}"
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
            items.append(f"<li>{self.link(uri, name)} — <span class='muted'>{esc(desc)}</span></li>")
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
        if man is None:
            return "<h2>Manifest</h2><p class='muted'>missing (no readable manifest in summary.json)</p>"
        try:
            text = yaml.safe_dump(man.redacted(), sort_keys=False, allow_unicode=True, width=110)
            kind = "YAML"
        except yaml.YAMLError:
            text, kind = json.dumps(man.redacted(), indent=2, default=str), "JSON"
        return (f"<h2>Manifest</h2><details id='manifest'><summary>The job's manifest ({kind}, defaults filled in; "
                f"credentials masked)</summary><pre>{esc(text)}</pre></details>")

    # the whole page ---------------------------------------------------------------------------
    def document(self, charts: dict[str, str], stage_rows: Sequence[tuple[str, float, float]]) -> str:
        """The HTML document: every section in order, ``charts`` mapping chart names to their ``src``."""
        c = self.counts()
        explain = chart_explanations()
        explain["stages"] = (explain["stages"][0], explain["stages"][1] + stage_notes(stage_rows))
        toc = [("summary", "Summary"), ("failures", "Failures"), ("performance", "How fast"),
               ("quality", "How good"), ("stylization", "Stylization"), ("consistency", "Video flicker"),
               ("images", "Images"), ("videos", "Videos"), ("files", "Files"), ("glossary", "What the numbers mean")]
        present = {"performance": "throughput" in charts or "stages" in charts,
                   "quality": self.t["quality"].num_rows > 0, "stylization": "losses" in charts,
                   "consistency": "ewarp" in charts, "images": "image" in self.t["frames"]["kind"].to_pylist(),
                   "videos": self.t["videos"].num_rows > 0}
        links = "".join(f"<a href='#{a}'>{t}</a>" for a, t in toc if present.get(a, True))
        nav = f"<nav class='toc'>{links}</nav>"
        body = [self.header(c), nav, "<h2 id='summary'>Summary</h2>", self.key_figures(c), self.failures()]
        perf = [self.chart_block(charts, n, *explain[n]) for n in ("throughput", "stages")]
        if any(perf):
            body += ["<h2 id='performance'>How fast</h2>", *perf]
        looks = [self.quality_table(), self.chart_block(charts, "quality", *explain["quality"])]
        if any(looks):
            body += ["<h2 id='quality'>How good</h2>", *looks]
        if "losses" in charts:
            body += ["<h2 id='stylization'>Stylization</h2>", self.chart_block(charts, "losses", *explain["losses"])]
        if "ewarp" in charts:
            body += ["<h2 id='consistency'>Video flicker</h2>", self.chart_block(charts, "ewarp", *explain["ewarp"])]
        body += [self.images(), self.videos(), self.files(), self.manifest(), GLOSSARY]
        if self.problems != self.job.problems:  # chart problems found after the header was written
            extra = "".join(f"<li>{esc(p)}</li>" for p in self.problems[len(self.job.problems):])
            body.insert(1, f'<div class="problems"><b>Could not draw everything:</b><ul>{extra}</ul></div>')
        job_id = self.s.get("job_id") or storage.basename(self.job.metrics_prefix)
        document = (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>colorstyle report — {esc(job_id)}</title><style>{CSS}</style></head>"
            "<body><main>\n" + "\n".join(b for b in body if b) +
            f"\n<footer>Generated by <code>colorstyle report</code> from <code>{esc(self.job.metrics_prefix)}</code>. "
            "Self-contained: charts and thumbnails are embedded; no network or other file needed.</footer>"
            "</main></body></html>\n")
        return document


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
            f"{esc(name)} (p95 {seconds_text(p95)})" for name, _, p95 in small) + ".")
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
