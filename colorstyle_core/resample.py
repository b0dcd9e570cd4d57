"""Image resampling that reproduces what the reference pipelines feed their networks.

Pure tensor functions, batched, on the caller's device.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_like_pil_bicubic(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize 8-bit images the way ``PIL.Image.resize(..., Image.BICUBIC)`` does.

    Pillow resamples separably with an anti-aliasing bicubic kernel (a = -0.5),
    horizontal pass first, and rounds to 8 bits after each pass. Torch's
    ``interpolate(mode="bicubic", antialias=True)`` uses the same kernel, so two
    passes with rounding in between match Pillow to within one 8-bit level on rare
    pixels (measured mean difference below 0.01 level on ../shared/data photos).
    The colorization authors' demo resizes RGB this way before taking L; a resize
    without anti-aliasing moves output colours by several levels (../shared/NOTES.md).

    Args:
        images: ``(N, C, H, W)`` float in ``[0, 1]`` holding 8-bit levels (k / 255).
        size: output ``(height, width)`` in pixels.
    Returns:
        ``(N, C, height, width)`` float in ``[0, 1]``, quantised to 8-bit levels.
    """
    h, w = size
    x = images * 255.0
    if x.shape[-1] != w:
        x = F.interpolate(x, size=(x.shape[-2], w), mode="bicubic", antialias=True, align_corners=False)
        x = x.round().clamp(0.0, 255.0)
    if x.shape[-2] != h:
        x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        x = x.round().clamp(0.0, 255.0)
    if x.shape[-2:] == images.shape[-2:]:
        x = x.round()  # no pass ran: still snap to 8-bit levels
    return x / 255.0


def resize_bilinear(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with ``align_corners=False`` (PyTorch's and the authors' default).

    No anti-aliasing, as in the authors' ``postprocess_tens``: used to bring the
    predicted ab (network resolution) to the original image size.

    Args:
        images: ``(N, C, H, W)`` float.
        size: output ``(height, width)``.
    Returns:
        ``(N, C, height, width)``; the input itself when the size already matches.
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False)


def longer_side_size(hw: tuple[int, int], longer: int, *, upscale: bool = False) -> tuple[int, int]:
    """``(h, w)`` scaled so the longer side is ``longer`` pixels (aspect ratio kept, sides >= 1).

    ``longer == 0`` keeps the size; so does a ``longer`` above the current longer side
    unless ``upscale``.
    """
    h, w = hw
    if not longer or (longer >= max(h, w) and not upscale):
        return h, w
    s = longer / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize_longer(images: Tensor, longer: int, *, upscale: bool = False) -> Tensor:
    """Resize ``(N, C, H, W)`` images in ``[0, 1]`` so their longer side is ``longer`` pixels.

    Bicubic, anti-aliased when shrinking, clamped to ``[0, 1]``: the processing size of the
    stylizer. Returns the input itself when the size does not change (see
    :func:`longer_side_size` for ``longer == 0`` and ``upscale``).
    """
    size = longer_side_size(tuple(images.shape[-2:]), longer, upscale=upscale)
    if size == tuple(images.shape[-2:]):
        return images
    return F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def resize_to(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic resize of ``(N, C, H, W)`` images in ``[0, 1]`` to ``size`` (``(H, W)`` pixels), clamped.

    Used to bring a stylized result back to its input's size; the input itself when it
    already has ``size``.
    """
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bicubic", align_corners=False).clamp(0, 1)
