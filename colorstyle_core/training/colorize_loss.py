"""The losses the colorization authors trained with, as pure functions on batches.

ECCV16 (Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016, Sec. 2.1):

* ab is quantised to Q = 313 in-gamut bins (grid 10). The bins are the authors': the
  published checkpoint keeps them in ``model_out`` (its 1x1 convolution maps the 313
  probabilities to their expected ab, so its weights times 110 are the bin centres), and
  :func:`bin_centres` reads them from there.
* Soft encoding (Eq. 2's target ``Z = H_gt^-1(Y)``): each pixel's ab is spread over its
  5 nearest bins, weighted by a Gaussian of the distance (sigma = 5), normalised to sum 1.
* Class rebalancing (Eq. 3-4): ``w ∝ ((1 - lambda) p~ + lambda / Q)^-1`` with ``p~`` the
  empirical bin distribution of *this* training set smoothed by a Gaussian over ab
  (sigma = 5), ``lambda = 0.5``, normalised so that ``E_p~[w] = sum_q p~_q w_q = 1``.
* The loss (Eq. 2): ``L = - sum_{h,w} v(Z_hw) sum_q Z_hwq log Zhat_hwq`` with
  ``v(Z_hw) = w_{argmax_q Z_hwq}`` and ``Zhat`` the softmax of the network's 313 logits;
  here averaged over pixels and images.

SIGGRAPH17 (Zhang et al., "Real-Time User-Guided Image Colorization with Learned Deep
Priors", SIGGRAPH 2017, Sec. 3.2 and the authors' training code): a 529-way classification
of ab (a 23 x 23 grid of 10 over [-110, 110]^2, hard labels, cross-entropy) on the
``model_class`` head and a smooth-L1 (Huber, delta 1 in units of 110) regression of ab on
the output, ``loss = CE + 10 * Huber``, with hints simulated as :func:`simulate_hints` says.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

AB_NORM = 110.0
SOFT_NEIGHBOURS = 5
SOFT_SIGMA = 5.0
REBALANCE_SIGMA = 5.0
REBALANCE_LAMBDA = 0.5
GRID_529 = 23  # SIGGRAPH17's classification grid: 23 x 23 cells of 10 over [-110, 110]


def bin_centres(model_out_weight: Tensor, ab_norm: float = AB_NORM) -> Tensor:
    """The ab bin centres held by an ECCV16 ``model_out.weight`` (``(2, Q, 1, 1)``): ``(Q, 2)`` float32."""
    return (model_out_weight.detach()[:, :, 0, 0].T * ab_norm).to(torch.float32)


def soft_encode(ab: Tensor, centres: Tensor, neighbours: int = SOFT_NEIGHBOURS, sigma: float = SOFT_SIGMA) -> Tensor:
    """Soft-encoded targets ``Z``: each pixel's ab spread over its nearest bins.

    Args:
        ab: ``(N, 2, H, W)`` ab in Lab units.
        centres: ``(Q, 2)`` bin centres.
        neighbours: bins each pixel is spread over (5 in the paper).
        sigma: Gaussian width in ab units (5 in the paper).
    Returns:
        ``(N, Q, H, W)`` float32, summing to 1 over Q.
    """
    n, _, h, w = ab.shape
    pixels = ab.permute(0, 2, 3, 1).reshape(-1, 2).to(torch.float32)
    d2 = torch.cdist(pixels, centres.to(pixels.device)).pow(2)  # (P, Q)
    nearest, index = d2.topk(neighbours, dim=1, largest=False)
    weight = torch.exp(-nearest / (2 * sigma * sigma))
    weight = weight / weight.sum(dim=1, keepdim=True)
    z = torch.zeros_like(d2).scatter_(1, index, weight)
    return z.view(n, h, w, -1).permute(0, 3, 1, 2)


def bin_distribution(targets: Tensor) -> Tensor:
    """Empirical bin distribution ``p`` of soft-encoded targets ``(N, Q, H, W)``: ``(Q,)`` summing to 1."""
    p = targets.to(torch.float64).sum(dim=(0, 2, 3))
    return (p / p.sum()).to(torch.float32)


def rebalance_weights(p: Tensor, centres: Tensor, sigma: float = REBALANCE_SIGMA,
                      mix: float = REBALANCE_LAMBDA) -> Tensor:
    """Class-rebalancing weights ``w`` (Eq. 4): rare colours count more.

    ``p`` is smoothed with a Gaussian over the bins' ab positions (``sigma``), mixed with the
    uniform distribution by ``mix`` (lambda), inverted and normalised so ``sum_q p~_q w_q = 1``.

    Args:
        p: ``(Q,)`` empirical distribution (summing to 1).
        centres: ``(Q, 2)`` bin centres.
    Returns:
        ``(Q,)`` float32.
    """
    d2 = torch.cdist(centres.to(torch.float64), centres.to(torch.float64)).pow(2)
    kernel = torch.exp(-d2 / (2 * sigma * sigma))
    smooth = kernel @ p.to(torch.float64)
    smooth = smooth / smooth.sum()
    q = p.numel()
    w = 1.0 / ((1 - mix) * smooth + mix / q)
    w = w / (smooth * w).sum()
    return w.to(torch.float32)


def classification_loss(logits: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
    """Eq. 2: ``- v(Z) sum_q Z log softmax(logits)``, averaged over pixels and images.

    Args:
        logits: ``(N, Q, H, W)`` the network's class scores (before the softmax).
        targets: ``(N, Q, H, W)`` soft-encoded ``Z`` at the same resolution.
        weights: ``(Q,)`` rebalancing weights (``None`` = 1 everywhere).
    Returns:
        A scalar tensor.
    """
    cross = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)  # (N, H, W)
    if weights is not None:
        cross = cross * weights.to(logits.device)[targets.argmax(dim=1)]
    return cross.mean()


def quantize_529(ab: Tensor) -> Tensor:
    """SIGGRAPH17's class of each pixel: ``(N, 2, H, W)`` ab -> ``(N, H, W)`` int64 in ``[0, 529)``."""
    cell = ((ab.clamp(-AB_NORM, AB_NORM) + AB_NORM) / 10.0).round().long().clamp(0, GRID_529 - 1)
    return cell[:, 0] * GRID_529 + cell[:, 1]


def siggraph17_loss(class_logits: Tensor, ab_pred: Tensor, ab_true: Tensor, regression_weight: float = 10.0
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """``CE(529 classes at the class head's resolution) + 10 * Huber(ab / 110, delta 1)``.

    Args:
        class_logits: ``(N, 529, h, w)`` from ``model_class``.
        ab_pred: ``(N, 2, H, W)`` the network's ab (Lab units).
        ab_true: ``(N, 2, H, W)`` ground-truth ab.
    Returns:
        ``(total, cross-entropy, huber)`` scalars.
    """
    small = F.interpolate(ab_true, size=class_logits.shape[-2:], mode="area")
    ce = F.cross_entropy(class_logits, quantize_529(small))
    huber = F.smooth_l1_loss(ab_pred / AB_NORM, ab_true / AB_NORM, beta=1.0)
    return ce + regression_weight * huber, ce, huber


def simulate_hints(ab: Tensor, generator: torch.Generator, p: float = 1 / 8, max_patch: int = 9
                   ) -> tuple[Tensor, Tensor]:
    """Random local hints for training SIGGRAPH17, as the authors' training code draws them.

    Per image: the number of hints is geometric with success ``p`` (mean 8), minus one
    (so some images get none); each hint's centre is drawn from a Gaussian around the
    image centre with standard deviation a quarter of each side (clipped to the image); its
    square patch has a side drawn uniformly from 1 to ``max_patch``; its value is the mean
    ab of the true image under the patch; the mask is 1 under it.

    Args:
        ab: ``(N, 2, H, W)`` ground-truth ab.
        generator: the random source (seeded per step and worker: reproducible after a restart).
    Returns:
        ``(hint_ab, hint_mask)``: ``(N, 2, H, W)`` and ``(N, 1, H, W)`` float32.
    """
    n, _, h, w = ab.shape
    hint_ab = torch.zeros_like(ab)
    mask = torch.zeros(n, 1, h, w, dtype=ab.dtype, device=ab.device)
    for i in range(n):
        u = float(torch.rand((), generator=generator))
        count = int(math.floor(math.log(max(u, 1e-12)) / math.log(1 - p)))  # geometric (failures before success)
        for _ in range(count):
            cy, cx = (torch.randn(2, generator=generator) * torch.tensor([h / 4, w / 4]) + torch.tensor([h / 2, w / 2]))
            size = int(torch.randint(1, max_patch + 1, (), generator=generator))
            y0 = int(min(max(int(cy) - size // 2, 0), h - size))
            x0 = int(min(max(int(cx) - size // 2, 0), w - size))
            patch = ab[i, :, y0:y0 + size, x0:x0 + size]
            hint_ab[i, :, y0:y0 + size, x0:x0 + size] = patch.mean(dim=(1, 2), keepdim=True)
            mask[i, :, y0:y0 + size, x0:x0 + size] = 1.0
    return hint_ab, mask
