"""Consecutive frames of one video through the frame pipeline, with the temporal chains.

:class:`FrameSequence` is what :meth:`colorstyle_core.pipeline.FramePipeline.sequence` returns:
it carries the colour chain (:class:`~colorstyle_core.temporal.ABStabilizer`), a recurrent colorizer's
chain (``deepexemplar``: each frame takes the previous one's output) and the style
method's chain (its :class:`~colorstyle_core.style.methods.entry.ShotChain`: Gatys' warm start,
the feed-forward methods' flow-guided blend) from batch to batch, and hands over to the next
frame range at a seam (:func:`~colorstyle_core.temporal.handoff_weight`). No I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from colorstyle_core.color import as_rgb
from colorstyle_core.colorizer import Colorizer
from colorstyle_core.exemplar import ChainState, ExemplarColorizer, Reference
from colorstyle_core.hints import ColorHints
from colorstyle_core.imageio import frames_float
from colorstyle_core.pipeline_types import FrameResult, PipelineConfig
from colorstyle_core.resample import resize_longer, resize_to
from colorstyle_core.style.methods.entry import ShotChain, StyleOp
from colorstyle_core.temporal import ABStabilizer, StepInfo, blend, handoff_weight
from colorstyle_core.timing import Stage, StageTimer, added, scaled

PERFRAME_DIFF_STRIDE = 4
"""The temporal chain's per-frame difference (``perframe_diff``) is the mean over every 4th pixel in each
direction: an estimate of the whole frame's mean at 1/16 of the cost of a second composition."""


class Models(Protocol):
    """What a sequence uses of its :class:`~colorstyle_core.pipeline.FramePipeline`: the steps, the loaded
    models and how hints are kept."""

    config: PipelineConfig
    colorizer: Colorizer | ExemplarColorizer | None
    style: StyleOp | None
    device: torch.device

    @property
    def temporal(self) -> bool: ...

    def timer(self) -> StageTimer: ...

    def keep_hints(self, ab: Tensor, hints: ColorHints | None) -> Tensor: ...

    def process(self, images: Tensor, hints: Sequence[ColorHints | None] | None = None) -> list[FrameResult]: ...


@dataclass
class _Chains:
    """The temporal state of one pass over a shot: colour chain, a recurrent colorizer's chain
    (:class:`~colorstyle_core.exemplar.ChainState`) and (created lazily) the style method's chain."""

    color: ABStabilizer | None
    recurrence: ChainState | None = None
    style: ShotChain | None = None


class FrameSequence:
    """Consecutive frames of one video through a :class:`FramePipeline`.

    Without temporal consistency frames are processed independently, a batch at a time.
    With it they go through the chains in order, the chains carried from one call of
    :meth:`process` to the next; before a seam (``handoff_start``) a second, fresh chain
    runs beside the main one and the written frames cross-fade into it, so the next range
    (which warms up from ``handoff_start``) continues exactly where this one ends.
    """

    def __init__(self, pipeline: Models, handoff_start: int | None, stop: int | None):
        if handoff_start is not None and stop is None:
            raise ValueError("a handoff needs the range's stop")
        self.pipeline = pipeline
        self.handoff_start, self.stop = handoff_start, stop
        self._main = self._new_chains()
        self._fresh: _Chains | None = None

    def _new_chains(self) -> _Chains:
        step = self.pipeline.config.colorize
        return _Chains(ABStabilizer(step.temporal) if step is not None and step.temporal is not None else None,
                       self.pipeline.colorizer.new_chain() if self._recurrent else None)  # type: ignore[union-attr]

    @property
    def _recurrent(self) -> bool:
        return self.pipeline.colorizer is not None and self.pipeline.colorizer.recurrent

    def process(self, indices: Sequence[int], frames: Tensor, hints: Sequence[ColorHints | None] | None = None,
                references: Sequence[Reference | None] | None = None) -> list[FrameResult]:
        """Process the next frames of the video.

        Args:
            indices: the frames' indices in the video, consecutive, continuing the previous call.
            frames: ``(N, C, H, W)`` float32 in ``[0, 1]``, the same size every call, or decoded frames
                (``(N, 3, H, W)`` uint8, :func:`~colorstyle_core.imageio.frames_rgb8`).
            hints: SIGGRAPH17 hints per frame (keyframes carried through the shot), or ``None``.
            references: ``deepexemplar``: each frame's reference (``None``: the job's).
        Returns:
            One :class:`FrameResult` per frame, in order.
        """
        p = self.pipeline
        if hints is not None and all(h is None or h.empty for h in hints):
            hints = None
        if not p.temporal:
            return p.process(frames, hints)
        timer = p.timer()
        with timer(Stage.PREPROCESS):
            x = frames_float(frames.to(p.device))
        lightness = ab_pred = None
        with timer(Stage.COLORIZE):
            if self._recurrent:  # each frame's ab needs the previous one's: predicted in the chain
                lightness = p.colorizer.lightness(x)  # type: ignore[union-attr]
            elif p.colorizer is not None:
                lightness, ab_pred = p.colorizer.predict_ab(x, hints)
        rgb_in = as_rgb(x)
        base = scaled(timer.take(), 1.0 / len(indices))
        results = []
        for j, index in enumerate(indices):
            if self.handoff_start is not None and index == self.handoff_start:
                self._fresh = self._new_chains()
            t = p.timer()
            sl = slice(j, j + 1)
            args = (None if lightness is None else lightness[sl], None if ab_pred is None else ab_pred[sl],
                    rgb_in[sl], t, None if hints is None else hints[j], None if references is None else references[j])
            ab, image, curves, info, diff = self._chain_frame(self._main, *args, measure=True)
            if self._fresh is not None:
                assert self.handoff_start is not None and self.stop is not None
                weight = handoff_weight(index, self.handoff_start, self.stop)
                ab_f, image_f, _, _, _ = self._chain_frame(self._fresh, *args, measure=False)
                with t(Stage.TEMPORAL):
                    if p.style is None and ab is not None and ab_f is not None:
                        image = p.colorizer.compose(lightness[sl], blend(ab, ab_f, weight))  # type: ignore
                    else:
                        image = blend(image, image_f, weight)
            results.append(FrameResult(image, None, curves, added(base, t.seconds), info, diff))
        return results

    def _chain_frame(self, chains: _Chains, lightness: Tensor | None, ab_pred: Tensor | None, rgb_in: Tensor,
                     timer: StageTimer, hints: ColorHints | None, reference: Reference | None,
                     measure: bool) -> tuple[
                         Tensor | None, Tensor, dict[str, list[float]], StepInfo | None, float | None]:
        """One frame through one pass's chains: ``(ab, rgb, loss curves, step info, per-frame diff)``.

        The order: prediction -> temporal colour -> hint pull -> compose -> stylize.
        """
        p = self.pipeline
        info: StepInfo | None = None
        ab = None
        perframe_diff = None
        rgb = rgb_in
        if p.colorizer is not None:
            if chains.recurrence is not None:
                assert lightness is not None
                with timer(Stage.COLORIZE):
                    ab_pred = p.colorizer.step_ab(chains.recurrence, lightness, reference)  # type: ignore[union-attr]
            assert lightness is not None and ab_pred is not None
            ab = ab_pred
            if chains.color is not None:
                with timer(Stage.TEMPORAL):
                    ab, info = chains.color.step(lightness, ab_pred)
            with timer(Stage.COLORIZE):
                ab = p.keep_hints(ab, hints)  # after the chain: the hinted colours stay exact
                if chains.color is not None:
                    chains.color.replace_last(ab)  # the chain carries on what was shown
                rgb = p.colorizer.compose(lightness, ab)
                if measure and chains.color is not None:
                    s = PERFRAME_DIFF_STRIDE
                    perframe = p.colorizer.compose_sampled(lightness, p.keep_hints(ab_pred, hints), s)
                    perframe_diff = float((rgb[..., ::s, ::s] - perframe).abs().mean())
        curves: dict[str, list[float]] = {}
        if (step := p.config.stylize) is not None:
            assert p.style is not None
            h, w = rgb.shape[-2:]
            content = resize_longer(rgb, step.size, upscale=not step.keep_input_size)
            if step.temporal is not None:
                if chains.style is None:
                    chains.style = p.style.chain(step.temporal)
                image, losses, style_info = chains.style.step(content, timer)
                info = style_info if info is None else info
            else:
                with timer(Stage.STYLIZE):
                    image, losses = p.style(content)
            curves = {k: v[:, 0].tolist() for k, v in losses.items()}
            rgb = resize_to(image, (h, w)) if step.keep_input_size else image
        return ab, rgb, curves, info, perframe_diff
