"""The actor's decode/encode threads (``execution.overlap_io``): the same bytes as one thread, and an
encoder failure surfaces as the unit's error instead of hanging the actor.

Runs the actor's own code (:class:`jobs.worker.UnitProcessor`) in this process, without Ray.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from colorstyle_core import encoders, segments, video
from jobs.driver import worker_spec
from jobs.manifest import parse_manifest
from jobs.plan import plan_job
from jobs.progress import progress_key
from jobs.units.base import ActorInfo
from jobs.worker import UnitProcessor
from tests.media import decoded_frames


def _processor_and_units(shared, out, overlap: bool | str):
    manifest = parse_manifest(textwrap.dedent(f"""
        inputs: [{{uri: "{shared / 'data' / 'video' / 'dev_kenburns_gray.mp4'}", frames: {{start: 0, end: 20}}}}]
        output: {{prefix: "{out}"}}
        pipeline: {{colorize: {{model: eccv16}}, untrained_weights: true}}
        execution: {{batch_size: 3, frames_per_range: 10, overlap_io: {str(overlap).lower()}, cpus_per_actor: 2}}
    """), "overlap.yaml")
    plan = plan_job(manifest)
    spec = dataclasses.replace(worker_spec(manifest, plan.job_id, "test"), device="cpu")
    actor = ActorInfo("test", "local", socket.gethostname(), (), "cpu", os.getpid(), "")
    return UnitProcessor(spec, None, None, actor), plan.ranges


def test_overlapped_decode_and_encode_write_the_same_frames_as_one_thread(shared, tmp_path):
    segments = {}
    for overlap in (False, True):
        processor, units = _processor_and_units(shared, tmp_path / str(overlap), overlap)
        assert len(units) == 2
        for unit in units:
            result = processor.process(unit, 0, 0.0)
            assert [r.frame_index for r in result.frame_rows] == list(range(unit.write_start, unit.stop))
        segments[overlap] = [decoded_frames(u.segment_uri) for u in units]
    for serial, overlapped in zip(segments[False], segments[True]):
        assert len(serial) == len(overlapped) == 10
        assert all((a == b).all() for a, b in zip(serial, overlapped))


def test_overlap_is_on_for_gpu_actors_only_by_default(shared, tmp_path):
    processor, _ = _processor_and_units(shared, tmp_path, "auto")
    assert processor.pipeline.device.type == "cpu" and processor.ctx.overlap is False
    assert _processor_and_units(shared, tmp_path, True)[0].ctx.overlap is True


def test_an_encoder_failure_is_the_units_error(shared, tmp_path, monkeypatch):
    processor, units = _processor_and_units(shared, tmp_path, True)
    calls = {"n": 0}
    write = segments.SegmentWriter.write

    def failing(self, rgb, index):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full (injected)")
        return write(self, rgb, index)

    monkeypatch.setattr(segments.SegmentWriter, "write", failing)
    with pytest.raises(OSError, match="disk full"):
        processor.process(units[0], 0, 0.0)
    assert calls["n"] == 4  # nothing is written after the failed frame


@pytest.mark.parametrize("overlap", [True, False])
def test_the_next_range_runs_during_a_segments_flush_only_with_the_overlap(shared, tmp_path, monkeypatch, overlap):
    """Two units on one actor at once (as Ray's max_concurrency=2 calls them): with ``overlap_io`` the
    second range goes through the pipeline while the first one's encoder is still flushing; without it,
    not at all until the first unit is done."""
    processor, (first, second) = _processor_and_units(shared, tmp_path, overlap)
    progress: dict[str, int] = {}
    first_key, second_key = progress_key(first.unit_id, 0), progress_key(second.unit_id, 0)
    first_ran, second_ran = threading.Event(), threading.Event()
    seen_during_flush = []
    close = segments.SegmentWriter.close

    def flushing(self):
        if not seen_during_flush:  # the first segment's flush: wait (bounded) for the second range to run
            seen_during_flush.append(second_ran.wait(timeout=120 if overlap else 3))
            seen_during_flush.append(progress.get(second_key, 0))
        return close(self)

    def report(key, frames):
        progress[key] = frames
        (first_ran if key == first_key else second_ran).set()

    processor.on_progress = report
    monkeypatch.setattr(segments.SegmentWriter, "close", flushing)
    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(processor.process, first, 0, 0.0)]
        assert first_ran.wait(timeout=300)  # the first range holds the turn before the second is called
        results.append(pool.submit(processor.process, second, 0, 0.0))
        done = [f.result(timeout=600) for f in results]
    assert [len(r.frame_rows) for r in done] == [first.stop - first.write_start, second.stop - second.write_start]
    if overlap:
        assert seen_during_flush[0] and seen_during_flush[1] > 0
    else:
        assert seen_during_flush == [False, 0]

# ---- the H.264 encoder: NVENC where it opens, x264 elsewhere -------------------------------------


def test_encoder_choice_falls_back_to_x264_where_nvenc_does_not_open():
    assert encoders.h264_encoder("libx264", cuda=True) == ("libx264", None)
    assert encoders.h264_encoder("auto", cuda=False) == ("libx264", None)
    if not encoders.encoder_works("h264_nvenc"):  # this machine: no NVIDIA GPU
        assert encoders.h264_encoder("auto", cuda=True) == ("libx264", None)
        encoder, note = encoders.h264_encoder("h264_nvenc", cuda=True)
        assert encoder == "libx264" and "h264_nvenc does not open" in note
    with pytest.raises(ValueError, match="unknown video encoder"):
        encoders.h264_encoder("x265", cuda=False)


def test_a_range_whose_nvenc_session_is_refused_is_encoded_with_x264(shared, tmp_path, monkeypatch):
    if encoders.encoder_works("h264_nvenc"):
        pytest.skip("NVENC opens here: nothing to fall back from")
    processor, units = _processor_and_units(shared, tmp_path, True)
    processor.ctx.encoder = "h264_nvenc"  # as on a GPU node whose sessions are all taken
    result = processor.process(units[0], 0, 0.0)
    assert not result.failures and len(decoded_frames(units[0].segment_uri)) == 10


def test_ranges_encoded_differently_are_joined_by_reencoding(shared, tmp_path):
    """Packet copy needs one stream setup; ranges from NVENC and x264 nodes (or from runs with another
    preset) differ in their codec headers, and the assembly re-encodes them instead."""
    source = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    info = video.probe(str(source), "dev")
    frames = [rgb for _, rgb in video.read_frames(str(source), info, 0, 8, "dev")]
    parts = []
    for i, preset in enumerate(("ultrafast", "medium")):
        path = str(tmp_path / f"seg{i}.mkv")
        with segments.SegmentWriter(path, info, preset=preset) as writer:
            for k in range(4 * i, 4 * i + 4):
                writer.write(frames[k], k)
        parts.append(path)
    assert not segments._same_stream_setup(parts, ["a", "b"])
    assert segments._same_stream_setup(parts[:1] * 2, ["a", "a"])
    out = str(tmp_path / "out.mp4")
    segments.assemble(parts, info, list(range(8)), out, name="dev")
    joined = decoded_frames(out)
    assert len(joined) == 8
    assert all(abs(a.astype(int) - b.astype(int)).mean() < 3 for a, b in zip(joined, frames))
