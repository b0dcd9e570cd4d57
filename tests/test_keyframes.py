"""Colour guidance for films: keyframe hints carried through each shot, the hinted colours kept.

The job checks follow the issue: the dev video (a hard cut at frame 36) colorized by
SIGGRAPH17 with generated weights, hints taken from its colour original at frame 0
(a colour keyframe without a mask: sampled confident points). Against the same job
without hints: the hints are kept at the keyframe, carried 24 frames later (measured with
Lucas-Kanade, an independent tracker), never leak across the cut, L is untouched, and
adherence does not jump at range seams.
"""

from __future__ import annotations

import json
import textwrap

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import QUIET
from PIL import Image

from colorstyle_core import color, imageio
from colorstyle_core.hints import (
    ColorHints,
    HintPull,
    HintsError,
    Keyframe,
    check_keyframes,
    confident_points,
    parse_hints,
    rasterize,
)
from colorstyle_core.keyframes import propagate
from colorstyle_core.video import probe, read_frames
from jobs.driver import EXIT_FAILURES, EXIT_OK, run_job
from jobs.manifest import parse_manifest
from tests.media import decoded_frames

CUT = 36
END = 40  # the job tests' films end here: shot 1 (0-35) and 4 frames of shot 2


def _lab(frame: np.ndarray) -> np.ndarray:
    return color.rgb_to_lab(imageio.to_tensor(frame.astype(np.float32) / 255.0))[0].numpy()


# ---- parsing and checking ----------------------------------------------------------------------


def test_hints_files_parse_with_errors_that_name_the_file_and_the_entry():
    text = json.dumps({"keyframes": [{"frame": 57, "image": "s3://b/f57.png"},
                                     {"frame": 0, "points": [[10, 20, 30, -40]], "patch": 5, "shot": 1}]})
    parsed = parse_hints(text, "film.mp4.json")
    assert [k.frame for k in parsed.keyframes] == [0, 57] and parsed.keyframes[0].entry == 2
    assert parsed.keyframes[0].shot == "1" and parsed.at(57).image == "s3://b/f57.png"
    assert parse_hints('{"points": [[1, 2, 3, 4]], "patch": 7}').keyframes == (Keyframe(0, ((1, 2, 3, 4),), 7),)
    for bad, match in (({"keyframes": [{"frame": -1, "points": []}]},
                        r"1: keyframes\.0\.frame: must be a frame index"),
                       ({"keyframes": [{"frame": 2, "pts": []}]}, r"1: keyframes\.0\.pts: unknown key"),
                       ({"keyframes": [{"frame": 2, "mask": "m.png", "points": [[1, 1, 0, 0]]}]},
                        r"1: keyframes\.0: a 'mask' needs an 'image'"),
                       ({"keyframes": [{"frame": 2}]}, r"1: keyframes\.0: no hints"),
                       ({"keyframes": [{"frame": 2, "points": [[1, 2, 3]]}]},
                        r"1: keyframes\.0\.points\.0: a point is \[y, x, a, b\]"),
                       ({"keyframes": [{"frame": 3, "points": [[1, 1, 0, 0]]}, {"frame": 3, "image": "x.png"}]},
                        r"1: keyframes: entries \[0, 1\] are all for frame 3")):
        with pytest.raises(HintsError, match=f"h.json:{match}"):
            parse_hints(json.dumps(bad), "h.json")
    film = parse_hints(text, "film.mp4.json")
    with pytest.raises(HintsError, match=r"film.mp4.json:1: keyframes\.0 \(frame 57\): beyond the frames processed"):
        check_keyframes(film, (0, 50), (640, 360))
    with pytest.raises(HintsError,
                       match=r"keyframes\.1 \(frame 0\): points\.0 at \(y=10, x=20\) is outside the 16x8"):
        check_keyframes(film, (0, 72), (16, 8))
    with pytest.raises(HintsError,
                       match=r"keyframes\.0 \(frame 57\): s3://b/f57.png is 320x180, the frame 640x360"):
        check_keyframes(film, (0, 72), (640, 360), {"s3://b/f57.png": (320, 180)})


def test_hint_pull_keeps_hinted_colours_and_fades_into_the_prediction():
    ab = torch.zeros(1, 2, 64, 96)
    hints = ColorHints(points=((20.0, 30.0, 40.0, -25.0),), patch=1)
    pulled = HintPull(hints, (64, 96), (256, 256), adherence=1.0, radius=10)(ab)
    assert torch.allclose(pulled[0, :, 20, 30], torch.tensor([40.0, -25.0]))
    beyond = 6 - 0.5 * 96 / 256  # pixels past the point's square (1 network pixel wide)
    assert pulled[0, 0, 20, 36].item() == pytest.approx(40.0 * 0.5 * (1 + np.cos(np.pi * beyond / 10)), abs=1e-4)
    assert pulled[0, :, 20, 45].abs().max() == 0  # beyond the radius: the prediction alone
    half = HintPull(hints, (64, 96), (256, 256), adherence=0.5, radius=10)(ab)
    assert half[0, 0, 20, 30].item() == pytest.approx(20.0)
    assert HintPull(hints, (64, 96), (256, 256), adherence=0.0)(ab) is ab
    weighted = ColorHints(points=((20.0, 30.0, 40.0, 0.0),), patch=1, weights=(0.25,))
    assert HintPull(weighted, (64, 96), (256, 256), radius=10)(ab)[0, 0, 20, 30].item() == pytest.approx(10.0)
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 10:20, 10:20] = 1
    dense = ColorHints(dense_ab=torch.full((1, 2, 64, 96), 30.0), dense_mask=mask)
    out = HintPull(dense, (64, 96), (256, 256), radius=4)(ab)
    assert torch.allclose(out[..., 10:20, 10:20], torch.full((1, 2, 10, 10), 30.0))
    assert out[..., 40:, 40:].abs().max() == 0
    band = HintPull(hints, (64, 96), (256, 256), radius=10)  # a band of rows gives the same rows
    assert torch.equal(band(ab[..., 16:40, :], row0=16), pulled[..., 16:40, :])
    with pytest.raises(ValueError, match="adherence"):
        HintPull(hints, (64, 96), (256, 256), adherence=1.5)


def test_weighted_points_that_overlap_give_their_weighted_mean():
    two = ColorHints(points=((8.0, 8.0, 40.0, 0.0), (8.0, 8.0, 0.0, 40.0)), patch=3, weights=(0.75, 0.25))
    ab, mask = rasterize(two, (16, 16), (16, 16))
    assert torch.allclose(ab[0, :, 8, 8], torch.tensor([30.0, 10.0])) and mask[0, 0, 8, 8] == 1


def test_keyframe_points_are_carried_through_their_shot_and_stop_at_the_cut(shared):
    gray, colour = (shared / "data" / "video" / f"dev_kenburns_{k}.mp4" for k in ("gray", "color"))
    info = probe(str(gray), "g")

    def read(a, b):
        for i, rgb in read_frames(str(gray), info, a, b, "g"):
            yield i, color.rgb_to_l(imageio.to_tensor(rgb.astype(np.float32) / 255.0))

    originals = decoded_frames(colour)
    points = confident_points(torch.from_numpy(_lab(originals[0])[1:])[None], max_points=30)
    assert len(points) == 30
    carried = propagate(read, [Keyframe(0, points), Keyframe(48, ((100.0, 100.0, 5.0, 5.0),), shot="A")],
                        0, 60, chunk=5)
    assert carried.cuts == [CUT]
    assert set(carried.hints) == set(range(CUT, 60)) | set(range(0, CUT))  # shot 1 forward; shot 2 back and on
    assert all(h.keyframe == 0 for f in range(CUT) for h in carried.hints[f])
    assert all(h.keyframe == 48 for f in range(CUT, 60) for h in carried.hints[f])  # nothing leaks over the cut
    errors = [np.hypot(*(_lab(originals[24])[1:, int(round(h.y)), int(round(h.x))] - (h.a, h.b)))
              for h in carried.hints[24]]
    assert len(errors) >= 20 and np.median(errors) < 4  # the points still sit on their colour 24 frames later
    with pytest.raises(HintsError, match=r"keyframes\.0 \(frame 10\) and keyframes\.1 \(frame 40\) are labelled "
                                         r"shot 'A', but a scene cut was detected at frame 36"):
        propagate(read, [Keyframe(10, points[:3], shot="A", entry=1), Keyframe(40, points[:3], shot="A", entry=2)],
                  0, 45)


# ---- in a job ----------------------------------------------------------------------------------


def _job(shared, out, hints: str, start: int = 0):
    return parse_manifest(textwrap.dedent(f"""
        inputs: [{{uri: {shared}/data/video/dev_kenburns_gray.mp4, frames: {{start: {start}, end: {END}}}}}]
        output: {{prefix: {out}, video_crf: 0}}
        pipeline:
          colorize: {{model: siggraph17{hints}}}
          untrained_weights: true
        execution: {{actors: 2, frames_per_range: 12, batch_size: 4}}
    """), "keyframes.yaml")


@pytest.fixture(scope="module")
def films(ray_local, shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("keyframes")
    originals = decoded_frames(shared / "data" / "video" / "dev_kenburns_color.mp4")
    Image.fromarray(originals[0]).save(root / "colour_000.png")
    (root / "hints").mkdir()
    (root / "hints" / "dev_kenburns_gray.mp4.json").write_text(json.dumps(
        {"keyframes": [{"frame": 0, "image": str(root / "colour_000.png")}]}))
    hinted = run_job(_job(shared, root / "hinted", f", hints: {root / 'hints'}/"), QUIET)
    plain = run_job(_job(shared, root / "plain", "", start=24), QUIET)  # per frame: frames 24.. are enough
    assert hinted.exit_code == plain.exit_code == EXIT_OK, (hinted.failures, plain.failures)
    return root, hinted, originals


def test_hints_are_kept_carried_and_never_leak_over_the_cut(films, shared):
    root, hinted, originals = films
    out = decoded_frames(root / "hinted" / "dev_kenburns_gray.mp4")
    plain = [None] * 24 + decoded_frames(root / "plain" / "dev_kenburns_gray.mp4")  # frames 24..END-1
    assert len(out) == len(plain) == END
    grey0 = torch.from_numpy(_lab(decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")[0])[:1])[None]
    points = confident_points(torch.from_numpy(_lab(originals[0])[1:])[None], lightness=grey0)  # as the job sampled
    lab0 = _lab(out[0])
    at_hints = [np.hypot(lab0[1, int(y), int(x)] - a, lab0[2, int(y), int(x)] - b) for y, x, a, b in points]
    assert len(at_hints) >= 30 and max(at_hints) <= 3  # the keyframe keeps every hinted colour

    # 24 frames later, near where the points moved (Lucas-Kanade on the colour original, not our flow)
    track = np.array([[x, y] for y, x, _, _ in points], np.float32).reshape(-1, 1, 2)
    prev = cv2.cvtColor(originals[0], cv2.COLOR_RGB2GRAY)
    for t in range(1, 25):
        cur = cv2.cvtColor(originals[t], cv2.COLOR_RGB2GRAY)
        track, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, track, None, winSize=(21, 21), maxLevel=3)
        prev = cur
    truth, with_hints, without = _lab(originals[24]), _lab(out[24]), _lab(plain[24])

    def near(lab, x, y, r=3):
        return lab[1:, max(0, int(y) - r):int(y) + r + 1, max(0, int(x) - r):int(x) + r + 1].reshape(2, -1).mean(1)

    errs = [(np.linalg.norm(near(with_hints, x, y) - near(truth, x, y)), np.linalg.norm(near(without, x, y) -
                                                                                          near(truth, x, y)))
            for (x, y), good in zip(track.reshape(-1, 2), ok.ravel()) if good and 0 <= x < 640 and 0 <= y < 360]
    assert len(errs) >= 20
    assert np.mean([e[0] for e in errs]) <= 0.5 * np.mean([e[1] for e in errs])
    for t in range(CUT, END):  # the shot without a keyframe: exactly the output without hints
        assert np.array_equal(out[t], plain[t]), t
    gray = decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")
    for a, b in zip(out, gray):
        assert np.abs(_lab(a)[0] - _lab(b)[0]).mean() < 1.0

    frames = pq.read_table(hinted.written["frames"]).to_pylist()
    counts = {r["frame_index"]: r["hint_points"] for r in frames}
    assert counts[0] == len(points) and all(counts[t] > 0 for t in range(CUT)) and all(
        counts[t] == 0 for t in range(CUT, END))
    units = pq.read_table(hinted.written["units"]).to_pylist()
    assert [u["kind"] for u in units].count("hints") == 1


def test_hint_adherence_has_no_jump_at_range_seams(films, shared):
    """Ranges of 12 frames on two actors: each frame keeps the hints carried to it, seams included."""
    root, _, originals = films
    out = decoded_frames(root / "hinted" / "dev_kenburns_gray.mp4")
    gray = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    info = probe(str(gray), "g")

    def read(a, b):
        for i, rgb in read_frames(str(gray), info, a, b, "g"):
            yield i, color.rgb_to_l(imageio.to_tensor(rgb.astype(np.float32) / 255.0))

    grey0 = next(read(0, 1))[1]
    points = confident_points(torch.from_numpy(_lab(originals[0])[1:])[None], lightness=grey0)
    carried = propagate(read, [Keyframe(0, points)], 0, END)  # the hints the job's hint unit gave each frame
    error = {}
    for t in range(CUT):
        lab = _lab(out[t])
        error[t] = np.mean([np.hypot(lab[1, int(round(h.y)), int(round(h.x))] - h.a,
                                     lab[2, int(round(h.y)), int(round(h.x))] - h.b) for h in carried.hints[t]])
    seams = [error[t] for t in (11, 12, 23, 24)]
    inside = [e for t, e in error.items() if t not in (11, 12, 23, 24)]
    assert max(error.values()) <= 2.0, error  # every frame keeps its carried hints (8-bit rounding, gamut)
    assert max(seams) <= max(inside) + 0.5, error


def test_a_bad_hints_file_fails_its_video_before_any_work(ray_local, shared, tmp_path):
    (tmp_path / "hints").mkdir()
    (tmp_path / "hints" / "dev_kenburns_gray.json").write_text(json.dumps(
        {"keyframes": [{"frame": 0, "points": [[10, 10, 20, 20]]}, {"frame": 60, "points": [[5, 5, 0, 0]]}]}))
    report = run_job(_job(shared, tmp_path / "out", f", hints: {tmp_path / 'hints'}/"), QUIET)
    assert report.exit_code == EXIT_FAILURES
    [failure] = report.failures
    assert failure.error_type == "HintsError"
    assert f"_gray.json:1: keyframes.1 (frame 60): beyond the frames processed, [0, {END})" in failure.message
    assert not (tmp_path / "out" / "dev_kenburns_gray.mp4").exists()


def test_a_still_takes_a_tinted_print_as_its_keyframe(shared, tmp_path):
    from jobs.cli import main

    photo = shared / "data" / "gray" / "coffee.jpg"
    tinted = shared / "data" / "color" / "coffee.jpg"  # a colour reference of the same photo
    mask = np.zeros((400, 600), np.uint8)
    mask[100:220, 150:330] = 255  # the restorer's region: the cup
    Image.fromarray(mask).save(tmp_path / "mask.png")
    hints = tmp_path / "coffee.json"
    keyframe = {"frame": 0, "image": str(tinted), "mask": str(tmp_path / "mask.png")}
    hints.write_text(json.dumps({"keyframes": [keyframe]}))
    assert main(["colorize", str(photo), str(tmp_path / "out.png"), "--model", "siggraph17", "--hints", str(hints),
                 "--untrained-weights"]) == 0
    out = _lab(np.asarray(Image.open(tmp_path / "out.png").convert("RGB")))
    ref = _lab(np.asarray(Image.open(tinted).convert("RGB")))
    inside = np.hypot(*(out[1:, 110:210, 160:320] - ref[1:, 110:210, 160:320]))
    assert np.median(inside) < 3  # the tinted print's colours, where the mask says
    src = _lab(np.asarray(Image.open(photo).convert("RGB")))
    assert np.abs(out[0] - src[0]).mean() < 1.0


def test_hints_show_draws_the_points_where_they_went(shared, tmp_path):
    from jobs.cli import main

    originals = decoded_frames(shared / "data" / "video" / "dev_kenburns_color.mp4")
    Image.fromarray(originals[0]).save(tmp_path / "f0.png")
    hints = tmp_path / "h.json"
    hints.write_text(json.dumps({"keyframes": [{"frame": 0, "image": str(tmp_path / "f0.png")}]}))
    out = tmp_path / "show.mp4"
    assert main(["hints", "show", str(shared / "data" / "video" / "dev_kenburns_gray.mp4"), str(hints), str(out),
                 "--frames", "0:40"]) == 0
    frames = decoded_frames(out)
    assert len(frames) == 40
    coloured = [int((np.hypot(*_lab(f)[1:]) > 10).sum()) for f in frames]  # pixels of the dots (and the outline)
    assert min(coloured[:CUT]) > 500 and max(coloured[CUT + 1:]) < 50  # dots in shot 1, none after the cut
