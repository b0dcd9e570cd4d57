"""Keyframe hints carried through a shot: points followed by optical flow, forward and backward.

A restorer gives colours for a few keyframes (:class:`~colorstyle_core.hints.Keyframe`);
this module moves each keyframe's points along the motion of its shot, as the colour
priors of "Real Time Video Colorization Using Color Priors" are carried from the first,
user-guided frame (Zhang et al. 2017 for that frame) to the next:

* forward from the keyframe to the next keyframe or scene cut, and backward from it to
  the previous keyframe or scene cut (scene cuts as the temporal chains find them,
  :func:`colorstyle_core.cuts.cut_score` above the threshold);
* from frame t to t + 1 a point p moves to ``q = p + F_{t->t+1}(p)``; it is dropped when
  the flow back does not return it, ``|F_{t+1->t}(q) + F_{t->t+1}(p)|^2 > 0.01 (|.|^2 + |.|^2)
  + 0.5`` (the forward-backward test of Ruder et al. 2016 used by the consistency masks),
  or when it leaves the frame. Flow is OpenCV DIS on L, at most ``analysis`` pixels wide;
* between two keyframes of one shot both contribute: at frame t, each keyframe's points
  weigh by nearness, ``w_1 = (k_2 - t) / (k_2 - k_1)`` and ``w_2 = (t - k_1) / (k_2 - k_1)``.

Pure computation on L frames the caller decodes (``read(start, stop)`` yields them in
order), so it runs anywhere: in a job's hint unit, in ``colorstyle hints show``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from colorstyle_core import cuts, flow
from colorstyle_core.hints import HintsError, Keyframe

FrameReader = Callable[[int, int], Iterator[tuple[int, Tensor]]]
"""``read(start, stop)``: frames ``start .. stop - 1`` in order, as ``(index, (1, 1, H, W) L in [0, 100])``."""

ANALYSIS_SIDE = 640
"""Longer side (pixels) of the frames the points are tracked on."""


@dataclass(frozen=True)
class HintPoint:
    """One propagated hint on one frame.

    Attributes:
        y, x: position in the frame's pixels.
        a, b: the keyframe's colour, Lab units.
        weight: in ``(0, 1]``, by nearness to the keyframe when two keyframes share the frame.
        keyframe: the frame index of the keyframe it comes from.
    """

    y: float
    x: float
    a: float
    b: float
    weight: float
    keyframe: int


@dataclass
class Propagation:
    """What :func:`propagate` found.

    Attributes:
        hints: ``{frame: [HintPoint, ...]}`` for every frame that a keyframe's hints reach.
        cuts: frames that start a new shot (after the first frame).
        kept: per keyframe, how many of its points reached each frame (``{keyframe: {frame: n}}``).
    """

    hints: dict[int, list[HintPoint]] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)
    kept: dict[int, dict[int, int]] = field(default_factory=dict)


def _small(lightness: Tensor, side: int) -> Tensor:
    h, w = lightness.shape[-2:]
    if max(h, w) <= side:
        return lightness.to(torch.float32)
    s = side / max(h, w)
    size = (max(32, round(h * s)), max(32, round(w * s)))
    return F.interpolate(lightness.to(torch.float32), size=size, mode="bilinear", antialias=True, align_corners=False)


def sample_field(field_: Tensor, yx: Tensor) -> Tensor:
    """Bilinear values of a ``(1, C, h, w)`` field at ``(K, 2)`` positions ``(y, x)`` (pixel centres at integers).

    Returns ``(K, C)``; positions outside take the nearest edge value.
    """
    h, w = field_.shape[-2:]
    grid = torch.stack((yx[:, 1] * (2.0 / max(w - 1, 1)) - 1.0, yx[:, 0] * (2.0 / max(h - 1, 1)) - 1.0), dim=-1)
    out = F.grid_sample(field_, grid.view(1, 1, -1, 2).to(field_.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out[0, :, 0, :].T


def track_step(yx: Tensor, fwd: Tensor, bwd: Tensor) -> tuple[Tensor, Tensor]:
    """Move points one frame along the flow and test each with the flow back.

    Args:
        yx: ``(K, 2)`` positions ``(y, x)`` on frame a's grid (the flows' pixels).
        fwd: ``(1, 2, h, w)`` ``F_{a->b}`` (channel 0 = dx, 1 = dy).
        bwd: ``(1, 2, h, w)`` ``F_{b->a}``.
    Returns:
        ``(moved, ok)``: ``(K, 2)`` positions on frame b, ``(K,)`` bool: the round trip holds
        (Ruder et al.'s criterion) and the point stays inside the frame.
    """
    h, w = fwd.shape[-2:]
    f = sample_field(fwd, yx)  # (K, 2): dx, dy
    moved = yx + f[:, [1, 0]]
    back = sample_field(bwd, moved)
    sq = (f + back).pow(2).sum(dim=1)
    ok = sq <= flow.FB_REL_TOL * (f.pow(2).sum(dim=1) + back.pow(2).sum(dim=1)) + flow.FB_ABS_TOL
    inside = (moved[:, 0] >= 0) & (moved[:, 0] <= h - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= w - 1)
    return moved, ok & inside


class _Track:
    """The points of one keyframe on their way through the shot (analysis coordinates)."""

    def __init__(self, keyframe: int, points: Sequence[tuple[float, float, float, float]], scale: tuple[float, float]):
        self.keyframe = keyframe
        self.scale = scale  # (sy, sx): full -> analysis
        pts = torch.tensor([[p[0], p[1]] for p in points], dtype=torch.float32).view(-1, 2)
        self.yx = pts * torch.tensor(scale, dtype=torch.float32)
        self.ab = torch.tensor([[p[2], p[3]] for p in points], dtype=torch.float32).view(-1, 2)

    def step(self, fwd: Tensor, bwd: Tensor) -> None:
        if self.yx.shape[0]:
            moved, ok = track_step(self.yx, fwd, bwd)
            self.yx, self.ab = moved[ok], self.ab[ok]

    def points(self) -> list[tuple[float, float, float, float]]:
        sy, sx = self.scale
        return [(float(y) / sy, float(x) / sx, float(a), float(b)) for (y, x), (a, b) in zip(self.yx, self.ab)]


def propagate(read: FrameReader, keyframes: Sequence[Keyframe], start: int, stop: int, *,
              points_of: Callable[[Keyframe], Sequence[tuple[float, float, float, float]]] | None = None,
              cut_threshold: float = cuts.DEFAULT_CUT_THRESHOLD, method: str = "dis", preset: str | None = "medium",
              analysis: int = ANALYSIS_SIDE, chunk: int = 48, name: str = "video") -> Propagation:
    """Carry each keyframe's points through its shot, forward and backward (module docstring).

    Args:
        read: the frames' L (see :data:`FrameReader`); read once forward, and once more,
            a chunk at a time from the end, for each stretch a keyframe reaches backward.
        keyframes: in frame order, all inside ``[start, stop)``.
        start, stop: the frames to cover.
        points_of: the points of a keyframe (default its ``points``; a colour keyframe's
            sampled points are given by the caller, who reads its image).
        cut_threshold: scene-cut score above which a new shot starts.
        method, preset: the flow estimator.
        analysis: longer side, in pixels, of the frames tracking works on.
        chunk: frames decoded at a time when going backward.
        name: the video, for messages.
    Returns:
        The hints of every frame a keyframe reaches, with their weights, and the cuts.
    Raises:
        HintsError: keyframes labelled as one shot with a scene cut between them.
    """
    points_of = points_of or (lambda k: k.points)
    by_frame = {k.frame: k for k in keyframes}
    out = Propagation()
    forward: dict[int, list[tuple[tuple[float, float, float, float], int]]] = {}
    track: _Track | None = None
    prev_small = None
    scale = (1.0, 1.0)
    for index, lightness in read(start, stop):
        small = _small(lightness, analysis)
        scale = (small.shape[-2] / lightness.shape[-2], small.shape[-1] / lightness.shape[-1])
        if prev_small is not None:
            if float(cuts.cut_score(prev_small, small)[0]) > cut_threshold:
                out.cuts.append(index)
                track = None
            elif track is not None:
                pair = flow.bidirectional_flow(prev_small, small, method, preset)
                track.step(pair.fwd, pair.bwd)
        if index in by_frame:
            track = _Track(index, points_of(by_frame[index]), scale)
        if track is not None:
            forward[index] = [(p, track.keyframe) for p in track.points()]
        prev_small = small
    _check_shots(keyframes, out.cuts, name)

    backward: dict[int, list[tuple[tuple[float, float, float, float], int]]] = {}
    frames = [k.frame for k in keyframes]
    for i, k in enumerate(keyframes):
        shot_start = max([c for c in out.cuts if c <= k.frame], default=start)
        low = max(shot_start, frames[i - 1] + 1 if i else start)
        if low < k.frame:
            for index, points in _backward(read, k, points_of(k), low, method, preset, analysis, chunk):
                backward[index] = [(p, k.frame) for p in points]

    for index in sorted(set(forward) | set(backward)):
        keyframe = by_frame.get(index)
        if keyframe is not None:
            hints = [HintPoint(*p, 1.0, index) for p in points_of(keyframe)]
        else:
            ahead, behind = forward.get(index, []), backward.get(index, [])
            w1 = w2 = 1.0
            if ahead and behind:  # between two keyframes of the shot: each by nearness
                k1, k2 = ahead[0][1], behind[0][1]
                w1, w2 = (k2 - index) / (k2 - k1), (index - k1) / (k2 - k1)
            hints = [HintPoint(*p, w1, k) for p, k in ahead] + [HintPoint(*p, w2, k) for p, k in behind]
        if hints:
            out.hints[index] = hints
            for h in hints:
                out.kept.setdefault(h.keyframe, {}).setdefault(index, 0)
                out.kept[h.keyframe][index] += 1
    return out


def _backward(read: FrameReader, keyframe: Keyframe, points: Sequence[tuple[float, float, float, float]],
              low: int, method: str, preset: str | None, analysis: int, chunk: int
              ) -> Iterator[tuple[int, list[tuple[float, float, float, float]]]]:
    """Frames ``keyframe.frame - 1`` down to ``low`` with the keyframe's points carried back to each."""
    first = next(read(keyframe.frame, keyframe.frame + 1))[1]
    later = _small(first, analysis)
    scale = (later.shape[-2] / first.shape[-2], later.shape[-1] / first.shape[-1])
    track = _Track(keyframe.frame, points, scale)
    end = keyframe.frame
    while end > low and track.yx.shape[0]:
        begin = max(low, end - chunk)
        smalls = [(i, _small(lightness, analysis)) for i, lightness in read(begin, end)]
        for index, small in reversed(smalls):
            pair = flow.bidirectional_flow(later, small, method, preset)
            track.step(pair.fwd, pair.bwd)
            yield index, track.points()
            later = small
        end = begin


def _check_shots(keyframes: Sequence[Keyframe], cuts: Sequence[int], name: str) -> None:
    """Keyframes the restorer labelled as one shot must have no scene cut between them."""
    for i, a in enumerate(keyframes):
        for b in keyframes[i + 1:]:
            if a.shot is not None and a.shot == b.shot:
                cut = next((c for c in cuts if a.frame < c <= b.frame), None)
                if cut is not None:
                    raise HintsError(f"{name}:{a.line}: keyframes.{a.entry - 1} (frame {a.frame}) and "
                                     f"keyframes.{b.entry - 1} (frame {b.frame}) are labelled shot {a.shot!r}, but a "
                                     f"scene cut was detected at frame {cut}")
