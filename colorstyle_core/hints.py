"""Local colour hints for the SIGGRAPH17 user-guided colorizer (Zhang et al. 2017).

A hint says "this pixel has this ab". Hints come as sparse points ``(y, x, a, b)`` in
the original image's pixel coordinates, or as a dense hint ab map with a mask (from a
hint image). Both are rasterised to the network resolution as the authors' training
did: a ``patch x patch`` square of the hint's ab, and 1 in the mask under it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


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
    """

    points: tuple[tuple[float, float, float, float], ...] = ()
    patch: int = 3
    dense_ab: Tensor | None = None
    dense_mask: Tensor | None = None

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise HintsError(f"hint patch must be >= 1 pixel, got {self.patch}")
        if (self.dense_ab is None) != (self.dense_mask is None):
            raise HintsError("a hint image needs a mask (and a mask needs a hint image)")

    @property
    def empty(self) -> bool:
        return not self.points and self.dense_ab is None


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
    for i, (y, x, a, b) in enumerate(hints.points, start=1):
        if not (0 <= y < H and 0 <= x < W):
            raise HintsError(f"hint point {i} at (y={y}, x={x}) is outside the {H}x{W} image")
        cy, cx = int(y * h / H), int(x * w / W)
        y0, x0 = max(cy - half, 0), max(cx - half, 0)
        y1, x1 = min(y0 + hints.patch, h), min(x0 + hints.patch, w)
        ab[0, 0, y0:y1, x0:x1] = a
        ab[0, 1, y0:y1, x0:x1] = b
        mask[0, 0, y0:y1, x0:x1] = 1.0
    return ab, mask
