"""Hardening: nothing escapes the output prefix, large images stay within a memory budget, one bad image
never takes the rest of its shard with it."""

from __future__ import annotations

import os
import struct
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import QUIET, job_manifest
from PIL import Image

from colorstyle_core import storage
from jobs.actor import PipelineActor
from jobs.driver import EXIT_FAILURES, RunOptions, run_job
from jobs.manifest_base import ManifestError
from jobs.units.images import ImageShard

pytestmark = pytest.mark.usefixtures("ray_local")


# ---- path traversal --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix,rel,ok", [
    ("out", "a/b.png", True),
    ("out/", "a/./b.png", True),
    ("out", "a/../b.png", True),
    ("out", "../b.png", False),
    ("/tmp/out", "sub/../../victim/evil.png", False),
    ("s3://bucket/out", "x/../y.png", True),
    ("s3://bucket/out", "x/../../y.png", False),
    ("s3://bucket", "k/../../other-bucket/z", False),
    ("s3://bucket/out", "/etc/passwd", False),
])
def test_join_under_refuses_every_path_that_leaves_its_prefix(prefix, rel, ok):
    if ok:
        joined = storage.join_under(prefix, rel)
        assert joined.startswith(prefix.rstrip("/")) and ".." not in joined.split("/")
    else:
        with pytest.raises(storage.UnsafePathError, match="leaves|not a relative path"):
            storage.join_under(prefix, rel)


@pytest.mark.parametrize("key,value", [
    ("output", "{prefix: out/../../elsewhere}"),
    ("metrics", "{prefix: s3://bucket/m/../../x}"),
    ("metrics", "{reference: truth/../..}"),
])
def test_prefixes_with_dot_dot_segments_are_refused_at_validation(key, value):
    lines = {"output": "{prefix: out}", "metrics": "{}", key: value}
    with pytest.raises(ManifestError, match=r"test.yaml:\d+: .*'\.\.' segments"):
        job_manifest(f"""
            inputs: [in/]
            output: {lines['output']}
            pipeline: {{colorize: {{}}}}
            metrics: {lines['metrics']}
        """)
    with pytest.raises(ManifestError, match="'..' segments"):
        job_manifest("""
            inputs: [in/]
            output: {prefix: out}
            pipeline: {colorize: {model: siggraph17, hints: h/../../x}}
        """)


def test_an_object_key_with_dot_dot_never_writes_outside_the_output_prefix(shared, s3, tmp_path):
    import boto3

    prefix, opts = s3
    bucket = prefix.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=opts["client_kwargs"]["endpoint_url"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    photo = (shared / "data" / "gray" / "coffee.jpg").read_bytes()
    for key in ("esc/ok.jpg", "esc/sub/../../../victim/evil.jpg", "esc/sub/../inside.jpg",
                "hints/../../victim/h.json"):
        client.put_object(Bucket=bucket, Key=key, Body=photo)
    out = tmp_path / "jail" / "out"
    endpoint = opts["client_kwargs"]["endpoint_url"]
    manifest = job_manifest(f"""
        inputs: [{prefix}/esc/]
        storage_options: {{key: testing, secret: testing, client_kwargs: {{endpoint_url: "{endpoint}"}}}}
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{model: siggraph17, hints: {prefix}/hints/}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 4}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FAILURES
    unsafe = {f.input_uri.rsplit("/", 2)[-2] + "/" + f.input_uri.rsplit("/", 1)[-1]: f for f in report.failures
              if f.error_type == "UnsafePath"}
    assert set(unsafe) == {"victim/evil.jpg", "victim/h.json"}, report.failures
    assert "leaves" in unsafe["victim/evil.jpg"].message and "nothing is written" in unsafe["victim/evil.jpg"].message
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(w.startswith("jail/out/") for w in written), written
    assert (out / "ok.png").exists() and (out / "inside.png").exists()  # a '..' that stays inside is fine
    assert not any("victim" in w for w in written)


# ---- memory ----------------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` grey pixels but holds one row of data:
    decoding it would fail (or, if real, need gigabytes); the header alone says how big it is."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
            + chunk(b"IEND", b""))


def test_images_above_max_pixels_are_refused_from_the_header(shared, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "bomb.png").write_bytes(_png_claiming(60_000, 60_000))
    Image.open(shared / "data" / "gray" / "coffee.jpg").resize((300, 200)).save(inputs / "wide.png")  # 60,000 px
    Image.open(shared / "data" / "gray" / "coffee.jpg").resize((100, 80)).save(inputs / "small.png")
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs: [{inputs}/]
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 3, max_pixels: 50000}}
    """)
    report = run_job(manifest, QUIET)
    failed = {f.input_uri.rsplit("/", 1)[-1]: f for f in report.failures}
    assert set(failed) == {"bomb.png", "wide.png"}
    for name, size in (("bomb.png", "60000x60000"), ("wide.png", "300x200")):
        assert failed[name].error_type == "ImageTooLargeError"
        assert size in failed[name].message and "execution.max_pixels" in failed[name].message
    assert (out / "small.png").exists() and not (out / "bomb.png").exists()


def _poison_actor() -> type:
    """An actor whose process dies (as an out-of-memory kill would) whenever it decodes ``poison.jpg``."""

    class DiesOnPoison(PipelineActor):
        def process(self, unit, attempt, submitted_at):
            if any(item.uri.endswith("poison.jpg") for item in getattr(unit, "items", ())):
                images = self.processor.handlers[ImageShard]
                load = images.load

                def load_or_die(item, *args):
                    if item.uri.endswith("poison.jpg"):
                        os._exit(137)
                    return load(item, *args)

                images.load = load_or_die
            return super().process(unit, attempt, submitted_at)

    return DiesOnPoison


def test_an_image_that_kills_its_actor_does_not_take_its_shard_with_it(shared, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ("a.jpg", "b.jpg", "poison.jpg", "c.jpg")
    for name in names:
        Image.open(shared / "data" / "gray" / "lighthouse.jpg").resize((64, 48)).save(inputs / name)
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs: [{inputs}/]
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
        execution: {{actors: 2, images_per_shard: 4, batch_size: 4, retries: 1}}
    """)
    report = run_job(manifest, RunOptions(progress=False, actor_class=_poison_actor()))
    assert report.exit_code == EXIT_FAILURES
    assert [f.input_uri.rsplit("/", 1)[-1] for f in report.failures] == ["poison.jpg"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png", "c.png"]


def test_large_stills_in_bands_match_the_unbanded_path(shared):
    from colorstyle_core.color import to_uint8
    from colorstyle_core.colorizer import Colorizer
    from colorstyle_core.pipeline import FramePipeline
    from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig, StylizeStep
    from colorstyle_core.style.gatys import StyleConfig, Stylizer
    from tests.conftest import load_rgb

    colorizer = Colorizer.from_weights("eccv16", device="cpu", untrained_seed=0)
    stylizer = Stylizer.from_weights("vgg16", device="cpu", untrained_seed=0)
    style = load_rgb(shared / "data" / "style" / "color" / "great_wave_hokusai.jpg", 64)
    gray = load_rgb(shared / "data" / "gray" / "coffee.jpg", 600)[:, :1]
    u8 = (gray * 255).round().to(dtype=__import__("torch").uint8)  # 8-bit input, as large scans are decoded
    def levels(image) -> np.ndarray:  # before rounding to 8 bits: (H, W, 3) float64 in 0..255
        return image[0].permute(1, 2, 0).double().numpy() * (1.0 if image.dtype == __import__("torch").uint8 else 255.0)

    # The banded path rounds to 8 bits; the plain one is compared before rounding, so the bound is what rounding
    # can do (half a level) plus float32's disagreement between two summation orders (far below 0.05 level),
    # whatever the CPU: never a share of pixels that happens to hold on one machine.
    only = FramePipeline(PipelineConfig(colorize=ColorizeStep()), colorizer=colorizer)
    plain = levels(only.process([gray])[0].image)
    for image in (gray, u8):
        banded = levels(only.process_large(image, band_rows=37).image)
        assert banded.shape == plain.shape
        assert np.abs(banded - plain).max() <= 0.5 + 0.05  # float rounding only
    step = StylizeStep(("wave",), StyleConfig(steps=2), "vgg16", size=64)
    both = FramePipeline(PipelineConfig(colorize=ColorizeStep(), stylize=step), colorizer, stylizer, [style])
    banded, plain = both.process_large(u8, band_rows=50), both.process([gray])[0]
    assert banded.image.dtype == __import__("torch").uint8 and banded.image.shape[-2:] == gray.shape[-2:]
    assert np.abs(levels(banded.colorized) - levels(plain.colorized)).max() <= 0.5 + 0.05
    # The stylizer's input differs by the banded path's rounding (at most half a level); starting from that
    # content, two steps carry the difference through, so once both outputs are rounded to 8 bits no pixel is
    # more than one level apart (the same content reached the stylizer). No share of such pixels is asserted.
    stylized = [levels(r.image if r.image.dtype == __import__("torch").uint8 else to_uint8(r.image))
                for r in (banded, plain)]
    assert np.abs(stylized[0] - stylized[1]).max() <= 1
    assert banded.curves["total"] == pytest.approx(plain.curves["total"], rel=1e-5)


def test_cli_colorizes_a_large_scan_in_bands(shared, tmp_path):
    from jobs.cli import main

    big = tmp_path / "scan.png"
    Image.open(shared / "data" / "gray" / "coffee.jpg").convert("L").resize((4200, 3900)).save(big)  # 16.4 MP
    assert main(["colorize", str(big), str(tmp_path / "out.png"), "--untrained-weights"]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.size == (4200, 3900) and out.mode == "RGB"
    assert main(["colorize", str(big), str(tmp_path / "no.png"), "--untrained-weights", "--max-pixels", "1000000"]) == 2
    assert not Path(tmp_path / "no.png").exists()


# ---- storage problems at the edge, exit codes ------------------------------------------------


def _job_file(tmp_path: Path, storage: str, out: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(f"""
        inputs: [s3://archive-bucket/scans/]
        storage_options: {storage}
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
    """))
    return path


def test_an_unreachable_endpoint_is_one_clear_line_and_exit_2(tmp_path, capsys):
    from jobs.cli import main

    out = tmp_path / "out"
    job = _job_file(tmp_path, '{key: k, secret: s, client_kwargs: {endpoint_url: "http://127.0.0.1:9"}}', out)
    for command in (["validate", str(job)], ["run", str(job), "--no-progress"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        line = next(ln for ln in err.splitlines() if "error" in ln)
        assert "s3://archive-bucket/scans/: cannot list: EndpointConnectionError" in line, err
        assert "Traceback" not in err
    assert not out.exists()  # nothing left behind


def test_missing_credentials_are_one_clear_line_and_exit_2(s3_server, tmp_path, capsys, monkeypatch):
    from jobs.cli import main

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    out = tmp_path / "out"
    job = _job_file(tmp_path, f'{{client_kwargs: {{endpoint_url: "{s3_server}/"}}}}', out)
    assert main(["run", str(job), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "s3://archive-bucket/scans/: cannot list: NoCredentialsError" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["validate", str(job), "--no-storage"]) == 0  # offline: the schema and records only
    err = capsys.readouterr().err
    assert "manifest valid" in err and "skipped (--no-storage)" in err and "colorization_release_v2" in err


def test_a_crash_is_exit_3_and_distinct_from_failed_inputs(tmp_path, capsys, monkeypatch):
    import jobs.driver
    from jobs.cli import main

    job = tmp_path / "job.yaml"
    job.write_text(f"inputs: [{tmp_path}]\noutput: {{prefix: {tmp_path}/out}}\npipeline: {{colorize: {{}}}}\n")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(jobs.driver, "plan_job", broken)
    assert main(["validate", str(job)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "internal error" in err


def test_progress_lines_when_the_output_is_not_a_terminal(shared, tmp_path):
    import io

    from rich.console import Console

    from jobs.progress import ProgressReporter

    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(6):
        Image.open(shared / "data" / "gray" / "lighthouse.jpg").resize((64, 48)).save(inputs / f"p{k}.jpg")
    manifest = job_manifest(f"""
        inputs: [{inputs}/]
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 2, batch_size: 1}}
    """)
    buf = io.StringIO()
    report = run_job(manifest, RunOptions(progress=True, log_interval_s=1e-6), Console(file=buf, width=200))
    lines = [ln.split("progress:", 1)[1] for ln in buf.getvalue().splitlines() if "progress:" in ln]
    assert report.exit_code == 0 and lines
    assert lines[-1].startswith(" 6/6 frames (100.0%), 3/3 units")
    assert all("frames/s" in ln and "ETA" in ln and "failures 0" in ln for ln in lines)
    # the arithmetic, with a clock we control
    now = [0.0]
    console = Console(file=io.StringIO(), width=200)
    rep = ProgressReporter(console, 100, 10, interval_s=30, clock=lambda: now[0])
    now[0] = 10.0
    rep.finished(20, units=2, failures=1)
    rep.in_flight({"unit-a#1": 5})
    assert rep.line() == ("progress: 25/100 frames (25.0%), 2/10 units, 2.50 frames/s, elapsed 10 s, "
                          "ETA 30 s, failures 1")
    assert console.file.getvalue() == ""  # not yet 30 s
    now[0] = 31.0
    rep.tick()
    assert "progress: 25/100 frames" in console.file.getvalue()


def test_submit_retries_transient_jobs_api_errors_then_says_one_sentence():
    from jobs.submit import with_retries

    waits: list[float] = []
    answers = iter([RuntimeError("Request failed with status code 500: No available agent to submit job, "
                                 "please try again later."), ConnectionError("Connection refused"), "raysubmit_1"])

    def call():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert with_retries(call, "submitting job.yaml", delays=(1.0, 2.0, 4.0), sleep=waits.append) == "raysubmit_1"
    assert waits == [1.0, 2.0]

    def always_busy():
        raise RuntimeError("Request failed with status code 500: No available agent to submit job")

    with pytest.raises(RuntimeError) as e:
        with_retries(always_busy, "submitting job.yaml", delays=(1.0, 2.0), sleep=lambda s: None)
    assert str(e.value) == ("submitting job.yaml failed after 3 attempts over 3 s: Request failed with status "
                            "code 500: No available agent to submit job")

    def refused():
        raise RuntimeError("Request failed with status code 400: bad runtime_env")

    waits.clear()
    with pytest.raises(RuntimeError, match="submitting job.yaml failed: .*400"):
        with_retries(refused, "submitting job.yaml", delays=(1.0,), sleep=waits.append)
    assert waits == []  # not transient: no retry
