"""Deep Exemplar-based Video Colorization's own pre- and post-processing, as the authors' ``test.py`` does it: what
``colorstyle_core.exemplar`` runs under ``gamut="clip"`` (Zhang, He, Liao, Sander, Yuan, Bermak, Chen, CVPR 2019;
code at commit 2c41bdf). Pure array maths: scikit-image's resize and Lab, their Lab -> RGB formula, OpenCV contrib's
fast global smoother.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

AB_GAIN = 1.25
"""The authors' gain on the upsampled ab (``clip`` only)."""
SMOOTHER_LAMBDA, SMOOTHER_SIGMA = 500.0, 4.0
"""The authors' fast global smoother: lambda and sigma_color (``clip`` only)."""

_AUTHORS_RGB_FROM_XYZ = ((3.24048134, -0.96925495, 0.05564664), (-1.53715152, 1.87599, -0.20404134),
                         (-0.49853633, 0.04155593, 1.05731107))
"""The authors' XYZ -> linear sRGB matrix, laid out for row vectors (``rgb = xyz @ M``)."""


def cover_crop(rgb8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The authors' ``CenterPad``: resize (scikit-image, antialiased, reflect) so the image covers
    ``size`` ``(height, width)`` keeping its aspect, centre-crop, truncate to 8 bits.

    ``(H, W, 3)`` uint8 -> ``size + (3,)`` uint8.
    """
    from skimage.transform import resize

    height, width = size
    h0, w0 = rgb8.shape[:2]
    ratio = height / width
    if h0 / w0 == ratio:
        if h0 == height:
            return rgb8
        new = [int(x * height / h0) for x in (h0, w0)]
        return resize(rgb8, new, mode="reflect", preserve_range=True, clip=False, anti_aliasing=True).astype(np.uint8)
    out = np.zeros((height, width, 3))
    if h0 / w0 > ratio:
        new = [int(x * width / w0) for x in (h0, w0)]
        big = resize(rgb8, new, mode="reflect", preserve_range=True, clip=False, anti_aliasing=True)
        top = (big.shape[0] - height) // 2
        out[:] = big[top:top + height]
    else:
        new = [int(x * height / h0) for x in (h0, w0)]
        big = resize(rgb8, new, mode="reflect", preserve_range=True, clip=False, anti_aliasing=True)
        left = (big.shape[1] - width) // 2
        out[:] = big[:, left:left + width]
    return out.astype(np.uint8)


def authors_lab(rgb8: np.ndarray, size: tuple[int, int]) -> Tensor:
    """The authors' frame transform: :func:`cover_crop`, scikit-image's ``rgb2lab`` (float64), float32,
    L centred. ``(H, W, 3)`` uint8 -> ``(1, 3, *size)`` float32."""
    from skimage import color as skcolor

    lab = torch.from_numpy(skcolor.rgb2lab(cover_crop(rgb8, size)).transpose((2, 0, 1))).float()
    lab[0:1].sub_(50).div_(1)
    return lab[None]


def authors_lab_to_rgb(lab: Tensor) -> Tensor:
    """The authors' ``tensor_lab2rgb``: ``(N, 3, H, W)`` float32 Lab (L in ``[0, 100]``) -> sRGB in ``[0, 1]``.

    CIE Lab -> XYZ (D65, the linear segment below 0.2068966 as ``(t - 16/116) / 7.787``), their
    XYZ -> linear sRGB matrix, the sRGB curve, clipped; in their operation order (float32)."""
    n, _, h, w = lab.shape
    lab = lab.transpose(1, 2).transpose(2, 3)
    lightness, a, b = lab[..., 0:1], lab[..., 1:2], lab[..., 2:]
    y = (lightness + 16.0) / 116.0
    x = (a / 500.0) + y
    z = y - (b / 200.0)
    z = z.clone()
    z[z < 0] = 0
    xyz = torch.cat((x, y, z), dim=3)
    cube = xyz > 0.2068966  # masked, as they do: torch's pow on a gathered vector, not on the strided tensor
    lin = xyz.clone()
    lin[cube] = torch.pow(xyz[cube], 3.0)
    lin[~cube] = (xyz[~cube] - 16.0 / 116.0) / 7.787
    lin[..., 0] = lin[..., 0] * 0.95047
    lin[..., 2] = lin[..., 2] * 1.08883
    matrix = torch.tensor(_AUTHORS_RGB_FROM_XYZ, dtype=torch.float64).to(lab.dtype)
    rgb = torch.mm(lin.view(-1, 3), matrix).view(n, h, w, 3).transpose(2, 3).transpose(1, 2)
    curve = rgb > 0.0031308
    out = rgb.clone()
    out[curve] = 1.055 * torch.pow(rgb[curve], 1 / 2.4) - 0.055
    out[~curve] = rgb[~curve] * 12.92
    return out.clamp(0, 1)


def authors_post(l_large: Tensor, ab: Tensor) -> np.ndarray:
    """The authors' post-processing (``clip``): ab upsampled x2 (bilinear) and multiplied by :data:`AB_GAIN`,
    smoothed by the fast global smoother guided by the 8-bit L, joined with L, scikit-image's Lab -> sRGB,
    clipped and truncated.

    Args:
        l_large: ``(1, 1, H, W)`` L - 50 at ``image_size`` (their centred L), float32 on the CPU.
        ab: ``(1, 2, H / 2, W / 2)`` the network's ab, float32 on the CPU.
    Returns:
        ``(H, W, 3)`` uint8 sRGB.
    """
    up = F.interpolate(ab, scale_factor=2, mode="bilinear") * AB_GAIN
    guide = ((l_large * 1.0 + 50.0) * 255 / 100)[0, 0].numpy().astype(np.uint8)
    smoother = _fast_global_smoother(guide)
    a, b = (smoother.filter(up[0, c].numpy()) for c in (0, 1))
    lab_out = torch.cat((l_large * 1.0 + 50.0, torch.from_numpy(np.stack((a, b)))[None]), dim=1)[0]
    from skimage import color as skcolor

    with warnings.catch_warnings():  # "negative Z values clipped": their conversion's own clipping
        warnings.simplefilter("ignore", UserWarning)
        rgb = skcolor.lab2rgb(lab_out.numpy().astype(np.float64).transpose(1, 2, 0))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _fast_global_smoother(guide: np.ndarray):
    """OpenCV contrib's fast global smoother (Min et al. 2014) guided by ``guide`` ``(H, W)`` uint8.

    Raises:
        RuntimeError: the installed OpenCV has no contrib modules.
    """
    import cv2

    if not hasattr(cv2, "ximgproc"):
        raise RuntimeError("the authors' pipeline (gamut clip) needs OpenCV's contrib modules: install "
                           "opencv-contrib-python-headless instead of opencv-python-headless")
    return cv2.ximgproc.createFastGlobalSmootherFilter(guide, SMOOTHER_LAMBDA, SMOOTHER_SIGMA)

