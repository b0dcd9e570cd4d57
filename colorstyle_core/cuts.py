"""Scene cuts: whether a frame starts a new shot, from two cues.

The luminance-histogram distance of the two frames and the fraction of pixels whose optical
flow fails the forward-backward round trip (:mod:`colorstyle_core.flow`, whose conventions and
input checks these functions share). Pure functions on batched torch tensors; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from colorstyle_core.flow import _as_l_batch, _check_pair, _consistency_tests, estimate_flow

HIST_BINS = 64
CUT_ANALYSIS_SIZE = 160
"""Longer side (pixels) frames are shrunk to before :func:`cut_score` looks at them."""

DEFAULT_CUT_THRESHOLD = 0.3
"""Default :func:`cut_score` threshold. Measured on the shared test data (640x360): in
``dev_kenburns_gray.mp4`` consecutive frames inside a shot score at most 0.017, frames
12 apart (12x the pan speed, tens of pixels per frame) at most 0.21, the hard cut
0.84; cuts between the 12 shared gray photographs score 0.62-0.82, and still
0.52-0.61 after giving the second photograph the first one's luminance histogram."""


def luminance_histogram(lightness: Tensor, bins: int = HIST_BINS) -> Tensor:
    """Normalised histogram of L over ``[0, 100]`` in ``bins`` equal bins.

    Args:
        lightness: L, ``(H, W)`` or ``(N, 1, H, W)`` floating; values outside
            ``[0, 100]`` count in the end bins.
        bins: number of bins, >= 1.
    Returns:
        ``(N, bins)`` float64, each row summing to 1.
    Raises:
        ValueError: ``bins < 1``, bad shape, non-finite values.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    x = _as_l_batch(lightness, "lightness").detach()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("lightness contains NaN or infinite values")
    idx = (x.flatten(1).to(torch.float64) * (bins / 100.0)).floor().clamp(0, bins - 1).to(torch.int64)
    counts = torch.zeros(idx.shape[0], bins, dtype=torch.float64, device=idx.device)
    counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return counts / counts.sum(dim=1, keepdim=True)


def histogram_distance(a_l: Tensor, b_l: Tensor, bins: int = HIST_BINS) -> Tensor:
    """Hellinger (Bhattacharyya) distance between luminance histograms.

    ``d = sqrt(1 - sum_k sqrt(p_k q_k))`` (the distance OpenCV's ``HISTCMP_BHATTACHARYYA``
    computes for normalised histograms): 0 for identical histograms, 1 for disjoint ones.

    Args:
        a_l, b_l: L in ``[0, 100]``, ``(H, W)`` or ``(N, 1, H, W)``, the same N
            (image sizes may differ).
        bins: histogram bins over ``[0, 100]``.
    Returns:
        ``(N,)`` float64 in ``[0, 1]``.
    Raises:
        ValueError: different N, or as :func:`luminance_histogram`.
    """
    p, q = luminance_histogram(a_l, bins), luminance_histogram(b_l, bins)
    if p.shape[0] != q.shape[0]:
        raise ValueError(f"a_l has {p.shape[0]} images, b_l {q.shape[0]}")
    bc = torch.sqrt(p * q).sum(dim=1)
    return torch.sqrt((1.0 - bc).clamp_min(0.0))


def _shrink(lightness: Tensor, longer: int | None) -> Tensor:
    h, w = lightness.shape[-2:]
    if longer is None or max(h, w) <= longer:
        return lightness
    scale = longer / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(lightness.to(torch.float32), size=size, mode="bilinear", antialias=True, align_corners=False)


@dataclass(frozen=True)
class CutScores:
    """The parts of :func:`cut_scores`, each ``(N,)`` float64 in ``[0, 1]``.

    Attributes:
        histogram: :func:`histogram_distance` of the two frames.
        inconsistent: fraction of in-frame pixels of ``prev`` whose DIS flow fails the
            forward-backward round-trip test of :func:`consistency_mask` (1 when no
            pixel maps inside the frame).
        score: ``(histogram + inconsistent) / 2``, what the temporal chains threshold.
    """

    histogram: Tensor
    inconsistent: Tensor
    score: Tensor


def cut_scores(prev_l: Tensor, next_l: Tensor, analysis_size: int | None = CUT_ANALYSIS_SIZE,
               bins: int = HIST_BINS) -> CutScores:
    """How much ``next`` looks like a new shot rather than a continuation of ``prev``.

    Two cues, each in ``[0, 1]``, averaged: the luminance-histogram distance (fast,
    but blind to cuts between shots of similar tone) and the fraction of pixels whose
    optical flow has no consistent way back (after a cut, flow finds no real
    correspondences and fails the round trip almost everywhere, while within a shot
    only occluded pixels fail). Frames are first shrunk, anti-aliased, so their longer
    side is ``analysis_size`` pixels; flow is DIS ``"ultrafast"``. Motion-boundary
    pixels are not counted as inconsistent here.

    Scale: within a shot scores are near 0 (below 0.02 for consecutive frames of a
    slow pan, up to about 0.2 for pans of tens of pixels per frame); a hard cut
    between different scenes scores about 0.5-0.85, even between frames of matched
    histograms. :data:`DEFAULT_CUT_THRESHOLD` (0.3) separates them: a pair is a cut when
    its score exceeds the threshold. Fades, flashes
    and cuts between near-identical shots are not handled specially.

    Args:
        prev_l, next_l: L in ``[0, 100]``, ``(H, W)`` or ``(N, 1, H, W)``, same shape.
        analysis_size: longer side in pixels to shrink to; ``None`` = full size.
        bins: histogram bins.
    Returns:
        :class:`CutScores` with ``(N,)`` float64 tensors on the CPU.
    Raises:
        TypeError, ValueError: as :func:`estimate_flow`.
    """
    prev = _as_l_batch(prev_l, "prev_l")
    nxt = _as_l_batch(next_l, "next_l")
    _check_pair(prev, nxt, ("prev_l", "next_l"))
    small_prev, small_next = _shrink(prev.detach().cpu(), analysis_size), _shrink(nxt.detach().cpu(), analysis_size)
    hist = histogram_distance(small_prev, small_next, bins)
    fwd = estimate_flow(small_prev, small_next, "dis", "ultrafast")
    bwd = estimate_flow(small_next, small_prev, "dis", "ultrafast")
    inside, round_trip_ok, _ = _consistency_tests(fwd, bwd)
    n_inside = inside.flatten(1).sum(dim=1).to(torch.float64)
    n_bad = (inside & ~round_trip_ok).flatten(1).sum(dim=1).to(torch.float64)
    inconsistent = torch.where(n_inside > 0, n_bad / n_inside.clamp_min(1.0), torch.ones_like(n_inside))
    return CutScores(histogram=hist, inconsistent=inconsistent, score=0.5 * (hist + inconsistent))


def cut_score(prev_l: Tensor, next_l: Tensor, analysis_size: int | None = CUT_ANALYSIS_SIZE,
              bins: int = HIST_BINS) -> Tensor:
    """``cut_scores(...).score``: ``(N,)`` float64 in ``[0, 1]``; see :func:`cut_scores`."""
    return cut_scores(prev_l, next_l, analysis_size, bins).score
