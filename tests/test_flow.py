"""Tests for colorstyle_core.flow and cuts: optical flow, warping, masks, scene cuts, E_warp.

Real data comes from the shared test-data folder (conftest's ``shared`` fixture:
``$COLORSTYLE_SHARED``, default ``<repo>/../shared``; tests skip when it is missing):
a grayscale photograph and the 72-frame Ken Burns video whose frames 0-35 and 36-71
are two shots. Frames are small (96x160 or 90x160) so the
file runs in seconds on two cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colorstyle_core import color, cuts, flow
from colorstyle_core.video_metrics import measure_consistency

GRAY_IMAGE = Path("data", "gray", "chelsea_cat.jpg")
VIDEO = Path("data", "video", "dev_kenburns_gray.mp4")
CUT_AFTER = 35  # last frame of the first shot (data/SOURCES.md)


def _require(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared test data missing: {path} (set COLORSTYLE_SHARED to the folder holding data/)")


def _gray_u8_to_l(gray: np.ndarray) -> torch.Tensor:
    """(..., H, W) uint8 gray -> (N, 1, H, W) float32 Lab L in [0, 100]."""
    g = torch.from_numpy(np.ascontiguousarray(gray)).float().div(255.0)
    return color.rgb_to_l(g.reshape(-1, 1, *g.shape[-2:]))


@pytest.fixture(scope="module")
def photo_l(shared: Path) -> torch.Tensor:
    """(1, 1, 130, 200) L of a real photograph: a canvas to cut shifted crops from."""
    path = shared / GRAY_IMAGE
    _require(path)
    import cv2

    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return _gray_u8_to_l(cv2.resize(gray, (200, 130), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def video_gray(shared: Path) -> np.ndarray:
    """All 72 frames of the gray video as (72, 360, 640) uint8 gray levels (0-255)."""
    path = shared / VIDEO
    _require(path)
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    # The MP4 is BT.601 limited range: map Y 16-235 to full range gray.
    y = np.stack(frames).astype(np.float32)
    return np.clip((y - 16.0) * (255.0 / 219.0), 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def video_l_small(video_gray: np.ndarray) -> torch.Tensor:
    """(72, 1, 90, 160) L of the video, downscaled with area averaging."""
    import cv2

    small = np.stack([cv2.resize(f, (160, 90), interpolation=cv2.INTER_AREA) for f in video_gray])
    return _gray_u8_to_l(small)


def _shifted_pair(photo_l: torch.Tensor, dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """96x160 crops a, b with b(p) = a(p - (dx, dy)), i.e. a(p) = b(p + (dx, dy))."""
    y0, x0 = 10, 20
    a = photo_l[..., y0:y0 + 96, x0:x0 + 160]
    b = photo_l[..., y0 - dy:y0 - dy + 96, x0 - dx:x0 - dx + 160]
    return a.clone(), b.clone()


# ----------------------------------------------------------------------------- estimate_flow


def _smooth_noise(seed: int) -> torch.Tensor:
    """(1, 1, 96, 160) blurred noise L in [0, 100]: texture without shared data."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 100, 164, generator=gen), 5, stride=1)
    return (x - x.min()) / (x.max() - x.min()) * 100


def test_estimate_flow_shapes_dtype_and_validation():
    a = _smooth_noise(0)
    b = torch.roll(a, shifts=(2, 3), dims=(2, 3))
    single = flow.estimate_flow(a[0, 0], b[0, 0])
    assert single.shape == (1, 2, 96, 160) and single.dtype == torch.float32
    batch = flow.estimate_flow(torch.cat([a, b]), torch.cat([b, a]), "dis", "fast")
    assert batch.shape == (2, 2, 96, 160)
    # Pair k of a batch is computed as it would be alone.
    alone = flow.estimate_flow(b, a, "dis", "fast")
    torch.testing.assert_close(batch[1:], alone)

    with pytest.raises(ValueError, match="unknown flow method"):
        flow.estimate_flow(a, b, method="raft")
    with pytest.raises(ValueError, match="unknown DIS preset"):
        flow.estimate_flow(a, b, preset="slow")
    with pytest.raises(ValueError, match="dis' only"):
        flow.estimate_flow(a, b, method="farneback", preset="fast")
    with pytest.raises(ValueError, match="same shape"):
        flow.estimate_flow(a, b[..., :-1])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        flow.estimate_flow(a.expand(1, 3, 96, 160), b.expand(1, 3, 96, 160))
    with pytest.raises(TypeError, match="floating"):
        flow.estimate_flow(a.to(torch.uint8), b.to(torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        flow.estimate_flow(torch.full_like(a, float("nan")), b)
    with pytest.raises(ValueError, match="unknown flow method"):
        flow.WarpingError(method="raft")


@pytest.mark.parametrize("size", [(8, 8), (16, 128), (24, 96), (100, 11)])
def test_dis_survives_small_and_short_wide_frames(size):
    # OpenCV 5.0's DIS segfaults on some of these sizes unless the module pads them.
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, generator=gen) * 100
    b = torch.roll(a, shifts=1, dims=1)
    for preset in flow.DIS_PRESETS:
        out = flow.estimate_flow(a, b, "dis", preset)
        assert out.shape == (1, 2, *size) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- static clip


@pytest.mark.parametrize("method,preset", [("dis", "medium"), ("dis", "ultrafast"), ("farneback", None)])
def test_static_clip_gives_zero_flow_identity_warp_and_zero_error(photo_l, method, preset):
    a, _ = _shifted_pair(photo_l, 0, 0)
    clip = a.expand(3, 1, 96, 160).clone()  # three identical frames
    f = flow.estimate_flow(clip[:-1], clip[1:], method, preset)
    assert f.abs().mean() < 0.005 and f.abs().max() < 0.25  # DIS gives exact zeros, Farneback ~0.1 px at edges

    rgb = color.l_to_gray(clip).expand(3, 3, 96, 160)
    assert torch.equal(flow.warp(rgb, torch.zeros(3, 2, 96, 160)), rgb)
    mask = flow.consistency_mask(f, flow.estimate_flow(clip[1:], clip[:-1], method, preset))
    assert mask.shape == (2, 1, 96, 160) and mask.dtype == torch.float32
    assert mask.mean() > 0.99

    gray = color.l_to_gray(clip)
    assert measure_consistency(rgb.split(1), gray.split(1), method=method, preset=preset).e_warp < 1e-7


# ----------------------------------------------------------------------------- warp


def test_warp_constant_flow_is_an_exact_shift_with_out_of_frame_mask():
    gen = torch.Generator().manual_seed(1)
    b = torch.rand(2, 3, 20, 30, generator=gen, dtype=torch.float64)
    b_before = b.clone()
    flow_ab = torch.zeros(2, 2, 20, 30)
    flow_ab[:, 0], flow_ab[:, 1] = 3.0, -2.0  # a(p) = b(p + (3, -2))
    out = flow.warp(b, flow_ab)
    assert out.dtype == torch.float64
    # out(y, x) = b(y - 2, x + 3) wherever that is inside b.
    torch.testing.assert_close(out[:, :, 2:, :-3], b[:, :, :-2, 3:])
    inside = flow.in_frame_mask(flow_ab)
    assert inside.shape == (2, 1, 20, 30)
    assert inside[:, :, 2:, :-3].eq(1).all()
    assert inside[:, :, :2, :].eq(0).all() and inside[:, :, :, -3:].eq(0).all()
    # Border padding: out-of-frame samples repeat the edge pixel.
    torch.testing.assert_close(out[:, :, 0, 5], b[:, :, 0, 8])
    torch.testing.assert_close(b, b_before)  # input untouched

    # Pixel-centre convention: sampling exactly at x = W - 1 is in frame and exact.
    to_last = torch.zeros(1, 2, 20, 30)
    to_last[:, 0, :, 0] = 29.0
    torch.testing.assert_close(flow.warp(b[:1], to_last)[..., 0], b[:1, ..., 29])
    assert flow.in_frame_mask(to_last)[..., 0].eq(1).all()
    # Half-pixel shift interpolates linearly.
    half = torch.zeros(1, 2, 20, 30)
    half[:, 0] = 0.5
    torch.testing.assert_close(flow.warp(b[:1], half)[..., :-1], 0.5 * (b[:1, ..., :-1] + b[:1, ..., 1:]))

    with pytest.raises(ValueError, match="differ in N, H or W"):
        flow.warp(b, flow_ab[:, :, :-1])
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        flow.warp(b, flow_ab[:, :1])


# ----------------------------------------------------------------------------- known translation


@pytest.mark.parametrize("method,preset", [("dis", "ultrafast"), ("dis", "medium"), ("farneback", None)])
def test_known_translation_is_recovered_and_warping_aligns(photo_l, method, preset):
    dx, dy = 3, 2
    a, b = _shifted_pair(photo_l, dx, dy)
    a_before = a.clone()
    pair = flow.bidirectional_flow(a, b, method, preset)
    torch.testing.assert_close(a, a_before)

    core = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the borders
    fwd, bwd = pair.fwd[core], pair.bwd[core]
    assert abs(fwd[0, 0].median().item() - dx) < 0.25 and abs(fwd[0, 1].median().item() - dy) < 0.25
    assert abs(bwd[0, 0].median().item() + dx) < 0.25 and abs(bwd[0, 1].median().item() + dy) < 0.25

    img_a, img_b = color.l_to_gray(a), color.l_to_gray(b)
    raw = (img_a - img_b).pow(2)[core].mean()
    aligned = (img_a - flow.warp(img_b, pair.fwd)).pow(2)[core].mean()
    assert aligned < raw / 20

    # Pixels of a whose match p + (3, 2) leaves b (right 3 columns, bottom 2 rows) are
    # masked (Farneback underestimates the flow at the frame edge, so allow a few misses).
    assert pair.mask[..., -dy:, :].eq(0).all() and pair.mask[..., :, -2:].eq(0).all()
    assert pair.mask[..., :, -dx:].mean() < 0.1
    assert pair.mask[core].mean() > 0.9
    # E_warp of the pair drops accordingly.
    err = flow.pair_warping_error(img_a, img_b, a, b, method, preset)
    assert err.shape == (1,) and err.item() < raw.item() / 20


# ----------------------------------------------------------------------------- consistency


def test_consistency_mask_flags_out_of_frame_disocclusion_and_motion_boundaries():
    h, w = 40, 60
    fwd = torch.zeros(1, 2, h, w)
    fwd[:, 0] = 4.0
    bwd = -fwd.clone()
    fwd_before, bwd_before = fwd.clone(), bwd.clone()
    mask = flow.consistency_mask(fwd, bwd)
    assert torch.equal(fwd, fwd_before) and torch.equal(bwd, bwd_before)
    assert mask.shape == (1, 1, h, w) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask[..., :, -4:].eq(0).all()  # p + 4 beyond the last column
    assert mask[..., :, :-4].eq(1).all()

    # Frame b's pixels in columns 30-39 have a backward flow that does not lead back
    # (they were occluded): a's pixels landing there (columns 26-35) fail the round trip.
    bwd_occ = bwd.clone()
    bwd_occ[:, 0, :, 30:40] = 0.0
    mask_occ = flow.consistency_mask(fwd, bwd_occ)
    assert mask_occ[..., :, 26:36].eq(0).all()
    assert mask_occ[..., :, :26].eq(1).all() and mask_occ[..., :, 36:-4].eq(1).all()

    # A motion boundary (flow jumps from 0 to 4 px at column 20) is masked on both sides only.
    step = torch.zeros(1, 2, h, w)
    step[:, 0, :, 20:] = 4.0
    step_back = torch.zeros(1, 2, h, w)
    step_back[:, 0, :, 20:] = -4.0  # every round trip closes: only the gradient test can fire
    mask_step = flow.consistency_mask(step, step_back)
    assert mask_step[..., :, 19:21].eq(0).all()  # central differences see the jump at 19 and 20
    assert mask_step[..., :, :19].eq(1).all() and mask_step[..., :, 21:-4].eq(1).all()

    with pytest.raises(ValueError, match="differ"):
        flow.consistency_mask(fwd, bwd[..., :-1])


def test_consistency_mask_finds_region_covered_by_moving_object(photo_l):
    # A textured 32x32 patch moves 6 px right over a static background; in frame a the
    # background strip just right of the patch is covered in frame b (occluded).
    a, _ = _shifted_pair(photo_l, 0, 0)
    patch = photo_l[..., 0:32, 160:192].flip(-1)
    b = a.clone()
    a = a.clone()
    a[..., 30:62, 50:82] = patch
    b[..., 30:62, 56:88] = patch
    pair = flow.bidirectional_flow(a, b)
    covered = pair.mask[..., 34:58, 83:87]  # background columns 82-87 lie under the patch in b
    background = pair.mask[..., 70:, :]  # far from the patch
    assert covered.mean() < 0.25
    assert background.mean() > 0.9


# ----------------------------------------------------------------------------- scene cuts


def test_scene_cut_found_between_frames_35_and_36_only(video_gray, video_l_small):
    # Scores on the full 640x360 frames (cut_score shrinks them itself), in batches.
    scores = []
    for start in range(0, 71, 24):
        stop = min(start + 24, 71)
        prev = _gray_u8_to_l(video_gray[start:stop])
        nxt = _gray_u8_to_l(video_gray[start + 1:stop + 1])
        scores.append(cuts.cut_score(prev, nxt))
    score = torch.cat(scores)
    assert score.shape == (71,) and score.dtype == torch.float64
    found = (score > cuts.DEFAULT_CUT_THRESHOLD).nonzero().flatten().tolist()
    assert found == [CUT_AFTER], f"cuts after frames {found}; scores {score.numpy().round(3)}"
    inside = torch.cat([score[:CUT_AFTER], score[CUT_AFTER + 1:]])
    assert inside.max() < 0.1 and score[CUT_AFTER] > 0.6  # wide margin both sides

    # Single pairs of downscaled frames agree.
    small = video_l_small
    assert _is_cut(small[CUT_AFTER], small[CUT_AFTER + 1])
    assert not _is_cut(small[10], small[11])
    assert not _is_cut(small[60], small[61])


def test_scene_cut_found_even_when_histograms_match(video_l_small):
    # Give the first frame of shot 2 exactly the luminance histogram of the last frame
    # of shot 1 (rank-order remapping): only the flow cue can see the cut.
    last, first = video_l_small[CUT_AFTER], video_l_small[CUT_AFTER + 1]
    order = first.flatten().argsort()
    matched = torch.empty_like(first.flatten())
    matched[order] = last.flatten().sort().values
    matched = matched.view_as(first)
    parts = cuts.cut_scores(last, matched)
    assert parts.histogram.item() < 0.02
    assert parts.inconsistent.item() > 0.8
    assert _is_cut(last, matched)


def _is_cut(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(cuts.cut_score(a, b)[0] > cuts.DEFAULT_CUT_THRESHOLD)


def test_histogram_distance_range():
    ramp = torch.linspace(0, 100, 64 * 50).view(1, 1, 50, 64)
    assert cuts.histogram_distance(ramp, ramp).item() == pytest.approx(0.0, abs=1e-7)
    dark, bright = torch.full((1, 1, 8, 8), 5.0), torch.full((1, 1, 8, 8), 95.0)
    assert cuts.histogram_distance(dark, bright).item() == pytest.approx(1.0)
    hist = cuts.luminance_histogram(ramp)
    assert hist.shape == (1, 64) and hist.sum().item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- warping error


def _as_rgb(l: torch.Tensor) -> torch.Tensor:
    return color.l_to_gray(l).expand(-1, 3, -1, -1).clone()


def test_warping_error_lower_for_smooth_than_flickering_sequence(video_l_small):
    inputs = color.l_to_gray(video_l_small[:12])  # 12 frames of a slow pan, 90x160
    frames_l = color.rgb_to_l(inputs)  # the L measure_consistency takes from them
    smooth = _as_rgb(frames_l)
    gen = torch.Generator().manual_seed(0)
    gain = 1.0 + 0.08 * (torch.rand(12, 1, 1, 1, generator=gen) - 0.5)  # per-frame brightness flicker
    noise = 0.03 * torch.randn(12, 3, 90, 160, generator=gen)  # per-frame noise
    flicker = (smooth * gain + noise).clamp(0, 1)

    e_smooth = measure_consistency(iter(smooth.split(1)), iter(inputs.split(1))).e_warp  # streamed
    e_flicker = measure_consistency(iter(flicker.split(1)), iter(inputs.split(1))).e_warp
    assert e_smooth < 2e-4
    assert e_flicker > 5 * e_smooth

    # The accumulator gives the same mean and exposes every seam.
    meter = flow.WarpingError("dis", "medium")  # measure_consistency's default flow
    for t in range(11):
        meter.update(flicker[t], flicker[t + 1], frames_l[t], frames_l[t + 1])
    assert meter.count == 11 and len(meter.per_pair) == 11
    assert meter.value == pytest.approx(e_flicker, rel=1e-9)
    # A batch of pairs in one call matches pair-by-pair updates.
    batched = flow.WarpingError()
    per = batched.update(flicker[:-1], flicker[1:], frames_l[:-1], frames_l[1:])
    assert per.shape == (11,)
    assert batched.per_pair == pytest.approx(meter.per_pair, rel=1e-9)

    # One bad seam (frame 6 replaced by a different frame) shows up in pairs 5 and 6 only.
    seam = smooth.clone()
    seam[6] = _as_rgb(video_l_small[50:51])[0]
    seam_meter = flow.WarpingError()
    seam_meter.update(seam[:-1], seam[1:], frames_l[:-1], frames_l[1:])
    pairs = torch.tensor(seam_meter.per_pair)
    assert set(pairs.topk(2).indices.tolist()) == {5, 6}
    assert pairs[5] > 20 * torch.cat([pairs[:5], pairs[7:]]).max()


def test_warping_error_input_checks(video_l_small):
    frames_l = video_l_small[:3]
    rgb = _as_rgb(frames_l)
    gray = color.l_to_gray(frames_l)
    with pytest.raises(ValueError, match="at least two frames"):
        measure_consistency(rgb[:1].split(1), gray[:1].split(1))
    with pytest.raises(ValueError):
        measure_consistency(rgb.split(1), gray[:2].split(1))  # lengths differ
    with pytest.raises(ValueError, match="differ in N, H or W"):
        flow.pair_warping_error(rgb[:1, :, :-2], rgb[1:2, :, :-2], frames_l[0], frames_l[1])
    with pytest.raises(ValueError, match="no frame pairs"):
        flow.WarpingError().value
