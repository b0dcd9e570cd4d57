"""Image-quality metrics for colorized (or stylized) images against a colour reference.

Pure functions on numpy arrays: nothing here reads or writes files, and no function
modifies its inputs (every result is a new array or a Python float).

Input convention (every public function):
    An image is a numpy array of shape ``(H, W, 3)`` in sRGB channel order, either
    ``uint8`` (8-bit levels 0..255) or floating point (``float16``/``float32``/
    ``float64``) in ``[0, 1]``. It is converted once to ``float64`` in ``[0, 1]``
    (``uint8 / 255``); the two images of a pair may have different dtypes.
    A non-array raises ``TypeError``; any other dtype (``bool``, ``uint16``, ``int``...),
    another shape, floats outside ``[0, 1]`` or not finite, and two images of
    different shapes raise ``ValueError`` naming the problem.

Metric definitions (``pred`` is the image under test, ``ref`` the ground truth):
    * :func:`psnr` -- ``10 * log10(1 / MSE)`` in dB, MSE over all ``H * W * 3`` values
      on the ``[0, 1]`` scale (data range 1.0). This equals PSNR on 8-bit values with
      data range 255. Computed by ``skimage.metrics.peak_signal_noise_ratio``;
      identical images give ``math.inf``.
    * :func:`ssim` -- ``skimage.metrics.structural_similarity`` with the settings in
      :data:`SSIM_SETTINGS` (scikit-image's defaults, passed explicitly): a 7x7
      uniform window, sample covariance, K1 = 0.01, K2 = 0.03, ``data_range=1.0`` on
      the ``[0, 1]`` scale, computed per RGB channel and averaged
      (``channel_axis=-1``). Wang et al., "Image quality assessment: from error
      visibility to structural similarity", IEEE TIP 2004, with scikit-image's
      uniform window instead of the paper's 11x11 Gaussian.
    * :func:`mean_ab_error` -- mean over pixels of the Euclidean distance in the
      a*b* plane of CIE Lab (D65, :mod:`colorstyle_core.color`, which matches
      scikit-image's ``rgb2lab``): ``mean(sqrt((a_p - a_r)**2 + (b_p - b_r)**2))``,
      in Lab units. It ignores lightness, which a colorizer copies from its input.
    * :func:`colorfulness` -- Hasler & Suesstrunk, "Measuring colourfulness in
      natural images", SPIE 5007, 2003: with R, G, B on the 0..255 scale,
      ``rg = R - G``, ``yb = 0.5 * (R + G) - B``,
      ``M = sqrt(std(rg)**2 + std(yb)**2) + 0.3 * sqrt(mean(rg)**2 + mean(yb)**2)``
      (population standard deviations, over all pixels). A gray image scores 0.

Reports compare a colorizer with the "no colour" image :func:`gray_baseline`
(same L, a = b = 0); :func:`evaluate_pair` works on it like on any prediction.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from colorstyle_core.color import l_to_gray, rgb_to_l, rgb_to_lab

#: Keyword arguments given to ``skimage.metrics.structural_similarity`` by :func:`ssim`
#: (scikit-image's defaults, fixed here so a library upgrade cannot change them).
SSIM_SETTINGS: dict[str, Any] = {
    "win_size": 7,
    "gaussian_weights": False,
    "use_sample_covariance": True,
    "K1": 0.01,
    "K2": 0.03,
    "data_range": 1.0,
    "channel_axis": -1,
}

#: Default clamp of :func:`clamped_diff_map`, in 8-bit levels (32 levels -> full scale).
DEFAULT_DIFF_CLAMP = 32.0
#: Default clamp of :func:`ab_error_heatmap`, in Lab ab units.
DEFAULT_AB_CLAMP = 30.0


def _as_unit_float(img: Any, name: str) -> np.ndarray:
    """Validate one image and return it as a new ``(H, W, 3)`` float64 array in ``[0, 1]``."""
    if not isinstance(img, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"{name} must have shape (H, W, 3) with H, W >= 1, got {img.shape}")
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {img.dtype}")
    out = img.astype(np.float64)  # always a copy
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} is float but its values span [{lo:g}, {hi:g}], outside [0, 1]")
    return out


def _pair(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _as_unit_float(pred, "pred")
    r = _as_unit_float(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"shape mismatch: pred is {p.shape}, ref is {r.shape}")
    return p, r


def _to_nchw(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` float64 -> ``(1, 3, H, W)`` float64 tensor (a view of ``img``; callers pass their own copy)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _lab(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float64 sRGB in ``[0, 1]`` -> ``(H, W, 3)`` float64 Lab (D65)."""
    return rgb_to_lab(_to_nchw(img))[0].permute(1, 2, 0).numpy()


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio of ``pred`` against ``ref`` on RGB, in dB.

    ``10 * log10(1 / MSE)``, MSE over all ``H * W * 3`` values on the ``[0, 1]`` scale
    (data range 1.0; identical to 8-bit values with data range 255), computed by
    ``skimage.metrics.peak_signal_noise_ratio(ref, pred, data_range=1.0)``.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        PSNR in dB; ``math.inf`` when the images are identical (MSE = 0), returned
        without a floating-point warning.
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    return _psnr(*_pair(pred, ref))


def _psnr(p: np.ndarray, r: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio  # scipy: imported when first needed

    if np.array_equal(p, r):
        return math.inf
    return float(peak_signal_noise_ratio(r, p, data_range=1.0))


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean structural similarity of ``pred`` and ``ref``, averaged over R, G and B.

    ``skimage.metrics.structural_similarity(pred01, ref01, **SSIM_SETTINGS)`` on the
    images as float64 in ``[0, 1]``: 7x7 uniform window, sample covariance,
    K1 = 0.01, K2 = 0.03, data range 1.0, per channel then averaged. Equal (to
    floating-point rounding) to the same call on uint8 images with
    ``data_range=255``. Wang et al., IEEE TIP 2004.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``, H and W at least 7.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        SSIM in ``[-1, 1]``; 1.0 for identical images.
    Raises:
        TypeError, ValueError: see the module's input convention; ValueError also
            when H or W is smaller than the 7-pixel window.
    """
    return _ssim(*_pair(pred, ref))


def _ssim(p: np.ndarray, r: np.ndarray) -> float:
    from skimage.metrics import structural_similarity  # scipy: imported when first needed

    win = SSIM_SETTINGS["win_size"]
    if min(p.shape[:2]) < win:
        raise ValueError(f"ssim needs images of at least {win}x{win} pixels, got {p.shape[:2]}")
    return float(structural_similarity(p, r, **SSIM_SETTINGS))


def ab_error_map(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance in the a*b* plane of CIE Lab (D65).

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        ``(H, W)`` float64, ``sqrt((a_p - a_r)**2 + (b_p - b_r)**2)`` in Lab units
        (0 where the colours' a and b agree; at most about 253, between sRGB blue
        and green).
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    return _ab_error_map(*_pair(pred, ref))


def _ab_error_map(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    diff = _lab(p)[..., 1:] - _lab(r)[..., 1:]
    return np.sqrt((diff**2).sum(axis=-1))


def mean_ab_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean over pixels of :func:`ab_error_map`: the average a*b* distance in Lab units.

    Lightness is ignored: this measures colour (hue and chroma) error only.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        Mean ab distance, ``>= 0``; 0.0 for identical images.
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    return float(ab_error_map(pred, ref).mean())


def colorfulness(img: np.ndarray) -> float:
    """Hasler & Suesstrunk (SPIE 5007, 2003) colourfulness M of one image.

    With R, G, B on the 0..255 scale (float inputs are multiplied by 255, not
    rounded): ``rg = R - G``, ``yb = 0.5 * (R + G) - B`` per pixel, then
    ``M = sqrt(std(rg)**2 + std(yb)**2) + 0.3 * sqrt(mean(rg)**2 + mean(yb)**2)``
    with population (ddof = 0) standard deviations over all pixels.

    Args:
        img: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
    Returns:
        M, ``>= 0``; exactly 0.0 for an image with R = G = B everywhere. The authors
        rate about 15 "slightly", 33 "moderately", 45 "averagely", 59 "quite",
        82 "highly" and 109 "extremely" colourful.
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    return _colorfulness(_as_unit_float(img, "img"))


def _colorfulness(x01: np.ndarray) -> float:
    x = x01 * 255.0
    red, green, blue = x[..., 0], x[..., 1], x[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    sigma = math.hypot(float(rg.std()), float(yb.std()))
    mu = math.hypot(float(rg.mean()), float(yb.mean()))
    return sigma + 0.3 * mu


def gray_baseline(img: np.ndarray) -> np.ndarray:
    """The "no colour" image: the same CIE Lab lightness L with a = b = 0.

    Each pixel becomes the sRGB gray (R = G = B) whose L equals the input pixel's L
    (:func:`colorstyle_core.color.rgb_to_l` then :func:`~colorstyle_core.color.l_to_gray`).
    For a = b = 0 this is what a Lab -> sRGB conversion gives, with the D65 rounding
    that would tint it by about 1e-4 removed, so its colourfulness is exactly 0.

    Args:
        img: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
    Returns:
        A new ``(H, W, 3)`` array with R = G = B. uint8 in -> uint8 out (rounded to
        the nearest level, so L moves by at most 0.26: half a level where L is
        steepest, near L = 8); float in -> the same float
        dtype in ``[0, 1]`` (L preserved to float rounding).
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    x = _as_unit_float(img, "img")
    gray = l_to_gray(rgb_to_l(_to_nchw(x)))[0, 0].numpy()  # (H, W) float64 in [0, 1]
    out = np.repeat(gray[..., None], 3, axis=-1)
    if img.dtype == np.uint8:
        return np.rint(out * 255.0).astype(np.uint8)
    return out.astype(img.dtype)


@dataclass(frozen=True)
class ImageQuality:
    """Metrics of one predicted image against its colour reference.

    Attributes:
        psnr: :func:`psnr` in dB (``inf`` for identical images).
        ssim: :func:`ssim`, in ``[-1, 1]``.
        ab_error: :func:`mean_ab_error`, in Lab ab units.
        colorfulness_pred: :func:`colorfulness` of the prediction.
        colorfulness_ref: :func:`colorfulness` of the reference.
        delta_colorfulness: ``colorfulness_pred - colorfulness_ref`` (negative: the
            prediction is duller than the reference, as desaturated colorizers are).
    """

    psnr: float
    ssim: float
    ab_error: float
    colorfulness_pred: float
    colorfulness_ref: float
    delta_colorfulness: float


#: Field names of :class:`ImageQuality`, in order; the keys of :func:`aggregate`.
METRIC_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ImageQuality))


def evaluate_pair(pred: np.ndarray, ref: np.ndarray) -> ImageQuality:
    """All per-image metrics of ``pred`` against ``ref``.

    Use ``evaluate_pair(gray_baseline(ref), ref)`` for the "no colour" baseline.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``, H and W at least 7.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        An :class:`ImageQuality`.
    Raises:
        TypeError, ValueError: as :func:`psnr` and :func:`ssim`.
    """
    p, r = _pair(pred, ref)
    c_pred = _colorfulness(p)
    c_ref = _colorfulness(r)
    return ImageQuality(
        psnr=_psnr(p, r),
        ssim=_ssim(p, r),
        ab_error=float(_ab_error_map(p, r).mean()),
        colorfulness_pred=c_pred,
        colorfulness_ref=c_ref,
        delta_colorfulness=c_pred - c_ref,
    )


def aggregate(results: list[ImageQuality]) -> dict[str, dict[str, float]]:
    """Mean and median of every metric over a set of images.

    Args:
        results: one :class:`ImageQuality` per image (any order; not modified).
    Returns:
        ``{metric: {"mean": float, "median": float}}`` for every name in
        :data:`METRIC_NAMES`. An ``inf`` PSNR (an identical pair) makes the PSNR mean
        ``inf``; the median is ``inf`` only if at least half of the values are.
        The number of images is ``len(results)``.
    Raises:
        ValueError: if ``results`` is empty.
        TypeError: if an element is not an :class:`ImageQuality`.
    """
    if len(results) == 0:
        raise ValueError("aggregate needs at least one ImageQuality, got none")
    for i, item in enumerate(results):
        if not isinstance(item, ImageQuality):
            raise TypeError(f"results[{i}] is {type(item).__name__}, not ImageQuality")
    summary: dict[str, dict[str, float]] = {}
    for name in METRIC_NAMES:
        values = [float(getattr(item, name)) for item in results]
        summary[name] = {"mean": math.fsum(values) / len(values), "median": float(statistics.median(values))}
    return summary


def _level_diff(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``|pred - ref|`` on the 0..255 scale, float64 ``(H, W, 3)`` (exact integers for uint8 pairs)."""
    p, r = _pair(pred, ref)
    return np.abs(p - r) * 255.0


def _check_clamp(clamp: float, upper: float, unit: str) -> float:
    value = float(clamp)
    if not (math.isfinite(value) and 0.0 < value <= upper):
        raise ValueError(f"clamp must be in (0, {upper:g}] {unit}, got {clamp!r}")
    return value


def abs_diff_map(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Absolute per-pixel, per-channel RGB difference as an 8-bit image.

    ``rint(|pred - ref| * 255)`` with both images on the ``[0, 1]`` scale; for two
    uint8 images this is exactly ``|pred - ref|`` in integer levels.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
    Returns:
        ``(H, W, 3)`` uint8; all zeros for identical images.
    Raises:
        TypeError, ValueError: see the module's input convention.
    """
    return np.rint(_level_diff(pred, ref)).astype(np.uint8)


def clamped_diff_map(pred: np.ndarray, ref: np.ndarray, clamp: float = DEFAULT_DIFF_CLAMP) -> np.ndarray:
    """Absolute RGB difference, clipped at ``clamp`` levels and stretched to full scale.

    Per pixel and channel, with ``d = |pred - ref|`` in 8-bit levels (0..255):
    ``out = rint(min(d, clamp) * 255 / clamp)``. With the default ``clamp = 32`` a
    1-level error shows as 8 (7.97 rounded), 16 levels as 128, and every error of 32
    levels or more as 255, so small errors become visible. ``clamp = 255`` gives
    :func:`abs_diff_map`.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
        clamp: saturation point in 8-bit levels, ``0 < clamp <= 255``.
    Returns:
        ``(H, W, 3)`` uint8; all zeros for identical images.
    Raises:
        TypeError, ValueError: see the module's input convention; ValueError also for
            a ``clamp`` outside ``(0, 255]``.
    """
    c = _check_clamp(clamp, 255.0, "8-bit levels")
    d = _level_diff(pred, ref)
    return np.rint(np.minimum(d, c) * (255.0 / c)).astype(np.uint8)


def ab_error_heatmap(pred: np.ndarray, ref: np.ndarray, clamp: float = DEFAULT_AB_CLAMP) -> np.ndarray:
    """Single-channel map of the colour error: :func:`ab_error_map` clipped and stretched.

    ``out = rint(min(e, clamp) * 255 / clamp)`` with ``e`` the per-pixel a*b* distance
    in Lab units. Lightness errors do not show. Apply a colormap at the edge
    (e.g. matplotlib's) for a false-colour heat map.

    Args:
        pred: ``(H, W, 3)`` uint8 or float in ``[0, 1]``.
        ref: same shape as ``pred``; uint8 or float in ``[0, 1]``.
        clamp: ab distance shown as 255, ``0 < clamp <= 300``; default 30.
    Returns:
        ``(H, W)`` uint8; all zeros for identical images.
    Raises:
        TypeError, ValueError: see the module's input convention; ValueError also for
            a ``clamp`` outside ``(0, 300]``.
    """
    c = _check_clamp(clamp, 300.0, "Lab ab units")
    e = ab_error_map(pred, ref)
    return np.rint(np.minimum(e, c) * (255.0 / c)).astype(np.uint8)

