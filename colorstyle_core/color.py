"""sRGB <-> CIE Lab conversions on batched torch tensors.

Pure math: every function takes tensors of shape ``(N, C, H, W)`` on any device,
returns new tensors on the same device, never modifies its inputs and does no I/O.

Conventions follow scikit-image's ``rgb2lab``/``lab2rgb``, which the colorization
authors' demo uses (Zhang et al. 2016, ``colorizers/util.py``): sRGB primaries,
D65 white point, 2 degree observer, CIE 1976 L*a*b* with the 0.008856 / 7.787
linear segment. L is in ``[0, 100]``; a and b are roughly ``[-110, 110]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from colorstyle_core.devices import eager_only

# Linear sRGB -> XYZ (D65), the matrix scikit-image and the authors use.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856  # (6/29)^3, rounded as in the references
_KAPPA_SLOPE = 7.787  # 1/3 * (29/6)^2, rounded as in the references
_F_THRESHOLD = 0.2068966  # 6/29
_F_OFFSET = 16.0 / 116.0

GamutMode = Literal["preserve-l", "clip"]
GamutSolver = Callable[[Tensor, Tensor], Tensor]
"""``(P, 3)`` linear RGB and ``(P, 1)`` luminance -> ``(P, 3)``: :func:`nearest_at_luminance` or a compiled copy."""


def _matrix(rows: tuple[tuple[float, ...], ...], like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(device=like.device, dtype=like.dtype)


def _rgb_from_xyz(like: Tensor) -> Tensor:
    inv = torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64))
    return inv.to(device=like.device, dtype=like.dtype)


def _apply_matrix(m: Tensor, x: Tensor) -> Tensor:
    """Multiply every pixel's 3-vector: ``(3, 3) @ (N, 3, H, W)``."""
    return torch.einsum("ij,njhw->nihw", m, x)


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve (IEC 61966-2-1).

    Args:
        rgb: ``(N, C, H, W)`` float, gamma-encoded sRGB in ``[0, 1]``.
    Returns:
        Linear-light values, same shape and dtype.
    """
    return torch.where(rgb > 0.04045, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(lin: Tensor) -> Tensor:
    """Apply the sRGB transfer curve; inverse of :func:`srgb_to_linear` (no clipping)."""
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, lin * 12.92)


def _f(t: Tensor) -> Tensor:
    return torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1 / 3), _KAPPA_SLOPE * t + _F_OFFSET)


def _f_inv(f: Tensor) -> Tensor:
    return torch.where(f > _F_THRESHOLD, f**3, (f - _F_OFFSET) / _KAPPA_SLOPE)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB to CIE Lab (D65).

    Args:
        rgb: ``(N, 3, H, W)`` float32/float64 sRGB in ``[0, 1]``.
    Returns:
        ``(N, 3, H, W)`` same dtype: L in ``[0, 100]``, a and b about ``[-110, 110]``.
    Raises:
        ValueError: if the channel dimension is not 3.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb_to_lab expects (N, 3, H, W), got {tuple(rgb.shape)}")
    xyz = _apply_matrix(_matrix(_XYZ_FROM_RGB, rgb), srgb_to_linear(rgb))
    white = torch.tensor(D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(dim=1)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def rgb_to_l(rgb: Tensor) -> Tensor:
    """Lab lightness of sRGB or gray images, computing only what L needs.

    Args:
        rgb: ``(N, 3, H, W)`` sRGB or ``(N, 1, H, W)`` gray (R = G = B), float in ``[0, 1]``.
    Returns:
        ``(N, 1, H, W)`` L in ``[0, 100]``, same dtype.
    """
    if rgb.ndim != 4 or rgb.shape[1] not in (1, 3):
        raise ValueError(f"rgb_to_l expects (N, 1|3, H, W), got {tuple(rgb.shape)}")
    lin = srgb_to_linear(rgb)
    if rgb.shape[1] == 3:
        row = torch.tensor(_XYZ_FROM_RGB[1], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        y = (lin * row).sum(dim=1, keepdim=True)
    else:
        y = lin * sum(_XYZ_FROM_RGB[1])  # the Y row sums to 1: gray has Y = linear value
    return 116.0 * _f(y) - 16.0


def l_to_gray(lightness: Tensor) -> Tensor:
    """The sRGB gray level whose Lab lightness is ``lightness``.

    Args:
        lightness: ``(N, 1, H, W)`` L in ``[0, 100]``.
    Returns:
        ``(N, 1, H, W)`` gamma-encoded gray in ``[0, 1]``.
    """
    y = _f_inv((lightness.clamp(0.0, 100.0) + 16.0) / 116.0)
    return linear_to_srgb(y).clamp(0.0, 1.0)


def _lab_to_linear_rgb(lab: Tensor, clip_fz: bool) -> Tensor:
    lightness, a, b = lab.unbind(dim=1)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    if clip_fz:  # scikit-image sets f(Z) < 0 to 0 before inverting (authors' pipeline)
        fz = fz.clamp_min(0.0)
    white = torch.tensor(D65_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    xyz = _f_inv(torch.stack((fx, fy, fz), dim=1)) * white
    return _apply_matrix(_rgb_from_xyz(lab), xyz)


def _out_of_gamut(lin: Tensor) -> Tensor:
    return ((lin < 0) | (lin > 1)).any(dim=1)


def in_gamut(lab: Tensor) -> Tensor:
    """Whether each Lab colour exists in sRGB (no channel of its linear RGB outside ``[0, 1]``).

    Args:
        lab: ``(N, 3, H, W)`` float Lab.
    Returns:
        ``(N, H, W)`` bool.
    """
    return ~_out_of_gamut(_lab_to_linear_rgb(lab, clip_fz=True))


def project_to_gamut(lab: Tensor, *, solver: GamutSolver | None = None) -> Tensor:
    """Linear sRGB of Lab colours, out-of-gamut ones moved into sRGB at constant lightness.

    An out-of-gamut colour ``t`` (linear RGB, as scikit-image computes it) is replaced by
    the point of the sRGB cube nearest to it among those with the same luminance Y, i.e.
    the same L: ``x = clamp(t - lambda * w, 0, 1)`` with ``w`` the Y row of the sRGB
    matrix and ``lambda`` solving ``w . x = Y(L)`` (a decreasing piecewise-linear function
    of ``lambda``, solved exactly between its six breakpoints). In-gamut colours are left
    alone, so the result equals scikit-image's ``lab2rgb`` wherever that keeps L, and is
    as close to its per-channel clipping as the fixed L allows elsewhere.

    Args:
        lab: ``(N, 3, H, W)`` float Lab, L in ``[0, 100]``.
        solver: computes :func:`nearest_at_luminance` for the out-of-gamut pixels (default:
            that function, eagerly; ``execution.compile_colour`` passes a compiled one).
    Returns:
        ``(N, 3, H, W)`` linear sRGB in ``[0, 1]``, same dtype and device, luminance = ``Y(L)``.
    """
    lin = _lab_to_linear_rgb(lab, clip_fz=True)
    outside = _out_of_gamut(lin)
    y = _f_inv((lab[:, :1].clamp(0.0, 100.0) + 16.0) / 116.0)  # (N, 1, H, W) luminance Y of L
    return _move_outside(lin, y, outside, solver or nearest_at_luminance)


@eager_only  # data-dependent (only the pixels outside sRGB): always eager, also in compiled callers
def _move_outside(lin: Tensor, y: Tensor, outside: Tensor, solver: GamutSolver) -> Tensor:
    """Move the ``outside`` (``(N, H, W)`` bool) pixels of ``lin`` (``(N, 3, H, W)``) to ``solver``'s answer."""
    lin = lin.contiguous()  # written in place through a view below (a no-op for the usual, contiguous lin)
    n, _, h, w = lin.shape
    index = outside.reshape(-1).nonzero().squeeze(1)  # (P,) over N * H * W
    if index.numel() == 0:
        return lin
    image, pixel = index // (h * w), index % (h * w)
    flat = lin.view(n, 3, h * w)  # planar: each channel gathered from contiguous rows
    flat[image, :, pixel] = solver(flat[image, :, pixel], y.reshape(n, h * w)[image, pixel][:, None])
    return lin


def nearest_at_luminance(t: Tensor, y: Tensor) -> Tensor:
    """The point of the sRGB cube nearest to ``t`` with luminance ``y``: ``clamp(t - lambda * w, 0, 1)``.

    ``g(lambda) = w . clamp(t - lambda * w, 0, 1) - y`` is piecewise linear and non-increasing with
    breakpoints ``t_c / w_c`` and ``(t_c - 1) / w_c``; the root lies between the largest breakpoint
    with ``g > 0`` and the smallest with ``g <= 0`` (neighbours, as ``g`` never increases), where
    ``g`` is linear. Masked reductions over the six breakpoints, no sorting or gathers, so it
    also compiles for any number of pixels (``torch.compile(..., dynamic=True)``).

    Args:
        t: ``(M, 3, ...)`` linear RGB, channels on dim 1.
        y: ``(M, 1, ...)`` target luminance in ``[0, 1]``.
    Returns:
        ``(M, 3, ...)`` linear RGB in ``[0, 1]``.
    """
    shape = (1, 3) + (1,) * (t.ndim - 2)
    w = torch.tensor(_XYZ_FROM_RGB[1], dtype=t.dtype, device=t.device).view(shape)
    breaks = torch.cat(((t - 1.0) / w, t / w), dim=1)  # (M, 6, ...)
    g = -y  # g at each breakpoint, one channel at a time (3 temporaries of (M, 6, ...) when eager)
    for c, w_c in enumerate(_XYZ_FROM_RGB[1]):
        g = g + w_c * (t[:, c:c + 1] - breaks * w_c).clamp(0.0, 1.0)
    positive = g > 0
    # g(largest breakpoint) = -y <= 0 and g(smallest) = 1 - y >= 0, up to rounding at y = 0 or 1
    any_positive, all_positive = positive.any(dim=1, keepdim=True), positive.all(dim=1, keepdim=True)
    lo = breaks.where(positive, -torch.inf).amax(dim=1, keepdim=True)
    hi = breaks.where(~positive, torch.inf).amin(dim=1, keepdim=True)
    lo, hi = lo.where(any_positive, hi), hi.where(~all_positive, lo)
    g_lo = g.where(positive, torch.inf).amin(dim=1, keepdim=True).where(any_positive, 0.0)
    g_hi = g.where(~positive, -torch.inf).amax(dim=1, keepdim=True).where(~all_positive, 0.0)
    span = g_lo - g_hi
    steep = span > 1e-12
    lam = (lo + g_lo * (hi - lo) / span.where(steep, 1.0)).where(steep, lo)
    return (t - lam * w).clamp(0.0, 1.0)


def lab_to_rgb(lab: Tensor, gamut: GamutMode = "preserve-l", *, solver: GamutSolver | None = None) -> Tensor:
    """CIE Lab (D65) to sRGB in ``[0, 1]``.

    Args:
        lab: ``(N, 3, H, W)`` float Lab, L in ``[0, 100]``.
        gamut: how colours outside sRGB are handled.
            ``"preserve-l"`` (default) moves them to the nearest sRGB colour with the
            same L (:func:`project_to_gamut`), so the output's lightness equals the input L.
            ``"clip"`` clips each RGB channel to ``[0, 1]`` exactly as scikit-image's
            ``lab2rgb`` (and so the authors' demo) does; L then changes where
            colours were out of gamut.
        solver: see :func:`project_to_gamut`.
    Returns:
        ``(N, 3, H, W)`` gamma-encoded sRGB in ``[0, 1]``, same dtype and device.
    Raises:
        ValueError: on a bad shape or an unknown ``gamut``.
    """
    if lab.ndim != 4 or lab.shape[1] != 3:
        raise ValueError(f"lab_to_rgb expects (N, 3, H, W), got {tuple(lab.shape)}")
    if gamut == "preserve-l":
        lin = project_to_gamut(torch.cat((lab[:, :1].clamp(0.0, 100.0), lab[:, 1:]), dim=1), solver=solver)
    elif gamut == "clip":
        lin = _lab_to_linear_rgb(lab, clip_fz=True)
    else:
        raise ValueError(f"unknown gamut mode {gamut!r}; use 'preserve-l' or 'clip'")
    return linear_to_srgb(lin).clamp(0.0, 1.0)


def as_rgb(images: Tensor) -> Tensor:
    """``(N, 1, H, W)`` gray as ``(N, 3, H, W)`` (a view, R = G = B); sRGB as is."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def to_uint8(rgb: Tensor) -> Tensor:
    """Round ``[0, 1]`` floats to 8-bit levels: ``(N, C, H, W)`` float -> uint8 (same shape)."""
    return (rgb * 255.0).round_().clamp_(0, 255).to(torch.uint8)


# ---- OpenCV's float Lab: the DDColor authors' pipeline -----------------------------------------------


def _opencv(images: Tensor, code: int) -> Tensor:
    """``cv2.cvtColor`` on each float32 image of ``(N, 3, H, W)`` (on the CPU); same device and shape back."""
    import cv2
    import numpy as np

    hwc = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
    out = np.stack([cv2.cvtColor(np.ascontiguousarray(img), code) for img in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images.device)


def rgb_to_l_opencv(rgb: Tensor) -> Tensor:
    """Lab lightness as OpenCV computes it for float images (``cv2.COLOR_RGB2Lab``, the DDColor authors' L).

    OpenCV's sRGB decoding is a spline through a 1024-entry table, so its L differs from
    :func:`rgb_to_l` by a few thousandths; used where the authors' output is reproduced.

    Args:
        rgb: ``(N, 3, H, W)`` sRGB or ``(N, 1, H, W)`` gray, float in ``[0, 1]``.
    Returns:
        ``(N, 1, H, W)`` float32 L in ``[0, 100]``, on ``rgb``'s device.
    """
    import cv2

    if rgb.ndim != 4 or rgb.shape[1] not in (1, 3):
        raise ValueError(f"rgb_to_l_opencv expects (N, 1|3, H, W), got {tuple(rgb.shape)}")
    return _opencv(rgb.expand(-1, 3, -1, -1), cv2.COLOR_RGB2Lab)[:, :1]


def lab_to_rgb_opencv(lab: Tensor) -> Tensor:
    """CIE Lab to sRGB as OpenCV converts float images (``cv2.COLOR_Lab2RGB``).

    OpenCV's white point is the row sums of its sRGB matrix (so a = b = 0 is exactly gray), and
    it clips *linear* RGB to ``[0, 1]`` before the sRGB curve: out-of-gamut colours are clipped
    per channel, L is not kept. The DDColor authors' output is ``round(255 * this)``.

    Args:
        lab: ``(N, 3, H, W)`` float Lab.
    Returns:
        ``(N, 3, H, W)`` float32 sRGB in ``[0, 1]``, on ``lab``'s device.
    """
    import cv2

    if lab.ndim != 4 or lab.shape[1] != 3:
        raise ValueError(f"lab_to_rgb_opencv expects (N, 3, H, W), got {tuple(lab.shape)}")
    return _opencv(lab, cv2.COLOR_Lab2RGB)
