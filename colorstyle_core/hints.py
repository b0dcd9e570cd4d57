"""Local colour hints for the SIGGRAPH17 user-guided colorizer (Zhang et al. 2017).

A hint says "this pixel has this ab". Hints come as sparse points ``(y, x, a, b)`` in
the original image's pixel coordinates, or as a dense hint ab map with a mask (from a
hint image). Both are rasterised to the network resolution as the authors' training
did: a ``patch x patch`` square of the hint's ab, and 1 in the mask under it.

A hints *file* holds keyframes (:class:`Keyframe`): a frame index and its points, or a
colour version of that frame (an image, with an optional mask). For a still, frame 0;
for a video, :mod:`colorstyle_core.keyframes` carries each keyframe's hints through its
shot. :func:`adhere` then makes the output keep the hinted colours: the network alone
may drift from a hint, whatever its weights.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import AfterValidator, field_validator, model_validator
from torch import Tensor

from colorstyle_core.color import in_gamut
from colorstyle_core.documents import Model, line_of, parse_document


class HintsError(ValueError):
    """Hints could not be parsed or do not fit the image."""


@dataclass(frozen=True)
class ColorHints:
    """Hints for one image.

    Attributes:
        points: ``((y, x, a, b), ...)``: pixel row and column in the original image
            (``0 <= y < H``, ``0 <= x < W``), and ab in Lab units.
        patch: side, in network pixels, of the square each point paints (the authors'
            training used 1 to 9).
        dense_ab: optional ``(1, 2, H, W)`` float32 ab of a hint image, original size.
        dense_mask: optional ``(1, 1, H, W)`` float32 in ``[0, 1]``, 1 where ``dense_ab`` is a hint.
        weights: one weight in ``(0, 1]`` per point (default 1): between two keyframes of a
            shot, each keyframe's points count by their nearness in frames; where squares of
            points overlap their ab is the weighted mean, and :func:`adhere` pulls by it.
    """

    points: tuple[tuple[float, float, float, float], ...] = ()
    patch: int = 3
    dense_ab: Tensor | None = None
    dense_mask: Tensor | None = None
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise HintsError(f"hint patch must be >= 1 pixel, got {self.patch}")
        if (self.dense_ab is None) != (self.dense_mask is None):
            raise HintsError("a hint image needs a mask (and a mask needs a hint image)")
        if self.weights is not None and len(self.weights) != len(self.points):
            raise HintsError(f"{len(self.weights)} hint weights for {len(self.points)} points")

    def weight(self, i: int) -> float:
        """The weight of point ``i``."""
        return 1.0 if self.weights is None else float(self.weights[i])

    @property
    def empty(self) -> bool:
        return not self.points and self.dense_ab is None


@dataclass(frozen=True)
class Keyframe:
    """One entry of a hints file: hints for frame ``frame`` (0 for a still).

    Attributes:
        frame: the frame's index in the video (0-based, decode order = display order).
        points: ``((y, x, a, b), ...)`` in the frame's pixels and Lab units.
        patch: side of each point's square at the network's 256 x 256.
        image: URI of a colour version of this frame: its ab are the hints (where ``mask``
            is set, or at :func:`confident_points` without a mask).
        mask: URI of a mask image for ``image`` (nonzero = hint).
        shot: optional label; keyframes with the same label must be in the same shot.
        entry: 1-based position in the file.
        line: the entry's line in the file (1 when unknown).
        reference: ``deepexemplar``: URI of a colour photo whose colours the frames take from this
            keyframe to the next reference keyframe (no points, image or mask with it).
    """

    frame: int
    points: tuple[tuple[float, float, float, float], ...] = ()
    patch: int = 3
    image: str | None = None
    mask: str | None = None
    shot: str | None = None
    entry: int = 1
    line: int = 1
    reference: str | None = None


@dataclass(frozen=True)
class HintsFile:
    """A parsed hints file: its keyframes in frame order."""

    name: str
    keyframes: tuple[Keyframe, ...]

    def at(self, frame: int) -> Keyframe | None:
        """The keyframe of ``frame``, if any."""
        return next((k for k in self.keyframes if k.frame == frame), None)

    def where(self, keyframe: Keyframe) -> str:
        """``file:line: keyframes.N (frame F)``: how messages name a keyframe (N counts from 0, as the file's list)."""
        return f"{self.name}:{keyframe.line}: keyframes.{keyframe.entry - 1} (frame {keyframe.frame})"

    def check_kind(self, references: bool) -> None:
        """Every keyframe a reference photo (``references``: the ``deepexemplar`` colorizer), or none of them.

        Raises:
            HintsError: naming the first keyframe of the other kind.
        """
        for k in self.keyframes:
            if (k.reference is not None) != references:
                raise HintsError(f"{self.where(k)}: " + (
                    "this model takes a 'reference' per keyframe, not colour hints" if references else
                    "'reference' keyframes are for model deepexemplar; this model takes points or an image"))


def reference_at(references: Sequence[tuple[int, str]], frame: int, cuts: Sequence[int] = ()) -> str | None:
    """The reference URI that applies to ``frame``: a reference applies from its keyframe to the next reference
    keyframe or the next scene cut, whichever comes first.

    Args:
        references: ``(frame, URI)`` reference keyframes, in frame order.
        cuts: frames that start a new shot.
    Returns:
        The URI of the last keyframe at or before ``frame`` with no cut after it up to ``frame``; ``None``
        (the job's reference) before the first keyframe and in a shot no keyframe starts.
    """
    current, since = None, -1
    for start, uri in references:
        if start > frame:
            break
        current, since = uri, start
    return None if any(since < c <= frame for c in cuts) else current


def _point(row: Any) -> tuple[float, float, float, float]:
    try:
        y, x, a, b = (float(v) for v in row)
    except (TypeError, ValueError):
        raise ValueError(f"a point is [y, x, a, b], four numbers; got {row!r}") from None
    return y, x, a, b


class _KeyframeEntry(Model):
    """A keyframe as the file spells it (validated; :class:`Keyframe` is what the code uses)."""

    frame: Any
    points: list[Annotated[Any, AfterValidator(_point)]] = []
    patch: Any = 3
    image: Any = None
    mask: Any = None
    shot: Any = None
    reference: Any = None

    @field_validator("frame")
    @classmethod
    def _frame_index(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"must be a frame index (an integer >= 0), got {value!r}")
        return value

    @field_validator("patch")
    @classmethod
    def _patch_side(cls, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"must be an integer >= 1, got {value!r}")
        return value

    @field_validator("image", "mask", "reference")
    @classmethod
    def _uri(cls, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise ValueError(f"must be a URI, got {value!r}")
        return value

    @model_validator(mode="after")
    def _some_hints(self) -> _KeyframeEntry:
        if self.reference is not None:
            if self.points or self.image is not None or self.mask is not None:
                raise ValueError("a 'reference' keyframe takes no 'points', 'image' or 'mask' (a reference photo "
                                 "and colour hints on one keyframe are not combined)")
            return self
        if self.mask is not None and self.image is None:
            raise ValueError("a 'mask' needs an 'image'")
        if not self.points and self.image is None:
            raise ValueError("no hints: give 'points' or an 'image'")
        return self


class _HintsDocument(Model):
    keyframes: list[_KeyframeEntry]

    @field_validator("keyframes")
    @classmethod
    def _one_entry_per_frame(cls, keyframes: list[_KeyframeEntry]) -> list[_KeyframeEntry]:
        frames = [k.frame for k in keyframes]
        for f in sorted(set(frames)):
            entries = [i for i, g in enumerate(frames) if g == f]
            if len(entries) > 1:
                raise ValueError(f"entries {entries} are all for frame {f}")
        return keyframes


def parse_hints(text: str, name: str = "hints") -> HintsFile:
    """Parse a hints file: ``{"keyframes": [...]}``, or the points of one still (:func:`parse_points`).

    A keyframe is ``{"frame": N, "points": [[y, x, a, b], ...], "patch": 3}`` or
    ``{"frame": N, "image": URI, "mask": URI}`` (mask optional), optionally with
    ``"shot": label``. The older points-only formats (JSON ``{"points": ...}``, a bare
    list, CSV rows) are one keyframe at frame 0.

    Raises:
        HintsError: ``file:line: key: problem`` for each problem (invalid JSON, unknown keys, a
            frame that is not a non-negative integer, a point that is not four numbers, a mask
            without an image, an entry with no hints, two entries for one frame), as manifests
            report theirs (:mod:`colorstyle_core.documents`).
    """
    stripped = text.strip()
    if not stripped.startswith("{") or '"keyframes"' not in stripped:
        still = parse_points(text, name)
        return HintsFile(name, (Keyframe(0, still.points, still.patch),) if still.points else ())
    try:
        json.loads(stripped)
    except json.JSONDecodeError as e:
        raise HintsError(f"{name}: invalid JSON ({e})") from None
    doc = parse_document(text, name, _HintsDocument, 'a "keyframes" list', HintsError)
    keyframes = [Keyframe(k.frame, tuple(k.points), k.patch, k.image, k.mask, None if k.shot is None else str(k.shot),
                          n, line_of(text, ("keyframes", n - 1)) or 1, k.reference)
                 for n, k in enumerate(doc.keyframes, start=1)]
    return HintsFile(name, tuple(sorted(keyframes, key=lambda k: k.frame)))


def check_keyframes(hints: HintsFile, frames: tuple[int, int], size: tuple[int, int],
                    image_sizes: dict[str, tuple[int, int]] | None = None) -> None:
    """Check a hints file against its video (or still) before any work.

    Args:
        hints: the parsed file.
        frames: the frames that will be processed, ``[start, stop)``.
        size: the frames' ``(width, height)`` in pixels.
        image_sizes: ``{URI: (width, height)}`` of the keyframes' images and masks (from their headers).
    Raises:
        HintsError: ``file:line: keyframes.N (frame F): problem``: a frame outside ``[start, stop)``, a point
            outside the frame, an image or mask of another size than the frames.
    """
    (start, stop), (width, height) = frames, size
    for k in hints.keyframes:
        where = hints.where(k)
        if not start <= k.frame < stop:
            raise HintsError(f"{where}: beyond the frames processed, [{start}, {stop})")
        for i, (y, x, _, _) in enumerate(k.points):
            if not (0 <= y < height and 0 <= x < width):
                raise HintsError(f"{where}: points.{i} at (y={y:g}, x={x:g}) is outside the {width}x{height} frame")
        for uri in (k.image, k.mask):
            got = (image_sizes or {}).get(uri) if uri else None
            if got is not None and tuple(got) != (width, height):
                raise HintsError(f"{where}: {uri} is {got[0]}x{got[1]}, the frame {width}x{height}")


def confident_points(ab: Tensor, mask: Tensor | None = None, spacing: int = 24, max_points: int = 64,
                     window: int = 9, max_spread: float = 4.0, lightness: Tensor | None = None
                     ) -> tuple[tuple[float, float, float, float], ...]:
    """Hint points sampled from a colour keyframe: where its colour is clear and uniform.

    Candidates lie on a grid every ``spacing`` pixels (inside ``mask`` when given). Each
    gets the mean ab of the ``window x window`` pixels around it; without a mask only
    candidates whose ab spread there (the root of the summed variances of a and b) is at
    most ``max_spread`` Lab units are kept: inside one uniformly coloured region, so a point
    that moves a little along the shot still lands on its colour. With ``lightness`` (the
    L of the frame being coloured), a colour that does not exist in sRGB at that L is not
    taken (a colour reference's L can differ from the film's: a saturated red may be
    darker in the grey film, and no output that keeps the film's L could show it). At most
    ``max_points`` are returned, evenly chosen in scan order so they cover the frame.

    Args:
        ab: ``(1, 2, H, W)`` float32 ab of the colour keyframe.
        mask: ``(1, 1, H, W)``, nonzero where it gives hints, or ``None``.
        lightness: ``(1, 1, H, W)`` L of the frame the hints are for, or ``None``.
    Returns:
        ``((y, x, a, b), ...)`` in the frame's pixel coordinates.
    """
    H, W = ab.shape[-2:]
    pad = window // 2
    mean = F.avg_pool2d(F.pad(ab, (pad, pad, pad, pad), mode="replicate"), window, stride=1)
    square = F.avg_pool2d(F.pad(ab * ab, (pad, pad, pad, pad), mode="replicate"), window, stride=1)
    spread = (square - mean * mean).clamp_min(0.0).sum(dim=1).sqrt()[0]  # (H, W)
    ys = torch.arange(spacing // 2, H, spacing)
    xs = torch.arange(spacing // 2, W, spacing)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gy, gx = gy.flatten(), gx.flatten()
    if mask is not None:
        keep = mask[0, 0, gy, gx] > 0
    else:
        keep = spread[gy, gx] <= max_spread
    if lightness is not None:
        lab = torch.stack((lightness[0, 0, gy, gx], mean[0, 0, gy, gx], mean[0, 1, gy, gx])).view(1, 3, 1, -1)
        keep &= in_gamut(lab.to(torch.float64))[0, 0]
    gy, gx = gy[keep], gx[keep]
    if gy.numel() > max_points:  # spread the chosen ones over the frame: evenly in scan order
        chosen = torch.linspace(0, gy.numel() - 1, max_points).round().long().unique()
        gy, gx = gy[chosen], gx[chosen]
    return tuple((float(y), float(x), float(mean[0, 0, y, x]), float(mean[0, 1, y, x])) for y, x in zip(gy, gx))


def keyframe_points(keyframe: Keyframe, image_ab: Tensor | None = None, mask: Tensor | None = None,
                    lightness: Tensor | None = None) -> tuple[tuple[float, float, float, float], ...]:
    """The points a keyframe's hints are carried by: its own points, or points sampled from its
    colour image (a grid inside its mask, or :func:`confident_points` without a mask).

    Args:
        keyframe: the entry.
        image_ab: ``(1, 2, H, W)`` ab of its image (required when it has one).
        mask: ``(1, 1, H, W)`` of its mask image, nonzero = hint.
        lightness: ``(1, 1, H, W)`` L of the frame itself (sampled colours must exist at it).
    """
    if keyframe.image is None:
        return keyframe.points
    if image_ab is None:
        raise HintsError(f"keyframes.{keyframe.entry - 1} (frame {keyframe.frame}): its image {keyframe.image} is "
                         "needed")
    return keyframe.points + confident_points(image_ab, mask, lightness=lightness)


def keyframe_hints(keyframe: Keyframe, image_ab: Tensor | None = None, mask: Tensor | None = None,
                   lightness: Tensor | None = None) -> ColorHints:
    """A keyframe's hints on its own frame: its points, and with an image and a mask the image's ab
    wherever the mask is set (a dense hint); with an image and no mask, :func:`confident_points`
    (at ``lightness``, the frame's own L, when given)."""
    if keyframe.image is not None and mask is not None:
        if image_ab is None:
            raise HintsError(f"keyframes.{keyframe.entry - 1} (frame {keyframe.frame}): its image {keyframe.image} is "
                             "needed")
        return ColorHints(points=keyframe.points, patch=keyframe.patch, dense_ab=image_ab,
                          dense_mask=(mask > 0).to(torch.float32))
    return ColorHints(points=keyframe_points(keyframe, image_ab, mask, lightness), patch=keyframe.patch)


def parse_points(text: str, name: str = "hints") -> ColorHints:
    """Parse hint points from JSON or CSV text.

    JSON: ``{"points": [[y, x, a, b], ...], "patch": 3}`` or a bare list of points.
    CSV: one ``y,x,a,b`` row per point; a header row is allowed.

    Raises:
        HintsError: naming ``name`` and the offending row.
    """
    stripped = text.strip()
    patch = 3
    rows: list = []
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise HintsError(f"{name}: invalid JSON ({e})") from None
        if isinstance(doc, dict):
            unknown = set(doc) - {"points", "patch"}
            if unknown:
                raise HintsError(f"{name}: unknown key(s) {sorted(unknown)}; expected 'points' and 'patch'")
            rows = doc.get("points", [])
            patch = int(doc.get("patch", 3))
        else:
            rows = doc
    else:
        rows = [r for r in csv.reader(io.StringIO(stripped)) if r]
        if rows and not _is_number(rows[0][0]):
            rows = rows[1:]  # header row
    points = []
    for i, row in enumerate(rows, start=1):
        try:
            y, x, a, b = (float(v) for v in row)
        except (TypeError, ValueError):
            raise HintsError(f"{name}: point {i} should be [y, x, a, b] numbers, got {row!r}") from None
        points.append((y, x, a, b))
    return ColorHints(points=tuple(points), patch=patch)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def rasterize(hints: ColorHints, image_hw: tuple[int, int], net_hw: tuple[int, int],
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Hints for one image at network resolution.

    Args:
        hints: the image's hints.
        image_hw: original ``(H, W)``; point coordinates refer to it.
        net_hw: network input ``(h, w)``.
    Returns:
        ``(ab, mask)``: ``(1, 2, h, w)`` float32 ab in Lab units (0 where no hint) and
        ``(1, 1, h, w)`` float32 in {0, 1}.
    Raises:
        HintsError: for a point outside the image or a dense hint of the wrong size.
    """
    (H, W), (h, w) = image_hw, net_hw
    ab = torch.zeros(1, 2, h, w, device=device)
    mask = torch.zeros(1, 1, h, w, device=device)
    if hints.dense_ab is not None:
        assert hints.dense_mask is not None
        if tuple(hints.dense_ab.shape[-2:]) != (H, W) or tuple(hints.dense_mask.shape[-2:]) != (H, W):
            raise HintsError(
                f"hint image is {tuple(hints.dense_ab.shape[-2:])} and mask {tuple(hints.dense_mask.shape[-2:])}, "
                f"but the image is {(H, W)}"
            )
        m = hints.dense_mask.to(device=device, dtype=torch.float32)
        weighted = F.adaptive_avg_pool2d(hints.dense_ab.to(device) * m, (h, w))
        coverage = F.adaptive_avg_pool2d(m, (h, w))
        hit = coverage > 0
        ab = torch.where(hit, weighted / coverage.clamp_min(1e-8), ab)
        mask = hit.float()
    half = hints.patch // 2
    if hints.weights is None:  # the authors' way: each square paints its point's ab
        for i, (y, x, a, b) in enumerate(hints.points, start=1):
            y0, y1, x0, x1 = _square(i, y, x, H, W, h, w, hints.patch, half)
            ab[0, 0, y0:y1, x0:x1] = a
            ab[0, 1, y0:y1, x0:x1] = b
            mask[0, 0, y0:y1, x0:x1] = 1.0
        return ab, mask
    total = torch.zeros(1, 2, h, w, device=device)  # weighted: overlapping squares give the weighted mean
    weight = torch.zeros(1, 1, h, w, device=device)
    for i, (y, x, a, b) in enumerate(hints.points, start=1):
        y0, y1, x0, x1 = _square(i, y, x, H, W, h, w, hints.patch, half)
        wi = hints.weight(i - 1)
        total[0, 0, y0:y1, x0:x1] += wi * a
        total[0, 1, y0:y1, x0:x1] += wi * b
        weight[0, 0, y0:y1, x0:x1] += wi
    hit = weight > 0
    ab = torch.where(hit, total / weight.clamp_min(1e-12), ab)
    mask = torch.where(hit, torch.ones_like(mask), mask)
    return ab, mask


def rasterize_batch(hints: Sequence[ColorHints | None] | None, sizes: Sequence[tuple[int, int]],
                    net_hw: tuple[int, int], device: torch.device | str = "cpu") -> tuple[Tensor | None, Tensor | None]:
    """:func:`rasterize` for a network batch: one hint set (or ``None``) per image of ``sizes``.

    Returns:
        ``(ab, mask)``: ``(N, 2, h, w)`` and ``(N, 1, h, w)`` float32, or ``(None, None)`` when no image has hints.
    Raises:
        ValueError: a hint count that differs from the image count.
        HintsError: a point outside its image, a dense hint of the wrong size.
    """
    if hints is None or all(h is None or h.empty for h in hints):
        return None, None
    if len(hints) != len(sizes):
        raise ValueError(f"{len(hints)} hint sets for {len(sizes)} images")
    abs_, masks = [], []
    for h, hw in zip(hints, sizes):
        ab, mask = rasterize(h or ColorHints(), hw, net_hw, device)
        abs_.append(ab)
        masks.append(mask)
    return torch.cat(abs_), torch.cat(masks)


def _square(i: int, y: float, x: float, H: int, W: int, h: int, w: int, patch: int, half: int
            ) -> tuple[int, int, int, int]:
    if not (0 <= y < H and 0 <= x < W):
        raise HintsError(f"hint point {i} at (y={y}, x={x}) is outside the {H}x{W} image")
    cy, cx = int(y * h / H), int(x * w / W)
    y0, x0 = max(cy - half, 0), max(cx - half, 0)
    return y0, min(y0 + patch, h), x0, min(x0 + patch, w)


# ---- keeping the hinted colours ----------------------------------------------------------


class HintPull:
    """Pulls predicted ab towards an image's hints, so the output keeps the hinted colours.

    Around each point, ``alpha(d) = adherence * w * s(d)``: ``s = 1`` over the point's
    square (its ``patch`` network pixels at full resolution), then a raised cosine down
    to 0 at ``radius`` pixels beyond it; a dense hint (image + mask) gets ``s = 1`` over its
    mask, falling off the same way outside it. Overlapping hints take their alpha-weighted
    mean ab and the largest alpha. ``ab_out = (1 - alpha) * ab + alpha * ab_hint``: with
    adherence 1 and weight 1 a hint's own pixels get its ab exactly, whatever the network
    predicted; L is not touched (the caller joins ab with the input's L).

    Args:
        hints: the image's hints (points in its pixel coordinates).
        size: the image's ``(H, W)``.
        net_hw: the network's input size (the squares' scale: ``patch * H / h`` pixels).
        adherence: 0 (network alone) .. 1 (hints kept exactly).
        radius: pixels over which the pull fades to nothing around a hint.
    Raises:
        ValueError: adherence outside ``[0, 1]`` or a negative radius.
    """

    def __init__(self, hints: ColorHints, size: tuple[int, int], net_hw: tuple[int, int], adherence: float = 1.0,
                 radius: float = 24.0):
        if not 0.0 <= adherence <= 1.0 or radius < 0:
            raise ValueError(f"hint adherence must be in [0, 1] and the radius >= 0, got {adherence}, {radius}")
        self.hints, self.size, self.adherence, self.radius = hints, tuple(size), adherence, radius
        H, W = self.size
        self.half = (0.5 * hints.patch * H / net_hw[0], 0.5 * hints.patch * W / net_hw[1])
        self.reach = int(math.ceil(radius + max(self.half))) + 1
        self.dense_alpha = None
        if hints.dense_ab is not None and hints.dense_mask is not None and adherence > 0:
            self.dense_alpha = adherence * _falloff(_distance_outside(hints.dense_mask), radius)

    def __call__(self, ab: Tensor, row0: int = 0) -> Tensor:
        """``ab`` pulled towards the hints.

        Args:
            ab: ``(1, 2, h, W)`` float32 predicted ab: rows ``row0 .. row0 + h`` of the image.
            row0: the first row of ``ab`` in the image (large images go a band at a time).
        Returns:
            ``(1, 2, h, W)`` float32, a new tensor (``ab`` itself when there is nothing to pull).
        """
        if self.adherence == 0.0 or self.hints.empty:
            return ab
        h, W = ab.shape[-2:]
        kw = {"dtype": ab.dtype, "device": ab.device}
        pull, top = torch.zeros(1, 1, h, W, **kw), torch.zeros(1, 1, h, W, **kw)
        target = torch.zeros(1, 2, h, W, **kw)
        half_h, half_w = self.half
        for i, (y, x, a, b) in enumerate(self.hints.points):
            y0, y1 = max(row0, int(y) - self.reach), min(row0 + h, int(y) + self.reach + 1)
            x0, x1 = max(0, int(x) - self.reach), min(W, int(x) + self.reach + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            yy = torch.arange(y0, y1, **kw).view(-1, 1)
            xx = torch.arange(x0, x1, **kw).view(1, -1)
            dy = ((yy - y).abs() - half_h).clamp_min(0.0)
            dx = ((xx - x).abs() - half_w).clamp_min(0.0)
            alpha = self.adherence * self.hints.weight(i) * _falloff(torch.sqrt(dy * dy + dx * dx), self.radius)
            rows = slice(y0 - row0, y1 - row0)
            pull[0, 0, rows, x0:x1] += alpha
            target[0, 0, rows, x0:x1] += alpha * a
            target[0, 1, rows, x0:x1] += alpha * b
            top[0, 0, rows, x0:x1] = torch.maximum(top[0, 0, rows, x0:x1], alpha)
        if self.dense_alpha is not None and self.hints.dense_ab is not None:
            alpha = self.dense_alpha[..., row0:row0 + h, :].to(**kw)
            pull += alpha
            target += alpha * self.hints.dense_ab[..., row0:row0 + h, :].to(**kw)
            top = torch.maximum(top, alpha)
        mean = torch.where(pull > 0, target / pull.clamp_min(1e-12), ab)
        return (1.0 - top) * ab + top * mean


def adhere(ab: Tensor, hints: ColorHints, net_hw: tuple[int, int], adherence: float = 1.0,
           radius: float = 24.0) -> Tensor:
    """:class:`HintPull` for a whole ``(1, 2, H, W)`` ab map at once."""
    return HintPull(hints, tuple(ab.shape[-2:]), net_hw, adherence, radius)(ab)


def _falloff(distance: Tensor, radius: float) -> Tensor:
    """1 at distance 0, a raised cosine down to 0 at ``radius`` (a step when the radius is 0)."""
    if radius <= 0:
        return (distance <= 0).to(distance.dtype)
    x = (distance / radius).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * x))


def _distance_outside(mask: Tensor) -> Tensor:
    """Per pixel, the distance in pixels to the nearest pixel of ``mask > 0`` (0 inside): ``(1, 1, H, W)``."""
    import cv2

    outside = (mask[0, 0] <= 0).cpu().numpy().astype(np.uint8)
    if not outside.any():
        return torch.zeros_like(mask, dtype=torch.float32)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    return torch.from_numpy(distance)[None, None]
