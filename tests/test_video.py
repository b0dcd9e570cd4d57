"""Video I/O: probing, frame-accurate ranges, segments joined by packet copy, audio, GIF."""

from __future__ import annotations

import numpy as np
import pytest

from colorstyle_core.segments import SegmentWriter, assemble
from colorstyle_core.video import VideoError, probe, read_frames
from tests.media import audio_packet_payloads, decoded_frames, mux_sine_audio, write_bad_inputs


@pytest.fixture(scope="module")
def gray_mp4(shared):
    return shared / "data" / "video" / "dev_kenburns_gray.mp4"


@pytest.fixture(scope="module")
def all_frames(gray_mp4):
    return decoded_frames(gray_mp4)


def test_probe_counts_frames_and_reads_timing(gray_mp4, shared):
    info = probe(str(gray_mp4), "v")
    assert (info.frame_count, info.width, info.height, info.average_rate) == (72, 640, 360, 24)
    assert list(info.pts) == sorted(info.pts) and len(set(info.pts)) == 72
    gif = probe(str(shared / "data" / "video" / "dev_kenburns_gray.gif"), "g")
    assert gif.is_gif and gif.frame_count == 24 and set(gif.durations_ms) == {120} and gif.loop == 0


@pytest.mark.parametrize("start,stop", [(0, 5), (30, 41), (35, 37), (60, 72)])
def test_read_frames_is_frame_accurate_after_seeking(gray_mp4, all_frames, start, stop):
    info = probe(str(gray_mp4), "v")
    got = list(read_frames(str(gray_mp4), info, start, stop, "v"))
    assert [i for i, _ in got] == list(range(start, stop))
    for i, frame in got:
        assert np.array_equal(frame, all_frames[i])


def test_read_frames_rejects_out_of_range(gray_mp4):
    info = probe(str(gray_mp4), "v")
    with pytest.raises(ValueError, match="outside"):
        list(read_frames(str(gray_mp4), info, 70, 80, "v"))


def test_window_keeps_only_its_timestamps(gray_mp4):
    info = probe(str(gray_mp4), "v")
    w = info.window(30, 40)
    assert w.first_index == 30 and len(w.pts) == 11 and w.pts_of(39) == info.pts_of(39)
    with pytest.raises(IndexError):
        w.pts_of(29)


def _encode_ranges(src, info, ranges, tmp_path, transform=lambda f: f):
    segments, indices = [], []
    for k, (a, b) in enumerate(ranges):
        path = str(tmp_path / f"seg{k}.mkv")
        with SegmentWriter(path, info.window(a, b), crf=0) as w:
            for i, frame in read_frames(str(src), info.window(a, b), a, b, "v"):
                w.write(transform(frame), i)
                indices.append(i)
        segments.append(path)
    return segments, indices


def test_segments_join_exactly_with_timestamps_and_audio_copied(gray_mp4, tmp_path):
    src = tmp_path / "with_audio.mp4"
    mux_sine_audio(gray_mp4, src)
    info = probe(str(src), "v")
    segments, indices = _encode_ranges(src, info, [(0, 30), (30, 31), (31, 72)], tmp_path)
    out = tmp_path / "out.mp4"
    report = assemble(segments, info, indices, str(out), audio_source=str(src), metadata={"comment": "test"})
    assert report.frames == 72 and report.audio == "copied"
    out_info = probe(str(out), "o")
    assert out_info.frame_count == 72 and out_info.average_rate == 24
    assert [p - info.pts[0] for p in info.pts] == list(out_info.pts)
    assert audio_packet_payloads(out) == audio_packet_payloads(src)  # unchanged, byte for byte
    joined = decoded_frames(out)
    per_segment = [f for seg in segments for f in decoded_frames(seg)]
    assert all(np.array_equal(a, b) for a, b in zip(joined, per_segment))  # packets copied, not re-encoded


def test_pcm_audio_in_mov_is_reencoded_to_aac(gray_mp4, tmp_path):
    src = tmp_path / "pcm.mov"
    mux_sine_audio(gray_mp4, src, codec="pcm_s16le", container="mov", frames=24)
    info = probe(str(src), "v")
    assert info.audio_codec == "pcm_s16le" and info.frame_count == 24
    segments, indices = _encode_ranges(src, info, [(0, 24)], tmp_path)
    report = assemble(segments, info, indices, str(tmp_path / "out.mp4"), audio_source=str(src))
    assert report.audio.startswith("re-encoded to aac")
    assert probe(str(tmp_path / "out.mp4"), "o").audio_codec == "aac"


def test_missing_or_extra_frames_are_detected(gray_mp4, tmp_path):
    info = probe(str(gray_mp4), "v")
    segments, indices = _encode_ranges(gray_mp4, info, [(0, 10)], tmp_path)
    with pytest.raises(VideoError, match="expected 12"):
        assemble(segments, info, list(range(12)), str(tmp_path / "o.mp4"))
    with pytest.raises(VideoError, match="more frames"):
        assemble(segments, info, list(range(8)), str(tmp_path / "o.mp4"))


def test_gif_keeps_durations_loop_and_frames(shared, tmp_path):
    src = shared / "data" / "video" / "dev_kenburns_gray.gif"
    info = probe(str(src), "g")
    segments, indices = _encode_ranges(src, info, [(0, 10), (10, 24)], tmp_path, lambda f: f[..., ::-1].copy())
    assemble(segments, info, indices, str(tmp_path / "out.gif"))
    out = probe(str(tmp_path / "out.gif"), "o")
    assert out.frame_count == 24 and out.durations_ms == info.durations_ms and out.loop == info.loop
    assert (out.width, out.height) == (320, 180)


def test_odd_frame_size_is_kept(tmp_path, gray_mp4):
    import dataclasses

    info = probe(str(gray_mp4), "v")
    odd = dataclasses.replace(info, width=101, height=57)
    path = str(tmp_path / "odd.mkv")
    with SegmentWriter(path, odd) as w:
        for i in range(3):
            w.write(np.full((57, 101, 3), 40 * i, np.uint8), i)
    assemble([path], odd, [0, 1, 2], str(tmp_path / "odd.mp4"))
    out = probe(str(tmp_path / "odd.mp4"), "o")
    assert (out.width, out.height, out.frame_count) == (101, 57, 3)


def test_broken_videos_raise_clear_errors(shared, tmp_path):
    write_bad_inputs(tmp_path, shared)
    with pytest.raises(VideoError, match="unknown or unsupported video codec"):
        probe(str(tmp_path / "unknown_codec.mkv"), "unknown_codec.mkv")
    info = probe(str(tmp_path / "truncated.mp4"), "truncated.mp4")
    with pytest.raises(VideoError, match="truncated.mp4"):
        list(read_frames(str(tmp_path / "truncated.mp4"), info, 0, info.frame_count, "truncated.mp4"))
    with pytest.raises(VideoError, match="notes.jpg"):
        probe(str(tmp_path / "notes.jpg"), "notes.jpg")
