"""Training data: which files and frames, split by file, read by each worker, cropped and flipped.

* A *source* is one file: an image, or a video with the frames sampled from it, spread
  over the whole film (one frame drawn at random from each of ``n`` equal stretches), so
  a fine-tuning run sees the whole reel, not one scene.
* The validation split holds out whole files (a video entirely), never frames of a shot
  that is also trained on.
* Each worker reads only its own sources (every ``workers``-th one), through fsspec, and
  keeps them in memory at a modest size (the shorter side ``1.25 x`` the crop size); a grey
  source (R = G = B everywhere, so no colour to learn from) is skipped with a reason.
* A sample is a random crop (a square of 60-100 % of the shorter side, resized to the
  crop size, bicubic, anti-aliased) flipped left-right half the time; for a temporal loss,
  pairs of consecutive video frames get the same crop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from colorstyle_core import imageio, storage
from colorstyle_core.video import VideoError, probe, read_frames

CROP_SCALE = (0.6, 1.0)
"""Side of a random crop, as a fraction of the image's shorter side."""
KEEP_SCALE = 1.25
"""Images are kept with their shorter side this many times the crop size."""
GREY_TOLERANCE = 2
"""An image is grey when no pixel's channels differ by more than this many 8-bit levels."""


@dataclass(frozen=True)
class Source:
    """One training file: an image, or a video and the frames taken from it."""

    uri: str
    kind: str  # "image" | "video"
    frames: tuple[int, ...] = ()


def spread_frames(frame_count: int, n: int, rng: random.Random) -> tuple[int, ...]:
    """``n`` frame indices spread over ``[0, frame_count)``: one at random in each of ``n`` equal stretches."""
    if frame_count <= n:
        return tuple(range(frame_count))
    edges = np.linspace(0, frame_count, n + 1)
    return tuple(sorted({min(frame_count - 1, int(rng.uniform(edges[i], edges[i + 1]))) for i in range(n)}))


def split_by_file(sources: Sequence[Source], fraction: float, seed: int) -> tuple[list[Source], list[Source]]:
    """``(train, validation)``: whole files held out, ``round(fraction * n)`` of them (at least one when
    ``fraction > 0`` and there are two or more files), chosen with ``seed``."""
    order = sorted(sources, key=lambda s: s.uri)
    random.Random(seed).shuffle(order)
    held = round(fraction * len(order))
    if fraction > 0 and len(order) >= 2:
        held = max(1, min(held, len(order) - 1))
    return order[held:], order[:held]


def is_grey(rgb: np.ndarray, tolerance: int = GREY_TOLERANCE) -> bool:
    """Whether an ``(H, W, 3)`` uint8 image has no colour (all channels within ``tolerance`` levels)."""
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        return True
    x = rgb.astype(np.int16)
    return int(np.abs(x[..., 0] - x[..., 1]).max()) <= tolerance and int(np.abs(x[..., 1] - x[..., 2]).max()) <= \
        tolerance


def _keep(rgb: np.ndarray, size: int) -> Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, h, w)`` uint8 with the shorter side ``KEEP_SCALE * size`` (never enlarged)."""
    t = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)[None].float()  # a writable copy
    h, w = t.shape[-2:]
    short = min(h, w)
    target = int(math.ceil(KEEP_SCALE * size))
    if short > target:
        s = target / short
        t = F.interpolate(t, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bicubic",
                          antialias=True, align_corners=False)
    return t.round().clamp(0, 255).to(torch.uint8)[0]


def load_source(source: Source, size: int, storage_options: dict | None = None
                ) -> tuple[list[Tensor], str | None]:
    """Read one source: its images (``(3, h, w)`` uint8, kept at a modest size) or why it is skipped.

    Returns:
        ``(images, None)``, or ``([], reason)`` for a grey, unreadable or too small file.
    """
    try:
        if source.kind == "image":
            decoded = imageio.decode_image(storage.read_bytes(source.uri, storage_options), source.uri, keep_uint8=True)
            pixels = decoded.pixels
            if pixels.dtype != np.uint8:  # 16-bit sources: to 8 bits
                pixels = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
            frames = [pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)]
        else:
            frames = []
            with storage.open_source(source.uri, storage_options) as video:
                info = probe(video, source.uri)
                for index in source.frames:
                    frames.append(next(read_frames(video, info, index, index + 1, source.uri))[1])
    except (imageio.ImageDecodeError, VideoError, FileNotFoundError, OSError) as e:
        return [], f"unreadable: {e}"
    if all(is_grey(f) for f in frames):
        return [], "grey: no colour to learn from"
    frames = [f for f in frames if min(f.shape[:2]) >= 32]
    if not frames:
        return [], "smaller than 32 pixels"
    return [_keep(f, size) for f in frames], None


def random_crop(image: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A random square crop (``CROP_SCALE`` of the shorter side) of a ``(3, h, w)`` uint8 image, resized to
    ``size`` and flipped left-right half the time: ``(3, size, size)`` float32 in ``[0, 1]``.

    A ``(k, 3, h, w)`` stack (consecutive frames) gets the same crop and flip on every frame:
    ``(k, 3, size, size)``.
    """
    h, w = image.shape[-2:]
    lo, hi = CROP_SCALE
    side = int(min(h, w) * (lo + (hi - lo) * float(torch.rand((), generator=generator))))
    side = max(min(h, w, 32), side)
    y = int(torch.randint(0, h - side + 1, (), generator=generator))
    x = int(torch.randint(0, w - side + 1, (), generator=generator))
    stack = image if image.ndim == 4 else image[None]
    crop = stack[..., y:y + side, x:x + side].float() / 255.0
    if side != size:
        crop = F.interpolate(crop, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    if float(torch.rand((), generator=generator)) < 0.5:
        crop = crop.flip(-1)
    crop = crop.clamp(0.0, 1.0)
    return crop if image.ndim == 4 else crop[0]


def load_pairs(source: Source, size: int, storage_options: dict | None = None) -> list[Tensor]:
    """Consecutive frames ``(t, t + 1)`` of a video for each sampled ``t`` (temporal loss): each
    ``(2, 3, h, w)`` uint8 at the kept size; ``[]`` for images, unreadable or grey videos."""
    if source.kind != "video":
        return []
    pairs = []
    try:
        with storage.open_source(source.uri, storage_options) as video:
            info = probe(video, source.uri)
            for index in source.frames:
                if index + 1 >= info.frame_count:
                    continue
                frames = [rgb for _, rgb in read_frames(video, info, index, index + 2, source.uri)]
                if len(frames) == 2 and not all(is_grey(f) for f in frames) and min(frames[0].shape[:2]) >= 32:
                    pairs.append(torch.stack([_keep(f, size) for f in frames]))
    except (VideoError, FileNotFoundError, OSError):
        return []
    return pairs


def batch(pool: Sequence[Tensor], n: int, size: int, generator: torch.Generator) -> Tensor:
    """``n`` random crops from ``pool``: ``(n, 3, size, size)`` float32 sRGB in ``[0, 1]`` (a pool of
    ``(2, 3, h, w)`` frame pairs gives ``(n, 2, 3, size, size)``, each pair cropped alike)."""
    picks = torch.randint(0, len(pool), (n,), generator=generator).tolist()
    return torch.stack([random_crop(pool[i], size, generator) for i in picks])
