"""numba kernels of :mod:`colorstyle_core.lab8` (imported only where they run: numba takes ~0.5 s to import).

Module-level functions with the colour constants as globals, so numba caches the compiled
machine code on disk (``cache=True``) and a new process loads it instead of compiling (~5 s).
All arithmetic is float32, in the order of :mod:`colorstyle_core.color`'s formulas.
"""

from __future__ import annotations

import numba
import numpy as np

from colorstyle_core import color

_EPS = np.float32(color._EPSILON)
_SLOPE = np.float32(color._KAPPA_SLOPE)
_F_THR = np.float32(color._F_THRESHOLD)
_F_OFF = np.float32(color._F_OFFSET)
_WX, _WY, _WZ = (np.float32(v) for v in color.D65_WHITE)
_W0, _W1, _W2 = (np.float32(v) for v in color._XYZ_FROM_RGB[1])
_THIRD = np.float32(1.0 / 3.0)
_ZERO, _ONE = np.float32(0.0), np.float32(1.0)
BINS = 4096
"""Bins of the linear range in the search for the 8-bit level: 0.8 levels per bin where levels are densest
(sRGB's linear segment: 12.92 * 255 levels per unit), so a bin holds one step up at most."""
_FBINS = np.float32(BINS)


@numba.njit(inline="always", cache=True)
def _f_inv(f):
    return f * f * f if f > _F_THR else (f - _F_OFF) / _SLOPE


@numba.njit(inline="always", cache=True)
def _clamp01(v):
    return min(max(v, _ZERO), _ONE)


@numba.njit(inline="always", cache=True)
def _to_level(v, bounds, start):
    """The 8-bit level torch's ``to_uint8(linear_to_srgb(v).clamp(0, 1))`` gives (see lab8._tables): the
    level at the start of ``v``'s bin, corrected by the one step a bin can hold, without branches."""
    v = min(max(v, _ZERO), _ONE)
    k = np.uint32(start[np.uint32(v * _FBINS)])  # unsigned indices: no checks for negative ones (10 ms a frame)
    k += np.uint32(v >= bounds[k + np.uint32(1)])
    k -= np.uint32(v < bounds[k])
    return k


@numba.njit(inline="always", cache=True)
def _nearest_at_luminance(t0, t1, t2, y):
    """:func:`colorstyle_core.color.nearest_at_luminance` for one pixel: ``clamp(t - lambda w, 0, 1)`` where
    ``g(lambda) = w . clamp(t - lambda w, 0, 1) - y`` changes sign, linear between neighbouring breakpoints."""
    lo_b, hi_b = -np.inf, np.inf
    g_lo, g_hi = np.inf, -np.inf
    any_pos, all_pos = False, True
    for j in range(6):
        c = j % 3
        t_c = t0 if c == 0 else (t1 if c == 1 else t2)
        w_c = _W0 if c == 0 else (_W1 if c == 1 else _W2)
        br = (t_c - _ONE) / w_c if j < 3 else t_c / w_c
        g = -y
        g = g + _W0 * _clamp01(t0 - br * _W0)
        g = g + _W1 * _clamp01(t1 - br * _W1)
        g = g + _W2 * _clamp01(t2 - br * _W2)
        if g > 0:
            any_pos = True
            lo_b = max(lo_b, br)
            g_lo = min(g_lo, g)
        else:
            all_pos = False
            hi_b = min(hi_b, br)
            g_hi = max(g_hi, g)
    if not any_pos:
        lo_b, g_lo = hi_b, _ZERO
    if all_pos:
        hi_b, g_hi = lo_b, _ZERO
    span = g_lo - g_hi
    lam = lo_b + g_lo * (hi_b - lo_b) / span if span > 1e-12 else lo_b
    return _clamp01(t0 - lam * _W0), _clamp01(t1 - lam * _W1), _clamp01(t2 - lam * _W2)


@numba.njit(parallel=True, nogil=True, cache=True)
def ab_columns(ab, xi0, xi1, xlam, out):
    """The horizontal half of the bilinear upsampling: ``ab`` (N, 2, h, w) -> ``out`` (N, h, W, 2), each
    network row interpolated at the frame's ``W`` columns (``lx0 * left + lx * right``, torch's order)."""
    n, _, h, _ = ab.shape
    width = out.shape[2]
    for row in numba.prange(n * h):
        img, r = row // h, row % h
        for x in range(width):
            b0, b1, lx = xi0[x], xi1[x], xlam[x]
            lx0 = _ONE - lx
            out[img, r, x, 0] = lx0 * ab[img, 0, r, b0] + lx * ab[img, 0, r, b1]
            out[img, r, x, 1] = lx0 * ab[img, 1, r, b0] + lx * ab[img, 1, r, b1]


@numba.njit(parallel=True, nogil=True, cache=True)
def join(rgb8, cols, yi0, yi1, ylam, lin_of_level, l_of_gray, bounds, start, m, out):
    """L of ``rgb8`` (N, H, W, 3) uint8 + ab from ``cols`` (:func:`ab_columns`) interpolated between rows ->
    sRGB levels in ``out`` (N, H, W, 3) uint8, out-of-gamut colours moved into sRGB at their L; rows in parallel."""
    n, h, w, _ = rgb8.shape
    for row in numba.prange(n * h):
        img, r = row // h, row % h
        a0, a1, ly = yi0[r], yi1[r], ylam[r]
        ly0 = _ONE - ly
        for x in range(w):
            p0, p1, p2 = rgb8[img, r, x, 0], rgb8[img, r, x, 1], rgb8[img, r, x, 2]
            if p0 == p1 and p1 == p2:
                lightness = l_of_gray[p0]
            else:
                yy = lin_of_level[p0] * _W0 + lin_of_level[p1] * _W1 + lin_of_level[p2] * _W2
                fy_ = yy ** _THIRD if yy > _EPS else _SLOPE * yy + _F_OFF
                lightness = np.float32(116.0) * fy_ - np.float32(16.0)
            lightness = min(max(lightness, _ZERO), np.float32(100.0))
            ca = ly0 * cols[img, a0, x, 0] + ly * cols[img, a1, x, 0]
            cb = ly0 * cols[img, a0, x, 1] + ly * cols[img, a1, x, 1]
            fy = (lightness + np.float32(16.0)) / np.float32(116.0)
            fx = fy + ca / np.float32(500.0)
            fz = max(fy - cb / np.float32(200.0), _ZERO)
            xx, yv, zz = _f_inv(fx) * _WX, _f_inv(fy) * _WY, _f_inv(fz) * _WZ
            t0 = m[0, 0] * xx + m[0, 1] * yv + m[0, 2] * zz
            t1 = m[1, 0] * xx + m[1, 1] * yv + m[1, 2] * zz
            t2 = m[2, 0] * xx + m[2, 1] * yv + m[2, 2] * zz
            if t0 < 0 or t0 > 1 or t1 < 0 or t1 > 1 or t2 < 0 or t2 > 1:
                t0, t1, t2 = _nearest_at_luminance(t0, t1, t2, _f_inv(fy))
            out[img, r, x, 0] = _to_level(t0, bounds, start)
            out[img, r, x, 1] = _to_level(t1, bounds, start)
            out[img, r, x, 2] = _to_level(t2, bounds, start)


@numba.njit(parallel=True, nogil=True, cache=True)
def gray_rows(rgb8, out):
    """``out[i]`` = whether row ``i`` of the ``(N * H)`` rows of ``rgb8`` (N, H, W, 3) uint8 has R = G = B."""
    n, h, w, _ = rgb8.shape
    for row in numba.prange(n * h):
        img, r = row // h, row % h
        same = True
        for x in range(w):
            if rgb8[img, r, x, 0] != rgb8[img, r, x, 1] or rgb8[img, r, x, 1] != rgb8[img, r, x, 2]:
                same = False
                break
        out[row] = same
