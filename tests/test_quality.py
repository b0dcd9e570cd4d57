"""Tests for colorstyle_core.quality: metrics checked against independent computations.

Real photographs come from the shared test data (``$COLORSTYLE_SHARED/data``, default
``<repo>/../shared/data``): ``color/*.jpg`` is the ground truth, ``gray/*.jpg`` the
grayscale copy of the same photo. Tests needing them skip when they are absent.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import uniform_filter
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from colorstyle_core import quality as q

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLORSTYLE_SHARED", REPO.parent / "shared"))
COLOR_DIR = SHARED / "data" / "color"
GRAY_DIR = SHARED / "data" / "gray"
PHOTO_NAMES = ("coffee", "chelsea_cat", "yellow_flower", "astronaut")


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


@pytest.fixture(scope="module")
def photos() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (colour uint8 (H, W, 3), gray copy as uint8 (H, W, 3) with R = G = B)``."""
    pairs = {}
    for name in PHOTO_NAMES:
        color, gray = COLOR_DIR / f"{name}.jpg", GRAY_DIR / f"{name}.jpg"
        if not (color.is_file() and gray.is_file()):
            pytest.skip(
                f"shared test photos missing: need {color} and {gray} "
                "(set COLORSTYLE_SHARED to the folder that holds data/color and data/gray)"
            )
        pairs[name] = (_load(color), _load(gray))
    return pairs


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """uint8 image plus rounded Gaussian noise (std ``sigma`` levels), clipped to 0..255."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, img.shape)
    return np.clip(np.rint(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)


def _psnr_numpy(pred: np.ndarray, ref: np.ndarray) -> float:
    """PSNR on 8-bit levels written out: 10 log10(255^2 / MSE)."""
    mse = np.mean((pred.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return 10.0 * math.log10(255.0**2 / mse)


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM written out (Wang et al. 2004) with the module's documented settings:
    7x7 uniform window, sample covariance, K1 = 0.01, K2 = 0.03, data range 255,
    mean over the window-valid interior of each channel, then over channels."""
    k1, k2, win, data_range = 0.01, 0.03, 7, 255.0
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    n = win * win
    cov_norm = n / (n - 1)
    pad = (win - 1) // 2
    per_channel = []
    for ch in range(3):
        a = x[..., ch].astype(np.float64)
        b = y[..., ch].astype(np.float64)
        ux, uy = uniform_filter(a, win), uniform_filter(b, win)
        vx = cov_norm * (uniform_filter(a * a, win) - ux * ux)
        vy = cov_norm * (uniform_filter(b * b, win) - uy * uy)
        vxy = cov_norm * (uniform_filter(a * b, win) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        per_channel.append(s[pad:-pad, pad:-pad].mean())
    return float(np.mean(per_channel))


def _colorfulness_numpy(img: np.ndarray) -> float:
    """Hasler & Suesstrunk 2003 on 0..255 values, written out."""
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return math.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)


def _checkerboard(c0: tuple[int, int, int], c1: tuple[int, int, int], size: int = 8) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy + xx) % 2).astype(bool)
    img = np.empty((size, size, 3), np.uint8)
    img[~mask] = c0
    img[mask] = c1
    return img


# --- PSNR -------------------------------------------------------------------------


def test_psnr_matches_numpy_formula_on_real_photos(photos):
    for name, (color, gray) in photos.items():
        noisy = _noisy(color, 6.0, seed=1)
        for pred in (gray, noisy):
            assert q.psnr(pred, color) == pytest.approx(_psnr_numpy(pred, color), rel=1e-12), name
        # the gray copy is far worse than a lightly noised colour image
        assert q.psnr(gray, color) < q.psnr(noisy, color)


def test_psnr_float_input_equals_uint8_input(photos):
    color, gray = photos["coffee"]
    expected = _psnr_numpy(gray, color)
    assert q.psnr(gray.astype(np.float32) / 255, color) == pytest.approx(expected, rel=1e-6)
    assert q.psnr(gray / 255.0, color / 255.0) == pytest.approx(expected, rel=1e-12)


def test_psnr_of_identical_images_is_inf_without_warning(photos):
    color, _ = photos["coffee"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert q.psnr(color, color.copy()) == math.inf


def test_psnr_known_value():
    ref = np.zeros((4, 4, 3), np.uint8)
    pred = np.full((4, 4, 3), 1, np.uint8)  # MSE = 1 level^2
    assert q.psnr(pred, ref) == pytest.approx(20 * math.log10(255.0), rel=1e-12)


# --- SSIM -------------------------------------------------------------------------


def test_ssim_matches_skimage_on_uint8_with_documented_settings(photos):
    for name, (color, gray) in photos.items():
        for pred in (gray, _noisy(color, 10.0, seed=2)):
            expected = structural_similarity(
                pred,
                color,
                channel_axis=-1,
                data_range=255,
                win_size=7,
                gaussian_weights=False,
                use_sample_covariance=True,
                K1=0.01,
                K2=0.03,
            )
            assert q.ssim(pred, color) == pytest.approx(expected, abs=1e-9), name


def test_ssim_matches_written_out_formula(photos):
    color, gray = photos["chelsea_cat"]
    crop = (slice(40, 200), slice(60, 260))
    pred, ref = gray[crop], color[crop]
    assert q.ssim(pred, ref) == pytest.approx(_ssim_numpy(pred, ref), abs=1e-9)


def test_ssim_identity_and_order(photos):
    color, gray = photos["yellow_flower"]
    assert q.ssim(color, color.copy()) == pytest.approx(1.0, abs=1e-12)
    noisy = _noisy(color, 4.0, seed=3)
    assert q.ssim(gray, color) < q.ssim(noisy, color) < 1.0


def test_ssim_rejects_images_smaller_than_window():
    img = np.zeros((6, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 7x7"):
        q.ssim(img, img)


# --- colourfulness ----------------------------------------------------------------


def test_colorfulness_of_gray_images_is_zero(photos):
    assert q.colorfulness(np.full((16, 16, 3), 128, np.uint8)) == 0.0
    assert q.colorfulness(np.zeros((5, 5, 3))) == 0.0
    _, gray = photos["coffee"]
    assert q.colorfulness(gray) == 0.0


def test_colorfulness_red_green_checkerboard_hand_value():
    # red: rg = 255, yb = 127.5; green: rg = -255, yb = 127.5 (half the pixels each)
    # std(rg) = 255, std(yb) = 0, mean(rg) = 0, mean(yb) = 127.5 -> M = 255 + 0.3 * 127.5
    board = _checkerboard((255, 0, 0), (0, 255, 0))
    assert q.colorfulness(board) == pytest.approx(293.25, abs=1e-12)
    assert q.colorfulness(board / 255.0) == pytest.approx(293.25, abs=1e-9)


def test_colorfulness_uniform_red_hand_value():
    # no spread, mean (rg, yb) = (255, 127.5) -> M = 0.3 * hypot(255, 127.5)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert q.colorfulness(red) == pytest.approx(0.3 * math.hypot(255.0, 127.5), rel=1e-12)


def test_colorfulness_matches_numpy_formula_on_real_photos(photos):
    for name, (color, _) in photos.items():
        assert q.colorfulness(color) == pytest.approx(_colorfulness_numpy(color), rel=1e-12), name


# --- gray baseline ----------------------------------------------------------------


def test_gray_baseline_keeps_l_and_zeroes_ab_uint8(photos):
    for name, (color, _) in photos.items():
        base = q.gray_baseline(color)
        assert base.dtype == np.uint8 and base.shape == color.shape
        assert np.array_equal(base[..., 0], base[..., 1]) and np.array_equal(base[..., 1], base[..., 2])
        lab_base, lab_ref = rgb2lab(base), rgb2lab(color)
        assert np.abs(lab_base[..., 1:]).max() < 0.01, name
        # rounding to 8-bit levels moves L by at most half a level's worth (< 0.3)
        assert np.abs(lab_base[..., 0] - lab_ref[..., 0]).max() < 0.3, name


def test_gray_baseline_keeps_l_exactly_for_float_input(photos):
    color, _ = photos["astronaut"]
    x = color.astype(np.float32) / 255
    base = q.gray_baseline(x)
    assert base.dtype == np.float32 and base.shape == x.shape
    assert base.min() >= 0.0 and base.max() <= 1.0
    lab_base, lab_ref = rgb2lab(base.astype(np.float64)), rgb2lab(x.astype(np.float64))
    assert np.abs(lab_base[..., 0] - lab_ref[..., 0]).max() < 1e-3
    assert np.abs(lab_base[..., 1:]).max() < 0.01


def test_gray_baseline_is_less_colourful_than_the_photo(photos):
    for name, (color, _) in photos.items():
        c_photo = q.colorfulness(color)
        assert c_photo > 10.0, name  # these are colour photos
        assert q.colorfulness(q.gray_baseline(color)) == 0.0 < c_photo


def test_gray_baseline_of_gray_image_is_itself():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    gray = np.repeat(levels[..., None], 3, axis=-1)
    base = q.gray_baseline(gray)
    assert np.abs(base.astype(int) - gray.astype(int)).max() == 0


# --- ab error ---------------------------------------------------------------------


def test_ab_error_of_image_with_itself_is_zero(photos):
    color, _ = photos["coffee"]
    assert q.mean_ab_error(color, color.copy()) == 0.0
    assert not q.ab_error_map(color, color).any()


def test_ab_error_matches_skimage_lab(photos):
    color, _ = photos["yellow_flower"]
    noisy = _noisy(color, 8.0, seed=4)
    lab_p, lab_r = rgb2lab(noisy), rgb2lab(color)
    expected_map = np.hypot(lab_p[..., 1] - lab_r[..., 1], lab_p[..., 2] - lab_r[..., 2])
    got = q.ab_error_map(noisy, color)
    assert got.shape == color.shape[:2] and got.dtype == np.float64
    np.testing.assert_allclose(got, expected_map, atol=1e-6)
    assert q.mean_ab_error(noisy, color) == pytest.approx(expected_map.mean(), abs=1e-6)
    assert q.mean_ab_error(color, noisy) == pytest.approx(q.mean_ab_error(noisy, color), abs=1e-12)


def test_ab_error_of_gray_baseline_is_mean_chroma(photos):
    for name, (color, _) in photos.items():
        lab = rgb2lab(color)
        mean_chroma = np.hypot(lab[..., 1], lab[..., 2]).mean()
        assert q.mean_ab_error(q.gray_baseline(color), color) == pytest.approx(mean_chroma, abs=0.01), name


# --- evaluate_pair / aggregate ----------------------------------------------------


def test_evaluate_pair_fields_match_the_individual_metrics(photos):
    color, gray = photos["chelsea_cat"]
    res = q.evaluate_pair(gray, color)
    assert res.psnr == pytest.approx(_psnr_numpy(gray, color), rel=1e-12)
    assert res.ssim == pytest.approx(q.ssim(gray, color), abs=1e-12)
    assert res.ab_error == pytest.approx(q.mean_ab_error(gray, color), abs=1e-12)
    assert res.colorfulness_pred == 0.0
    assert res.colorfulness_ref == pytest.approx(_colorfulness_numpy(color), rel=1e-12)
    assert res.delta_colorfulness == pytest.approx(res.colorfulness_pred - res.colorfulness_ref, abs=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.psnr = 0.0  # type: ignore[misc]


def test_baseline_scores_below_a_close_prediction(photos):
    color, _ = photos["coffee"]
    baseline = q.evaluate_pair(q.gray_baseline(color), color)
    close = q.evaluate_pair(_noisy(color, 3.0, seed=5), color)
    assert math.isfinite(baseline.psnr) and baseline.psnr < close.psnr
    assert baseline.ssim < close.ssim
    assert baseline.ab_error > close.ab_error
    assert baseline.delta_colorfulness == pytest.approx(-baseline.colorfulness_ref)
    assert abs(close.delta_colorfulness) < abs(baseline.delta_colorfulness)


def _iq(v: float) -> q.ImageQuality:
    return q.ImageQuality(
        psnr=v, ssim=v / 10, ab_error=2 * v, colorfulness_pred=v, colorfulness_ref=1.0, delta_colorfulness=v - 1
    )


def test_aggregate_mean_and_median():
    items = [_iq(1.0), _iq(2.0), _iq(6.0)]
    agg = q.aggregate(items)
    assert set(agg) == set(q.METRIC_NAMES) == {f.name for f in dataclasses.fields(q.ImageQuality)}
    assert agg["psnr"] == {"mean": pytest.approx(3.0), "median": 2.0}
    assert agg["ssim"]["mean"] == pytest.approx(0.3) and agg["ssim"]["median"] == pytest.approx(0.2)
    assert agg["ab_error"] == {"mean": pytest.approx(6.0), "median": 4.0}
    assert agg["colorfulness_ref"] == {"mean": 1.0, "median": 1.0}
    assert agg["delta_colorfulness"] == {"mean": pytest.approx(2.0), "median": 1.0}
    even = q.aggregate([_iq(1.0), _iq(4.0)])
    assert even["psnr"]["median"] == 2.5


def test_aggregate_inf_psnr_and_errors():
    agg = q.aggregate([_iq(10.0), _iq(20.0), dataclasses.replace(_iq(30.0), psnr=math.inf)])
    assert agg["psnr"]["mean"] == math.inf and agg["psnr"]["median"] == 20.0
    with pytest.raises(ValueError, match="at least one"):
        q.aggregate([])
    with pytest.raises(TypeError, match="ImageQuality"):
        q.aggregate([{"psnr": 1.0}])  # type: ignore[list-item]


# --- diff maps --------------------------------------------------------------------


def test_diff_maps_of_identical_images_are_zero(photos):
    color, _ = photos["astronaut"]
    for m in (q.abs_diff_map(color, color), q.clamped_diff_map(color, color)):
        assert m.shape == color.shape and m.dtype == np.uint8 and not m.any()
    heat = q.ab_error_heatmap(color, color)
    assert heat.shape == color.shape[:2] and heat.dtype == np.uint8 and not heat.any()


def test_abs_diff_map_is_exact_for_uint8(photos):
    color, gray = photos["coffee"]
    expected = np.abs(gray.astype(np.int16) - color.astype(np.int16)).astype(np.uint8)
    assert np.array_equal(q.abs_diff_map(gray, color), expected)
    assert np.array_equal(q.abs_diff_map(color, gray), expected)
    assert np.array_equal(q.abs_diff_map(gray / 255.0, color.astype(np.float32) / 255), expected)


def test_clamped_diff_map_clips_and_stretches():
    diffs = np.array([0, 1, 16, 31, 32, 33, 100, 255], np.uint8)
    ref = np.zeros((1, diffs.size, 3), np.uint8)
    pred = np.repeat(diffs[None, :, None], 3, axis=-1)
    got = q.clamped_diff_map(pred, ref)  # default clamp 32: rint(min(d, 32) * 255 / 32)
    assert got.shape == pred.shape and got.dtype == np.uint8
    assert got[0, :, 0].tolist() == [0, 8, 128, 247, 255, 255, 255, 255]
    assert got[0, :, 2].tolist() == got[0, :, 0].tolist()
    assert q.clamped_diff_map(pred, ref, clamp=4)[0, :, 1].tolist() == [0, 64, 255, 255, 255, 255, 255, 255]
    assert np.array_equal(q.clamped_diff_map(pred, ref, clamp=255), q.abs_diff_map(pred, ref))
    for bad in (0, -1, 256, math.nan):
        with pytest.raises(ValueError, match="clamp"):
            q.clamped_diff_map(pred, ref, clamp=bad)


def test_clamped_diff_map_on_photos_saturates_more_than_abs(photos):
    color, gray = photos["chelsea_cat"]
    plain, clamped = q.abs_diff_map(gray, color), q.clamped_diff_map(gray, color)
    assert np.array_equal(clamped == 0, plain == 0)  # same zero set
    assert (clamped >= plain).all()  # stretching never darkens a pixel


def test_ab_error_heatmap_clips_and_stretches():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    base = q.gray_baseline(red)  # |ab| of pure red is about 104.6 Lab units
    assert (q.ab_error_heatmap(base, red) == 255).all()  # above the default 30
    e = q.ab_error_map(base, red)
    expected = np.rint(np.minimum(e, 200.0) * 255 / 200.0).astype(np.uint8)
    assert np.array_equal(q.ab_error_heatmap(base, red, clamp=200.0), expected)
    assert 120 < int(expected[0, 0]) < 140
    with pytest.raises(ValueError, match="clamp"):
        q.ab_error_heatmap(base, red, clamp=0)


# --- input validation and purity --------------------------------------------------

PAIR_FUNCS = (
    q.psnr,
    q.ssim,
    q.mean_ab_error,
    q.ab_error_map,
    q.evaluate_pair,
    q.abs_diff_map,
    q.clamped_diff_map,
    q.ab_error_heatmap,
)
ONE_FUNCS = (q.colorfulness, q.gray_baseline)


@pytest.mark.parametrize("func", PAIR_FUNCS)
def test_pair_functions_reject_shape_mismatch(func):
    a = np.zeros((16, 16, 3), np.uint8)
    b = np.zeros((16, 17, 3), np.uint8)
    with pytest.raises(ValueError, match="shape mismatch"):
        func(a, b)


@pytest.mark.parametrize("func", PAIR_FUNCS)
def test_pair_functions_reject_bad_inputs(func):
    good = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="dtype uint16"):
        func(good.astype(np.uint16), good)
    with pytest.raises(ValueError, match="dtype bool"):
        func(good, good.astype(bool))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        func(good.astype(np.float32) + 2.0, good)
    with pytest.raises(ValueError, match="NaN"):
        func(np.full((16, 16, 3), np.nan), good)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        func(good[..., 0], good[..., 0])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        func(np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        func(good.tolist(), good)


@pytest.mark.parametrize("func", ONE_FUNCS)
def test_single_image_functions_reject_bad_inputs(func):
    with pytest.raises(ValueError, match="dtype int64"):
        func(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        func(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        func(np.full((4, 4, 3), -0.5))


def test_functions_do_not_modify_inputs(photos):
    color, gray = photos["coffee"]
    pred_f = gray[:64, :64].astype(np.float32) / 255
    ref_u8 = color[:64, :64].copy()
    keep_p, keep_r = pred_f.copy(), ref_u8.copy()
    pred_f.flags.writeable = False
    ref_u8.flags.writeable = False
    for func in PAIR_FUNCS:
        func(pred_f, ref_u8)
        func(ref_u8, pred_f)
    for func in ONE_FUNCS:
        out = func(ref_u8)
        func(pred_f)
    assert out is not ref_u8
    assert np.array_equal(pred_f, keep_p) and np.array_equal(ref_u8, keep_r)
