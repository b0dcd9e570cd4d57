"""Image sequences (folders of numbered frames) as films: listing, planning, the actor's own code on them (in this
process, without Ray: :class:`jobs.worker.UnitProcessor`), kept as frames or joined into an MP4.

A job on Ray with a sequence (deepexemplar, two ranges, a rerun that resumes) is in tests/test_deepexemplar.py.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorstyle_core import color
from colorstyle_core.sequences import probe_sequence, read_sequence
from colorstyle_core.video import VideoError, probe
from jobs.driver import worker_spec
from jobs.manifest import parse_manifest
from jobs.manifest_base import ManifestError
from jobs.plan import plan_job
from jobs.units.assembly import AssemblyTask, assemble_video
from jobs.units.base import ActorInfo
from jobs.worker import UnitProcessor
from tests.media import write_scans

FRAMES = 12


def _manifest(inputs: str, out: Path, sequence_as: str = "frames", colorize: str = "{model: eccv16}"):
    return parse_manifest(textwrap.dedent(f"""
        inputs: {inputs}
        output: {{prefix: "{out}", sequence_as: {sequence_as}}}
        pipeline: {{colorize: {colorize}, untrained_weights: true}}
        execution: {{batch_size: 3, frames_per_range: 5, cpus_per_actor: 2}}
        metrics: {{video_consistency: true}}
    """), "sequence.yaml")


def _run_in_process(manifest):
    """Every unit of the plan through the actor's own code, then each film's assembly."""
    plan = plan_job(manifest)
    spec = dataclasses.replace(worker_spec(manifest, plan.job_id, "test"), device="cpu")
    processor = UnitProcessor(spec, None, None, ActorInfo("test", "local", socket.gethostname(), (), "cpu",
                                                         os.getpid(), ""))
    rows = [row for unit in plan.ranges for row in processor.process(unit, 0, 0.0).frame_rows]
    assembled = [assemble_video(AssemblyTask(v, tuple(r.segment_uri for r in plan.ranges if r.video_key == v.key)),
                                processor.ctx) for v in plan.videos]
    return plan, rows, assembled


def test_a_folder_of_numbered_frames_is_a_film_in_numeric_order(shared, tmp_path):
    greys = write_scans(tmp_path / "reel", shared)
    info = probe_sequence(str(tmp_path / "reel"), Fraction(24000, 1001))
    names = [Path(u).name for u in info.frame_uris]
    assert names[:4] == ["scan_9.tif", "scan_10.png", "scan_11.jpg", "scan_12.tif"]  # by number, not by name
    assert (info.frame_count, info.width, info.height) == (FRAMES, 160, 90)
    assert info.pts[:3] == (0, 1, 2) and info.time_base == Fraction(1001, 24000) and info.audio_codec is None
    window = info.window(4, 8)
    frames = list(read_sequence(window, 4, 8))
    assert [i for i, _ in frames] == [4, 5, 6, 7]
    for (index, rgb), grey in zip(frames, greys[4:8]):
        assert rgb.shape == (90, 160, 3) and rgb.dtype == np.uint8
        tolerance = 3 if names[index].endswith(".jpg") else 0  # 16-bit TIFFs round back to their 8-bit values
        assert np.abs(rgb[..., 0].astype(int) - grey).max() <= tolerance, names[index]


def test_the_manifest_takes_a_sequence_and_its_rate(tmp_path):
    manifest = _manifest("[{sequence: reels/r1, fps: 23.976}, {sequence: reels/r2}]", tmp_path, "mp4")
    assert [s.rate for s in manifest.inputs] == [Fraction(24000, 1001), Fraction(24)]
    assert manifest.output.sequence_as == "mp4"
    for inputs, message in [("[{uri: a.mp4, fps: 24}]", "fps is for an image sequence"),
                            ("[{sequence: r, uri: a.mp4}]", "exactly one of"),
                            ("[{sequence: r, fps: 0}]", "more than 0")]:
        with pytest.raises(ManifestError, match=message):
            _manifest(inputs, tmp_path)
    with pytest.raises(ManifestError, match="sequence_as"):
        _manifest("[{sequence: r}]", tmp_path, "avi")


def test_bad_sequences_are_failure_rows_naming_the_folder_or_frame(shared, tmp_path):
    write_scans(tmp_path / "good", shared, count=3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a frame")
    twice = tmp_path / "twice"
    write_scans(twice, shared, count=2, first=1)
    Image.open(twice / "scan_1.tif").save(twice / "scan_01.png")
    write_scans(tmp_path / "out" / "old", shared, count=2)  # an earlier output, or scans where outputs go
    inputs = "[" + ", ".join(f"{{sequence: {tmp_path / n}}}" for n in ("good", "empty", "twice", "missing",
                                                                         "out/old")) + "]"
    plan = plan_job(_manifest(inputs, tmp_path / "out"))
    assert [v.rel for v in plan.videos] == ["good"]
    problems = {Path(p.input_uri).name: p for p in plan.problems}
    assert problems["old"].error_type == "UnsafePath" and "under the output prefix" in problems["old"].message
    assert problems["empty"].error_type == "VideoError" and "no frames" in problems["empty"].message
    assert "scan_01.png and scan_1.tif have the same number" in problems["twice"].message
    assert problems["missing"].error_type == "MissingInput"
    # a frame of another size stops its range, naming the file
    Image.new("L", (100, 100)).save(tmp_path / "good" / "scan_10.png")
    info = probe_sequence(str(tmp_path / "good"), Fraction(24))
    with pytest.raises(VideoError, match=r"scan_10\.png: frame 1 is 100x100; the sequence's frames are 160x90"):
        list(read_sequence(info, 0, 3))


def test_a_sequence_kept_as_frames_is_written_under_the_same_names_with_its_lightness(shared, tmp_path):
    greys = write_scans(tmp_path / "in" / "reel", shared)
    plan, rows, assembled = _run_in_process(_manifest(f"[{{sequence: {tmp_path / 'in' / 'reel'}}}]",
                                                      tmp_path / "out"))
    assert len(plan.ranges) == 3 and all(r.frames_to for r in plan.ranges)
    names = sorted(p.name for p in (tmp_path / "in" / "reel").iterdir())
    assert sorted(p.name for p in (tmp_path / "out" / "reel").iterdir()) == names  # same names, same suffixes
    assert sorted(r.frame_index for r in rows) == list(range(FRAMES))  # every frame once
    info = probe_sequence(str(tmp_path / "in" / "reel"), Fraction(24))
    for row in rows:
        assert Path(row.output_uri).name == Path(info.frame_uris[row.frame_index]).name
        out = np.array(Image.open(row.output_uri).convert("RGB"))
        assert out.shape == (90, 160, 3) and out.std(axis=2).mean() > 0.5  # colour, at the frame's size
        lightness = color.rgb_to_l(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255)
        source = color.rgb_to_l(torch.from_numpy(np.repeat(greys[row.frame_index][..., None], 3, 2))
                                .permute(2, 0, 1)[None].float() / 255)
        tolerance = 1.5 if row.output_uri.endswith(".jpg") else 0.6  # 8-bit rounding (and JPEG's)
        assert (lightness - source).abs().mean() < tolerance, row.output_uri
    [result] = assembled
    assert result.output_uri == str(tmp_path / "out" / "reel") and result.frames == FRAMES
    assert result.audio == "none" and result.consistency is not None and len(result.consistency.e_warp_pairs) == 11


def test_a_part_of_a_sequence_is_planned_like_a_part_of_a_video(shared, tmp_path):
    write_scans(tmp_path / "reel", shared)
    plan = plan_job(_manifest(f"[{{sequence: {tmp_path / 'reel'}, frames: {{start: 2, end: 9}}}}]", tmp_path / "o"))
    [video] = plan.videos
    assert (video.start, video.stop, video.seams) == (2, 9, (7,)) and video.as_frames
    assert [(r.write_start, r.stop) for r in plan.ranges] == [(2, 7), (7, 9)]
    assert plan.ranges[1].info.frame_uri(8).endswith("scan_17.jpg")  # frame 8 is the 9th file: scan_9 + 8
    too_far = plan_job(_manifest(f"[{{sequence: {tmp_path / 'reel'}, frames: {{start: 2, end: 13}}}}]", tmp_path / "o"))
    assert too_far.problems[0].error_type == "FrameRangeError"


def test_a_sequence_as_mp4_has_every_frame_at_its_rate(shared, tmp_path):
    write_scans(tmp_path / "in" / "reel", shared)
    _, _, [result] = _run_in_process(_manifest(f"[{{sequence: {tmp_path / 'in' / 'reel'}, fps: 23.976}}]",
                                               tmp_path / "out", "mp4"))
    out = tmp_path / "out" / "reel.mp4"
    assert result.output_uri == str(out) and result.audio == "none"
    info = probe(str(out), str(out))
    assert info.frame_count == FRAMES and info.average_rate == Fraction(24000, 1001)
    assert (info.width, info.height) == (160, 90)
    assert not (tmp_path / "out" / "reel").exists()


def test_a_sequence_on_object_storage_is_listed_and_read(shared, tmp_path, s3):
    import s3fs

    bucket, opts = s3
    write_scans(tmp_path / "reel", shared, count=4)
    fs = s3fs.S3FileSystem(**opts)
    fs.put(str(tmp_path / "reel") + "/", f"{bucket}/scans/reel/", recursive=True)
    info = probe_sequence(f"{bucket}/scans/reel", Fraction(24), opts)
    assert [u.rsplit("/", 1)[1] for u in info.frame_uris] == ["scan_9.tif", "scan_10.png", "scan_11.jpg",
                                                              "scan_12.tif"]
    assert [i for i, _ in read_sequence(info, 0, 4, opts)] == [0, 1, 2, 3]


def test_training_data_refuses_a_sequence_entry(tmp_path):
    from jobs.listing import list_files
    from jobs.manifest_base import InputSpec

    _, problems, _ = list_files([InputSpec(sequence=str(tmp_path))], None, str(tmp_path / "out"))
    assert problems[0].error_type == "UnsupportedInput" and "inputs of jobs" in problems[0].message
