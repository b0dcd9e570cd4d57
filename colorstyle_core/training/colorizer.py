"""Fine-tuning a Zhang et al. colorizer: which blocks learn, and the loss of one batch.

:class:`ColorizerTraining` wraps an :class:`~colorstyle_core.models.ECCV16Colorizer` or
:class:`~colorstyle_core.models.SIGGRAPH17Colorizer` for training: the blocks named in
``train_blocks`` learn, every other parameter is frozen (``requires_grad=False``, so it
stays bit for bit the starting weights), and every BatchNorm keeps its running
statistics (small per-worker batches would make new ones noisy). Its ``forward`` gives
what the loss needs, so a data-parallel wrapper (DDP) around it sees one call per step.
The losses are :mod:`colorstyle_core.training.colorize_loss`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorstyle_core import color
from colorstyle_core.models import ECCV16Colorizer, SIGGRAPH17Colorizer
from colorstyle_core.training.colorize_loss import (
    bin_centres,
    bin_distribution,
    classification_loss,
    rebalance_weights,
    siggraph17_loss,
    simulate_hints,
    soft_encode,
)


class ColorizerTraining(nn.Module):
    """A colorizer with some blocks learning and the objective its authors trained it with.

    Args:
        net: the network, its starting weights loaded.
        train_blocks: names of the blocks that learn (``model7``, ``model8``, ...).
    Raises:
        ValueError: a block the network does not have.
    """

    def __init__(self, net: ECCV16Colorizer | SIGGRAPH17Colorizer, train_blocks: Sequence[str]):
        super().__init__()
        unknown = [b for b in train_blocks if not isinstance(getattr(net, b, None), nn.Module)]
        if unknown:
            raise ValueError(f"{type(net).__name__} has no block(s) {unknown}")
        self.net = net
        self.train_blocks = tuple(train_blocks)
        net.requires_grad_(False)
        for block in self.train_blocks:
            getattr(net, block).requires_grad_(True)
        self.eccv16 = isinstance(net, ECCV16Colorizer)
        self.register_buffer("rebalance", torch.ones(0), persistent=False)
        self.train(True)

    def train(self, mode: bool = True) -> ColorizerTraining:
        super().train(mode)
        for m in self.net.modules():  # running statistics stay the starting weights'
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def trainable(self) -> list[nn.Parameter]:
        """The parameters that learn."""
        return [p for p in self.net.parameters() if p.requires_grad]

    @property
    def centres(self) -> Tensor:
        """ECCV16's 313 ab bin centres (from its ``model_out``)."""
        assert self.eccv16
        return bin_centres(self.net.model_out.weight)

    def bin_counts(self, rgb: Tensor) -> Tensor:
        """ECCV16: soft-encoded bin mass of images (``(N, 3, H, W)`` sRGB in [0, 1]) at the loss's resolution.

        Summed over a training set (and over workers) and normalised, this is the ``p`` of
        :func:`~colorstyle_core.training.colorize_loss.rebalance_weights`.
        """
        ab = color.rgb_to_lab(rgb)[:, 1:]
        small = F.interpolate(ab, scale_factor=0.25, mode="area")
        return bin_distribution(soft_encode(small, self.centres)) * small.shape[-1] * small.shape[-2] * rgb.shape[0]

    def set_rebalancing(self, counts: Tensor) -> None:
        """Class-rebalancing weights from the training set's bin mass (ECCV16)."""
        self.rebalance = rebalance_weights(counts / counts.sum(), self.centres).to(self.rebalance.device)

    def forward(self, rgb: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """The loss of a batch of colour crops.

        Args:
            rgb: ``(N, 3, S, S)`` float32 sRGB in ``[0, 1]``; S a multiple of 8.
            generator: the random source of SIGGRAPH17's simulated hints.
        Returns:
            ``(loss, parts)``: a scalar tensor and its terms as floats.
        """
        lab = color.rgb_to_lab(rgb)
        lightness, ab = lab[:, :1], lab[:, 1:]
        if self.eccv16:
            logits = self.net.logits(lightness)
            targets = soft_encode(F.interpolate(ab, size=logits.shape[-2:], mode="area"), self.centres)
            loss = classification_loss(logits, targets, self.rebalance if self.rebalance.numel() else None)
            return loss, {"loss": float(loss.detach())}
        hint_ab, hint_mask = simulate_hints(ab, generator or torch.Generator().manual_seed(0))
        pred, class_logits = self.net.forward_train(lightness, hint_ab, hint_mask)
        loss, ce, huber = siggraph17_loss(class_logits, pred, ab)
        parts = {"loss": float(loss.detach()), "classification": float(ce.detach()),
                 "regression": float(huber.detach())}
        return loss, parts
