"""CDC (TCVC) and a video's colourfulness against independent implementations of their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference_metrics import hasler_colourfulness, tcvc_cdc

from colorstyle_core.video_metrics import CdcAccumulator, channel_histograms, js_divergence, measure_consistency


def _cdc(frames: list[np.ndarray], cuts=()) -> float:
    acc = CdcAccumulator()
    for f in frames:
        acc.add(f)
    return acc.result(cuts)


def test_histograms_are_normalised_per_channel():
    frame = np.zeros((2, 4, 3), np.uint8)
    frame[0, :, 1] = 255
    h = channel_histograms(frame)
    assert h.shape == (3, 256) and np.allclose(h.sum(axis=1), 1.0)
    assert h[0, 0] == 1.0 and h[1, 0] == 0.5 and h[1, 255] == 0.5


def test_js_divergence_of_known_histograms():
    p = np.zeros(256)
    p[0] = 1.0
    q = np.zeros(256)
    q[0] = q[255] = 0.5  # m = (0.75, 0.25): JS = (ln(4/3) + 0.5 ln(2/3) + 0.5 ln 2) / 2
    expected = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert float(js_divergence(p, q)) == pytest.approx(expected, rel=1e-12)
    disjoint = np.zeros(256)
    disjoint[7] = 1.0
    assert float(js_divergence(p, disjoint)) == pytest.approx(math.log(2), rel=1e-12)  # the bound
    assert float(js_divergence(p, p)) == 0.0


def test_identical_frames_have_cdc_zero():
    frame = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    assert _cdc([frame] * 8) == 0.0


def test_cdc_equals_the_reference_definition():
    rng = np.random.default_rng(1)
    frames = []
    for t in range(11):  # a drifting colour cast over noise: histograms that move frame to frame
        base = rng.integers(0, 200, (24, 32, 3)).astype(np.int64)
        frames.append(np.clip(base + np.array([3 * t, 0, -2 * t]) + 10, 0, 255).astype(np.uint8))
    assert _cdc(frames) == pytest.approx(tcvc_cdc(frames), rel=1e-12)


def test_pairs_across_a_cut_are_left_out_of_cdc_without_cuts():
    rng = np.random.default_rng(2)
    shot_a = [rng.integers(0, 60, (8, 8, 3), dtype=np.uint8) for _ in range(6)]
    shot_b = [rng.integers(180, 256, (8, 8, 3), dtype=np.uint8) for _ in range(6)]
    frames = shot_a + shot_b
    with_cut = _cdc(frames)
    without = _cdc(frames, cuts=[6])
    # left out: every pair (i, i + t) with i < 6 <= i + t; the rest is each shot's own
    acc = CdcAccumulator()
    for f in frames:
        acc.add(f)
    assert without < with_cut
    kept = {d: [k for k in range(12 - d) if not k < 6 <= k + d] for d in (1, 2, 4)}
    expected = np.mean([sum(np.mean([tcvc_pair(frames, k, d, c) for k in kept[d]]) / 3 for d in (1, 2, 4))
                        for c in range(3)])
    assert without == pytest.approx(float(expected), rel=1e-12)


def tcvc_pair(frames, k, d, c) -> float:
    from reference_metrics import _js

    def hist(f):
        return np.histogram(f[..., c], bins=256, range=(0, 256))[0] / (f.shape[0] * f.shape[1])

    return _js(hist(frames[k]), hist(frames[k + d]))


def test_a_video_too_short_for_the_longest_distance_has_no_cdc():
    frames = [np.zeros((4, 4, 3), np.uint8)] * 4  # no pair 4 apart
    assert math.isnan(_cdc(frames))


def test_measure_consistency_reports_cdc_and_colourfulness_of_output_and_input():
    rng = np.random.default_rng(3)
    ramp = np.linspace(0.2, 0.8, 32, dtype=np.float32)[None, None, None, :].repeat(32, axis=2)
    grey = torch.from_numpy(np.clip(ramp + rng.normal(0, 0.01, (6, 1, 32, 32)), 0, 1).astype(np.float32))
    tint = torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    colour = (grey.expand(-1, 3, -1, -1) * tint).clamp(0, 1)
    result = measure_consistency(colour.split(1), grey.split(1), workers=1)
    frames = [(f[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for f in colour.split(1)]
    assert result.cdc == pytest.approx(tcvc_cdc(frames), rel=1e-12)
    assert result.colourfulness == pytest.approx(np.mean([hasler_colourfulness(f) for f in frames]), rel=1e-12)
    assert result.input_colourfulness == 0.0  # a grey film
    assert result.cdc_without_cuts == result.cdc  # no cut in a still shot
    assert math.isnan(result.reference_cdc) and math.isnan(result.reference_colourfulness)
