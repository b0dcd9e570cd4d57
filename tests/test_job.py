"""The distributed job end to end on a real local Ray (2 CPUs, 2 declared GPUs).

Generated weights (asked for explicitly: ``untrained_weights: true``) keep it offline;
the checks hold whatever the weights: one output per input, frame counts, timing,
audio, lightness (which proves order and resolution), metrics schema, resume,
retries after a killed actor.
"""

from __future__ import annotations

import io
import os
import shutil
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import QUIET, job_manifest
from PIL import Image

from colorstyle_core import color, imageio
from colorstyle_core.video import probe
from jobs.actor import PipelineActor
from jobs.driver import EXIT_FAILURES, EXIT_FATAL, EXIT_OK, RunOptions, run_job
from jobs.metrics.tables import FAILURE_SCHEMA, FRAME_SCHEMA, UNIT_SCHEMA
from tests.media import (
    audio_packet_payloads,
    avi_with_wrong_frame_count,
    decoded_frames,
    mux_sine_audio,
    write_bad_inputs,
)

RAY_INIT = {"num_cpus": 2, "num_gpus": 2}  # logical GPUs: actors are pinned to them (no real GPU needed)
pytestmark = pytest.mark.usefixtures("ray_local")


def _lightness(frame: np.ndarray) -> np.ndarray:
    return color.rgb_to_l(torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255)[0, 0].numpy()


@pytest.fixture(scope="module")
def archive(tmp_path_factory, shared):
    root = tmp_path_factory.mktemp("archive")
    (root / "photos" / "more").mkdir(parents=True)
    for stem in ("coffee", "chelsea_cat"):
        shutil.copy(shared / "data" / "gray" / f"{stem}.jpg", root / "photos" / f"{stem}.jpg")
    shutil.copy(shared / "data" / "gray" / "lighthouse.jpg", root / "photos" / "more" / "lighthouse.jpg")
    mux_sine_audio(shared / "data" / "video" / "dev_kenburns_gray.mp4", root / "film.mp4")
    mux_sine_audio(shared / "data" / "video" / "dev_kenburns_gray.mp4", root / "clip.mov", codec="pcm_s16le",
                   container="mov", frames=20)
    shutil.copy(shared / "data" / "video" / "dev_kenburns_gray.gif", root / "loop.gif")
    return root


@pytest.fixture(scope="module")
def local_job(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    manifest = job_manifest(f"""
        inputs:
          - {archive}/photos/
          - {archive}/film.mp4
          - {archive}/clip.mov
          - {archive}/loop.gif
        output: {{prefix: {out}, video_crf: 10}}
        pipeline:
          colorize: {{model: eccv16}}
          untrained_weights: true
        execution: {{actors: 2, images_per_shard: 2, frames_per_range: 20, batch_size: 4}}
    """)
    first = run_job(manifest, QUIET)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}  # outputs and metrics
    second = run_job(manifest, QUIET)
    return manifest, out, first, second, mtimes


def test_every_input_has_exactly_one_output(local_job):
    manifest, out, first, _, _ = local_job
    assert first.exit_code == EXIT_OK, first.failures
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and "_colorstyle" not in p.parts)
    # paths are mirrored relative to each input (the prefix "photos/" itself is the root)
    assert produced == ["chelsea_cat.png", "clip.mp4", "coffee.png", "film.mp4", "loop.gif", "more/lighthouse.png"]
    assert not (out / "_colorstyle" / "staging").exists()  # staging cleaned up after commit


def test_images_keep_size_and_lightness_and_say_untrained(local_job, archive):
    _, out, _, _, _ = local_job
    for rel in ("coffee", "more/lighthouse"):
        src = np.asarray(Image.open(archive / "photos" / f"{rel}.jpg").convert("RGB"))
        data = (out / f"{rel}.png").read_bytes()
        res = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert res.shape == src.shape
        assert np.abs(_lightness(res) - _lightness(src)).max() < 0.5
        assert "UNTRAINED" in imageio.image_description(data)


def test_videos_keep_frames_timing_size_and_audio(local_job, archive):
    _, out, _, _, _ = local_job
    film_in, film_out = probe(str(archive / "film.mp4"), "in"), probe(str(out / "film.mp4"), "out")
    assert (film_out.frame_count, film_out.width, film_out.height) == (72, 640, 360)
    assert film_out.average_rate == film_in.average_rate == 24
    assert list(film_out.pts) == [p - film_in.pts[0] for p in film_in.pts]
    assert audio_packet_payloads(out / "film.mp4") == audio_packet_payloads(archive / "film.mp4")  # copied as is
    clip = probe(str(out / "clip.mp4"), "clip")  # MOV in -> MP4 out, PCM audio re-encoded to AAC
    assert clip.frame_count == 20 and clip.audio_codec == "aac" and (clip.width, clip.height) == (640, 360)
    gif_in, gif_out = probe(str(archive / "loop.gif"), "in"), probe(str(out / "loop.gif"), "out")
    assert gif_out.frame_count == 24 and gif_out.durations_ms == gif_in.durations_ms and gif_out.loop == 0


def test_each_output_frame_has_its_input_frames_lightness(local_job, archive):
    _, out, _, _, _ = local_job
    src = [_lightness(f) for f in decoded_frames(archive / "film.mp4")]
    res = [_lightness(f) for f in decoded_frames(out / "film.mp4")]
    assert len(res) == len(src) == 72
    same = np.array([np.abs(r - s).mean() for r, s in zip(res, src)])
    assert same.max() < 1.0  # resolution and content: every frame carries its input's L
    for k in range(72):  # order: where the input moves, the output matches its own frame best
        for j in (k - 1, k + 1):
            if 0 <= j < 72 and np.abs(src[j] - src[k]).mean() > 1.0:
                assert same[k] < np.abs(res[k] - src[j]).mean(), f"frame {k} looks like input frame {j}"


def test_films_whose_headers_lie_come_out_with_every_frame_exactly_once(shared, tmp_path):
    """The planner does not read films; the count a header claims is checked where the frames are decoded."""
    src = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    real = {name: avi_with_wrong_frame_count(src, tmp_path / f"{name}.avi", claimed, frames=14)
            for name, claimed in (("short_claim", 6), ("long_claim", 40))}
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs: [{tmp_path}/short_claim.avi, {tmp_path}/long_claim.avi]
        output: {{prefix: {out}, video_crf: 10}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 2, frames_per_range: 8, batch_size: 4}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_OK, report.failures
    frames = pq.read_table(report.written["frames"]).to_pydict()
    for name, count in real.items():
        source = [_lightness(f) for f in decoded_frames(tmp_path / f"{name}.avi")]
        result = [_lightness(f) for f in decoded_frames(out / f"{name}.mp4")]
        assert len(result) == len(source) == count == 14, name  # never padded to 40, never cut to 6
        assert max(np.abs(r - s).mean() for r, s in zip(result, source)) < 1.0, name  # each its own frame's L
        indices = [i for uri, i in zip(frames["input_uri"], frames["frame_index"]) if uri.endswith(f"{name}.avi")]
        assert sorted(indices) == list(range(14)), name  # one frame row each


def test_metrics_have_the_declared_schema_and_one_row_per_frame(local_job):
    manifest, _, first, _, _ = local_job
    frames = pq.read_table(first.written["frames"])
    assert frames.schema.equals(FRAME_SCHEMA, check_metadata=False)
    assert pq.read_table(first.written["units"]).schema.equals(UNIT_SCHEMA, check_metadata=False)
    assert pq.read_table(first.written["failures"]).schema.equals(FAILURE_SCHEMA, check_metadata=False)
    assert frames.num_rows == 3 + 72 + 20 + 24
    keys = list(zip(frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()))
    assert len(set(keys)) == len(keys)
    film = sorted(i for u, i in keys if u.endswith("film.mp4"))
    assert film == list(range(72))
    assert all(frames["untrained"].to_pylist()) and all("UNTRAINED" in w for w in frames["weights"].to_pylist())
    colorize = np.array(frames["colorize_s"].to_pylist())
    assert (colorize > 0).all() and (np.array(frames["total_s"].to_pylist()) >= colorize).all()
    assert first.summary["frames"] == frames.num_rows and first.summary["frames_per_s"] > 0
    assert set(first.summary["stages"]) >= {"read", "decode", "colorize", "encode", "write", "queue_wait"}
    assert first.summary["weights_untrained"] is True


def test_actors_are_pinned_to_distinct_gpus(local_job):
    _, _, first, _, _ = local_job
    gpu_ids = [a.gpu_ids for a in first.actors]
    assert len(gpu_ids) == 2 and all(len(g) == 1 for g in gpu_ids) and gpu_ids[0] != gpu_ids[1]
    assert [a.cuda_visible_devices for a in first.actors] == [g[0] for g in gpu_ids]  # Ray pinned each one
    frames = pq.read_table(first.written["frames"])
    by_actor = {}
    for actor, gpu in zip(frames["actor"].to_pylist(), frames["gpu_id"].to_pylist()):
        by_actor.setdefault(actor, set()).add(gpu)
    assert all(len(g) == 1 for g in by_actor.values()) and len(set().union(*by_actor.values())) == 2


def test_second_run_resumes_and_does_no_work(local_job):
    _, out, first, second, mtimes = local_job
    assert second.exit_code == EXIT_OK
    assert second.plan.frames_to_do == 0 and second.summary["frames"] == 0 and not second.actors
    assert second.summary["skipped_finished_inputs"] == 6 and second.summary["job_frames_done"] == 119
    now = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert now == mtimes  # nothing rewritten, metrics included
    assert second.job_summary["frames"] == 119 and second.job_summary["frames_per_s"] > 0  # the job's figures stay


def test_a_partial_rerun_keeps_the_job_metrics_whole(archive, tmp_path):
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/, {{uri: {archive}/loop.gif, frames: {{start: 0, end: 6}}}}]
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 2, frames_per_range: 3}}
    """)
    first = run_job(manifest, QUIET)
    assert first.exit_code == EXIT_OK and first.job_summary["frames"] == 3 + 6
    (out / "coffee.png").unlink()  # one output lost: the rerun redoes that image alone (a new shard)
    again = run_job(manifest, QUIET)
    assert again.exit_code == EXIT_OK and again.summary["frames"] == 1
    frames = pq.read_table(again.written["frames"])
    keys = list(zip(frames["input_uri"].to_pylist(), frames["frame_index"].to_pylist()))
    assert len(keys) == len(set(keys)) == 3 + 6  # one row per input and frame: the newest attempt
    coffee = [r for r in frames.to_pylist() if r["input_uri"].endswith("coffee.jpg")]
    assert coffee[0]["run_id"] == again.run_id
    import json

    summary = json.loads(open(again.written["summary"]).read())
    assert summary["frames"] == 3 + 6 and summary["runs_with_work"] == 2
    assert [r["frames"] for r in summary["runs"]] == [3 + 6, 1]
    assert summary["last_run"]["frames"] == 1 and summary["last_run"]["run_id"] == again.run_id
    assert summary["frames_per_s"] > 0 and summary["wall_s"] >= sum(r["wall_s"] for r in summary["runs"]) - 1e-9


def dies_once_actor(marker: str) -> type:
    """A :class:`PipelineActor` whose process dies (exit 137) during the second batch of the first unit any
    actor of the job starts after ``marker`` is created: mid-unit, after a batch was already written."""

    class DiesOnce(PipelineActor):
        def process(self, unit, attempt, submitted_at):
            pipeline = self.processor.pipeline
            process, calls = pipeline.process, []

            def second_batch_kills(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:
                    try:
                        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        pass  # another actor already died once
                    else:
                        os._exit(137)
                return process(*args, **kwargs)

            pipeline.process = second_batch_kills
            try:
                return super().process(unit, attempt, submitted_at)
            finally:
                pipeline.process = process

    return DiesOnce


def late_second_actor(folder: str) -> type:
    """A :class:`PipelineActor` whose ``actor-1`` finishes starting only once a unit has begun on another actor, and
    whose units end only once ``actor-1`` is up: the first actor up is busy while the second is still starting."""

    def _wait_for(path: str, timeout_s: float = 180.0) -> None:  # here, not at module level: the class travels
        deadline = time.monotonic() + timeout_s                   # to the actors by value
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)

    class Late(PipelineActor):
        def __init__(self, spec, threads, board, name):
            if name == "actor-1":
                _wait_for(os.path.join(folder, "a-unit-started"))
            super().__init__(spec, threads, board, name)
            if name == "actor-1":
                open(os.path.join(folder, "actor-1-up"), "w").close()

        def process(self, unit, attempt, submitted_at):
            open(os.path.join(folder, "a-unit-started"), "a").close()
            _wait_for(os.path.join(folder, "actor-1-up"))
            return super().process(unit, attempt, submitted_at)

    return Late


def test_the_last_units_wait_for_an_actor_still_starting_instead_of_queueing_behind_a_busy_one(tmp_path):
    """Two units, two actors, one up late: each actor gets one (not both on the first one up, as ``max_in_flight``
    alone would allow)."""
    for i in range(2):
        Image.fromarray(np.full((48, 64, 3), 60 * i + 40, np.uint8)).save(tmp_path / f"grey{i}.png")
    (tmp_path / "sync").mkdir()
    manifest = job_manifest(f"""
        inputs: [{tmp_path}/grey0.png, {tmp_path}/grey1.png]
        output: {{prefix: {tmp_path / "out"}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 2, images_per_shard: 1, max_in_flight_per_actor: 2}}
    """)
    report = run_job(manifest, RunOptions(progress=False, actor_class=late_second_actor(str(tmp_path / "sync"))))
    assert report.exit_code == EXIT_OK, report.failures
    units = pq.read_table(report.written["units"]).to_pylist()
    assert len(units) == 2 and sorted(u["actor"] for u in units) == ["actor-0", "actor-1"]


def test_killed_actor_is_replaced_and_output_is_identical(archive, tmp_path):
    def job(prefix):
        return job_manifest(f"""
            inputs: [{archive}/photos/, {archive}/loop.gif]
            output: {{prefix: {prefix}}}
            pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
            execution: {{actors: 2, images_per_shard: 3, frames_per_range: 12, batch_size: 2, retries: 2}}
        """)

    calm = run_job(job(tmp_path / "calm"), QUIET)
    marker = tmp_path / "killed-once"
    chaos = run_job(job(tmp_path / "chaos"), RunOptions(progress=False, actor_class=dies_once_actor(str(marker))))
    assert marker.exists()  # an actor really died mid-unit
    assert calm.exit_code == chaos.exit_code == EXIT_OK
    units = pq.read_table(chaos.written["units"]).to_pylist()
    assert any(u["attempt"] > 1 for u in units) and sum(u["frames"] for u in units) == 3 + 24
    for rel in ("coffee.png", "chelsea_cat.png", "more/lighthouse.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "calm" / rel)),
                              np.asarray(Image.open(tmp_path / "chaos" / rel)))
    calm_gif = decoded_frames(tmp_path / "calm" / "loop.gif")
    chaos_gif = decoded_frames(tmp_path / "chaos" / "loop.gif")
    assert len(calm_gif) == len(chaos_gif) == 24
    assert all(np.array_equal(a, b) for a, b in zip(calm_gif, chaos_gif))


def test_bad_inputs_become_failure_rows_and_the_rest_goes_on(shared, tmp_path, archive):
    bad = tmp_path / "bad"
    expected = write_bad_inputs(bad, shared)
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs:
          - {bad}/
          - {tmp_path}/no-such-prefix/
          - {tmp_path}/empty/*.jpg
          - uri: {archive}/loop.gif
            frames: {{start: 10, end: 99}}
        output: {{prefix: {out}}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 3, batch_size: 2}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FAILURES
    failed = {f.input_uri.rstrip("/").rsplit("/", 1)[-1]: f for f in report.failures}
    for name, outcome in expected.items():
        if outcome == "ok":
            assert (out / name.rsplit(".", 1)[0]).with_suffix(".png").exists(), name
            assert name not in failed
        else:
            assert failed[name].error_type == outcome and name in failed[name].message, failed.get(name)
    assert failed["no-such-prefix"].error_type == "MissingInput"
    assert failed["*.jpg"].error_type == "EmptyInput"
    assert failed["loop.gif"].error_type == "FrameRangeError" and "24 frames" in failed["loop.gif"].message
    table = pq.read_table(report.written["failures"])
    assert table.num_rows == len(report.failures) and table.schema.equals(FAILURE_SCHEMA, check_metadata=False)
    sixteen = np.asarray(Image.open(out / "sixteen_bit.png"))
    assert sixteen.shape == (64, 96, 3) and sixteen.dtype == np.uint8


def test_stylize_step_records_loss_curves_and_keeps_sizes(archive, shared, tmp_path):
    out = tmp_path / "out"
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/coffee.jpg, {{uri: {archive}/loop.gif, frames: {{start: 0, end: 4}}}}]
        output: {{prefix: {out}}}
        pipeline:
          colorize: {{model: eccv16}}
          stylize:
            styles: [{shared}/data/style/color/great_wave_hokusai.jpg]
            size: 48
            steps: 3
          untrained_weights: true
        execution: {{actors: 1, cpus_per_actor: 2, batch_size: 4, frames_per_range: 4}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_OK, report.failures
    frames = pq.read_table(report.written["frames"]).to_pylist()
    assert len(frames) == 5 and all(len(r["loss_style"]) == 3 and r["stylize_s"] > 0 for r in frames)
    assert Image.open(out / "coffee.png").size == Image.open(archive / "photos" / "coffee.jpg").size
    assert probe(str(out / "loop.gif"), "g").frame_count == 4


def test_inputs_outputs_and_metrics_on_s3(archive, s3):
    import json

    import fsspec

    prefix, opts = s3
    fs = fsspec.filesystem("s3", **opts)
    fs.put_file(str(archive / "photos" / "coffee.jpg"), f"{prefix}/in/a/coffee.jpg")
    fs.put_file(str(archive / "photos" / "chelsea_cat.jpg"), f"{prefix}/in/b/cat.jpg")
    fs.put_file(str(archive / "loop.gif"), f"{prefix}/in/loop.gif")
    manifest = job_manifest(f"""
        inputs:
          - {prefix}/in/**/*.jpg
          - uri: {prefix}/in/loop.gif
            frames: {{start: 0, end: 6}}
        storage_options: {json.dumps(opts)}
        output: {{prefix: {prefix}/out}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{actors: 1, images_per_shard: 1, frames_per_range: 3}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_OK, report.failures
    listed = sorted(p.removeprefix(prefix.removeprefix("s3://") + "/out/") for p in fs.find(f"{prefix}/out")
                    if "_colorstyle" not in p)
    assert listed == ["a/coffee.png", "b/cat.png", "loop.gif"]
    frames = pq.read_table(io.BytesIO(fs.cat_file(report.written["frames"])))
    assert frames.num_rows == 2 + 6
    assert not fs.exists(f"{prefix}/out/_colorstyle/staging")
    again = run_job(manifest, QUIET)
    assert again.plan.frames_to_do == 0 and again.summary["skipped_finished_inputs"] == 3


def test_missing_style_image_stops_before_any_work(archive, tmp_path):
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/]
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{stylize: {{styles: [{tmp_path}/no-such-painting.jpg]}}, untrained_weights: true}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FATAL and "no-such-painting.jpg" in report.failures[-1].message
    assert not any(p.suffix == ".png" for p in (tmp_path / "out").rglob("*"))


def test_unwritable_output_prefix_stops_before_any_work(archive, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/]
        output: {{prefix: {blocker}/out}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FATAL and "a-file" in report.failures[-1].message


def test_unavailable_weights_stop_the_job_with_the_clear_error(archive, tmp_path, capsys):
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/]
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{model: eccv16}}}}
    """)
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FATAL and not report.actors
    message = report.failures[-1].message
    assert "colorization_release_v2-9b330a0b.pth" in message and "colorstyle weights fetch" in message
    assert not any(p.suffix == ".png" for p in (tmp_path / "out").rglob("*"))


def test_every_line_of_an_untrained_run_says_so(archive, tmp_path, caplog):
    from rich.console import Console

    buf = io.StringIO()
    manifest = job_manifest(f"""
        inputs: [{archive}/photos/coffee.jpg]
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
    """)
    with caplog.at_level("INFO"):
        report = run_job(manifest, QUIET, Console(file=buf, width=300))
    assert report.exit_code == EXIT_OK
    text_lines = [ln for ln in buf.getvalue().splitlines() if ln.strip() and ln.lstrip()[0] not in "┏┃┡│└━╇┳┻"]
    assert text_lines and all("UNTRAINED" in ln for ln in text_lines), text_lines
    assert "UNTRAINED" in buf.getvalue().split("┏")[0].splitlines()[-1]  # the summary table's title
    records = [r for r in caplog.records if r.name.startswith(("jobs", "colorstyle"))]
    assert all("UNTRAINED" in r.getMessage() for r in records)


def test_credentials_never_reach_the_summary(tmp_path, archive):
    import json

    manifest = job_manifest(f"""
        inputs: [{archive}/photos/coffee.jpg]
        storage_options: {{key: AKIAEXAMPLE, secret: do-not-leak, client_kwargs: {{endpoint_url: http://127.0.0.1:1}}}}
        output: {{prefix: {tmp_path / 'out'}}}
        pipeline: {{colorize: {{}}, untrained_weights: true}}
    """)
    report = run_job(manifest, QUIET)
    text = open(report.written["summary"]).read()
    assert "do-not-leak" not in text and "AKIAEXAMPLE" not in text
    assert json.loads(text)["manifest"]["storage_options"]["client_kwargs"]["endpoint_url"] == "http://127.0.0.1:1"
