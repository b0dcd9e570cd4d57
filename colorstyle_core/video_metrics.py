"""A video's own metrics, against its input: warping error, colour distribution consistency, colourfulness.

* **E_warp** (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018): the masked
  error between each output frame and the previous one warped onto it by the input's optical
  flow (:mod:`colorstyle_core.flow`), scene cuts left out.
* **CDC**, colour distribution consistency (Liu et al., "Temporally Consistent Video Colorization
  with Deep Feature Propagation and Self-regularization Learning" (TCVC), 2021, as its
  ``calculate_cdc``): the Jensen-Shannon divergence of per-channel colour histograms between frames
  1, 2 and 4 apart (:class:`CdcAccumulator`). It is what video colorization papers (TCVC, BiSTNet,
  ColorMNet, NTIRE 2023) report beside E_warp; ``cdc_without_cuts`` leaves out the pairs that
  straddle a scene cut (a cut is not flicker).
* **Colourfulness** (Hasler & Suesstrunk 2003, :func:`colorstyle_core.quality.colorfulness`) per
  frame, averaged over the video: a temporal filter that steadies colours by washing them out
  shows as a lower figure.

:func:`measure_consistency` streams a video's frames once and gives all three, for the output,
for its input and for a reference (the per-frame result) where one is given.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from colorstyle_core import cuts, flow
from colorstyle_core.color import rgb_to_l
from colorstyle_core.quality import colorfulness

# ---- video: colour distribution consistency (CDC) and colourfulness over frames -----------------

#: CDC's frame distances and their weights (Liu et al., "Temporally Consistent Video Colorization
#: with Deep Feature Propagation and Self-regularization Learning" (TCVC), 2021: t in {1, 2, 4}, 1/3 each).
CDC_DILATIONS: tuple[int, ...] = (1, 2, 4)
CDC_WEIGHTS: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)


def channel_histograms(rgb8: np.ndarray) -> np.ndarray:
    """Each colour channel's 256-bin histogram, normalised by the frame's pixel count H * W.

    Args:
        rgb8: ``(H, W, 3)`` uint8 (8-bit levels 0..255; channel order is kept).
    Returns:
        ``(3, 256)`` float64; each row sums to 1.
    Raises:
        ValueError: not an ``(H, W, 3)`` uint8 array.
    """
    if not isinstance(rgb8, np.ndarray) or rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise ValueError(f"channel_histograms takes (H, W, 3) uint8, got {getattr(rgb8, 'shape', None)} "
                         f"{getattr(rgb8, 'dtype', type(rgb8).__name__)}")
    n = rgb8.shape[0] * rgb8.shape[1]
    flat = rgb8.reshape(n, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.float64) / n


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence of distributions along the last axis, natural logarithm.

    ``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2`` and ``0 log 0 = 0``
    (scipy's ``entropy(p, m)``, which TCVC's ``JS_divergence`` calls). In ``[0, ln 2]``.

    Args:
        p, q: float arrays of the same shape, each slice along the last axis summing to 1.
    Returns:
        The divergences, shape ``p.shape[:-1]``.
    """
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return (a * np.log(ratio)).sum(axis=-1)

    return 0.5 * kl(p) + 0.5 * kl(q)


class CdcAccumulator:
    """Colour distribution consistency of a video, frame by frame (a video is never held in memory).

    TCVC's CDC (its ``calculate_cdc``): per colour channel, the Jensen-Shannon divergence
    (:func:`js_divergence`) between the normalised 256-bin histograms (:func:`channel_histograms`)
    of frames ``i`` and ``i + t``, averaged over every such pair, for ``t`` in
    :data:`CDC_DILATIONS`, weighted by :data:`CDC_WEIGHTS` and summed; then the mean over the three
    channels. Lower is steadier: 0 for a video whose frames share one colour distribution.

    Each frame costs three histograms and three divergences; the accumulator keeps the last
    ``max(dilations)`` histograms and one divergence per channel per pair.
    """

    def __init__(self, dilations: tuple[int, ...] = CDC_DILATIONS, weights: tuple[float, ...] = CDC_WEIGHTS):
        if len(dilations) != len(weights) or not dilations or min(dilations) < 1:
            raise ValueError(f"CDC needs one weight per dilation >= 1: {dilations}, {weights}")
        self.dilations, self.weights = dilations, weights
        self._recent: deque[np.ndarray] = deque(maxlen=max(dilations))
        self._pairs: dict[int, list[np.ndarray]] = {d: [] for d in dilations}  # (3,) per pair (j - d, j), by j
        self.frames = 0

    def add(self, rgb8: np.ndarray) -> None:
        """The next frame, ``(H, W, 3)`` uint8."""
        hist = channel_histograms(rgb8)
        for d in self.dilations:
            if len(self._recent) >= d:
                self._pairs[d].append(js_divergence(self._recent[-d], hist))
        self._recent.append(hist)
        self.frames += 1

    def result(self, cuts: Sequence[int] = ()) -> float:
        """CDC over the frames added; with ``cuts`` (first frames of new shots), pairs that straddle a cut are
        left out (a cut is not flicker). ``nan`` when some distance ``t`` has no pair (a video of ``t`` frames
        or fewer, or shots that short), as the reference code's mean of nothing is."""
        cut_at = np.zeros(self.frames + 1, dtype=np.int64)
        for c in cuts:
            if 0 < c < self.frames:
                cut_at[c] = 1
        cumulative = np.cumsum(cut_at)  # cuts in (i, j] = cumulative[j] - cumulative[i]
        per_channel = np.zeros(3)
        for d, w in zip(self.dilations, self.weights):
            kept = [js for k, js in enumerate(self._pairs[d]) if cumulative[k + d] - cumulative[k] == 0]
            if not kept:
                return math.nan
            per_channel += w * np.mean(kept, axis=0)
        return float(per_channel.mean())


def video_colourfulness(per_frame: Sequence[float]) -> float:
    """A video's colourfulness: the mean of its frames' :func:`colorfulness` (``nan`` for no frame)."""
    return math.fsum(per_frame) / len(per_frame) if len(per_frame) else math.nan


@dataclass(frozen=True)
class VideoConsistency:
    """Temporal consistency of an output video against its input (see :func:`measure_consistency`).

    Attributes:
        e_warp: mean warping error over consecutive pairs, scene cuts excluded (``nan`` if none).
        per_pair: error of pair ``(t, t+1)`` for every t (``nan`` at scene cuts).
        cuts: first frames of new shots (pairs left out).
        e_warp_seams: mean error over the pairs that straddle the given seams (``nan`` if none).
        e_warp_inside: mean error over the other pairs (``nan`` if none).
        reference_diff: mean absolute RGB difference (in [0, 1]) to a reference video
            (e.g. the per-frame result), ``nan`` without one.
        frames: frames compared.
        trusted: mean fraction of pixels the flow masks trusted, over the pairs used.
        reference_e_warp: the reference video's own E_warp with the same flow and masks
            (``nan`` without one), so ``e_warp / reference_e_warp`` says how much steadier.
        method, preset: the flow estimator used.
        cdc: the output's CDC over every pair (TCVC's definition; ``nan`` under five frames).
        cdc_without_cuts: the same with the pairs that straddle a scene cut left out.
        colourfulness: the output's mean colourfulness per frame.
        input_cdc, input_colourfulness: the input's (a grey film: colourfulness 0, and its CDC
            is what its content alone changes).
        reference_cdc, reference_colourfulness: the reference's (``nan`` without one).
    """

    e_warp: float
    per_pair: tuple[float, ...]
    cuts: tuple[int, ...]
    e_warp_seams: float
    e_warp_inside: float
    reference_diff: float
    frames: int = 0
    trusted: float = float("nan")
    reference_e_warp: float = float("nan")
    method: str = "dis"
    preset: str | None = "medium"
    cdc: float = math.nan
    cdc_without_cuts: float = math.nan
    colourfulness: float = math.nan
    input_cdc: float = math.nan
    input_colourfulness: float = math.nan
    reference_cdc: float = math.nan
    reference_colourfulness: float = math.nan

    @property
    def pairs_used(self) -> int:
        """Pairs that count (scene cuts left out)."""
        return sum(1 for e in self.per_pair if e == e)


def _same_length(outputs: Iterable[Tensor], inputs: Iterable[Tensor]) -> Iterable[tuple[Tensor, Tensor]]:
    """Pairs of output and input frames; a ValueError saying which is longer when their lengths differ."""
    outs, ins = iter(outputs), iter(inputs)
    t = 0
    while True:
        out, inp = next(outs, None), next(ins, None)
        if out is None and inp is None:
            return
        if out is None or inp is None:
            longer = "input" if out is None else "output"
            raise ValueError(f"the output and the input videos differ in length: the {longer} has more than "
                             f"{t} frames")
        yield out, inp
        t += 1


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _pair_figures(prev_out: Tensor, out: Tensor, prev_ref: Tensor | None, ref: Tensor | None, prev_l: Tensor,
                  lightness: Tensor, method: str, preset: str | None, threshold: float
                  ) -> tuple[float, float, float] | None:
    """``(error, trusted fraction, reference error)`` of one pair, or ``None`` at a scene cut."""
    if float(cuts.cut_score(prev_l, lightness)[0]) > threshold:
        return None
    pair = flow.bidirectional_flow(prev_l, lightness, method, preset)
    error, trusted = flow.masked_warping_error(prev_out, out, pair)
    ref_error = float(flow.masked_warping_error(prev_ref, ref, pair)[0][0]) if ref is not None else float("nan")
    return float(error[0]), float(trusted[0]), ref_error


def measure_consistency(
    outputs: Iterable[Tensor],
    inputs: Iterable[Tensor],
    *,
    seams: Sequence[int] = (),
    references: Iterable[Tensor] | None = None,
    method: Literal["dis", "farneback"] = "dis",
    preset: str | None = "medium",
    scene_cut_threshold: float = cuts.DEFAULT_CUT_THRESHOLD,
    workers: int | None = None,
) -> VideoConsistency:
    """E_warp of an output video (Lai et al., ECCV 2018) with flow and masks from the input; CDC and
    colourfulness of the output, of the input and of the reference.

    Streams: pairs are evaluated on ``workers`` threads (OpenCV's flow releases the GIL),
    at most two pairs per thread in flight, so a video is never held in memory; each frame's
    histograms and colourfulness are taken as it passes (8-bit levels: the frame rounded to 0..255).

    Args:
        outputs: output frames in order, each ``(1, 3, H, W)`` float in [0, 1].
        inputs: the matching input frames, each ``(1, C, H, W)`` float in [0, 1] (their L
            gives flow, occlusion masks and scene cuts).
        seams: frame indices (relative to the first frame) where a new work unit begins;
            pair ``(s - 1, s)`` is a seam pair.
        references: optional frames to compare with (the per-frame result): their mean
            difference to the outputs and their own E_warp under the same flow.
        method, preset: flow estimator.
        scene_cut_threshold: cut score above which a pair is a cut (left out).
        workers: threads (default: the machine's CPU count, at most 4).
    Raises:
        ValueError: fewer than two frames, frame sizes that differ, or inputs/references
            with a different number of frames than the outputs.
    """
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    per_pair: list[float] = []
    trusted: list[float] = []
    ref_errors: list[float] = []
    cuts: list[int] = []
    diffs: list[float] = []
    ref_iter = iter(references) if references is not None else None
    colour = {name: _ColourFigures() for name in ("output", "input", "reference")}
    prev = None
    t = -1
    pending: deque = deque()

    def collect(block: bool) -> None:
        while pending and (block or pending[0][1].done()):
            index, future = pending.popleft()
            figures = future.result()
            if figures is None:
                cuts.append(index)
                per_pair.append(float("nan"))
            else:
                per_pair.append(figures[0])
                trusted.append(figures[1])
                ref_errors.append(figures[2])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for t, (out, inp) in enumerate(_same_length(outputs, inputs)):
            lightness = rgb_to_l(inp if inp.shape[1] in (1, 3) else inp[:, :3])
            colour["output"].add(out)
            colour["input"].add(inp[:, :3])
            ref = None
            if ref_iter is not None:
                ref = next(ref_iter, None)
                if ref is None:
                    raise ValueError(f"the reference video ends at frame {t}; the output has more frames")
                diffs.append(float((out - ref).abs().mean()))
                colour["reference"].add(ref)
            if prev is not None:
                pending.append((t, pool.submit(_pair_figures, prev[0], out, prev[1], ref, prev[2], lightness, method,
                                               preset, scene_cut_threshold)))
                if len(pending) >= 2 * workers:
                    collect(block=False)
                    while len(pending) >= 2 * workers:
                        pending[0][1].result()
                        collect(block=False)
            prev = (out, ref, lightness)
        collect(block=True)
    if t < 1:
        raise ValueError("measuring temporal consistency needs at least two frames")
    if ref_iter is not None and next(ref_iter, None) is not None:
        raise ValueError(f"the reference video has more frames than the output's {t + 1}")
    seam_pairs = {s - 1 for s in seams if 0 < s <= len(per_pair)}
    valid = [(i, e) for i, e in enumerate(per_pair) if e == e]
    at_seams = [e for i, e in valid if i in seam_pairs]
    inside = [e for i, e in valid if i not in seam_pairs]
    return VideoConsistency(
        e_warp=_mean([e for _, e in valid]), per_pair=tuple(per_pair), cuts=tuple(cuts),
        e_warp_seams=_mean(at_seams), e_warp_inside=_mean(inside), reference_diff=_mean(diffs),
        frames=t + 1, trusted=_mean(trusted), reference_e_warp=_mean(ref_errors) if ref_iter is not None else math.nan,
        method=method, preset=preset,
        cdc=colour["output"].cdc.result(), cdc_without_cuts=colour["output"].cdc.result(cuts),
        colourfulness=colour["output"].colourfulness(), input_cdc=colour["input"].cdc.result(),
        input_colourfulness=colour["input"].colourfulness(), reference_cdc=colour["reference"].cdc.result(),
        reference_colourfulness=colour["reference"].colourfulness(),
    )


def rgb8(frame: Tensor) -> np.ndarray:
    """``(1, C, H, W)`` float in [0, 1] (C = 1 grey or 3 sRGB) as ``(H, W, 3)`` uint8, rounded."""
    x = frame[0].expand(3, -1, -1) if frame.shape[1] == 1 else frame[0]
    return (x * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


class _ColourFigures:
    """One video's CDC and colourfulness, a frame at a time."""

    def __init__(self) -> None:
        self.cdc = CdcAccumulator()
        self.per_frame: list[float] = []

    def add(self, frame: Tensor) -> None:
        pixels = rgb8(frame)
        self.cdc.add(pixels)
        self.per_frame.append(colorfulness(pixels))

    def colourfulness(self) -> float:
        return video_colourfulness(self.per_frame)
