"""The Lab join of 8-bit frames in one pass per pixel on the CPU (numba), for video on CPU actors.

What :class:`~colorstyle_core.colorizers.entry.LabJoin` does to a frame with eager torch (L of the
8-bit frame, ab upsampled bilinearly from the network's output, Lab -> sRGB with the L-preserving
gamut projection, rounding to 8 bits) in a dozen passes over float frames, done here in one loop
per pixel that reads the decoded ``(H, W, 3)`` uint8 frame and the network's ``(2, h, w)`` ab and
writes the ``(H, W, 3)`` uint8 frame the encoder takes: no float frame is ever made.

Same maths as :mod:`colorstyle_core.color` in float32, with three exact shortcuts:

- L of a gray pixel (R = G = B, every pixel of a black-and-white film) is read from a 256-entry
  table made by :func:`colorstyle_core.color.rgb_to_l` itself; a colour pixel's linear RGB from a
  table of :func:`~colorstyle_core.color.srgb_to_linear` per 8-bit level.
- The sRGB transfer curve and rounding to 8 bits (``round(255 * linear_to_srgb(lin))``) are one
  search among the 255 linear values where the rounded level steps up, found once by bisection on
  the float32 values of torch's own expression, so no power is computed per pixel.
- The bilinear weights (``align_corners=False``) are torch's, per row and column.

Float32 arithmetic in another order (the 3x3 matrix, the interpolation) differs from torch's by
a few units in the last place, which moves a pixel by one 8-bit level only where its value lies
within that of a rounding boundary: measured on the example films (at 1080p and 360p, also with
ab tripled to push half the pixels outside sRGB), 0.00008-0.0003 % of values.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator

import numpy as np
import torch

from colorstyle_core import color

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _kernel_threads(threads: int | None) -> Iterator[None]:
    """Run numba kernels on ``threads`` threads and leave torch's thread count as it was.

    numba's ``omp`` threading layer shares the OpenMP runtime with torch, and a parallel launch sets
    the calling thread's OpenMP thread count to numba's (the machine's cores): without this, an actor
    given one CPU would run its network on every core after its first 8-bit join, and its outputs would
    change with that (a convolution's sums in another order).
    """
    import numba

    torch_threads = torch.get_num_threads()
    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lin_of_level (256,), l_of_gray (256,), steps (255,), bounds (257,), start (BINS + 1,), rgb_from_xyz (3, 3))``.

    ``steps[k]`` is the smallest float32 linear value that torch's ``to_uint8(linear_to_srgb(lin)
    .clamp(0, 1))`` rounds to level ``k + 1`` or more; ``bounds`` is ``steps`` between ``-inf`` and
    ``+inf`` (level ``k`` holds ``[bounds[k], bounds[k + 1])``); ``start[i]`` the level of ``i / BINS``
    (:data:`~colorstyle_core.lab8_kernels.BINS`).
    """
    from colorstyle_core.lab8_kernels import BINS

    levels = torch.arange(256, dtype=torch.float32) / 255.0
    lin_of_level = color.srgb_to_linear(levels).numpy()
    gray = levels.view(1, 1, 1, 256).expand(1, 3, 1, 256).contiguous()
    l_of_gray = color.rgb_to_l(gray).reshape(256).numpy()

    def level(lin: torch.Tensor) -> torch.Tensor:  # each value 16 times: torch's vectorised loop, as on frames
        x = lin.repeat_interleave(16).view(1, 1, 1, -1)
        return color.to_uint8(color.linear_to_srgb(x).clamp(0.0, 1.0)).view(-1, 16)[:, 0].long()

    # bisection over float32 bit patterns (ordered like the values for x >= 0): the first x in [0, 1]
    # whose level is > k, for every k at once
    lo = torch.zeros(255, dtype=torch.int32)  # level(lo) <= k
    hi = torch.full((255,), int(np.float32(1.0).view(np.int32)), dtype=torch.int32)  # level(hi) > k
    k = torch.arange(255)
    while bool((hi - lo > 1).any()):
        mid = lo + (hi - lo) // 2
        above = level(mid.view(torch.float32)) > k
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    steps = hi.view(torch.float32).numpy().copy()
    bounds = np.concatenate(([-np.inf], steps, [np.inf])).astype(np.float32)
    edges = (np.arange(BINS + 1, dtype=np.float32) / np.float32(BINS)).astype(np.float32)
    start = np.searchsorted(steps, edges, side="right").astype(np.uint8)
    if np.diff(np.searchsorted(steps, edges, side="left")).max() > 1:  # pragma: no cover - BINS too small
        raise AssertionError("a bin holds two steps of the 8-bit level")
    rgb_from_xyz = color._rgb_from_xyz(torch.zeros(1)).numpy().astype(np.float32)
    return lin_of_level, l_of_gray, steps, bounds, start, rgb_from_xyz


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Torch's bilinear source indices and weights (``align_corners=False``): ``(i0, i1, lambda1)`` per output."""
    scale = np.float32(n_in / n_out)
    real = (scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)).astype(np.float32)
    real = np.maximum(real, np.float32(0.0))
    i0 = real.astype(np.int64)
    lam = (real - i0.astype(np.float32)).astype(np.float32)
    i1 = i0 + (i0 < n_in - 1)
    return i0.astype(np.uint32), i1.astype(np.uint32), lam  # unsigned: the kernels skip negative-index checks


@functools.cache
def available() -> bool:
    """Whether the numba kernels load here (the one-pass join is used only where they do; a failure is logged once)."""
    try:
        from colorstyle_core import lab8_kernels  # noqa: F401
    except Exception as e:  # noqa: BLE001 - no numba, or no place for its cache: the float path runs instead
        log.warning("the one-pass 8-bit colour join is off (%s: %s): frames take the float path", type(e).__name__, e)
        return False
    return True


def join_to_rgb8(rgb8: np.ndarray, ab: np.ndarray, threads: int | None = None) -> np.ndarray:
    """L of 8-bit frames joined with upsampled ab, to 8-bit sRGB with L preserved, in one pass.

    Equals ``to_uint8(lab_to_rgb(cat(rgb_to_l(rgb8 / 255), resize_bilinear(ab, (H, W))), "preserve-l"))``
    of :mod:`colorstyle_core.color` except where float32 rounding in another order moves a value
    across a rounding boundary (one level, rare: see the module).

    Args:
        rgb8: ``(N, H, W, 3)`` uint8 sRGB frames (the decoder's layout).
        ab: ``(N, 2, h, w)`` float32 network ab, any ``h, w`` (upsampled bilinearly, ``align_corners=False``).
        threads: numba threads (default: numba's, the machine's cores).
    Returns:
        ``(N, H, W, 3)`` uint8 C-contiguous sRGB whose Lab L equals the frames' L.
    Raises:
        ValueError: shapes or dtypes that do not fit.
    """
    if rgb8.dtype != np.uint8 or rgb8.ndim != 4 or rgb8.shape[-1] != 3:
        raise ValueError(f"join_to_rgb8 expects (N, H, W, 3) uint8 frames, got {rgb8.shape} {rgb8.dtype}")
    if ab.ndim != 4 or ab.shape[:2] != (rgb8.shape[0], 2):
        raise ValueError(f"join_to_rgb8 expects (N, 2, h, w) ab for {rgb8.shape[0]} frames, got {ab.shape}")
    from colorstyle_core import lab8_kernels

    n, h, w, _ = rgb8.shape
    yi0, yi1, ylam = _bilinear_taps(ab.shape[2], h)
    xi0, xi1, xlam = _bilinear_taps(ab.shape[3], w)
    lin_of_level, l_of_gray, _, bounds, start, m = _tables()
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    ab = np.ascontiguousarray(ab, dtype=np.float32)
    cols = np.empty((n, ab.shape[2], w, 2), dtype=np.float32)
    with _kernel_threads(threads):
        lab8_kernels.ab_columns(ab, xi0, xi1, xlam, cols)
        lab8_kernels.join(np.ascontiguousarray(rgb8), cols, yi0, yi1, ylam, lin_of_level, l_of_gray, bounds, start, m,
                          out)
    return out



def is_gray(rgb8: np.ndarray, threads: int | None = None) -> bool:
    """Whether every pixel of ``(N, H, W, 3)`` uint8 frames has R = G = B (a black-and-white film as decoded).

    ``threads``: numba threads (default: numba's, the machine's cores).

    Raises:
        ValueError: not ``(N, H, W, 3)`` uint8.
    """
    if rgb8.dtype != np.uint8 or rgb8.ndim != 4 or rgb8.shape[-1] != 3:
        raise ValueError(f"is_gray expects (N, H, W, 3) uint8 frames, got {rgb8.shape} {rgb8.dtype}")
    from colorstyle_core import lab8_kernels

    rows = np.empty(rgb8.shape[0] * rgb8.shape[1], dtype=np.bool_)
    with _kernel_threads(threads):
        lab8_kernels.gray_rows(np.ascontiguousarray(rgb8), rows)
    return bool(rows.all())

