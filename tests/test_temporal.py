"""Temporal consistency: chains, scene-cut resets, range seams, on/off equivalence, E_warp."""

from __future__ import annotations

import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import QUIET

from colorstyle_core import color
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.style.gatys import StyleConfig, Stylizer
from colorstyle_core.temporal import ABStabilizer, StyleChain, TemporalSettings, handoff_weight
from colorstyle_core.video_metrics import measure_consistency
from jobs.driver import EXIT_OK, run_job
from jobs.manifest import parse_manifest
from jobs.manifest_base import ManifestError
from tests.media import decoded_frames


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def clip(shared):
    """The dev video: a hard cut between frames 35 and 36 (two Ken Burns shots)."""
    frames = decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")
    return torch.cat([_tensor(f) for f in frames])


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.from_weights("eccv16", untrained_seed=0, device="cpu")


def _predict(colorizer, frames):
    parts = [colorizer.predict_ab(frames[i : i + 8]) for i in range(0, frames.shape[0], 8)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def test_stabilizer_on_a_static_clip_keeps_the_first_colours(colorizer, clip):
    still = clip[10:11].expand(5, -1, -1, -1)
    lightness, ab = _predict(colorizer, still)
    chain = ABStabilizer(TemporalSettings(strength=0.8))
    outs = [chain.step(lightness[i : i + 1], ab[i : i + 1]) for i in range(5)]
    assert outs[0][1].reset and not outs[1][1].reset and outs[1][1].trusted > 0.99
    for out, _ in outs:
        torch.testing.assert_close(out, ab[:1], atol=1e-3, rtol=0)  # same prediction, warped by zero flow


def test_stabilizer_resets_at_the_hard_cut_and_never_touches_l(colorizer, clip):
    lightness, ab = _predict(colorizer, clip[30:42])
    chain = ABStabilizer(TemporalSettings(strength=0.9))
    resets, outputs = [], []
    for i in range(lightness.shape[0]):
        out, info = chain.step(lightness[i : i + 1], ab[i : i + 1])
        outputs.append(out)
        if info.reset:
            resets.append(30 + i)
    assert resets == [30, 36]  # the chain's start and the cut between the shots
    torch.testing.assert_close(outputs[6], ab[6:7])  # first frame of the new shot: its own colours only
    assert (outputs[5] - ab[5:6]).abs().mean() > 0.1  # inside a shot the chain does smooth
    rgb = colorizer.compose(lightness[6:7], outputs[6])
    assert (color.rgb_to_l(rgb) - lightness[6:7]).abs().max() < 0.1


def test_stabilizer_lowers_warping_error_inside_a_shot(colorizer, clip):
    lightness, ab = _predict(colorizer, clip[:24])
    per_frame = [colorizer.compose(lightness[i : i + 1], ab[i : i + 1]) for i in range(24)]
    chain = ABStabilizer(TemporalSettings(strength=0.8))
    steady = [colorizer.compose(lightness[i : i + 1], chain.step(lightness[i : i + 1], ab[i : i + 1])[0])
              for i in range(24)]
    before = measure_consistency(per_frame, clip[:24].split(1), references=None)
    after = measure_consistency(steady, clip[:24].split(1), references=per_frame)
    assert after.e_warp < 0.5 * before.e_warp
    assert 0.005 < after.reference_diff < 0.08  # smoothed, neither frozen nor a copy of the per-frame result


def test_style_chain_warm_starts_with_fewer_steps_and_resets_at_cuts(clip):
    stylizer = Stylizer.from_weights("vgg19", untrained_seed=0, device="cpu")
    frames = torch.nn.functional.interpolate(clip[33:39], size=(36, 64), mode="area")
    config = StyleConfig(steps=6)
    style = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(0))
    targets = stylizer.targets([style], config, frames[:1])
    chain = StyleChain(stylizer, targets, config, TemporalSettings(temporal_weight=1e3, steps_after_first=2))
    steps, resets = [], []
    for i in range(frames.shape[0]):
        _, result, info = chain.step(frames[i : i + 1])
        steps.append(result.evaluations)
        resets.append(info.reset)
    assert resets == [True, False, False, True, False, False]  # frame 36 starts a new shot
    assert steps == [6, 2, 2, 6, 2, 2]


@pytest.mark.parametrize("index,expected", [(9, 0.0), (10, 0.0741), (12, 0.5), (14, 0.9259), (15, 1.0)])
def test_handoff_weight_eases_in_and_ends_on_the_fresh_chain(index, expected):
    assert handoff_weight(index, 10, 16) == pytest.approx(expected, abs=1e-3)


def test_overlap_must_fit_in_a_range():
    with pytest.raises(ManifestError, match="overlap"):
        parse_manifest("inputs: [a/]\noutput: {prefix: o/}\npipeline: {colorize: {temporal: {overlap: 8}}}\n"
                       "execution: {frames_per_range: 8}\n")


# ---- in the job ---------------------------------------------------------------------------------


def _job(shared, out, temporal: str, end: int = 52):
    return parse_manifest(textwrap.dedent(f"""
        inputs:
          - uri: {shared}/data/video/dev_kenburns_gray.mp4
            frames: {{start: 20, end: {end}}}
        output: {{prefix: {out}}}
        pipeline:
          colorize:
            model: eccv16
            {temporal}
          untrained_weights: true
        execution: {{actors: 2, frames_per_range: 10, batch_size: 4}}
        metrics: {{video_consistency: true}}
    """), "t.yaml")


@pytest.fixture(scope="module")
def runs(ray_local, shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("temporal")
    out = {}
    for name, temporal, end in (("plain", "", 40),  # per frame, its ranges those of the others: 20-29, 30-39
                                ("off", "temporal: {enabled: false, overlap: 4}", 52),
                                ("on", "temporal: {enabled: true, overlap: 4, strength: 0.8}", 52)):
        report = run_job(_job(shared, root / name, temporal, end), QUIET)
        assert report.exit_code == EXIT_OK, report.failures
        out[name] = (root / name, report)
    return out


def test_disabled_temporal_is_exactly_per_frame(runs):
    plain = decoded_frames(runs["plain"][0] / "dev_kenburns_gray.mp4")  # frames 20-39: the seam at 30, the cut at 36
    off = decoded_frames(runs["off"][0] / "dev_kenburns_gray.mp4")
    assert (len(plain), len(off)) == (20, 32)
    assert all(np.array_equal(a, b) for a, b in zip(plain, off[:20]))  # no warm-up frame reaches the output


def test_overlap_frames_are_processed_but_never_written(runs, shared):
    _, report = runs["on"]
    frames = pq.read_table(report.written["frames"]).to_pylist()
    indices = sorted(r["frame_index"] for r in frames)
    assert indices == list(range(20, 52))  # each frame written once: warm-up frames are not
    units = pq.read_table(report.written["units"]).to_pylist()
    assert sorted(u["frames"] for u in units) == [2, 10, 10, 10]
    resets = sorted(r["frame_index"] for r in frames if r["chain_reset"])
    assert resets == [20, 36]  # video start and the scene cut; later ranges arrive warmed up
    assert decoded_frames(runs["on"][0] / "dev_kenburns_gray.mp4").__len__() == 32


def test_stabilized_video_is_steadier_seamless_and_keeps_l(runs, shared):
    on = pq.read_table(runs["on"][1].written["videos"]).to_pylist()[0]
    off = pq.read_table(runs["off"][1].written["videos"]).to_pylist()[0]
    assert on["seams"] == [30, 40, 50] and on["scene_cuts"] == [36]
    assert on["e_warp"] < 0.3 * off["e_warp"]
    assert on["e_warp_seams"] <= 1.5 * on["e_warp_inside"]  # no jump where ranges meet
    diffs = [r["perframe_diff"] for r in pq.read_table(runs["on"][1].written["frames"]).to_pylist()]
    assert 0.0 < float(np.mean(diffs)) < 0.08
    src = decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")[20:52]
    res = decoded_frames(runs["on"][0] / "dev_kenburns_gray.mp4")
    for a, b in zip(src, res):
        assert (color.rgb_to_l(_tensor(b)) - color.rgb_to_l(_tensor(a))).abs().mean() < 1.0


def test_eval_video_json_is_strict_and_says_what_was_measured(runs, shared, tmp_path, capsys):
    import json

    from colorstyle_core.segments import SegmentWriter
    from colorstyle_core.video import probe, read_frames
    from jobs.cli import main

    src = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    info = probe(str(src), str(src))
    clip = tmp_path / "input-20-52.mkv"  # the frames the job processed, as the input to compare with
    with SegmentWriter(str(clip), info.window(20, 52), crf=0) as writer:
        for i, rgb in read_frames(str(src), info, 20, 52, str(src)):
            writer.write(rgb, i)
    on, off = runs["on"][0] / "dev_kenburns_gray.mp4", runs["off"][0] / "dev_kenburns_gray.mp4"
    assert main(["eval", "video", str(clip), str(on), "--reference", str(off), "--seams", "10,20,30", "--json"]) == 0

    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    report = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert report["frames"] == 32 and report["pairs_total"] == 31 and report["scene_cuts"] == [16]
    assert report["pairs"] == 30 == sum(1 for e in report["per_pair"] if e is not None)  # the cut is left out
    assert report["per_pair"][15] is None
    assert report["flow"] == {"method": "dis", "preset": "medium"}
    assert 0.5 < report["valid_mask_fraction"] <= 1.0
    assert report["reference_e_warp"] > report["e_warp"] > 0
    assert report["e_warp_ratio_to_reference"] == pytest.approx(report["e_warp"] / report["reference_e_warp"])
    assert main(["eval", "video", str(src), str(on)]) == 2  # 72 input frames against 32: one clear error
    assert "frames" in capsys.readouterr().err


def test_cdc_and_colourfulness_match_their_definitions_in_eval_and_in_the_videos_table(runs, shared, tmp_path,
                                                                                       capsys):
    import json

    from reference_metrics import hasler_colourfulness, tcvc_cdc

    from colorstyle_core.segments import SegmentWriter
    from colorstyle_core.video import probe, read_frames
    from jobs.cli import main

    src = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    info = probe(str(src), str(src))
    clip = tmp_path / "input-20-52.mkv"  # the frames the job processed
    with SegmentWriter(str(clip), info.window(20, 52), crf=0) as writer:
        for i, rgb in read_frames(str(src), info, 20, 52, str(src)):
            writer.write(rgb, i)
    out = runs["on"][0] / "dev_kenburns_gray.mp4"
    frames = decoded_frames(out)
    expected_cdc = tcvc_cdc(frames)
    expected_cf = float(np.mean([hasler_colourfulness(f) for f in frames]))
    row = pq.read_table(runs["on"][1].written["videos"]).to_pylist()[0]
    assert row["cdc"] == pytest.approx(expected_cdc, rel=0.01)  # computed at assembly, from the same frames
    assert row["colourfulness"] == pytest.approx(expected_cf, rel=0.01) and row["input_colourfulness"] == 0.0
    assert row["cdc_without_cuts"] < row["cdc"]  # the pairs across the cut at frame 36 left out
    assert main(["eval", "video", str(clip), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cdc"] == pytest.approx(expected_cdc, rel=0.01) and report["cdc"] == pytest.approx(row["cdc"])
    assert report["colourfulness"] == pytest.approx(expected_cf, rel=0.01)
    assert report["cdc_without_cuts"] == pytest.approx(row["cdc_without_cuts"])
