"""Training a fast stylizer: Johnson et al.'s perceptual losses around a transformation network.

Johnson, Alahi, Fei-Fei, ECCV 2016, Sec. 3: the transformation network ``f_W`` is trained
so that ``y = f_W(x)`` minimises

    l(y, x) = lambda_c * l_feat(y, x) + lambda_s * sum_j w_j * l_style^j(y, y_s) + lambda_tv * l_TV(y)

(plus, optionally, a temporal term on consecutive video frames: :meth:`StylizerTraining.temporal`)
with the feature reconstruction (content) loss ``l_feat`` on the content layers (Eq. 2),
the style reconstruction loss ``l_style`` = squared Frobenius distance of Gram matrices
(Eq. 3-4) against the style image ``y_s`` (several styles: the blend-weighted mean of their
Gram matrices, as :func:`colorstyle_core.style.gatys.style_targets` builds for Gatys), and
total variation. The losses, Gram matrices, layer names and the style targets are the very
functions the Gatys stylizer uses (:mod:`colorstyle_core.style.losses`); only the variable
that is optimised differs (the network's weights, not the image). The VGG loss network is
frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from colorstyle_core import color, flow
from colorstyle_core.models.johnson import TransformerNet
from colorstyle_core.models.vgg import VGGFeatures
from colorstyle_core.style.gatys import StyleConfig, StyleTargets, style_targets
from colorstyle_core.style.losses import content_loss, gram_matrix, masked_mse, style_loss, total_variation


class StylizerTraining(nn.Module):
    """A transformation network learning one style (or blend) under a frozen VGG loss network.

    Args:
        net: the transformation network (its starting weights loaded).
        extractor: the VGG features, weights loaded; frozen here.
        styles: each ``(1, 3, h, w)`` float32 sRGB in ``[0, 1]``.
        config: content/style layers, loss weights and style blend (a :class:`StyleConfig`,
            the Gatys settings, so both methods share one meaning for each weight).
        size: the training crops' side in pixels; the style images are scaled so their longer
            side is ``size * config.style_scale`` (the scale the network will see).
        temporal_weight: weight of :meth:`temporal` (0 = off).
    """

    def __init__(self, net: TransformerNet, extractor: VGGFeatures, styles: Sequence[Tensor], config: StyleConfig,
                 size: int, temporal_weight: float = 0.0):
        super().__init__()
        self.net = net
        self.temporal_weight = temporal_weight
        self.extractor = extractor.eval().requires_grad_(False)
        self.config = config
        self.layers = tuple(dict.fromkeys((*config.content_layers, *config.style_layers)))
        extractor.check_layers(self.layers)
        probe = torch.zeros(1, 3, size, size)
        targets: StyleTargets = style_targets(extractor, styles, config, probe)
        for i, layer in enumerate(config.style_layers):
            self.register_buffer(f"gram_{i}", targets.grams[layer].clone(), persistent=False)
        self.layer_weights = config.style_layer_weights or (1.0,) * len(config.style_layers)

    def trainable(self) -> list[nn.Parameter]:
        """The transformation network's parameters (the loss network never learns)."""
        return list(self.net.parameters())

    def train(self, mode: bool = True) -> StylizerTraining:
        super().train(mode)
        self.extractor.eval()
        return self

    def losses(self, y: Tensor, x: Tensor) -> dict[str, Tensor]:
        """The weighted loss terms of outputs ``y`` for inputs ``x`` (both ``(N, 3, S, S)``), batch means."""
        cfg = self.config
        feats = self.extractor(y, self.layers)
        with torch.no_grad():
            content_feats = self.extractor(x, cfg.content_layers) if cfg.content_layers else {}
        zero = y.new_zeros(())
        c = sum((content_loss(feats[l], content_feats[l]).mean() for l in cfg.content_layers), zero)
        s = sum((w * style_loss(gram_matrix(feats[l]), getattr(self, f"gram_{i}")).mean()
                 for i, (l, w) in enumerate(zip(cfg.style_layers, self.layer_weights))), zero)
        tv = total_variation(y).mean()
        return {"content": cfg.content_weight * c, "style": cfg.style_weight * s, "tv": cfg.tv_weight * tv}

    def temporal(self, pairs: Tensor) -> Tensor:
        """Short-term temporal loss on consecutive frames (Ruder et al. 2016, Eq. 7; ReCoNet's output term).

        ``x_t, x_{t+1}`` = ``pairs[:, 0], pairs[:, 1]`` (``(M, 2, 3, S, S)`` float32 in ``[0, 1]``); the
        flow from ``t + 1`` back to ``t`` and its forward-backward trust mask ``c`` are estimated on
        the inputs' L (no gradient, :func:`colorstyle_core.flow.bidirectional_flow`); the loss is
        ``mean(c * (f(x_{t+1}) - warp(f(x_t)))^2)`` (:func:`~colorstyle_core.style.losses.masked_mse`),
        averaged over the pairs, unweighted.
        """
        m = pairs.shape[0]
        y = self.net(pairs.flatten(0, 1)).view(m, 2, *pairs.shape[2:])
        with torch.no_grad():
            cpu = pairs.detach().cpu()
            motion = flow.bidirectional_flow(color.rgb_to_l(cpu[:, 1]), color.rgb_to_l(cpu[:, 0]))
        warped = flow.warp(y[:, 0], motion.fwd.to(y.device))
        return masked_mse(y[:, 1], warped, motion.mask.to(y.device)).mean()

    def forward(self, rgb: Tensor, generator: torch.Generator | None = None, pairs: Tensor | None = None
                ) -> tuple[Tensor, dict[str, float]]:
        """The loss of a batch of content crops.

        Args:
            rgb: ``(N, 3, S, S)`` float32 sRGB in ``[0, 1]``.
            generator: unused (the objective has no randomness); the loop's interface.
            pairs: ``(M, 2, 3, S, S)`` consecutive video frames for the temporal term (when its
                weight is above 0), or ``None``.
        Returns:
            ``(loss, parts)``: a scalar tensor and its weighted terms as floats.
        """
        parts = self.losses(self.net(rgb), rgb)
        if pairs is not None and self.temporal_weight > 0:
            parts["temporal"] = self.temporal_weight * self.temporal(pairs)
        loss = sum(parts.values(), rgb.new_zeros(()))
        return loss, {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
