"""Losses of Gatys et al. (CVPR 2016) style transfer, per image.

Pure functions on batches: they take ``(N, ...)`` tensors and return ``(N,)`` losses,
one per image, so a batch of N images optimises exactly as N separate runs would.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gram_matrix(features: Tensor) -> Tensor:
    """Gram matrix of each image's feature maps, normalised by its size.

    ``G[n] = F_n F_n^T / (C * H * W)`` with ``F_n`` the ``(C, H*W)`` features of image n.
    Normalising per image (not per batch, unlike the PyTorch tutorial) makes the
    Gram matrix of an image independent of the batch it is in, and comparable across
    image sizes.

    Args:
        features: ``(N, C, H, W)`` float.
    Returns:
        ``(N, C, C)`` float.
    """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: Tensor, target: Tensor) -> Tensor:
    """Mean squared feature difference per image: ``(N, C, H, W)`` x2 -> ``(N,)``."""
    return (features - target).pow(2).flatten(1).mean(dim=1)


def style_loss(gram: Tensor, target_gram: Tensor) -> Tensor:
    """Mean squared Gram difference per image.

    Args:
        gram: ``(N, C, C)`` Gram matrices of the images being optimised.
        target_gram: ``(C, C)`` or ``(N, C, C)`` style target (broadcast over N).
    Returns:
        ``(N,)``.
    """
    return (gram - target_gram).pow(2).flatten(1).mean(dim=1)


def total_variation(images: Tensor) -> Tensor:
    """Squared total variation per image: mean of squared horizontal and vertical differences.

    Args:
        images: ``(N, C, H, W)``.
    Returns:
        ``(N,)``.
    """
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).pow(2).flatten(1).mean(dim=1)
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).pow(2).flatten(1).mean(dim=1)
    return dx + dy


def masked_mse(images: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked mean squared difference per image (temporal loss of Ruder et al. 2016).

    Args:
        images, target: ``(N, C, H, W)``.
        mask: ``(N, 1, H, W)`` weights in ``[0, 1]`` (1 = pixel is trusted).
    Returns:
        ``(N,)``: ``sum(mask * (images - target)^2) / (C * H * W)``.
    """
    return (mask * (images - target).pow(2)).flatten(1).mean(dim=1)
