"""Deep Exemplar-based Video Colorization: the authors' layouts, their pipeline's outputs, ours, the command."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorstyle_core import color
from colorstyle_core.colorizers.deepexemplar import WEIGHTS, generated_weights
from colorstyle_core.exemplar import ChainState, ExemplarColorizer
from colorstyle_core.loader import WeightsError, WeightsLayoutError
from colorstyle_core.video_metrics import measure_consistency
from tests.goldens.deepexemplar_inputs import CASES, SEED, case_inputs
from tests.media import audio_packet_payloads, mux_sine_audio, write_scans

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden_deepexemplar.npz"


SMALL = (96, 160)
"""A small ``image_size`` for the tests (working size 48 x 80): the same code as 432 x 768, a 20th of the work."""


@pytest.fixture(scope="module")
def colorizer() -> ExemplarColorizer:
    ex = ExemplarColorizer.from_seed(SEED, image_size=SMALL)
    ex.keep_network_ab = True
    return ex


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """The three generated checkpoints under the authors' file names, and their SHA256SUMS."""
    root = tmp_path_factory.mktemp("deepexemplar")
    lines = []
    for role, sd in generated_weights(SEED).items():
        path = root / WEIGHTS[role].filename
        torch.save(sd, path)
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_authors_pipeline_matches_their_code(shared, case):
    """``gamut="clip"`` against goldens from the authors' test.py (tests/goldens/make_deepexemplar_goldens.py),
    same generated weights, one torch thread as they were made: the same 8-bit frames (see README for the
    tolerance), the 8-frame shot included (each frame takes the previous one's output)."""
    golden = np.load(GOLDEN)
    frames, reference = case_inputs(case)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ex = ExemplarColorizer.from_seed(SEED, gamut="clip", image_size=case.image_size)
        out = np.stack(ex.colorize_sequence(frames, ex.reference(reference)))
    finally:
        torch.set_num_threads(before)
    expected = golden[case.name]
    assert out.shape == expected.shape == (case.frames, *case.image_size, 3)
    diff = np.abs(out.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, (diff.max(), (diff > 0).mean())


def test_checkpoints_load_strictly_from_a_prefix_with_their_hashes(weights_dir, colorizer):
    loaded = ExemplarColorizer.from_prefix(str(weights_dir))
    for role in ("vgg", "warpnet", "colornet"):
        ours, theirs = getattr(colorizer, role).state_dict(), getattr(loaded, role).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    sums = (weights_dir / "SHA256SUMS").read_text().splitlines()
    order = [WEIGHTS[r].filename for r in ("vgg", "warpnet", "colornet")]
    listed = "\n".join(next(line for line in sums if line.endswith(name)) for name in order)
    assert loaded.provenance.sha256 == hashlib.sha256(listed.encode()).hexdigest()  # one fingerprint of the three
    assert loaded.provenance.origin == str(weights_dir) and not loaded.provenance.untrained


def test_a_job_gives_the_hashes_with_its_weights_or_beside_them(weights_dir, tmp_path):
    """``weights: {uri: PREFIX, sha256: "FILE=HEX,..."}`` for a prefix without SHA256SUMS; a bare hex is refused
    when the manifest is read, naming the form it wants; a wrong hash stops the job before any work."""
    from jobs.driver import load_weights
    from jobs.manifest import parse_manifest
    from jobs.manifest_base import ManifestError

    for spec in WEIGHTS.values():
        (tmp_path / spec.filename).write_bytes((weights_dir / spec.filename).read_bytes())
    sums = ",".join(f"{p.name}={hashlib.sha256(p.read_bytes()).hexdigest()}" for p in tmp_path.glob("*.pth"))

    def manifest(sha256: str):
        return parse_manifest(f"inputs: [a/]\noutput: {{prefix: o/}}\npipeline: {{colorize: {{model: deepexemplar, "
                              f"reference: r.jpg, weights: {{uri: {tmp_path}, sha256: '{sha256}'}}}}}}\n", "m.yaml")

    colorizer, _ = load_weights(manifest(sums))
    assert colorizer is not None and colorizer.name == "deepexemplar" and colorizer.provenance.origin == str(tmp_path)
    with pytest.raises(ManifestError, match="FILE=HEX"):
        manifest("ab" * 32)
    with pytest.raises(WeightsError, match="does not match"):
        load_weights(manifest(sums.replace(sums.split("=")[1][:64], "0" * 64)))


def test_a_checkpoint_without_a_hash_or_with_another_layout_is_refused(weights_dir, tmp_path):
    for name in ("vgg19_conv.pth", "nonlocal_net_iter_76000.pth", "colornet_iter_76000.pth"):
        (tmp_path / name).write_bytes((weights_dir / name).read_bytes())
    with pytest.raises(WeightsError, match="no sha256"):  # the published hashes are not recorded
        ExemplarColorizer.from_prefix(str(tmp_path))
    sd = generated_weights(SEED)["colornet"]
    del sd["conv10_ab.bias"]
    torch.save(sd, tmp_path / "colornet_iter_76000.pth")
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("*.pth")}
    with pytest.raises(WeightsLayoutError, match="conv10_ab.bias"):
        ExemplarColorizer.from_prefix(str(tmp_path), sums)
    sums["colornet_iter_76000.pth"] = "0" * 64
    with pytest.raises(WeightsError, match="does not match"):
        ExemplarColorizer.from_prefix(str(tmp_path), sums)


def test_any_frame_size_keeps_its_lightness_and_the_chain_carries_colour(shared, colorizer):
    reference = np.asarray(Image.open(shared / "data" / "color" / "lighthouse.jpg").convert("RGB"))
    frame = np.asarray(Image.open(shared / "data" / "gray" / "lighthouse.jpg").convert("RGB").resize((301, 167)))
    ref = colorizer.reference(reference)
    state = ChainState()
    first = colorizer.colorize(frame, ref, state)
    ab_first = colorizer.network_ab.clone()
    second = colorizer.colorize(frame, ref, state)
    assert first.shape == frame.shape and first.dtype == np.uint8
    assert colorizer.network_ab.shape == (1, 2, 48, 80)
    assert not torch.equal(colorizer.network_ab, ab_first)  # the previous frame's output is an input
    again = colorizer.colorize(frame, ref, ChainState())  # a new chain starts from zeros again
    assert np.array_equal(again, first) and not np.array_equal(second, first)
    as_l = lambda rgb: color.rgb_to_l(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)  # noqa: E731
    assert (as_l(first) - as_l(frame)).abs().max() < 0.5  # L kept, to 8-bit rounding
    assert colorizer.colorize(frame.astype(np.float32) / 255, ref, ChainState()).shape == frame.shape


def test_a_4k_still_runs_at_the_working_size(colorizer):
    """A 3840 x 2160 frame: the networks at the working size, only the Lab join at full size."""
    gen = np.random.default_rng(0)
    frame = np.repeat(gen.integers(0, 256, (2160, 3840, 1), dtype=np.uint8), 3, axis=2)
    ref = colorizer.reference(gen.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    out = colorizer.colorize(frame, ref, ChainState())
    assert out.shape == (2160, 3840, 3) and colorizer.network_ab.shape == (1, 2, 48, 80)


def test_a_large_still_in_bands_equals_the_whole_still(shared):
    """The banded path (stills above 16 MP) on a small image cut in bands of 37 rows: the same L, the same ab to
    float rounding, the same 8-bit output through the pipeline (uint8 input, as the images handler gives it)."""
    from colorstyle_core.pipeline import FramePipeline
    from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig

    frames, reference = case_inputs(CASES[0])
    ex = ExemplarColorizer.from_seed(SEED, image_size=SMALL)
    ref = ex.reference(reference, "ref")
    image8 = torch.from_numpy(np.ascontiguousarray(np.asarray(
        Image.fromarray(frames[0]).resize((517, 301))))).permute(2, 0, 1)[None]
    [(whole_l, whole_ab)] = ex.predict_ab_list([image8[0].float() / 255], None, [ref])
    parts = list(ex.predict_ab_bands(image8, None, 37, reference=ref))
    assert [(a, b) for a, b, _, _ in parts][:2] == [(0, 37), (37, 74)] and parts[-1][1] == 301
    banded_l = torch.cat([p[2] for p in parts], dim=2)[0]
    banded_ab = torch.cat([p[3] for p in parts], dim=2)[0]
    assert torch.allclose(banded_l, whole_l, atol=1e-4)
    assert (banded_ab - whole_ab).abs().max() < 1e-2, (banded_ab - whole_ab).abs().max()
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep("deepexemplar", image_size=SMALL)), colorizer=ex)
    large = pipeline.process_large(image8, band_rows=37, reference=ref).image
    small = pipeline.process([image8.float() / 255], None, [ref])[0].image
    assert (large.int() - imageio_to_uint8(small).int()).abs().max() <= 1
    with pytest.raises(ValueError, match="not colour hints"):
        next(ex.predict_ab_bands(image8, object(), 37, reference=ref))


def imageio_to_uint8(image: torch.Tensor) -> torch.Tensor:
    from colorstyle_core.imageio import to_uint8_hwc

    return torch.from_numpy(to_uint8_hwc(image)).permute(2, 0, 1)[None]


def test_bad_images_are_named(colorizer):
    with pytest.raises(ValueError, match="frame: expected an \\(H, W, 3\\)"):
        colorizer.colorize(np.zeros((4, 4), np.uint8), None, ChainState())
    with pytest.raises(ValueError, match="image_size"):
        ExemplarColorizer.from_seed(SEED, image_size=(100, 200))


def test_command_colorizes_a_folder_of_frames_in_order(shared, weights_dir, tmp_path):
    frames_dir, out_dir, ab_dir = tmp_path / "frames", tmp_path / "out", tmp_path / "ab"
    frames_dir.mkdir()
    frames, reference = case_inputs(CASES[1])
    for i, frame in enumerate(frames[:3]):  # 16-bit TIFF, as film scans come
        Image.fromarray(frame[..., 0].astype(np.uint16) * 257).save(frames_dir / f"scan_{i + 9}.tif")
    Image.fromarray(reference).save(tmp_path / "ref.png")
    cmd = [sys.executable, "-m", "jobs.cli", "colorize", str(frames_dir), str(out_dir), "--model", "deepexemplar",
           "--reference", str(tmp_path / "ref.png"), "--weights", str(weights_dir), "--save-ab", str(ab_dir),
           "--image-size", "96,160", "--device", "cpu"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert [Path(p).name for p in done.stdout.split()] == ["scan_9.tif", "scan_10.tif", "scan_11.tif"]
    assert sorted(p.name for p in ab_dir.iterdir()) == ["scan_10_ab.npy", "scan_11_ab.npy", "scan_9_ab.npy"]
    assert np.load(ab_dir / "scan_9_ab.npy").shape == (2, 48, 80)
    assert np.asarray(Image.open(out_dir / "scan_10.tif")).shape == (120, 200, 3)
    refused = subprocess.run(cmd[:-6] + ["--weights", str(tmp_path / "nowhere")], cwd=REPO, capture_output=True,
                             text=True, timeout=600)
    assert refused.returncode == 2 and "nowhere" in refused.stderr


# ---- in a job ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def film_job(ray_local, shared, tmp_path_factory):
    """A film with sound (frames 20-43, a scene cut at 36) in two frame ranges meeting at 32, a reference per shot
    from its hints file; two stills, one with its own reference, one taking the job's; a folder of 16 numbered scans
    (an image sequence, ranges meeting at frame 12) kept as frames, taking the job's reference."""
    from jobs.driver import EXIT_OK, run_job
    from jobs.manifest import parse_manifest
    from tests.conftest import QUIET

    root = tmp_path_factory.mktemp("exemplar_job")
    (root / "stills").mkdir()
    (root / "hints").mkdir()
    for name in ("chelsea_cat", "farm_dog"):
        Image.open(shared / "data" / "gray" / f"{name}.jpg").resize((150, 100)).save(root / "stills" / f"{name}.png")
    write_scans(root / "reel", shared, count=16)
    mux_sine_audio(shared / "data" / "video" / "dev_kenburns_gray.mp4", root / "dev_kenburns_gray.mp4")
    for name in ("lighthouse", "yellow_flower"):
        Image.open(shared / "data" / "color" / f"{name}.jpg").resize((160, 120)).save(root / f"{name}.png")
    (root / "hints" / "dev_kenburns_gray.mp4.json").write_text(json.dumps({"keyframes": [
        {"frame": 20, "reference": str(root / "lighthouse.png")},
        {"frame": 36, "reference": str(root / "yellow_flower.png")}]}))
    (root / "hints" / "chelsea_cat.json").write_text(json.dumps(
        {"keyframes": [{"frame": 0, "reference": str(root / "yellow_flower.png")}]}))
    text = f"""
inputs: [{{uri: {root}/dev_kenburns_gray.mp4, frames: {{start: 20, end: 44}}}}, {root}/stills/,
         {{sequence: {root}/reel, fps: 24}}]
output: {{prefix: {root}/out}}
pipeline:
  colorize: {{model: deepexemplar, reference: {root}/lighthouse.png, hints: {root}/hints/, image_size: [96, 160]}}
  untrained_weights: true
execution: {{actors: 2, frames_per_range: 12, batch_size: 4}}
metrics: {{video_consistency: true}}
"""
    (root / "job.yaml").write_text(text)
    report = run_job(parse_manifest(text, "exemplar.yaml"), QUIET)
    assert report.exit_code == EXIT_OK, report.failures
    return root, report


def test_a_film_in_two_ranges_has_every_frame_once_and_no_jump_at_the_seam(film_job, shared):
    import pyarrow.parquet as pq

    from tests.media import decoded_frames

    root, report = film_job
    frames = pq.read_table(report.written["frames"]).to_pylist()
    video_rows = sorted(r["frame_index"] for r in frames if r["input_uri"].endswith(".mp4"))
    assert video_rows == list(range(20, 44))  # warm-up frames are processed, never written
    units = pq.read_table(report.written["units"]).to_pylist()
    assert sum(u["unit_id"].startswith("hints-") for u in units) == 1  # the film's track found its cuts first
    [video] = [v for v in pq.read_table(report.written["videos"]).to_pylist() if v["input_uri"].endswith(".mp4")]
    assert video["seams"] == [32] and video["scene_cuts"] == [36] and video["audio"] == "copied"
    assert audio_packet_payloads(root / "out" / "dev_kenburns_gray.mp4")  # the film's sound, kept
    # the seam pair (31, 32) joins two frames of one chain: the range before faded into the chain the next one runs
    assert video["e_warp_seams"] <= 1.5 * video["e_warp_inside"], (video["e_warp_seams"], video["e_warp_inside"])
    src = decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")[20:44]
    out = decoded_frames(root / "out" / "dev_kenburns_gray.mp4")
    assert len(out) == 24
    as_t = lambda rgb: torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    # generated weights flicker along the film (pairs from 0.002 to 0.007): beside its neighbours, within 10 %
    near = measure_consistency([as_t(f) for f in out[10:14]], [as_t(f) for f in src[10:14]], seams=[2])
    assert near.e_warp_seams <= 1.1 * near.e_warp_inside, (near.e_warp_seams, near.e_warp_inside)
    as_l = lambda rgb: color.rgb_to_l(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)  # noqa: E731
    assert all((as_l(b) - as_l(a)).abs().mean() < 1.0 for a, b in zip(src, out))  # L kept (through H.264)
    for name in ("chelsea_cat", "farm_dog"):  # its own reference, the job's
        still = np.asarray(Image.open(root / "out" / f"{name}.png"))
        assert still.shape == (100, 150, 3) and still.std(axis=2).mean() > 0.5  # colour, at the input's size


def test_a_folder_of_scans_is_colorized_as_one_film_under_the_same_names_and_a_rerun_redoes_nothing(film_job):
    import pyarrow.parquet as pq

    from colorstyle_core.sequences import decode_frame
    from jobs.driver import EXIT_OK, run_job
    from jobs.manifest import parse_manifest
    from tests.conftest import QUIET

    root, report = film_job
    names = sorted(p.name for p in (root / "reel").iterdir())
    assert sorted(p.name for p in (root / "out" / "reel").iterdir()) == names
    rows = [r for r in pq.read_table(report.written["frames"]).to_pylist() if r["input_uri"] == str(root / "reel")]
    assert sorted(r["frame_index"] for r in rows) == list(range(16))  # every frame once, warm-ups not written
    [reel] = [v for v in pq.read_table(report.written["videos"]).to_pylist() if v["input_uri"] == str(root / "reel")]
    assert reel["output_uri"] == str(root / "out" / "reel") and reel["frames"] == 16 and reel["seams"] == [12]
    for name in names:
        src = decode_frame((root / "reel" / name).read_bytes(), name, 0, (160, 90))  # 16-bit TIFFs rounded
        out = np.asarray(Image.open(root / "out" / "reel" / name).convert("RGB"))
        as_l = lambda rgb: color.rgb_to_l(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)  # noqa: E731
        assert out.shape == src.shape and out.std(axis=2).mean() > 0.5, name  # colour at the scan's size
        assert (as_l(out) - as_l(src)).abs().mean() < 1.5, name  # L kept (8-bit, JPEG for the .jpg scans)
    before = {name: (root / "out" / "reel" / name).stat().st_mtime_ns for name in names}
    again = run_job(parse_manifest((root / "job.yaml").read_text(), "exemplar.yaml"), QUIET)
    assert again.exit_code == EXIT_OK and not again.failures
    assert (again.plan.skipped_videos, again.plan.units) == (2, 0)  # the film and the sequence: found done
    assert {name: (root / "out" / "reel" / name).stat().st_mtime_ns for name in names} == before  # resumed


@pytest.mark.parametrize("colorize, message", [
    ("{model: deepexemplar}", "needs reference"),
    ("{model: deepexemplar, image_size: [96, 160]}", "needs reference"),
    ("{model: deepexemplar, reference: r.jpg, gamut: clip}", "gamut clip"),
    ("{model: deepexemplar, reference: r.jpg, image_size: [100, 160]}", "multiples of 16"),
    ("{model: eccv16, reference: r.jpg}", "reference is for model deepexemplar"),
    ("{model: eccv16, image_size: [96, 160]}", "image_size is for model deepexemplar"),
])
def test_the_manifest_says_what_deepexemplar_needs(colorize, message):
    from jobs.manifest import parse_manifest
    from jobs.manifest_base import ManifestError

    with pytest.raises(ManifestError, match=message):
        parse_manifest(f"inputs: [a/]\noutput: {{prefix: o/}}\npipeline: {{colorize: {colorize}}}\n", "m.yaml")


def test_a_reference_that_does_not_decode_stops_the_job_before_any_work(film_job, tmp_path):
    from jobs.driver import run_job
    from jobs.exit_codes import EXIT_FATAL
    from jobs.manifest import parse_manifest
    from tests.conftest import QUIET

    root, _ = film_job
    (tmp_path / "ref.jpg").write_text("not an image")
    manifest = parse_manifest(f"""
inputs: [{root}/stills/]
output: {{prefix: {tmp_path}/out}}
pipeline: {{colorize: {{model: deepexemplar, reference: {tmp_path}/ref.jpg}}, untrained_weights: true}}
""", "m.yaml")
    report = run_job(manifest, QUIET)
    assert report.exit_code == EXIT_FATAL and "colour reference" in report.failures[0].message
    assert not (tmp_path / "out" / "cat.png").exists()


def test_the_report_shows_the_reference_beside_each_output(film_job):
    import re

    from jobs.cli import main

    root, report = film_job
    assert main(["report", str(root / "out")]) == 0
    text = (Path(report.written["summary"]).parent / "report" / "index.html").read_text(encoding="utf-8")
    for item in ("image-item", "video-item"):
        block = text.split(f"class='item {item}'", 1)[1].split("<div class='item", 1)[0]
        assert re.search(r'<img src="data:image/jpeg;base64,[^"]+" alt="colour reference">', block), item
    reel = next(b for b in text.split("class='item video-item'")[1:] if b.startswith("><div class='title'>reel "))
    for role in ("input", "output"):  # the image sequence's frames, read from its folders
        assert re.search(rf'<img src="data:image/jpeg;base64,[^"]+" alt="{role} frame 15">', reel), role


def _plan_with_hints(shared, tmp_path, keyframes: list[dict], model: str = "deepexemplar"):
    from jobs.manifest import parse_manifest
    from jobs.plan import plan_job

    (tmp_path / "hints").mkdir(exist_ok=True)
    (tmp_path / "hints" / "dev_kenburns_gray.mp4.json").write_text(json.dumps({"keyframes": keyframes}))
    colorize = f"{{model: {model}, hints: {tmp_path}/hints/}}"
    return plan_job(parse_manifest(f"""
inputs: [{{uri: {shared}/data/video/dev_kenburns_gray.mp4, frames: {{start: 20, end: 44}}}}]
output: {{prefix: {tmp_path}/out}}
pipeline: {{colorize: {colorize}, untrained_weights: true}}
execution: {{frames_per_range: 12}}
""", "m.yaml"))


def test_reference_keyframes_reach_every_range_and_bad_ones_are_refused_before_any_work(shared, tmp_path):
    from colorstyle_core.hints import reference_at

    ref_a, ref_b = tmp_path / "a.png", tmp_path / "b.png"
    for path, name in ((ref_a, "lighthouse"), (ref_b, "yellow_flower")):
        Image.open(shared / "data" / "color" / f"{name}.jpg").resize((80, 60)).save(path)
    plan = _plan_with_hints(shared, tmp_path, [{"frame": 20, "reference": str(ref_a)},
                                               {"frame": 36, "reference": str(ref_b)}])
    assert not plan.problems and len(plan.tracks) == 1 and len(plan.ranges) == 2  # the track finds the cuts
    for unit in plan.ranges:
        assert unit.references == ((20, str(ref_a)), (36, str(ref_b))) and unit.after == plan.tracks[0].unit_id
    assert [reference_at(plan.ranges[0].references, f) for f in (19, 20, 35, 36, 43)] == \
        [None, str(ref_a), str(ref_a), str(ref_b), str(ref_b)]
    (tmp_path / "bad.png").write_text("not an image")
    for keyframes, model, message in (
            ([{"frame": 20, "reference": str(tmp_path / "bad.png")}], "deepexemplar", "bad.png"),
            ([{"frame": 20, "points": [[10, 10, 5, 5]]}], "deepexemplar", "takes a 'reference' per keyframe"),
            ([{"frame": 20, "reference": str(ref_a)}], "siggraph17", "are for model deepexemplar"),
            ([{"frame": 20, "reference": str(ref_a), "points": [[1, 1, 0, 0]]}], "deepexemplar", "not combined")):
        problems = _plan_with_hints(shared, tmp_path, keyframes, model).problems
        assert len(problems) == 1 and message in problems[0].message, (model, problems)
    late = _plan_with_hints(shared, tmp_path, [{"frame": 30, "reference": str(ref_a)}]).problems  # no job reference
    assert len(late) == 1 and "frames 20-29 have no reference" in late[0].message


@pytest.mark.parametrize("frame, cuts, expected", [
    (19, (), None), (20, (), "a"), (35, (), "a"), (36, (), "b"), (50, (), "b"),  # up to the next reference
    (30, (30,), None), (29, (30,), "a"), (35, (30,), None), (44, (30,), "b"),  # ... or the next cut: the job's
    (36, (30, 36), "b"), (20, (20,), "a"),  # a keyframe at a cut starts that shot
])
def test_a_reference_applies_to_the_next_reference_or_scene_cut(frame, cuts, expected):
    from colorstyle_core.hints import reference_at

    assert reference_at(((20, "a"), (36, "b")), frame, cuts) == expected


def test_a_reference_ends_at_the_next_scene_cut_in_every_range(shared, tmp_path):
    """A keyframe at 28 (reference A) and a cut at 36, ranges of 7 frames from 28 (the range from 42 cannot see the
    cut): frames from 36 take the job's reference B, exactly as with a keyframe of B at 36; without a job reference
    the track refuses the film, naming the shot no reference reaches. The actor's own code, in this process."""
    import dataclasses
    import os
    import socket

    from jobs.driver import worker_spec
    from jobs.manifest import parse_manifest
    from jobs.plan import plan_job
    from jobs.units.base import ActorInfo
    from jobs.worker import UnitProcessor
    from tests.media import decoded_frames

    ref_a, ref_b = tmp_path / "a.png", tmp_path / "b.png"
    for path, name in ((ref_a, "lighthouse"), (ref_b, "yellow_flower")):
        Image.open(shared / "data" / "color" / f"{name}.jpg").resize((80, 60)).save(path)

    def run(name: str, keyframes: list[dict], job_reference: bool):
        hints = tmp_path / name / "hints"
        hints.mkdir(parents=True)
        (hints / "dev_kenburns_gray.mp4.json").write_text(json.dumps({"keyframes": keyframes}))
        reference = f", reference: {ref_b}" if job_reference else ""
        manifest = parse_manifest(f"""
inputs: [{{uri: {shared}/data/video/dev_kenburns_gray.mp4, frames: {{start: 28, end: 44}}}}]
output: {{prefix: {tmp_path / name}/out}}
pipeline:
  colorize: {{model: deepexemplar, hints: {hints}, image_size: [64, 96]{reference}}}
  untrained_weights: true
execution: {{frames_per_range: 7, batch_size: 4, cpus_per_actor: 2}}
""", "m.yaml")
        plan = plan_job(manifest)
        spec = dataclasses.replace(worker_spec(manifest, plan.job_id, "test"), device="cpu")
        processor = UnitProcessor(spec, None, None, ActorInfo("t", "local", socket.gethostname(), (), "cpu",
                                                             os.getpid(), ""))
        for track in plan.tracks:
            processor.process(track, 0, 0.0)
        for unit in plan.ranges:
            processor.process(unit, 0, 0.0)
        return [frame for unit in plan.ranges for frame in decoded_frames(Path(unit.segment_uri))]

    ends_at_cut = run("cut", [{"frame": 28, "reference": str(ref_a)}], job_reference=True)
    keyframe_at_cut = run("keyframe", [{"frame": 28, "reference": str(ref_a)}, {"frame": 36, "reference": str(ref_b)}],
                          job_reference=True)
    assert len(ends_at_cut) == 16 and all(np.array_equal(a, b) for a, b in zip(ends_at_cut, keyframe_at_cut))
    from colorstyle_core.hints import HintsError

    with pytest.raises(HintsError, match=r"shots starting at frames \[36\] have no reference"):
        run("none", [{"frame": 28, "reference": str(ref_a)}], job_reference=False)


def test_a_keyframes_reference_changes_its_frames_and_none_before_it(shared):
    """Eight frames of one chain: a second reference from frame 4 leaves frames 0-3 as they were."""
    from colorstyle_core.pipeline import FramePipeline
    from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig

    frames, reference = case_inputs(CASES[1])
    colorizer = ExemplarColorizer.from_seed(SEED, image_size=SMALL)
    colorizer.set_reference(reference, "a")
    other = colorizer.reference(np.ascontiguousarray(reference[::-1, ::-1, ::-1]), "b")
    pipeline = FramePipeline(PipelineConfig(colorize=ColorizeStep("deepexemplar", reference="a")),
                             colorizer=colorizer)
    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255

    def run(references):
        return [r.image for r in pipeline.sequence().process(list(range(8)), batch, None, references)]

    same, switched = run(None), run([None] * 4 + [other] * 4)
    assert all(torch.equal(a, b) for a, b in zip(same[:4], switched[:4]))
    assert not any(torch.equal(a, b) for a, b in zip(same[4:], switched[4:]))


def test_a_job_without_a_common_reference_builds_and_each_still_brings_its_own(shared):
    """Every input naming its reference in its hints file: the actor's pipeline has no job reference."""
    from colorstyle_core.pipeline import FramePipeline
    from colorstyle_core.pipeline_types import ColorizeStep, PipelineConfig

    step = ColorizeStep("deepexemplar", image_size=SMALL)
    pipeline = FramePipeline.build(PipelineConfig(colorize=step), untrained_seed=SEED)
    frames, reference = case_inputs(CASES[0])
    image = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float() / 255
    own = pipeline.colorizer.reference(reference, "own")
    assert pipeline.process([image], None, [own])[0].image.shape == image.shape
    with pytest.raises(RuntimeError, match="needs a reference"):
        pipeline.process([image])


def test_weights_list_and_fetch_know_the_three_files_and_want_their_hashes(weights_dir, tmp_path, capsys):
    from jobs.cli import main

    assert main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(f"deepexemplar_{n}" in listed for n in ("vgg19", "nonlocal", "colornet"))
    assert "sha256 not recorded" in listed
    assert main(["weights", "fetch", "deepexemplar_colornet", "--to", str(tmp_path / "a")]) == 2  # tests: offline
    assert "give the archive" in capsys.readouterr().err and not (tmp_path / "a").exists()
    source = weights_dir / "colornet_iter_76000.pth"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert main(["weights", "fetch", "deepexemplar_colornet", "--from", str(source), "--sha256", digest,
                 "--to", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "colornet_iter_76000.pth").read_bytes() == source.read_bytes()
    assert main(["models", "layout", "deepexemplar_nonlocal"]) == 0


def test_weights_fetch_takes_each_file_from_the_authors_zip_and_records_the_hash_it_computed(weights_dir, tmp_path,
                                                                                            capsys, s3):
    """The release's layout (one zip, members under data/ and checkpoints/): each record's member staged on an object
    store, its sha256 printed and written to the prefix's SHA256SUMS, which the job's loader then checks."""
    import zipfile

    from colorstyle_core.colorizers.deepexemplar import load_state_dicts
    from jobs.cli import main

    bucket, opts = s3
    archive = tmp_path / "colorization_checkpoint.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for spec in WEIGHTS.values():
            z.write(weights_dir / spec.filename, spec.archive_member)
        z.writestr("checkpoints/video_moredata_l1/vgg19_gray.pth", b"not needed")
    prefix = f"{bucket}/models/deepexemplar"
    flags = ["--from", str(archive), "--to", prefix, "--storage-options", json.dumps(opts)]
    for spec in WEIGHTS.values():
        assert main(["weights", "fetch", spec.name, *flags]) == 0
        digest = hashlib.sha256((weights_dir / spec.filename).read_bytes()).hexdigest()
        assert f"sha256 {digest}  {spec.filename}  (not checked" in capsys.readouterr().out
    sums = (weights_dir / "SHA256SUMS").read_text().splitlines()
    import s3fs

    fs = s3fs.S3FileSystem(**opts)
    assert sorted(fs.cat(f"{prefix}/SHA256SUMS").decode().splitlines()) == sorted(sums)
    assert set(load_state_dicts(prefix, storage_options=opts)[0]) == set(WEIGHTS)  # checked against those hashes
    # a --sha256 that does not match the member is refused; an archive without the member names what it holds
    assert main(["weights", "fetch", "deepexemplar_vgg19", *flags, "--sha256", "0" * 64]) == 2
    assert "does not match" in capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "")
    assert main(["weights", "fetch", "deepexemplar_vgg19", "--from", str(tmp_path / "other.zip"),
                 "--to", str(tmp_path / "c")]) == 2
    assert "holds no data/vgg19_conv.pth" in capsys.readouterr().err
