"""``colorstyle report`` on a real job: the page answers "did it work, how fast, what does it look like".

One small real job runs once for the module on a local Ray (generated weights, asked
for explicitly): three photos with ground truth, colorized then stylized (48 px, 2
steps), eight frames of the GIF with E_warp measured, and one corrupt image. The
report is built through the command line and checked as HTML, as files, and in a
real headless Chromium (skipped when Chromium or its driver is not installed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import tempfile
import textwrap
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs.cli import main
from jobs.driver import EXIT_FAILURES, RunOptions, run_job
from jobs.manifest import parse_manifest
from jobs.manifest_base import redact
from jobs.report import build_report, find_metrics_prefix, fmt, loss_curves

PHOTOS = ("coffee", "chelsea_cat", "lighthouse")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def job(tmp_path_factory, shared):
    """The finished job: ``(output dir, run report)``."""
    root = tmp_path_factory.mktemp("report-in")
    (root / "photos").mkdir()
    for stem in PHOTOS:
        shutil.copy(shared / "data" / "gray" / f"{stem}.jpg", root / "photos" / f"{stem}.jpg")
    (root / "photos" / "broken.jpg").write_text("a shopping list <b>not</b> a photo\n")
    shutil.copy(shared / "data" / "video" / "dev_kenburns_gray.gif", root / "film.gif")
    out = tmp_path_factory.mktemp("report-out")
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs:
          - {root}/photos/
          - uri: {root}/film.gif
            frames: {{start: 0, end: 8}}
        output: {{prefix: {out}, save_colorized: true}}
        pipeline:
          colorize: {{model: eccv16}}
          stylize:
            styles: [{shared}/data/style/color/great_wave_hokusai.jpg]
            size: 48
            steps: 2
          untrained_weights: true
        execution: {{actors: 2, images_per_shard: 2, frames_per_range: 4, batch_size: 4}}
        metrics: {{reference: {shared}/data/color/, video_consistency: true}}
    """), "report-test.yaml")
    report = run_job(manifest, RunOptions(progress=False))
    assert report.exit_code == EXIT_FAILURES, report.failures  # the corrupt image, nothing else
    assert [f.input_uri.rsplit("/", 1)[-1] for f in report.failures] == ["broken.jpg"]
    return out, report


@pytest.fixture(scope="module")
def page(job):
    """The report made by ``colorstyle report <output prefix>``: ``(index.html path, its text)``."""
    out, report = job
    assert main(["report", str(out)]) == 0
    index = Path(report.written["summary"]).parent / "report" / "index.html"
    return index, index.read_text(encoding="utf-8")


def _metrics(job) -> Path:
    return Path(job[1].written["summary"]).parent


def _img_sources(text: str) -> list[str]:
    return re.findall(r'<img\b[^>]*?\bsrc="([^"]*)"', text)


def test_header_says_which_job_whether_it_worked_and_how_fast(job, page):
    _, report = job
    _, text = page
    summary = report.summary
    assert f"job <code>{summary['job_id']}</code>" in text
    status = re.search(r'<div class="status (\w+)" id="status">(.*?)</div>', text)
    assert status and status.group(1) == "bad" and "1 of 5 inputs failed" in status.group(2)
    fps = re.search(r'id="fig-fps">.*?<div class="v">([^<]*)</div>', text)
    assert fps and fps.group(1) == f"{summary['frames_per_s']:.2f}"
    e2e = re.search(r'id="fig-fps-e2e">.*?<div class="v">([^<]*)</div>', text)
    assert e2e and e2e.group(1) == f"{summary['end_to_end_frames_per_s']:.2f}"
    assert re.search(r'id="fig-frames">.*?<div class="v">11</div>', text)  # 3 photos + 8 frames
    assert re.search(r'id="fig-outputs">.*?<div class="v">4</div>', text)  # 3 photos + 1 GIF
    assert 'id="untrained"' in text and "UNTRAINED weights" in text
    for actor in summary["per_actor"]:
        assert f"<td>{actor}</td>" in text
    assert "<details id='manifest'>" in text and "untrained_weights: true" in text


def test_failure_row_is_shown_escaped(job, page):
    _, report = job
    _, text = page
    failure = report.failures[0]
    assert failure.error_type == "ImageDecodeError"
    table = text[text.index("id='failures-table'"):]
    table = table[: table.index("</table>")]
    assert html.escape(failure.message) in table and "ImageDecodeError" in table
    assert html.escape(failure.input_uri) in table


def test_quality_and_grey_baseline_match_quality_parquet(job, page):
    _, text = page
    rows = pq.read_table(_metrics(job) / "quality.parquet").to_pylist()
    assert len(rows) == len(PHOTOS)
    for col, spec in (("psnr", ".2f"), ("baseline_psnr", ".2f"), ("ssim", ".3f"), ("baseline_ssim", ".3f"),
                      ("ab_error", ".2f"), ("baseline_ab_error", ".2f"), ("baseline_colorfulness", ".2f")):
        mean = math.fsum(r[col] for r in rows) / len(rows)
        assert f"data-metric='{col}'>{fmt(mean, spec)}</td>" in text, col
    for r in rows:  # per image, under its thumbnails
        assert f"(grey {r['baseline_psnr']:.2f})" in text and f"(grey {r['baseline_ssim']:.3f})" in text
        assert f"ΔCF <b>{r['delta_colorfulness']:+.2f}</b>" in text
    for word in ("grey baseline", "PSNR", "E_warp"):  # explained for newcomers
        assert f"<dt>{word}" in text or f"<dt>{word.capitalize()}" in text


def test_every_chart_is_embedded_and_also_a_png_beside_the_page(page):
    index, text = page
    charts = re.findall(r'<img class="chart-img" id="chart-(\w+)" src="([^"]+)"', text)
    assert {name for name, _ in charts} == {"throughput", "stages", "losses", "ewarp", "quality"}
    for name, src in charts:
        assert src.startswith("data:image/png;base64,")  # the page stands alone
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(PNG_MAGIC) and (index.parent / f"{name}.png").read_bytes() == data
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        with Image.open(io.BytesIO(data)) as img:
            assert img.width >= 600 and img.height >= 150


def test_thumbnails_are_small_embedded_jpegs_and_the_page_is_light(page):
    index, text = page
    assert index.stat().st_size < 2_000_000
    thumbs = [s for s in _img_sources(text) if s.startswith("data:") and not s.startswith("data:image/png")]
    assert len([s for s in _img_sources(text) if s.startswith("data:image/png")]) == 5  # the charts
    # per photo: input, colorized, stylized, ground truth, two diff maps; the GIF: 3 input + 3 output frames
    assert len(thumbs) == 6 * len(PHOTOS) + 6
    for src in thumbs:
        assert src.startswith("data:image/jpeg;base64,")
        raw = base64.b64decode(src.split(",", 1)[1])
        assert len(raw) < 40_000
        with Image.open(io.BytesIO(raw)) as img:
            assert img.format == "JPEG" and max(img.size) <= 200
    assert "data-missing" not in text  # everything of this job could be read
    assert "E_warp <b>" in text and "audio <b>none</b>" in text  # the video's figures


def test_page_needs_no_network(page):
    _, text = page
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    refs = re.findall(r'\b(?:src|href|srcset|poster|action)\s*=\s*["\']?([^"\'\s>]*)', text)
    assert refs
    assert not [r for r in refs if r.startswith(("http:", "https:", "//"))]


def test_outputs_and_metrics_files_are_linked_relatively(job, page):
    index, text = page
    hrefs = [urllib.parse.unquote(h) for h in re.findall(r'href="([^"#][^"]*)"', text)]
    targets = {(index.parent / h).resolve() for h in hrefs}
    out, _ = job
    for name in ("coffee.png", "chelsea_cat.png", "lighthouse.png", "film.gif"):
        assert (out / name).resolve() in targets, name
    for name in ("frames.parquet", "videos.parquet", "quality.parquet", "failures.parquet", "summary.json"):
        assert (_metrics(job) / name).resolve() in targets, name
    assert all((index.parent / h).exists() for h in hrefs if not h.startswith("data:"))


def test_missing_and_corrupt_files_give_placeholders_not_a_crash(job, tmp_path):
    """A copy of the job where an output, a diff map and a table are gone, and another table is garbage."""
    out, report = job
    copy = tmp_path / "metrics"
    shutil.copytree(_metrics(job), copy, ignore=shutil.ignore_patterns("report"))
    (copy / "videos.parquet").write_bytes(b"not parquet at all")
    (copy / "units.parquet").unlink()
    quality = pq.read_table(copy / "quality.parquet")
    (tmp_path / "empty.png").write_bytes(b"")  # a zero-byte diff map
    quality = quality.set_column(quality.schema.get_field_index("abs_diff_uri"), "abs_diff_uri",
                                 pa.array([str(tmp_path / "empty.png")] * quality.num_rows))
    pq.write_table(quality, copy / "quality.parquet")
    frames = pq.read_table(copy / "frames.parquet")
    outputs = frames["output_uri"].to_pylist()
    outputs[frames["kind"].to_pylist().index("image")] = str(tmp_path / "gone.png")
    frames = frames.set_column(frames.schema.get_field_index("output_uri"), "output_uri", pa.array(outputs))
    pq.write_table(frames, copy / "frames.parquet")
    failures = pq.read_table(copy / "failures.parquet")
    failures = failures.set_column(failures.schema.get_field_index("message"), "message",
                                   pa.array(['<script>alert("x")</script> & friends']))
    pq.write_table(failures, copy / "failures.parquet")
    assert main(["report", str(copy), "--out", str(tmp_path / "r" / "page.html")]) == 0
    text = (tmp_path / "r" / "page.html").read_text(encoding="utf-8")
    assert 'data-missing="output"' in text and 'data-missing="abs-diff"' in text
    assert "videos.parquet: unreadable" in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; friends" in text and "<script>" not in text
    assert (tmp_path / "r" / "throughput.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "r" / "ewarp.png").exists()  # no readable video rows: no E_warp chart


def test_most_recent_job_is_chosen_unless_one_is_named(tmp_path):
    for job_id, run_id in (("cs-old", "20260101T000000Z-aaaaaa"), ("cs-new", "20261231T000000Z-bbbbbb")):
        d = tmp_path / "_colorstyle" / job_id
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"job_id": job_id, "run_id": run_id}))
    assert find_metrics_prefix(str(tmp_path)) == str(tmp_path / "_colorstyle" / "cs-new")
    assert find_metrics_prefix(str(tmp_path), job="cs-old") == str(tmp_path / "_colorstyle" / "cs-old")
    assert find_metrics_prefix(str(tmp_path / "_colorstyle" / "cs-old")) == str(tmp_path / "_colorstyle" / "cs-old")
    with pytest.raises(FileNotFoundError, match="no job 'cs-nope'"):
        find_metrics_prefix(str(tmp_path), job="cs-nope")
    with pytest.raises(FileNotFoundError, match="no job found"):
        find_metrics_prefix(str(tmp_path / "elsewhere"))
    assert main(["report", str(tmp_path / "elsewhere")]) == 2
    # a job without tables still gets a page, marked incomplete where the summary says little
    result = build_report(str(tmp_path / "_colorstyle" / "cs-new"))
    text = Path(result.html_uri).read_text(encoding="utf-8")
    assert "cs-new" in text and "frames.parquet: missing" in text and "Nothing was processed" in text


def test_loss_curves_keep_ragged_lengths_and_sample_long_jobs():
    from jobs.metrics.tables import FRAME_SCHEMA

    curves = [[3.0, 2.0, 1.0], [], None, [5.0, 4.0], [9.0, 8.0, 7.0, 6.0]]
    rows = [{"loss_total": c, "loss_style": c} for c in curves]
    frames = pa.Table.from_pylist(rows, schema=FRAME_SCHEMA)
    got = loss_curves(frames)
    assert set(got) == {"total", "style"}  # content and tv are empty everywhere
    series, total = got["total"]
    assert total == 3 and [s.tolist() for s in series] == [[3.0, 2.0, 1.0], [5.0, 4.0], [9.0, 8.0, 7.0, 6.0]]
    series, total = loss_curves(frames, limit=2)["total"]
    assert total == 3 and [s.tolist() for s in series] == [[3.0, 2.0, 1.0], [9.0, 8.0, 7.0, 6.0]]
    assert loss_curves(FRAME_SCHEMA.empty_table()) == {}


def test_credentials_are_masked_in_the_manifest():
    masked = redact({"storage_options": {"key": "AKIA123", "secret": "s3cr3t", "client_kwargs": {
        "endpoint_url": "http://127.0.0.1:9000"}}, "inputs": [{"uri": "s3://b/x"}]})
    assert masked["storage_options"]["key"] == masked["storage_options"]["secret"] == "•••"
    assert masked["storage_options"]["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert masked["inputs"] == [{"uri": "s3://b/x"}]


def test_report_of_a_job_on_s3(job, shared, s3, tmp_path, monkeypatch):
    """Inputs, outputs and metrics in a bucket: the report is read from and written to the bucket."""
    import fsspec

    prefix, opts = s3
    fs = fsspec.filesystem("s3", **opts)
    fs.put_file(str(shared / "data" / "gray" / "coffee.jpg"), f"{prefix}/in/coffee.jpg")
    fs.put_file(str(shared / "data" / "video" / "dev_kenburns_gray.gif"), f"{prefix}/in/film.gif")
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs:
          - {prefix}/in/coffee.jpg
          - uri: {prefix}/in/film.gif
            frames: {{start: 0, end: 4}}
        storage_options: {json.dumps(opts)}
        output: {{prefix: {prefix}/out}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, frames_per_range: 4, batch_size: 4}}
    """), "s3.yaml")
    report = run_job(manifest, RunOptions(progress=False))
    assert report.exit_code == 0, report.failures
    assert main(["report", f"{prefix}/out", "--storage-options", json.dumps(opts)]) == 0
    metrics = report.written["summary"].rsplit("/", 1)[0]
    text = fs.cat_file(f"{metrics}/report/index.html").decode()
    assert "All 2 inputs done" in text and report.job_id in text
    for name in ("throughput", "stages"):
        assert fs.cat_file(f"{metrics}/report/{name}.png").startswith(PNG_MAGIC)
    thumbs = [s for s in _img_sources(text) if s.startswith("data:image/jpeg")]
    assert len(thumbs) == 2 + 6  # the photo in and out, the GIF's three frames in and out
    assert "data-missing" not in text
    assert f"<code>{prefix}/out/coffee.png</code>" in text  # not local: the URI as text, no link
    assert "testing" not in text  # the key and secret of storage_options are masked

    # Without --storage-options: the endpoint comes from the summary's manifest, the credentials (masked there)
    # from the environment, as for any fsspec URI; the mask itself never reaches fsspec.
    from jobs.manifest_base import REDACTED
    from jobs.report.data import load_job
    from jobs.report.media import Media

    monkeypatch.setenv("AWS_ENDPOINT_URL", opts["client_kwargs"]["endpoint_url"])  # botocore: to find the metrics
    job_data = load_job(metrics)
    assert job_data.manifest is not None and job_data.manifest.storage_options["secret"] == REDACTED
    media = Media(None, job_data.manifest)
    assert REDACTED not in json.dumps([media.input_opts, media.output_opts])
    assert media.input_opts["client_kwargs"] == opts["client_kwargs"]
    assert main(["report", f"{prefix}/out", "--out", f"{metrics}/report-env/index.html"]) == 0
    text = fs.cat_file(f"{metrics}/report-env/index.html").decode()
    assert len([s for s in _img_sources(text) if s.startswith("data:image/jpeg")]) == 2 + 6
    assert "data-missing" not in text


def test_page_renders_in_headless_chromium(page, tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"headless browser not installed ({CHROMIUM} and {CHROMEDRIVER} are needed; .ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    index, _ = page
    alone = tmp_path / "mailed" / "index.html"  # the page copied somewhere on its own, as a mail attachment
    alone.parent.mkdir()
    alone.write_bytes(index.read_bytes())
    index = alone
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
                "--window-size=1300,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(index.resolve().as_uri())
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.id || i.alt || i.src.slice(0, 60));")
        assert broken == []
        count = driver.execute_script("return document.images.length")
        assert count == 5 + 6 * len(PHOTOS) + 6
        charts = driver.execute_script(
            "return Array.from(document.querySelectorAll('img.chart-img'))"
            ".filter(i => i.naturalWidth > 0).map(i => i.id);")
        assert sorted(charts) == sorted(f"chart-{n}" for n in ("throughput", "stages", "losses", "ewarp", "quality"))
        status = driver.execute_script("return document.getElementById('status').innerText")
        assert "1 of 5 inputs failed" in status
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1300, min(height + 40, 12000))
        shot = tmp_path / "report.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    with Image.open(shot) as img:
        assert img.format == "PNG" and img.width >= 1000 and img.height >= 2000
        colours = img.convert("RGB").resize((200, 400)).getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 500  # text, charts and photos, not a blank page


def test_loss_medians_never_mix_frames_of_different_lengths():
    import numpy as np

    from jobs.report.data import median_curves

    cold = [np.linspace(10, 1, 20)]  # the first frame of a shot: every step
    warm = [np.linspace(3, 1, 7) * k for k in (1.0, 1.1, 0.9)]  # warm-started frames: fewer steps
    groups = median_curves(warm + cold)
    assert [(steps, count) for steps, count, _ in groups] == [(7, 3), (20, 1)]
    np.testing.assert_allclose(groups[0][2], np.linspace(3, 1, 7))  # a real median of the three
    np.testing.assert_allclose(groups[1][2], cold[0])
