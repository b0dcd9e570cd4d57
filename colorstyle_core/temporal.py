"""Temporal consistency for video: flow-guided colour stabilisation and Ruder-style stylization.

Per-frame colorization and stylization flicker: the same object changes colour or
texture from frame to frame. Two *chains* carry state along a shot, frame by frame:

* :class:`ABStabilizer`, for the colorizer: each frame's predicted ab is blended with
  the previous *output* ab warped onto it by optical flow, weighted by the
  forward-backward consistency mask (occlusions and motion boundaries get the fresh
  prediction) and a strength (a recursive filter: ``strength`` 0.8 remembers about
  five frames). L is never touched.
* :class:`StyleChain`, for the stylizer (Ruder, Dosovitskiy, Brox, "Artistic style
  transfer for videos", GCPR 2016): frame t starts from the flow-warped stylized frame
  t-1 (warm start, fewer steps) and is pulled towards it by a masked temporal loss.

Both reset at scene cuts (:func:`colorstyle_core.cuts.cut_score`), so one shot's
colours or texture never bleed into the next. Flow: :mod:`colorstyle_core.flow`
(OpenCV DIS or Farneback on luminance).

:func:`handoff_weight` gives the cross-fade used at work-unit seams: the unit before a
seam also runs a fresh chain started where the next unit's warm-up starts and fades
its written frames into it, so both units hand over the same state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from colorstyle_core import cuts, flow
from colorstyle_core.color import rgb_to_l
from colorstyle_core.style.gatys import StyleConfig, StyleTargets, Stylizer, StylizeResult, TemporalPrior

DEFAULT_PRESETS = {"color": "fast", "style": "medium"}
"""DIS preset of each chain kind when none is given: colour needs only coarse motion,
stylization's warm start and temporal loss are sharper with the medium preset."""


@dataclass(frozen=True)
class TemporalSettings:
    """How a chain follows motion; the defaults here are the defaults everywhere (manifests included).

    Attributes:
        method: ``"dis"`` or ``"farneback"`` optical flow.
        preset: DIS preset (``ultrafast``, ``fast``, ``medium``); ignored by Farneback
            (see :data:`DEFAULT_PRESETS`).
        strength: colour chains: weight of the warped previous output in ``[0, 1]``
            (0 = per-frame). Style chains: scales the temporal loss mask.
        scene_cut_threshold: :func:`colorstyle_core.cuts.cut_score` above which the chain resets.
        temporal_weight: style chains: weight of the masked temporal loss.
        steps_after_first: style chains: optimiser steps for warm-started frames
            (``None`` = a third of the config's steps).
    """

    method: Literal["dis", "farneback"] = "dis"
    preset: str | None = "fast"
    strength: float = 0.8
    scene_cut_threshold: float = cuts.DEFAULT_CUT_THRESHOLD
    temporal_weight: float = 1e3
    steps_after_first: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not 0.0 < self.scene_cut_threshold <= 1.0:
            raise ValueError(f"scene_cut_threshold must be in (0, 1], got {self.scene_cut_threshold}")
        if self.temporal_weight < 0:
            raise ValueError(f"temporal_weight must be >= 0, got {self.temporal_weight}")
        if self.steps_after_first is not None and self.steps_after_first < 0:
            raise ValueError(f"steps_after_first must be >= 0, got {self.steps_after_first}")
        if self.method not in flow.FLOW_METHODS:
            raise ValueError(f"unknown flow method {self.method!r}; use one of {', '.join(flow.FLOW_METHODS)}")


@dataclass(frozen=True)
class StepInfo:
    """What a chain did for one frame.

    Attributes:
        reset: True when the chain (re)started here (first frame or scene cut).
        cut_score: scene-cut score against the previous frame (0 when there is none).
        trusted: fraction of pixels the consistency mask trusted (0 after a reset).
        seconds: wall time of flow estimation, masks and warping.
    """

    reset: bool
    cut_score: float
    trusted: float
    seconds: float


def _motion(prev_l: Tensor, cur_l: Tensor, settings: TemporalSettings) -> tuple[float, flow.FlowPair | None]:
    """Cut score, and the flow pair on ``cur``'s grid pointing back to ``prev`` (None at a cut)."""
    score = float(cuts.cut_score(prev_l, cur_l)[0])
    if score > settings.scene_cut_threshold:
        return score, None
    return score, flow.bidirectional_flow(cur_l, prev_l, settings.method, settings.preset)


class ABStabilizer:
    """Flow-guided recursive filter on predicted ab (one chain, frames in order).

    The same filter serves feed-forward stylizations: ``ab_pred`` may have any number of
    channels (the stylized RGB frame), the flow always comes from L.

    Args:
        settings: flow method, strength, scene-cut threshold.
    """

    def __init__(self, settings: TemporalSettings):
        self.settings = settings
        self._prev_l: Tensor | None = None
        self._prev_ab: Tensor | None = None

    def step(self, lightness: Tensor, ab_pred: Tensor) -> tuple[Tensor, StepInfo]:
        """Stabilise one frame.

        Args:
            lightness: ``(1, 1, H, W)`` float32 L in [0, 100] of this frame.
            ab_pred: ``(1, 2, H, W)`` float32 per-frame predicted ab (or ``(1, C, H, W)``).
        Returns:
            ``(ab, info)``: ``(1, 2, H, W)`` ab to compose with ``lightness`` (``C`` channels in, ``C`` out).
        """
        start = time.perf_counter()
        if self._prev_l is None or self.settings.strength == 0:
            out, info = ab_pred, StepInfo(True, 0.0, 0.0, 0.0)
        else:
            score, pair = _motion(self._prev_l, lightness, self.settings)
            if pair is None:
                out, info = ab_pred, StepInfo(True, score, 0.0, time.perf_counter() - start)
            else:
                mask = pair.mask.to(ab_pred.device)
                warped = flow.warp(self._prev_ab, pair.fwd.to(ab_pred.device))
                alpha = self.settings.strength * mask
                out = alpha * warped + (1 - alpha) * ab_pred
                info = StepInfo(False, score, float(mask.mean()), time.perf_counter() - start)
        self._prev_l, self._prev_ab = lightness, out
        return out, info

    def replace_last(self, ab: Tensor) -> None:
        """Carry ``ab`` on instead of the last :meth:`step`'s output (what was finally shown, e.g. after hints)."""
        self._prev_ab = ab


class StyleChain:
    """Ruder et al. warm start and temporal loss along one shot (one chain, frames in order).

    Args:
        stylizer: the loaded stylizer.
        targets: style targets for the frame size the chain sees.
        config: the stylization settings (``steps`` is used for the first frame of a shot).
        settings: flow, temporal weight, steps after the first frame.
    """

    def __init__(self, stylizer: Stylizer, targets: StyleTargets, config: StyleConfig, settings: TemporalSettings):
        self.stylizer, self.targets, self.config, self.settings = stylizer, targets, config, settings
        self.steps_after_first = settings.steps_after_first if settings.steps_after_first is not None \
            else max(1, config.steps // 3)
        self._prev_l: Tensor | None = None
        self._prev_out: Tensor | None = None

    def step(self, content: Tensor) -> tuple[Tensor, StylizeResult, StepInfo]:
        """Stylize one frame.

        Args:
            content: ``(1, 3, h, w)`` float32 sRGB in [0, 1] at the processing size.
        Returns:
            ``(image, result, info)``: the ``(1, 3, h, w)`` stylized frame, the stylizer's
            result (loss curves; fewer rows after a warm start) and what the chain did.
        """
        start = time.perf_counter()
        lightness = rgb_to_l(content)
        pair, score = None, 0.0
        if self._prev_l is not None:
            score, pair = _motion(self._prev_l, lightness, self.settings)
        motion_s = time.perf_counter() - start
        if pair is None:
            result = self.stylizer(content, self.targets, self.config)
            info = StepInfo(True, score, 0.0, motion_s)
        else:
            assert self._prev_out is not None
            dev = content.device
            warped = flow.warp(self._prev_out, pair.fwd.to(dev)).clamp(0, 1)
            mask = pair.mask.to(dev) * self.settings.strength
            init_config = StyleConfig(**{**self.config.__dict__, "init": "image"})
            weight = self.settings.temporal_weight
            prior = TemporalPrior(warped, mask, weight) if weight else None
            result = self.stylizer(content, self.targets, init_config, init_image=warped, temporal=prior,
                                   steps=self.steps_after_first)
            info = StepInfo(False, score, float(pair.mask.mean()), motion_s)
        self._prev_l, self._prev_out = lightness, result.images
        return result.images, result, info


def handoff_weight(index: int, handoff_start: int, stop: int) -> float:
    """Cross-fade weight of the fresh chain at frame ``index`` of a unit ending at ``stop``.

    0 before ``handoff_start``; rises along a smoothstep (slow while the fresh chain is
    still cold) to exactly 1 at the unit's last frame ``stop - 1``, where the unit's
    output equals the fresh chain's, which the next unit reproduces while warming up.
    """
    if index < handoff_start:
        return 0.0
    x = (index - handoff_start + 1) / (stop - handoff_start)
    return x * x * (3.0 - 2.0 * x)


def blend(a: Tensor, b: Tensor, weight: float) -> Tensor:
    """``(1 - weight) * a + weight * b`` (same shapes); ``a`` or ``b`` itself at 0 or 1."""
    if weight <= 0.0:
        return a
    if weight >= 1.0:
        return b
    return (1.0 - weight) * a + weight * b
